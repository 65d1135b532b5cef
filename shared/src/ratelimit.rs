//! Rate limits kept in DynamoDB: one conditional atomic counter per (limit, key, time window),
//! expiring through the table's TTL. Shared by every Lambda instance, unlike in-memory counters.
//!
//! If DynamoDB itself fails, the request is let through and the failure logged: an outage of
//! the limiter should not take the API down with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::{ApiError, ApiResult};

/// A named limit: at most `max` requests per `window` for one key.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub name: &'static str,
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    /// `max` requests per minute.
    pub const fn per_minute(name: &'static str, max: u32) -> Self {
        Limit {
            name,
            max,
            window: Duration::from_secs(60),
        }
    }
}

/// Counts requests in the rate-limit table.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl RateLimiter {
    /// A limiter over `table` (`RATE_LIMIT_TABLE`).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        RateLimiter {
            client,
            table: table.into(),
        }
    }

    /// Builds the client from the environment (`RATE_LIMIT_TABLE`, AWS settings).
    pub async fn from_env() -> anyhow::Result<Self> {
        let table = crate::config::required_var("RATE_LIMIT_TABLE")?;
        Ok(Self::new(
            crate::aws::dynamodb_client(&crate::aws::sdk_config().await),
            table,
        ))
    }

    /// Counts one request for `key` under `limit`; a 429 with `Retry-After` once it is exceeded.
    pub async fn check(&self, limit: &Limit, key: &str) -> ApiResult<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let window = limit.window.as_secs().max(1);
        let window_start = now - now % window;
        let window_end = window_start + window;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                "pk",
                AttributeValue::S(format!("{}#{key}#{window_start}", limit.name)),
            )
            .update_expression("ADD n :one SET expires_at = :expires")
            .condition_expression("attribute_not_exists(n) OR n < :max")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(limit.max.to_string()))
            // Kept a little past the window so late writes never resurrect an old counter.
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window_end + 60).to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(ApiError::RateLimited {
                    retry_after_secs: (window_end - now).max(1),
                })
            }
            Err(err) => {
                tracing::error!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), limit = limit.name, "rate limiter unavailable; request allowed");
                Ok(())
            }
        }
    }
}
