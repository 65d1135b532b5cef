//! Anthropic's Messages API, streamed (`POST /v1/messages`, `stream: true`).
//!
//! Events: `message_start` (input token count), `content_block_delta` with a `text_delta`,
//! `message_delta` (output token count), `message_stop` (the end), `ping`, and `error`
//! (e.g. `overloaded_error`) which fails the call.

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::{Completion, Endpoint, LlmError, Prompt, Role, TokenUsage, read_events, send};

/// The API version this client speaks (`anthropic-version`).
pub const API_VERSION: &str = "2023-06-01";

/// A client of the Messages API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AnthropicChat {
    client: reqwest::Client,
    endpoint: Endpoint,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        usage: Option<OutputUsage>,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<InputUsage>,
}

#[derive(Deserialize)]
struct InputUsage {
    #[serde(default)]
    input_tokens: u32,
}

#[derive(Deserialize)]
struct OutputUsage {
    #[serde(default)]
    output_tokens: u32,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

impl AnthropicChat {
    /// A client for `endpoint` (the full `…/v1/messages` URL and the API key).
    pub fn new(endpoint: Endpoint) -> Result<Self, String> {
        Ok(AnthropicChat {
            client: super::http_client(&endpoint)?,
            endpoint,
        })
    }

    /// Streams the answer of `model` to `prompt`.
    pub async fn stream(
        &self,
        model: &str,
        prompt: &Prompt,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, LlmError> {
        // The API wants the conversation to open with the user: a greeting the widget showed
        // first is context the system prompt already gives.
        let turns = prompt
            .turns
            .iter()
            .skip_while(|turn| turn.role == Role::Assistant);
        let body = json!({
            "model": model,
            "system": prompt.system,
            "messages": turns
                .map(|turn| json!({ "role": turn.role.as_str(), "content": turn.content }))
                .collect::<Vec<_>>(),
            "temperature": prompt.temperature.min(1.0),
            "max_tokens": prompt.max_tokens,
            "stream": true,
        });
        let mut request = self
            .client
            .post(&self.endpoint.url)
            .header("anthropic-version", API_VERSION)
            .header("accept", "text/event-stream")
            .json(&body);
        if let Some(key) = &self.endpoint.api_key {
            request = request.header("x-api-key", key.expose_secret());
        }
        let response = send(request).await?;

        let mut completion = Completion {
            text: String::new(),
            usage: TokenUsage::default(),
        };
        let mut finished = false;
        read_events(response, |event| {
            let parsed: Event = serde_json::from_str(&event.data).map_err(|err| {
                LlmError::Protocol(format!("an event that is not Messages API JSON: {err}"))
            })?;
            match parsed {
                Event::MessageStart { message } => {
                    completion.usage.prompt_tokens =
                        message.usage.map_or(0, |usage| usage.input_tokens);
                }
                Event::ContentBlockDelta {
                    delta: BlockDelta::TextDelta { text },
                } if !text.is_empty() => {
                    completion.text.push_str(&text);
                    on_delta(&text);
                }
                Event::MessageDelta { usage: Some(usage) } => {
                    completion.usage.completion_tokens = usage.output_tokens;
                }
                Event::MessageStop => {
                    finished = true;
                    return Ok(true);
                }
                Event::Error { error } => {
                    // An overload mid-stream is the provider's 529, worth a retry.
                    return Err(if error.kind == "overloaded_error" {
                        LlmError::Status {
                            status: 529,
                            message: error.message,
                            retry_after: None,
                        }
                    } else {
                        LlmError::Protocol(format!("{}: {}", error.kind, error.message))
                    });
                }
                _ => {}
            }
            Ok(false)
        })
        .await?;
        if !finished {
            return Err(LlmError::Protocol(
                "the stream ended before `message_stop`".into(),
            ));
        }
        Ok(completion)
    }
}
