//! Chat models: the adapter between a prompt and a provider's streaming API.
//!
//! Two wire formats cover the providers a deployment can configure:
//! - [`openai`]: OpenAI-compatible `/v1/chat/completions` (OpenAI, OpenRouter, Gemini's
//!   compatible endpoint, Ollama, vLLM, LiteLLM-style gateways);
//! - [`anthropic`]: Anthropic's Messages API, natively.
//!
//! An agent's model id (`google/gemini-2.5-flash`, `anthropic/claude-3.5-sonnet`) is routed by
//! [`Providers::route`]: `anthropic/…` models go to Anthropic when `ANTHROPIC_API_KEY` is set,
//! everything else to the OpenAI-compatible gateway at `LLM_BASE_URL`. With neither configured
//! there is no model, and chat answers extractively (see `chat::extractive`).
//!
//! Both clients stream: every piece of text is handed to the caller's `on_delta` as it
//! arrives. A refused connection, a 429 or a 5xx before any text arrived is retried once.

pub mod anthropic;
pub mod openai;
pub mod sse;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::SecretString;

use crate::vendor_api::{self, non_empty_env};

/// Who said a turn of the conversation, as the models know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    /// The wire name (`user` / `assistant`), the same in both APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

/// What is sent to a model.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The instructions (Anthropic's `system`, OpenAI's first `system` message).
    pub system: String,
    /// The conversation, oldest first, ending with the user's turn.
    pub turns: Vec<Turn>,
    pub temperature: f32,
    /// Longest answer, in tokens.
    pub max_tokens: u32,
}

/// Tokens the provider counted for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// A finished answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub usage: TokenUsage,
}

/// Why a model call failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The provider could not be reached, or the connection broke.
    #[error("model provider request failed: {0}")]
    Transport(String),
    /// No answer (or no next piece of it) in time.
    #[error("model provider did not answer in time")]
    Timeout,
    /// The provider answered with an error status; `message` is the provider's own.
    #[error("model provider returned HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider sent something that is not its documented format, or an error event.
    #[error("model provider stream: {0}")]
    Protocol(String),
}

impl LlmError {
    /// Worth one more try: the provider was unreachable, overloaded or failing.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Transport(_) => true,
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            LlmError::Timeout | LlmError::Protocol(_) => false,
        }
    }
}

/// Connection settings of one provider.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The full URL requests go to.
    pub url: String,
    pub api_key: Option<SecretString>,
    /// Longest wait for the answer to start, and then between two pieces of it.
    pub idle_timeout: Duration,
    /// Longest whole call.
    pub total_timeout: Duration,
}

/// The HTTP client both providers use: connection and whole-call timeouts.
fn http_client(endpoint: &Endpoint) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(endpoint.total_timeout))
        .timeout(endpoint.total_timeout)
        .read_timeout(endpoint.idle_timeout)
        .build()
        .map_err(|err| format!("building the HTTP client: {err}"))
}

/// The configured providers. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub openai: Option<openai::OpenAiChat>,
    pub anthropic: Option<anthropic::AnthropicChat>,
}

/// Which client answers a model, and the model name it is given.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    OpenAi(&'a openai::OpenAiChat, &'a str),
    Anthropic(&'a anthropic::AnthropicChat, &'a str),
}

