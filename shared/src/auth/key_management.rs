//! Managing API keys: create (the secret is returned once), list, revoke. Storage goes through
//! the caller's RLS transaction: only admins of the account see or touch its keys.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::api_keys::{SCOPES, generate};
use crate::db::{self, GenericClient};
use crate::{ApiError, ApiResult};

/// An API key as listed: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    /// `cpk_live_` and the first 8 characters: enough to recognise a key.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new key, with its secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyInfo,
    /// The full key. It is not stored and cannot be shown again.
    pub secret: String,
}

/// What a caller asks for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewApiKey {
    #[schema(min_length = 1, max_length = 120, pattern = "\\S")]
    pub name: String,
    #[schema(schema_with = scopes_schema)]
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// `scopes` in the OpenAPI document: at least one of [`SCOPES`], the list the API checks.
fn scopes_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, schema::Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(SCOPES.iter().copied())),
        )
        .min_items(Some(1))
        .description(Some("What the key may do"))
        .build()
}

fn from_row(row: &Row) -> ApiKeyInfo {
    ApiKeyInfo {
        id: row.get("id"),
        name: row.get("name"),
        prefix: row.get("prefix"),
        scopes: row.get("scopes"),
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
        expires_at: row.get("expires_at"),
        revoked_at: row.get("revoked_at"),
    }
}

const COLUMNS: &str = "id, name, prefix, scopes, created_at, last_used_at, expires_at, revoked_at";

/// Creates a key in `account` (API access is a plan feature, checked by the database).
pub async fn create(
    tx: &impl GenericClient,
    account: Uuid,
    pepper: &SecretString,
    new: &NewApiKey,
) -> ApiResult<CreatedApiKey> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 120 {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1 to 120 characters long",
        ));
    }
    if new.scopes.is_empty() {
        return Err(ApiError::invalid_field(
            "scopes",
            "at least one scope is required",
        ));
    }
    if let Some(unknown) = new.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(ApiError::invalid_field(
            "scopes",
            format!("unknown scope {unknown:?}; known: {}", SCOPES.join(", ")),
        ));
    }
    if new.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::invalid_field(
            "expiresAt",
            "must be in the future",
        ));
    }
    let mut scopes = new.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let key = generate(pepper);
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, expires_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, auth.uid()) RETURNING {COLUMNS}"
            ),
            &[&account, &name, &key.prefix, &key.hash.as_slice(), &scopes, &new.expires_at],
        )
        .await?;
    Ok(CreatedApiKey {
        key: from_row(&row),
        secret: key.plaintext.expose_secret().to_owned(),
    })
}

/// The account's keys, newest first, revoked ones included (marked).
pub async fn list(tx: &impl GenericClient, account: Uuid) -> ApiResult<Vec<ApiKeyInfo>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id"
            ),
            &[&account],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Revokes a key; revoking twice is harmless and returns the key as it is.
pub async fn revoke(tx: &impl GenericClient, id: Uuid) -> ApiResult<ApiKeyInfo> {
    let row = tx
        .query_opt(
            &format!("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}"),
            &[&id],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)),
        None => Err(db::not_found_or_forbidden(tx, "api_keys", id, "API key").await),
    }
}
