//! Plans, limits and usage. Plans and their limits are rows of `plans`; usage is counted per
//! account and day in `usage_metrics` through `record_usage`.

use uuid::Uuid;

use crate::ApiResult;

/// Amounts to add to an account's usage for today.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub conversations: i32,
    pub messages: i32,
    pub api_calls: i32,
    pub tokens: i64,
}

/// Adds `usage` to `account`'s counters, inside the caller's transaction.
pub async fn record_usage(
    tx: &impl crate::db::GenericClient,
    account: Uuid,
    usage: Usage,
) -> ApiResult<()> {
    tx.execute(
        "SELECT public.record_usage($1, $2, $3, $4, $5)",
        &[
            &account,
            &usage.conversations,
            &usage.messages,
            &usage.api_calls,
            &usage.tokens,
        ],
    )
    .await?;
    Ok(())
}
