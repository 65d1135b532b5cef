//! Text embeddings for knowledge chunks and questions: one [`Embedder`] in front of two
//! providers.
//!
//! - `LocalMiniLm` (feature `local-embeddings`): all-MiniLM-L6-v2 run in-process by the
//!   `chatpad-minilm` crate (384 dimensions, no network, no per-token cost). The default where
//!   the feature is on; only the functions that embed enable it.
//! - [`OpenAiEmbeddings`]: any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI itself,
//!   Azure-style gateways, vLLM, Ollama, ...).
//!
//! Every vector is stored next to the [`Embedder::model_id`] that produced it (the ids of the
//! database's `embedding_models` table): vectors of different models are not comparable, so a
//! question must be embedded by the same model as the chunks it is searched against.
//!
//! [`Embedder::from_env`] picks the provider: `EMBEDDINGS_BASE_URL` set means the
//! OpenAI-compatible one (with `EMBEDDINGS_API_KEY`, `EMBEDDINGS_MODEL`,
//! `EMBEDDINGS_DIMENSIONS`), otherwise the local model from the files in
//! `EMBEDDING_MODEL_DIR` (a configuration error when the feature is off).

#[cfg(feature = "local-embeddings")]
mod local;
mod openai;

use std::path::PathBuf;

use crate::vendor_api::non_empty_env;

#[cfg(feature = "local-embeddings")]
pub use local::LocalMiniLm;
pub use openai::{OpenAiConfig, OpenAiEmbeddings};

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The provider's configuration is missing or invalid (an environment variable, a URL).
    #[error("embeddings configuration: {0}")]
    Config(String),
    /// A model file is missing or unreadable; names the file.
    #[error("embedding model file {path}: {message}")]
    ModelFile {
        /// The file that could not be used.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The local model failed while computing (a tensor operation or the tokenizer).
    #[error("local embedding model: {0}")]
    Model(String),
    /// The provider answered with an error status; `message` is the provider's own message.
    #[error("embeddings provider returned HTTP {status}: {message}")]
    Provider {
        /// The HTTP status code.
        status: u16,
        /// The provider's error message (or the start of its body).
        message: String,
    },
    /// The provider could not be reached or did not answer in time.
    #[error("embeddings provider request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// The provider answered 2xx with something that is not a valid embeddings response.
    #[error("embeddings provider sent an invalid response: {0}")]
    InvalidResponse(String),
}

/// An embeddings provider. An enum rather than a trait object: there are two providers, and
/// `async fn` in an enum needs neither boxing nor `async_trait`.
#[derive(Debug, Clone)]
pub enum Embedder {
    /// all-MiniLM-L6-v2 in-process.
    #[cfg(feature = "local-embeddings")]
    Local(LocalMiniLm),
    /// An OpenAI-compatible HTTP API.
    OpenAi(OpenAiEmbeddings),
}

impl Embedder {
    /// Builds the provider the environment asks for: the OpenAI-compatible client when
    /// `EMBEDDINGS_BASE_URL` is set (see [`OpenAiConfig::from_env`]), otherwise the local
    /// model loaded from `EMBEDDING_MODEL_DIR` (which takes a fraction of a second: the
    /// weights are read into memory once, so hold the `Embedder` for the process's life).
    /// Without the `local-embeddings` feature, a missing `EMBEDDINGS_BASE_URL` is a
    /// configuration error.
    pub fn from_env() -> Result<Self, EmbedError> {
        match non_empty_env("EMBEDDINGS_BASE_URL") {
            Some(_) => Ok(Embedder::OpenAi(OpenAiEmbeddings::new(
                OpenAiConfig::from_env()?,
            )?)),
            #[cfg(not(feature = "local-embeddings"))]
            None => Err(EmbedError::Config(
                "set EMBEDDINGS_BASE_URL for an OpenAI-compatible embeddings API: this build \
                 has no local embedding model (cargo feature `local-embeddings`)"
                    .into(),
            )),
            #[cfg(feature = "local-embeddings")]
            None => {
                let dir = non_empty_env("EMBEDDING_MODEL_DIR").ok_or_else(|| {
                    EmbedError::Config(
                        "set EMBEDDING_MODEL_DIR to the folder holding all-MiniLM-L6-v2's \
                         model.safetensors, tokenizer.json and config.json, or \
                         EMBEDDINGS_BASE_URL for an OpenAI-compatible API"
                            .into(),
                    )
                })?;
                Ok(Embedder::Local(LocalMiniLm::load(dir)?))
            }
        }
    }

    /// Embeds `texts`, one vector of [`Self::dimensions`] floats per text, in input order.
    /// An empty slice gives an empty result without any work.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            #[cfg(feature = "local-embeddings")]
            Embedder::Local(local) => local.embed(texts).await,
            Embedder::OpenAi(openai) => openai.embed(texts).await,
        }
    }

    /// The id of the `embedding_models` row for this provider's vectors, e.g.
    /// `local/all-MiniLM-L6-v2` or `openai/text-embedding-3-small`.
    pub fn model_id(&self) -> &str {
        match self {
            #[cfg(feature = "local-embeddings")]
            Embedder::Local(local) => local.model_id(),
            Embedder::OpenAi(openai) => openai.model_id(),
        }
    }

    /// The length of every vector this provider returns.
    pub fn dimensions(&self) -> usize {
        match self {
            #[cfg(feature = "local-embeddings")]
            Embedder::Local(local) => local.dimensions(),
            Embedder::OpenAi(openai) => openai.dimensions(),
        }
    }
}

/// Cosine similarity of two vectors of the same length (0 when either is all zeros). The
/// providers' vectors are unit length, where this equals the dot product.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-2.0, -2.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[cfg(not(feature = "local-embeddings"))]
    #[test]
    fn without_the_local_model_a_missing_base_url_is_a_configuration_error() {
        if non_empty_env("EMBEDDINGS_BASE_URL").is_some() {
            return; // the environment chose a provider; nothing to check here
        }
        let err = Embedder::from_env().unwrap_err();
        assert!(matches!(err, EmbedError::Config(_)));
        assert!(err.to_string().contains("EMBEDDINGS_BASE_URL"), "{err}");
    }
}
