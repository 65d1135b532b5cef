//! A client for OpenAI-compatible embeddings APIs (`POST /v1/embeddings`).
//!
//! The endpoint is derived from a base URL: `{base}/v1/embeddings`, or `{base}/embeddings`
//! when the base already ends with `/v1` (so both `https://api.openai.com` and
//! `https://api.openai.com/v1` work, as do gateways serving the API under a prefix such as
//! `http://localhost:11434/v1`). Requests carry at most [`OpenAiEmbeddings::MAX_BATCH`]
//! inputs; a 429 or 5xx answer (or a refused connection) is retried once, after the
//! `Retry-After` seconds the provider asks for, capped at [`OpenAiEmbeddings::MAX_RETRY_WAIT`].

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::EmbedError;
use crate::vendor_api::{self, non_empty_env};

/// Settings of an OpenAI-compatible provider.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL, e.g. `https://api.openai.com` or `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …`; `None` for local servers that need no key.
    pub api_key: Option<SecretString>,
    /// The provider's model name, e.g. `text-embedding-3-small`.
    pub model: String,
    /// Length of the vectors the model returns; every response is checked against it.
    pub dimensions: usize,
    /// Limit for one whole request (connecting, sending, reading the answer).
    pub timeout: Duration,
}

impl OpenAiConfig {
    /// Reads `EMBEDDINGS_BASE_URL` (required), `EMBEDDINGS_API_KEY` (optional),
    /// `EMBEDDINGS_MODEL` (default `text-embedding-3-small`) and `EMBEDDINGS_DIMENSIONS`
    /// (required unless the model is one of OpenAI's, whose sizes are known).
    pub fn from_env() -> Result<Self, EmbedError> {
        let base_url = non_empty_env("EMBEDDINGS_BASE_URL")
            .ok_or_else(|| EmbedError::Config("EMBEDDINGS_BASE_URL is not set".into()))?;
        let model =
            non_empty_env("EMBEDDINGS_MODEL").unwrap_or_else(|| "text-embedding-3-small".into());
        let dimensions = match non_empty_env("EMBEDDINGS_DIMENSIONS") {
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    EmbedError::Config(format!(
                        "EMBEDDINGS_DIMENSIONS must be a positive integer, got {text:?}"
                    ))
                })?,
            None => known_dimensions(&model).ok_or_else(|| {
                EmbedError::Config(format!(
                    "EMBEDDINGS_DIMENSIONS is required for model {model:?} (its vector length \
                     is not known)"
                ))
            })?,
        };
        Ok(OpenAiConfig {
            base_url,
            api_key: non_empty_env("EMBEDDINGS_API_KEY").map(SecretString::from),
            model,
            dimensions,
            timeout: Duration::from_secs(60),
        })
    }
}

/// Vector lengths of OpenAI's own embedding models (at their full size).
fn known_dimensions(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        _ => None,
    }
}

/// An OpenAI-compatible embeddings client. Cheap to clone (the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct OpenAiEmbeddings {
    client: reqwest::Client,
    endpoint: String,
    api_key: Option<SecretString>,
    model: String,
    model_id: String,
    dimensions: usize,
}

impl OpenAiEmbeddings {
    /// Most inputs sent in one request (OpenAI accepts 2,048; smaller requests keep each
    /// answer small and a retry cheap).
    pub const MAX_BATCH: usize = 256;
    /// Longest wait before the one retry, whatever `Retry-After` says: a Lambda invocation
    /// cannot wait minutes.
    pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(20);
    /// Wait before the retry when the provider gives no `Retry-After`.
    const DEFAULT_RETRY_WAIT: Duration = Duration::from_secs(1);

    /// Builds the client; checks the base URL but does not contact the provider.
    pub fn new(config: OpenAiConfig) -> Result<Self, EmbedError> {
        let endpoint = vendor_api::endpoint(&config.base_url, "embeddings")
            .map_err(|err| EmbedError::Config(format!("embeddings base URL: {err}")))?;
        if config.model.trim().is_empty() {
            return Err(EmbedError::Config(
                "the embeddings model name is empty".into(),
            ));
        }
        if config.dimensions == 0 {
            return Err(EmbedError::Config(
                "embedding dimensions must be positive".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10).min(config.timeout))
            .build()
            .map_err(EmbedError::Transport)?;
        Ok(OpenAiEmbeddings {
            client,
            endpoint,
            api_key: config.api_key,
            model_id: format!("openai/{}", config.model),
            model: config.model,
            dimensions: config.dimensions,
        })
    }

    /// `openai/` followed by the provider's model name, e.g. `openai/text-embedding-3-small`.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The configured vector length.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The URL requests are sent to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Embeds `texts` in requests of at most [`Self::MAX_BATCH`] inputs, returning the
    /// vectors in input order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(Self::MAX_BATCH) {
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = json!({
            "model": self.model,
            "input": texts,
            "encoding_format": "float",
        });
        let mut retried = false;
        loop {
            let mut request = self.client.post(&self.endpoint).json(&body);
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key.expose_secret());
            }
            let response = match request.send().await {
                Ok(response) => response,
                // A refused or reset connection is worth one more try; a timeout is not (the
                // same request would likely time out again, doubling the wait).
                Err(err) if !retried && err.is_connect() => {
                    retried = true;
                    tokio::time::sleep(Self::DEFAULT_RETRY_WAIT).await;
                    continue;
                }
                Err(err) => return Err(EmbedError::Transport(err)),
            };
            let status = response.status();
            if status.is_success() {
                let bytes = response.bytes().await.map_err(EmbedError::Transport)?;
                return self.parse(&bytes, texts.len());
            }
            if !retried && (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
                retried = true;
                let wait = vendor_api::retry_after(response.headers())
                    .unwrap_or(Self::DEFAULT_RETRY_WAIT)
                    .min(Self::MAX_RETRY_WAIT);
                tracing::warn!(
                    status = status.as_u16(),
                    wait_ms = wait.as_millis() as u64,
                    "embeddings provider asked to retry"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            return Err(EmbedError::Provider {
                status: status.as_u16(),
                message: vendor_api::provider_message(&text, status),
            });
        }
    }

    /// Checks a 2xx body and orders its vectors by `index`.
    fn parse(&self, body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        #[derive(Deserialize)]
        struct Response {
            data: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            index: usize,
            embedding: Vec<f32>,
        }

        let response: Response = serde_json::from_slice(body)
            .map_err(|err| EmbedError::InvalidResponse(format!("not an embeddings list: {err}")))?;
        if response.data.len() != expected {
            return Err(EmbedError::InvalidResponse(format!(
                "{} embeddings for {expected} inputs",
                response.data.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in response.data {
            if item.embedding.len() != self.dimensions {
                return Err(EmbedError::InvalidResponse(format!(
                    "a vector of {} dimensions where {} were configured \
                     (EMBEDDINGS_DIMENSIONS)",
                    item.embedding.len(),
                    self.dimensions
                )));
            }
            match out.get_mut(item.index) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => {
                    return Err(EmbedError::InvalidResponse(format!(
                        "index {} is out of range or repeated",
                        item.index
                    )));
                }
            }
        }
        // Every slot is filled: as many items as inputs, each index in range and unique.
        Ok(out.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models() {
        assert_eq!(known_dimensions("text-embedding-3-small"), Some(1536));
        assert_eq!(known_dimensions("text-embedding-3-large"), Some(3072));
        assert_eq!(known_dimensions("nomic-embed-text"), None);
    }
}
