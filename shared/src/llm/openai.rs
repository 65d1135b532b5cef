//! OpenAI-compatible chat completions, streamed (`POST /v1/chat/completions`, `stream: true`).
//!
//! The stream is `data: {chunk}` events whose `choices[0].delta.content` carries the text,
//! ended by `data: [DONE]`. `stream_options.include_usage` asks for a last chunk with the
//! token counts (servers that ignore it leave the counts at zero). An `{"error": …}` chunk
//! mid-stream is the provider's failure.

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::{Completion, Endpoint, LlmError, Prompt, TokenUsage, read_events, send};

/// A client of one OpenAI-compatible endpoint. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    client: reqwest::Client,
    endpoint: Endpoint,
    /// Send `gpt-4o` rather than `openai/gpt-4o`.
    bare_model_names: bool,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl OpenAiChat {
    /// A client for `endpoint` (the full `…/chat/completions` URL).
    pub fn new(endpoint: Endpoint, bare_model_names: bool) -> Result<Self, String> {
        Ok(OpenAiChat {
            client: super::http_client(&endpoint)?,
            endpoint,
            bare_model_names,
        })
    }

    /// The name the provider knows `model` by.
    pub fn model_name<'a>(&self, model: &'a str) -> &'a str {
        match model.split_once('/') {
            Some((_, name)) if self.bare_model_names => name,
            _ => model,
        }
    }

    /// Streams the answer of `model` to `prompt`.
    pub async fn stream(
        &self,
        model: &str,
        prompt: &Prompt,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, LlmError> {
        let mut messages = vec![json!({ "role": "system", "content": prompt.system })];
        messages.extend(
            prompt
                .turns
                .iter()
                .map(|turn| json!({ "role": turn.role.as_str(), "content": turn.content })),
        );
        let body = json!({
            "model": model,
            "messages": messages,
            "temperature": prompt.temperature,
            "max_tokens": prompt.max_tokens,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        let mut request = self
            .client
            .post(&self.endpoint.url)
            .header("accept", "text/event-stream")
            .json(&body);
        if let Some(key) = &self.endpoint.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = send(request).await?;

        let mut completion = Completion {
            text: String::new(),
            usage: TokenUsage::default(),
        };
        let mut finished = false;
        read_events(response, |event| {
            if event.data.trim() == "[DONE]" {
                finished = true;
                return Ok(true);
            }
            let chunk: Chunk = serde_json::from_str(&event.data).map_err(|err| {
                LlmError::Protocol(format!("a chunk that is not chat-completion JSON: {err}"))
            })?;
            if let Some(error) = chunk.error {
                let message = error
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map_or_else(|| error.to_string(), str::to_owned);
                return Err(LlmError::Protocol(message));
            }
            if let Some(text) = chunk
                .choices
                .first()
                .and_then(|choice| choice.delta.content.as_deref())
                .filter(|text| !text.is_empty())
            {
                completion.text.push_str(text);
                on_delta(text);
            }
            if let Some(usage) = chunk.usage {
                completion.usage = TokenUsage {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                };
            }
            Ok(false)
        })
        .await?;
        if !finished {
            return Err(LlmError::Protocol(
                "the stream ended before `data: [DONE]`".into(),
            ));
        }
        Ok(completion)
    }
}
