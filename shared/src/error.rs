//! The one error type of every HTTP endpoint: a stable `code`, a human `message`, optional
//! field details, and the HTTP status it maps to. Causes from the database or an SDK become an
//! opaque `internal` error: logged with their whole chain, never sent to the caller.

use serde::Serialize;
use serde_json::{Value, json};

/// `Result` for handlers and domain functions.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error a caller can act on, or an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (not JSON, wrong types).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid credentials.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: authenticated, but not allowed.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 403: the account's plan does not allow this (a limit is reached or a feature missing);
    /// `details` names the limit, current usage, what is allowed and the plan that lifts it.
    #[error("{message}")]
    PlanLimit { message: String, details: Value },
    /// 404: the resource does not exist or is not visible to the caller.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 405: the route exists with another method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: conflicts with the current state (duplicate, already done).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 413: the body is larger than the endpoint accepts.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 422: well-formed, but a field is invalid; `details` names the fields.
    #[error("{message}")]
    Validation { message: String, details: Value },
    /// 429: rate limited; retry after the given seconds.
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// 502: a service we depend on (the model provider) failed; the message is for the
    /// visitor, the cause is logged.
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    /// 501: this endpoint's capability is not built yet.
    #[error("{0}")]
    NotImplemented(String),
    /// 500: our fault; the cause is logged, not returned.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The JSON body of every error response: `{"error": {...}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

impl ApiError {
    /// A 422 for one invalid field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Validation {
            details: json!({ "fields": { field: message.clone() } }),
            message: format!("{field}: {message}"),
        }
    }

    /// A 401 with the given code.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// A 403 with the given code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// A 404 for a kind of resource.
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound {
            code: "not_found",
            message: format!("{what} not found"),
        }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized { .. } => 401,
            ApiError::Forbidden { .. } | ApiError::PlanLimit { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::Validation { .. } => 422,
            ApiError::RateLimited { .. } => 429,
            ApiError::NotImplemented(_) => 501,
            ApiError::Upstream { .. } => 502,
            ApiError::Internal(_) => 500,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Upstream { code, .. } => code,
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::PlanLimit { .. } => "plan_limit_exceeded",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The body sent to the caller. Internal causes stay in the logs.
    pub fn body(&self) -> ErrorBody<'_> {
        let (message, details) = match self {
            ApiError::Internal(_) => (
                "an internal error occurred; it has been logged".into(),
                Value::Null,
            ),
            ApiError::Validation { message, details }
            | ApiError::PlanLimit { message, details } => (message.clone(), details.clone()),
            other => (other.to_string(), Value::Null),
        };
        ErrorBody {
            code: self.code(),
            message,
            details,
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        crate::db::classify_error(err)
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        ApiError::Internal(anyhow::Error::new(err).context("getting a database connection"))
    }
}
