//! The Postgres adapter: a lazily connecting pool, per-request transactions that carry the
//! caller's claims for row-level security, error classification and migrations.
//!
//! Every request follows the same visible step:
//! ```ignore
//! let mut client = db.client().await?;
//! let tx = db::begin_as(&mut client, &caller).await?;
//! // ... storage functions take &tx ...
//! tx.commit().await?;
//! ```

mod migrate;

pub use migrate::{
    embedded_count as embedded_migration_count,
    embedded_fingerprint as embedded_migration_fingerprint, migrate,
};

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Metrics, Pool, RecyclingMethod};
use secrecy::ExposeSecret;
use tokio_postgres::error::SqlState;

use crate::ApiError;
use crate::auth::Caller;

pub use deadpool_postgres::{GenericClient, Object as Client, Transaction};

/// A pool of connections as the application role. Connections open on first use, so a cold
/// start does not wait for the database.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// A pooled connection last handed out this long ago (deadpool's `last_used`, counted from the
/// checkout, so it was idle at most this long) gets a round trip before it is handed out again:
/// a Lambda environment thawed after minutes, or a NAT, may hold connections the server has long
/// closed. One handed out moments ago needs no check — a busy function takes two or three per
/// request, and each check is a round trip on the request's path.
pub const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(10);

/// How long that check may take: a connection whose peer vanished without closing it would
/// otherwise hold the request until TCP gives up. It is dropped, and a new one opened.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(2);

impl Database {
    /// Builds the pool without connecting. `max_size` is small in Lambda: one request at a time.
    pub fn connect_lazy(url: &secrecy::SecretString, max_size: usize) -> anyhow::Result<Self> {
        Self::connect_lazy_verifying(url, max_size, VERIFY_AFTER_IDLE)
    }