impl Providers {
    /// Reads the providers from the environment:
    /// - `LLM_BASE_URL` (+ `LLM_API_KEY`): an OpenAI-compatible chat-completions API; the
    ///   agent's model id is sent as is (`google/gemini-2.5-flash`, as gateways such as
    ///   OpenRouter name models), or without its provider prefix when
    ///   `LLM_MODEL_NAMES=bare` (OpenAI itself, Ollama, vLLM);
    /// - `ANTHROPIC_API_KEY` (+ `ANTHROPIC_BASE_URL`, default `https://api.anthropic.com`):
    ///   Anthropic's Messages API for `anthropic/…` models;
    /// - `LLM_TIMEOUT_SECONDS` (default 60): longest whole answer; `LLM_IDLE_TIMEOUT_SECONDS`
    ///   (default 20): longest silence before or within it.
    pub fn from_env() -> anyhow::Result<Self> {
        let seconds = |name: &str, default: u64| -> anyhow::Result<Duration> {
            match non_empty_env(name) {
                None => Ok(Duration::from_secs(default)),
                Some(text) => text
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .map(Duration::from_secs)
                    .ok_or_else(|| anyhow::anyhow!("{name} must be a positive number of seconds")),
            }
        };
        let total_timeout = seconds("LLM_TIMEOUT_SECONDS", 60)?;
        let idle_timeout = seconds("LLM_IDLE_TIMEOUT_SECONDS", 20)?.min(total_timeout);
        let endpoint = |base: &str, path: &str, key: Option<String>| -> anyhow::Result<Endpoint> {
            Ok(Endpoint {
                url: vendor_api::endpoint(base, path)
                    .map_err(|err| anyhow::anyhow!("model provider base URL {err}"))?,
                api_key: key.map(SecretString::from),
                idle_timeout,
                total_timeout,
            })
        };

        let openai = match non_empty_env("LLM_BASE_URL") {
            Some(base) => {
                let bare = match non_empty_env("LLM_MODEL_NAMES").as_deref() {
                    None | Some("full") => false,
                    Some("bare") => true,
                    Some(other) => {
                        anyhow::bail!("LLM_MODEL_NAMES must be `full` or `bare`, got {other:?}")
                    }
                };
                let endpoint = endpoint(&base, "chat/completions", non_empty_env("LLM_API_KEY"))?;
                Some(openai::OpenAiChat::new(endpoint, bare).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        let anthropic = match non_empty_env("ANTHROPIC_API_KEY") {
            Some(key) => {
                let base = non_empty_env("ANTHROPIC_BASE_URL")
                    .unwrap_or_else(|| "https://api.anthropic.com".into());
                let endpoint = endpoint(&base, "messages", Some(key))?;
                Some(anthropic::AnthropicChat::new(endpoint).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        Ok(Providers { openai, anthropic })
    }

    /// The client for `model`, or `None` when no provider is configured for it.
    pub fn route<'a>(&'a self, model: &'a str) -> Option<Route<'a>> {
        if let (Some(anthropic), Some(name)) = (&self.anthropic, model.strip_prefix("anthropic/")) {
            return Some(Route::Anthropic(anthropic, name));
        }
        self.openai
            .as_ref()
            .map(|openai| Route::OpenAi(openai, openai.model_name(model)))
    }
}

impl Route<'_> {
    /// Streams the answer to `prompt`, handing each piece of text to `on_delta`. Retried once
    /// on a transient failure, but only while no text has been handed out (a retry after that
    /// would repeat text the visitor already saw).
    pub async fn stream(
        &self,
        prompt: &Prompt,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, LlmError> {
        let delivered = AtomicBool::new(false);
        let mut forward = |text: &str| {
            delivered.store(true, Ordering::Relaxed);
            on_delta(text);
        };
        let first = self.stream_once(prompt, &mut forward).await;
        match first {
            Err(err) if err.is_transient() && !delivered.load(Ordering::Relaxed) => {
                let wait = match &err {
                    LlmError::Status {
                        retry_after: Some(wait),
                        ..
                    } => (*wait).min(MAX_RETRY_WAIT),
                    _ => DEFAULT_RETRY_WAIT,
                };
                tracing::warn!(error = %err, wait_ms = wait.as_millis() as u64, "retrying the model call");
                tokio::time::sleep(wait).await;
                self.stream_once(prompt, &mut forward).await
            }
            other => other,
        }
    }

    async fn stream_once(
        &self,
        prompt: &Prompt,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, LlmError> {
        match self {
            Route::OpenAi(client, model) => client.stream(model, prompt, on_delta).await,
            Route::Anthropic(client, model) => client.stream(model, prompt, on_delta).await,
        }
    }

    /// `provider/model` for logs and stored messages.
    pub fn describe(&self) -> String {
        match self {
            Route::OpenAi(_, model) => format!("openai-compatible:{model}"),
            Route::Anthropic(_, model) => format!("anthropic:{model}"),
        }
    }
}

/// Longest wait before the retry: a visitor is waiting.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
/// Wait before the retry when the provider gives no `Retry-After`.
const DEFAULT_RETRY_WAIT: Duration = Duration::from_millis(300);

/// Sends `request` and returns the response once its status is 2xx; otherwise the provider's
/// error with its own message. Shared by both clients.
async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, LlmError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = vendor_api::retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    Err(LlmError::Status {
        status: status.as_u16(),
        message: vendor_api::provider_message(&body, status),
        retry_after,
    })
}

/// Reads a streamed body event by event, handing each to `on_event` until it returns `true`
/// (the provider's end marker) or the body ends.
async fn read_events(
    mut response: reqwest::Response,
    mut on_event: impl FnMut(sse::Event) -> Result<bool, LlmError>,
) -> Result<(), LlmError> {
    let mut decoder = sse::Decoder::default();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        for event in decoder.feed(&chunk).map_err(LlmError::Protocol)? {
            if on_event(event)? {
                return Ok(());
            }
        }
    }
    if let Some(event) = decoder.finish() {
        on_event(event)?;
    }
    Ok(())
}

fn transport_error(err: reqwest::Error) -> LlmError {
    if err.is_timeout() {
        LlmError::Timeout
    } else {
        LlmError::Transport(format!("{err}"))
    }
}
