//! The in-process provider: all-MiniLM-L6-v2 from the `chatpad-minilm` crate, run on a
//! blocking thread so that seconds of CPU do not stall the async runtime.

use std::path::Path;

use chatpad_minilm::MiniLm;

use super::EmbedError;

/// all-MiniLM-L6-v2 loaded in memory (about 90 MB of f32 weights, plus 21 MB of f16 copies for
/// short inputs on x86-64 CPUs with AVX2). Cheap to clone: clones share the weights.
#[derive(Debug, Clone)]
pub struct LocalMiniLm {
    model: MiniLm,
}

impl LocalMiniLm {
    /// The `embedding_models` id of this model's vectors.
    pub const MODEL_ID: &'static str = MiniLm::MODEL_ID;
    /// Length of every vector.
    pub const DIMENSIONS: usize = MiniLm::DIMENSIONS;
    /// Longest input in tokens, counting `[CLS]` and `[SEP]`; longer texts are truncated, so
    /// chunkers should stay below it.
    pub const MAX_TOKENS: usize = MiniLm::MAX_TOKENS;

    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`. A missing or
    /// unreadable file gives [`EmbedError::ModelFile`] naming it.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, EmbedError> {
        Ok(LocalMiniLm {
            model: MiniLm::load(dir)?,
        })
    }

    /// [`Self::MODEL_ID`].
    pub fn model_id(&self) -> &str {
        Self::MODEL_ID
    }

    /// [`Self::DIMENSIONS`].
    pub fn dimensions(&self) -> usize {
        Self::DIMENSIONS
    }

    /// Embeds `texts` on a blocking thread (the work is CPU-bound and can take seconds), one
    /// unit-length vector per text, in input order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let model = self.model.clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || model.embed(&texts))
            .await
            .map_err(|err| EmbedError::Model(format!("the embedding task failed: {err}")))?
            .map_err(EmbedError::from)
    }

    /// [`Self::embed`] on the current thread, for callers that are not async (or already on a
    /// blocking thread).
    pub fn embed_blocking<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.model.embed(texts)?)
    }

    /// How many tokens `text` has for this model, `[CLS]` and `[SEP]` included, before
    /// truncation: above [`Self::MAX_TOKENS`], the end of the text is not embedded.
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.model.count_tokens(text)?)
    }
}

impl From<chatpad_minilm::Error> for EmbedError {
    fn from(err: chatpad_minilm::Error) -> Self {
        match err {
            chatpad_minilm::Error::ModelFile { path, message } => {
                EmbedError::ModelFile { path, message }
            }
            chatpad_minilm::Error::Model(message) => EmbedError::Model(message),
        }
    }
}
