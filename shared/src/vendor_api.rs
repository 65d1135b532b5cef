//! Small helpers shared by the clients of third-party model APIs (embeddings, chat models):
//! endpoint URLs, `Retry-After`, the provider's own error message, optional settings.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

/// A setting from the environment; unset and blank are the same.
pub fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `{base}/v1/{path}`, or `{base}/{path}` when `base` already ends with `/v1` (so both
/// `https://api.openai.com` and `https://api.openai.com/v1` work, as do gateways serving the
/// API under a prefix such as `http://localhost:11434/v1`).
pub fn endpoint(base: &str, path: &str) -> Result<String, String> {
    let base = base.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(base).map_err(|err| format!("{base:?}: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{base:?} is not http(s)"));
    }
    Ok(if base.ends_with("/v1") {
        format!("{base}/{path}")
    } else {
        format!("{base}/v1/{path}")
    })
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds = value.parse::<f64>().ok()?;
    // Checked before converting: `Duration::from_secs_f64` panics on negative or huge values.
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// The provider's own error message: OpenAI's and Anthropic's `{"error": {"message": …}}`, the
/// plain `{"error": "…"}` or `{"message": …}` / `{"detail": …}` of other servers, else the
/// start of the body, else the status's reason.
pub fn provider_message(body: &str, status: StatusCode) -> String {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        let candidates = [
            value.pointer("/error/message"),
            value.get("error"),
            value.get("message"),
            value.get("detail"),
        ];
        if let Some(text) = candidates.into_iter().flatten().find_map(Value::as_str) {
            return text.to_owned();
        }
    }
    let body = body.trim();
    if body.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        body.chars().take(500).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rule() {
        let url = |base| endpoint(base, "embeddings").unwrap();
        assert_eq!(
            url("https://api.openai.com"),
            "https://api.openai.com/v1/embeddings"
        );
        assert_eq!(
            url("https://api.openai.com/v1"),
            "https://api.openai.com/v1/embeddings"
        );
        assert_eq!(
            url("https://api.openai.com/v1/"),
            "https://api.openai.com/v1/embeddings"
        );
        assert_eq!(
            url("http://gw.local/openai"),
            "http://gw.local/openai/v1/embeddings"
        );
        assert!(endpoint("ftp://x", "embeddings").is_err());
        assert!(endpoint("not a url", "embeddings").is_err());
        assert_eq!(
            endpoint("https://api.anthropic.com", "messages").unwrap(),
            "https://api.anthropic.com/v1/messages"
        );
    }

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn provider_messages() {
        let status = StatusCode::BAD_REQUEST;
        assert_eq!(
            provider_message(r#"{"error":{"message":"bad input","type":"x"}}"#, status),
            "bad input"
        );
        assert_eq!(provider_message(r#"{"error":"nope"}"#, status), "nope");
        assert_eq!(
            provider_message(r#"{"detail":"missing"}"#, status),
            "missing"
        );
        assert_eq!(provider_message("plain text", status), "plain text");
        assert_eq!(provider_message("", status), "Bad Request");
    }
}
