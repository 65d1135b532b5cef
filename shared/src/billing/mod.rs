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
    let statement = tx
        .prepare_cached("SELECT public.record_usage($1, $2, $3, $4, $5)")
        .await?;
    tx.execute(
        &statement,
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

/// A plan and its limits (`null` = unlimited).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub monthly_price_cents: i32,
    pub limits: Limits,
    pub features: Features,
}

/// Numeric limits of a plan.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub agents: Option<i32>,
    pub conversations_per_month: Option<i32>,
    pub knowledge_sources: Option<i32>,
    pub team_members: Option<i32>,
    pub storage_bytes: Option<i64>,
}

/// Feature flags of a plan.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub custom_branding: bool,
    pub webhooks: bool,
    pub api_access: bool,
    pub custom_domains: bool,
    pub priority_support: bool,
    pub white_label: bool,
}

/// An account's plan, subscription state and usage against every limit.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSummary {
    pub account_id: Uuid,
    pub plan: Plan,
    /// `active` (or `trialing`, `past_due`, `canceled`); accounts without a subscription are on Basic.
    pub status: String,
    pub current_period_end: Option<chrono::DateTime<chrono::Utc>>,
    pub usage: UsageSummary,
}

/// Current usage, shaped like [`Limits`].
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    pub agents: i64,
    pub conversations_this_month: i64,
    pub knowledge_sources: i64,
    pub team_members: i64,
    pub storage_bytes: i64,
    pub messages_this_month: i64,
    pub api_calls_this_month: i64,
    pub tokens_this_month: i64,
}

fn plan_from_row(row: &tokio_postgres::Row) -> Plan {
    Plan {
        id: row.get("id"),
        name: row.get("name"),
        monthly_price_cents: row.get("monthly_price_cents"),
        limits: Limits {
            agents: row.get("max_agents"),
            conversations_per_month: row.get("max_conversations_per_month"),
            knowledge_sources: row.get("max_knowledge_sources"),
            team_members: row.get("max_team_members"),
            storage_bytes: row.get("max_storage_bytes"),
        },
        features: Features {
            custom_branding: row.get("custom_branding"),
            webhooks: row.get("webhooks"),
            api_access: row.get("api_access"),
            custom_domains: row.get("custom_domains"),
            priority_support: row.get("priority_support"),
            white_label: row.get("white_label"),
        },
    }
}

/// Every plan, cheapest first.
pub async fn plans(tx: &impl crate::db::GenericClient) -> ApiResult<Vec<Plan>> {
    let rows = tx
        .query("SELECT * FROM plans ORDER BY sort_order, id", &[])
        .await?;
    Ok(rows.iter().map(plan_from_row).collect())
}

/// The plan in force for `account` and its usage (any member of the account may read it).
pub async fn subscription(
    tx: &impl crate::db::GenericClient,
    account: Uuid,
) -> ApiResult<SubscriptionSummary> {
    let usage = tx
        .query_opt("SELECT * FROM account_usage($1)", &[&account])
        .await?;
    let usage = usage.ok_or_else(|| crate::ApiError::not_found("account"))?;
    let plan = tx
        .query_one("SELECT * FROM account_plan($1)", &[&account])
        .await?;
    let subscription = tx
        .query_opt(
            "SELECT status, current_period_end FROM subscriptions WHERE user_id = $1",
            &[&account],
        )
        .await?;
    let metered = tx
        .query_one(
            "SELECT coalesce(sum(messages), 0)::bigint, coalesce(sum(api_calls), 0)::bigint, coalesce(sum(tokens), 0)::bigint
             FROM usage_metrics WHERE user_id = $1 AND day >= date_trunc('month', now())::date",
            &[&account],
        )
        .await?;
    Ok(SubscriptionSummary {
        account_id: account,
        plan: plan_from_row(&plan),
        status: subscription
            .as_ref()
            .map_or_else(|| "active".into(), |s| s.get("status")),
        current_period_end: subscription.as_ref().map(|s| s.get("current_period_end")),
        usage: UsageSummary {
            agents: usage.get("agents"),
            conversations_this_month: usage.get("conversations_this_month"),
            knowledge_sources: usage.get("knowledge_sources"),
            team_members: usage.get("team_members"),
            storage_bytes: usage.get("storage_bytes"),
            messages_this_month: metered.get(0),
            api_calls_this_month: metered.get(1),
            tokens_this_month: metered.get(2),
        },
    })
}
