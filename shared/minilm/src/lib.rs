//! all-MiniLM-L6-v2 run in-process on the CPU: ChatPad's local embedding model, a crate of its
//! own so that only the functions that embed (`ingest-worker`, `widget-chat`) carry candle,
//! gemm, rayon and tokenizers, and so that only this arithmetic is built at `opt-level = 3`
//! while the Lambda binaries stay optimised for size.
//!
//! Sentence embeddings as sentence-transformers computes them: BERT's last hidden states,
//! mean-pooled over the text's tokens, then L2-normalised; 384 floats.
//!
//! Speed comes from not computing what is thrown away and from using every core:
//! - the shipped `tokenizer.json` pads every text to 128 tokens and cuts it at 128; here
//!   truncation is at 256 tokens, the model's `max_seq_length`, and nothing is padded at all:
//!   the texts of a batch are packed end to end and attention runs per text (see
//!   `forward.rs`), so a short question costs its own few tokens and a long chunk is not
//!   silently cut in half;
//! - the forward pass uses every core (rayon's pool) for its matrix products and element-wise
//!   passes. It is synchronous: async callers run it on a blocking thread;
//! - the weights are rounded to half precision, and a short input (a visitor's question) reads
//!   them as f16: half the bytes to stream for a few tokens (`forward.rs`, `Weight`); on CPUs
//!   with AMX it is multiplied on the tiles in bf16 instead (`forward/amx.rs`,
//!   [`short_input_kernel`]).

mod forward;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use forward::{BertConfig, Forward};

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file is missing or unreadable; names the file.
    #[error("embedding model file {path}: {message}")]
    ModelFile {
        /// The file that could not be used.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Tokenizing or computing failed.
    #[error("local embedding model: {0}")]
    Model(String),
}

/// all-MiniLM-L6-v2 loaded in memory (about 90 MB of f32 weights). Cheap to clone: clones
/// share the weights.
#[derive(Clone)]
pub struct MiniLm {
    inner: Arc<Inner>,
}

struct Inner {
    model: Forward,
    /// Truncates at [`LocalMiniLm::MAX_TOKENS`] and pads nothing.
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, to tell callers how long a text really is.
    counter: Tokenizer,
}

impl fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiniLm")
            .field("model_id", &Self::MODEL_ID)
            .finish_non_exhaustive()
    }
}

impl MiniLm {
    /// The id of this model's vectors in ChatPad's `embedding_models` table.
    pub const MODEL_ID: &'static str = "local/all-MiniLM-L6-v2";
    /// Length of every vector.
    pub const DIMENSIONS: usize = 384;
    /// Longest input in tokens, counting `[CLS]` and `[SEP]` (the model's `max_seq_length`);
    /// longer texts are truncated, so chunkers should stay below it.
    pub const MAX_TOKENS: usize = 256;
    /// Texts per forward pass. Enough rows (up to 32 × 256 tokens) for the matrix products to
    /// keep every core busy, while a batch's activations stay below about 130 MB.
    pub const BATCH_SIZE: usize = 32;

    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`. A missing or
    /// unreadable file gives [`Error::ModelFile`] naming it.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(file_error(dir, "not a directory (set EMBEDDING_MODEL_DIR)"));
        }

        let config_path = dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|err| file_error(&config_path, err))?;
        let config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|err| file_error(&config_path, format!("not a BERT config: {err}")))?;
        if config.hidden_size != Self::DIMENSIONS {
            return Err(file_error(
                &config_path,
                format!(
                    "hidden_size is {}, expected {} (all-MiniLM-L6-v2)",
                    config.hidden_size,
                    Self::DIMENSIONS
                ),
            ));
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let mut counter = Tokenizer::from_file(&tokenizer_path)
            .map_err(|err| file_error(&tokenizer_path, err))?;
        // The shipped file pads to a fixed 128 and truncates at 128: both off here.
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|err| file_error(&tokenizer_path, err))?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: Self::MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|err| file_error(&tokenizer_path, err))?;

        let weights_path = dir.join("model.safetensors");
        // Read into memory rather than mmap: safe code, and the file is read once per process.
        let weights = std::fs::read(&weights_path).map_err(|err| file_error(&weights_path, err))?;
        let model = Forward::from_safetensors(&config, &weights)
            .map_err(|err| file_error(&weights_path, err))?;
        if model.max_positions() < Self::MAX_TOKENS {
            return Err(file_error(
                &config_path,
                format!("max_position_embeddings is below {}", Self::MAX_TOKENS),
            ));
        }

        Ok(MiniLm {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                counter,
            }),
        })
    }

    /// Embeds `texts` on the current thread (and rayon's pool), one unit-length vector per
    /// text, in input order. Takes seconds for large inputs: async callers should run it on a
    /// blocking thread.
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        // `_fast`: no character offsets, which embedding does not need.
        let encodings = inner
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(|err| Error::Model(format!("tokenizing: {err}")))?;

        let vocab = inner.model.vocab_size();
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        if ids.iter().any(|t| t.is_empty()) {
            return Err(Error::Model(
                "the tokenizer produced an empty sequence".into(),
            ));
        }
        if let Some(bad) = ids
            .iter()
            .flat_map(|t| t.iter())
            .find(|&&id| id as usize >= vocab)
        {
            return Err(Error::Model(format!(
                "token id {bad} is outside the model's vocabulary of {vocab}: tokenizer.json \
                 does not belong to model.safetensors"
            )));
        }

        // No padding, so no sorting by length either: batches are runs of input order.
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(Self::BATCH_SIZE) {
            out.extend(inner.model.embed(batch));
        }
        Ok(out)
    }

    /// How many tokens `text` has for this model, `[CLS]` and `[SEP]` included, before
    /// truncation: above [`Self::MAX_TOKENS`], the end of the text is not embedded.
    pub fn count_tokens(&self, text: &str) -> Result<usize, Error> {
        let encoding = self
            .inner
            .counter
            .encode_fast(text, true)
            .map_err(|err| Error::Model(format!("tokenizing: {err}")))?;
        Ok(encoding.len())
    }
}

/// Inputs of at most this many tokens (a batch's total) are short: [`short_input_kernel`].
pub const SHORT_INPUT_TOKENS: usize = forward::SHORT_INPUT_TOKENS;

/// How this CPU multiplies a short input (a question) by the weights:
/// `"amx-bf16"`, `"avx512-f16"`, `"avx2-f16"`, or `"gemm"` like batches. With `amx-bf16` a
/// short text's vector is within ~1e-3 per dimension of the batch path's (bf16 rounding of
/// the weights and the input); with the others the two agree to float rounding.
pub fn short_input_kernel() -> &'static str {
    forward::short_input_kernel()
}

fn file_error(path: &Path, err: impl fmt::Display) -> Error {
    Error::ModelFile {
        path: PathBuf::from(path),
        message: err.to_string(),
    }
}