    /// [`Self::connect_lazy`], checking connections idle for `verify_after_idle` (tests shorten
    /// [`VERIFY_AFTER_IDLE`]).
    pub fn connect_lazy_verifying(
        url: &secrecy::SecretString,
        max_size: usize,
        verify_after_idle: Duration,
    ) -> anyhow::Result<Self> {
        let pg_config = tokio_postgres::Config::from_str(url.expose_secret())
            .context("parsing DATABASE_URL")?;
        // `Fast` only looks at whether the connection is closed; the hook adds the round trip
        // for connections idle long enough to be stale.
        let manager = Manager::from_config(
            pg_config,
            tls_connector(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let verify = Hook::async_fn(move |client, metrics: &Metrics| {
            let stale = metrics.last_used() >= verify_after_idle;
            Box::pin(async move {
                if !stale {
                    return Ok(());
                }
                match tokio::time::timeout(VERIFY_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => Err(HookError::Backend(err)),
                    Err(_) => Err(HookError::message("no answer to the idle connection check")),
                }
            })
        });
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .pre_recycle(verify)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(10)))
            .build()
            .context("building the database pool")?;
        Ok(Database { pool })
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<Client, ApiError> {
        Ok(self.pool.get().await?)
    }

    /// A second connection for work that could also run on the one the caller holds: `None`
    /// at once when none is free, instead of waiting. Two requests that each hold a
    /// connection and wait for another would otherwise wait on each other until the pool's
    /// timeout.
    pub async fn spare_client(&self) -> Result<Option<Client>, ApiError> {
        let now = deadpool_postgres::Timeouts {
            wait: Some(Duration::ZERO),
            ..self.pool.timeouts()
        };
        match self.pool.timeout_get(&now).await {
            Ok(client) => Ok(Some(client)),
            Err(deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)) => {
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// TLS for managed Postgres (RDS, Neon, Supabase) with the web PKI roots. Servers without TLS
/// (the local stack) still work under the default `sslmode=prefer`.
fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc-rs supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Opens a transaction acting as `caller`: row-level security sees these claims until commit or
/// rollback. `set_config(.., true)` is transaction-local, so a pooled connection never carries
/// one request's identity into the next.
pub async fn begin_as<'a>(
    client: &'a mut Client,
    caller: &Caller,
) -> Result<Transaction<'a>, ApiError> {
    let tx = client.transaction().await?;
    act_as(&tx, caller).await?;
    Ok(tx)
}

/// Switches the identity of an open transaction, e.g. once an API key has been verified.
pub async fn act_as(tx: &Transaction<'_>, caller: &Caller) -> Result<(), ApiError> {
    let statement = tx
        .prepare_cached("SELECT set_config('request.jwt.claims', $1, true)")
        .await?;
    tx.execute(&statement, &[&caller.claims().to_string()])
        .await?;
    Ok(())
}

/// After a write by id touched nothing: 403 when the caller can see the row (their role is too
/// low for the change), 404 when they cannot (it does not exist, or is another tenant's).
pub async fn not_found_or_forbidden(
    tx: &impl GenericClient,
    table: &'static str,
    id: uuid::Uuid,
    what: &str,
) -> ApiError {
    match tx
        .query_opt(&format!("SELECT 1 FROM {table} WHERE id = $1"), &[&id])
        .await
    {
        Ok(Some(_)) => ApiError::forbidden(
            "role_forbidden",
            format!("your role does not allow changing this {what}"),
        ),
        Ok(None) => ApiError::not_found(what),
        Err(err) => err.into(),
    }
}

/// Maps database errors a caller can cause to client errors; everything else is internal.
/// Constraint names in the migrations are the stable part of these messages.
pub fn classify_error(err: tokio_postgres::Error) -> ApiError {
    let Some(db) = err.as_db_error() else {
        return ApiError::Internal(anyhow::Error::new(err).context("talking to the database"));
    };
    let constraint = db.constraint().unwrap_or("").to_owned();
    match *db.code() {
        SqlState::UNIQUE_VIOLATION => ApiError::Conflict {
            code: "already_exists",
            message: format!("a resource with the same unique value already exists ({constraint})"),
        },
        SqlState::FOREIGN_KEY_VIOLATION => ApiError::Validation {
            message: db.message().to_owned(),
            details: serde_json::json!({ "constraint": constraint }),
        },
        SqlState::CHECK_VIOLATION
        | SqlState::NOT_NULL_VIOLATION
        | SqlState::STRING_DATA_RIGHT_TRUNCATION => ApiError::Validation {
            message: format!(
                "a value is out of range or missing ({})",
                if constraint.is_empty() {
                    db.message()
                } else {
                    &constraint
                }
            ),
            details: serde_json::json!({ "constraint": constraint, "column": db.column() }),
        },
        // NUL bytes or invalid encodings in a query parameter or value.
        SqlState::CHARACTER_NOT_IN_REPERTOIRE | SqlState::UNTRANSLATABLE_CHARACTER => {
            ApiError::BadRequest {
                code: "invalid_text",
                message: "text values must be valid UTF-8 without NUL characters".into(),
            }
        }
        // Raised by the plan-limit triggers (V7__plan_limits.sql) with a JSON detail.
        ref code if code.code() == "CP001" => plan_limit_error(db.detail().unwrap_or("{}")),
        // Row-level security refused a write (WITH CHECK) or a definer function refused.
        SqlState::INSUFFICIENT_PRIVILEGE => {
            ApiError::forbidden("forbidden", "your role does not allow this action")
        }
        _ => ApiError::Internal(anyhow::Error::new(err).context("database statement failed")),
    }
}

/// The 403 for a plan-limit refusal, from the trigger's JSON detail.
fn plan_limit_error(detail: &str) -> ApiError {
    let details: serde_json::Value = serde_json::from_str(detail).unwrap_or_default();
    let limit = details["limit"].as_str().unwrap_or("a plan limit");
    let plan = details["plan"].as_str().unwrap_or("current");
    let upgrade = match details["upgrade_to"].as_str() {
        Some(next) => format!("; the {next} plan lifts it"),
        None => String::new(),
    };
    let message = if details["allowed"] == 0 && details["current"] == 0 {
        format!("the {plan} plan does not include {limit}{upgrade}")
    } else {
        format!(
            "the {plan} plan allows {} for {limit} and {} are in use{upgrade}",
            details["allowed"], details["current"]
        )
    };
    ApiError::PlanLimit { message, details }
}
