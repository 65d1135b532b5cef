//! Test support: a fresh database per test, cloned from a template that holds the migrated
//! schema, and connections as the application role (never a superuser, or RLS would be off).
//!
//! Settings come from the environment, or from `.local/env` written by `make services`.
//!
//! [`http`] holds a tiny loopback HTTP server for tests of outbound fetching.

pub mod http;

use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::config::Config;
use crate::db::Database;

const TEMPLATE: &str = "chatpad_test_template";

/// Reads a setting from the environment or from the workspace's `.local/env`.
pub fn env_var(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name) {
        return Some(value);
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/env");
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn must(name: &str) -> String {
    env_var(name).unwrap_or_else(|| {
        panic!("{name} is not set: run the tests through `make test` (it starts the local stack)")
    })
}

/// A database of its own for one test; dropped when the value is dropped.
pub struct TestDb {
    /// Pool of application-role connections.
    pub db: Database,
    /// Name of the database.
    pub name: String,
    /// URL as the owner role (bypasses nothing: tables force RLS; used for fixtures via definer paths).
    pub owner_url: String,
    /// URL as the application role.
    pub app_url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates a fresh migrated database.
    pub async fn new() -> Self {
        let admin_url = must("ADMIN_DATABASE_URL");
        let (admin, conn) = tokio_postgres::connect(&admin_url, NoTls)
            .await
            .expect("connecting as the superuser");
        tokio::spawn(conn);
        ensure_template(&admin)
            .await
            .expect("preparing the template database");
        let name = format!("test_{}", Uuid::new_v4().simple());
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE {TEMPLATE} OWNER chatpad_owner"
            ))
            .await
            .expect("creating the test database");
        let owner_url = with_database(&must("MIGRATION_DATABASE_URL"), &name);
        let app_url = with_database(&must("DATABASE_URL"), &name);
        let db = Database::connect_lazy(&SecretString::from(app_url.clone()), 8).expect("pool");
        TestDb {
            db,
            name,
            owner_url,
            app_url,
            admin_url,
        }
    }

    /// A direct connection as the database superuser, for fixtures that must bypass RLS.
    pub async fn superuser(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&with_database(&self.admin_url, &self.name), NoTls)
                .await
                .expect("connecting as the superuser");
        tokio::spawn(conn);
        client
    }

    /// Creates a user (a random `auth_subject`, no e-mail) as the superuser, subscribed to
    /// `plan` (`"pro"`, ...) or, with `None`, on the default plan without a subscription row.
    pub async fn user(&self, plan: Option<&str>) -> Uuid {
        let su = self.superuser().await;
        let id: Uuid = su
            .query_one(
                "INSERT INTO users (auth_subject) VALUES (gen_random_uuid()::text) RETURNING id",
                &[],
            )
            .await
            .expect("inserting a user")
            .get(0);
        if let Some(plan) = plan {
            su.execute(
                "INSERT INTO subscriptions (user_id, plan_id) VALUES ($1, $2)",
                &[&id, &plan],
            )
            .await
            .expect("subscribing the user");
        }
        id
    }

    /// Creates an agent named `a` owned by `owner` as the superuser (plan limits still apply:
    /// the default plan allows one agent).
    pub async fn agent(&self, owner: Uuid) -> Uuid {
        self.superuser()
            .await
            .query_one(
                "INSERT INTO agents (user_id, name) VALUES ($1, 'a') RETURNING id",
                &[&owner],
            )
            .await
            .expect("inserting an agent")
            .get(0)
    }

    /// A configuration pointing at this database, with test secrets.
    pub fn config(&self) -> Config {
        let app_url = self.app_url.clone();
        Config::from_lookup(|name| match name {
            "DATABASE_URL" => Some(app_url.clone()),
            "JWT_HS256_SECRET" => Some("test-jwt-secret-of-sufficient-length-0123456789".into()),
            "API_KEY_PEPPER" => Some("test-pepper".into()),
            _ => None,
        })
        .expect("test configuration")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop cannot be async: use a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// One knowledge source to seed: its type (`url`, `pdf`, ...), title, URL or file name, and
/// its chunks with their locations.
pub struct SeedSource<'a> {
    pub kind: &'a str,
    pub title: &'a str,
    pub source: &'a str,
    pub chunks: &'a [(&'a str, serde_json::Value)],
}

impl TestDb {
    /// Adds ready knowledge to `agent` as the superuser, each chunk embedded for real by
    /// `embedder` (what the ingest worker would have stored). Returns the sources' ids.
    pub async fn knowledge(
        &self,
        agent: Uuid,
        embedder: &crate::embeddings::Embedder,
        sources: &[SeedSource<'_>],
    ) -> Vec<Uuid> {
        let su = self.superuser().await;
        let mut ids = Vec::new();
        for seed in sources {
            let id: Uuid = su
                .query_one(
                    "INSERT INTO knowledge_sources (agent_id, type, title, source, status, chunk_count)
                     VALUES ($1, $2, $3, $4, 'ready', $5) RETURNING id",
                    &[&agent, &seed.kind, &seed.title, &seed.source, &(seed.chunks.len() as i32)],
                )
                .await
                .expect("inserting a knowledge source")
                .get(0);
            let texts: Vec<String> = seed.chunks.iter().map(|(t, _)| t.to_string()).collect();
            let vectors = embedder.embed(&texts).await.expect("embedding the chunks");
            for (position, ((content, location), vector)) in
                seed.chunks.iter().zip(vectors).enumerate()
            {
                su.execute(
                    "INSERT INTO knowledge_chunks (source_id, position, content, location,
                                                   embedding_model, embedding)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &id,
                        &(position as i32),
                        content,
                        location,
                        &embedder.model_id(),
                        &pgvector::Vector::from(vector),
                    ],
                )
                .await
                .expect("inserting a chunk");
            }
            ids.push(id);
        }
        ids
    }
}

/// all-MiniLM-L6-v2 from `EMBEDDING_MODEL_DIR`, loaded once per test binary.
#[cfg(feature = "local-embeddings")]
pub async fn local_embedder() -> crate::embeddings::Embedder {
    static EMBEDDER: tokio::sync::OnceCell<crate::embeddings::Embedder> =
        tokio::sync::OnceCell::const_new();
    EMBEDDER
        .get_or_init(|| async {
            let dir = must("EMBEDDING_MODEL_DIR");
            crate::embeddings::Embedder::Local(
                crate::embeddings::LocalMiniLm::load(dir).expect("the local model loads"),
            )
        })
        .await
        .clone()
}

/// The rate-limit table of the local stack (moto), as the functions use it.
pub async fn rate_limiter() -> crate::ratelimit::RateLimiter {
    let config = aws_config().await;
    crate::ratelimit::RateLimiter::new(
        crate::aws::dynamodb_client(&config),
        must("RATE_LIMIT_TABLE"),
    )
}

/// AWS SDK configuration for the local stack (moto), taking the settings from `.local/env` when
/// the process environment lacks them.
pub async fn aws_config() -> aws_config::SdkConfig {
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        if std::env::var(name).is_err() {
            // SAFETY: tests call this first thing, before any other thread reads the environment.
            unsafe { std::env::set_var(name, must(name)) };
        }
    }
    crate::aws::sdk_config().await
}

/// Creates a pair of SQS queues of the caller's own on the local stack (so the stack's pump
/// does not take their messages): `[ingest, webhooks]` queue URLs, named `{prefix}-…`.
pub async fn own_queues(sqs: &aws_sdk_sqs::Client, prefix: &str) -> [String; 2] {
    let suffix = Uuid::new_v4().simple().to_string();
    let mut urls = [String::new(), String::new()];
    for (url, name) in urls.iter_mut().zip(["ingest", "webhooks"]) {
        let out = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{name}-{suffix}"))
            .send()
            .await
            .expect("creating a queue on moto");
        *url = out.queue_url().unwrap_or_default().to_owned();
    }
    urls
}

/// Replaces the database name of a `postgres://` URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(head, _)| head);
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// A fingerprint of the migrations built into this binary, stored as the template's comment so
/// a changed migration rebuilds the template. Hashed to fit a comment of any length.
fn migrations_fingerprint() -> String {
    use sha2::Digest;
    format!(
        "{:x}",
        sha2::Sha256::digest(crate::db::embedded_migration_fingerprint())
    )
}

/// Creates and migrates the template once; test processes run in parallel, so an advisory lock
/// serialises them.
async fn ensure_template(admin: &tokio_postgres::Client) -> anyhow::Result<()> {
    let fingerprint = migrations_fingerprint();
    admin
        .execute("SELECT pg_advisory_lock(727274)", &[])
        .await?;
    let result = async {
        let current: Option<String> = admin
            .query_opt(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                &[&TEMPLATE],
            )
            .await?
            .and_then(|row| row.get(0));
        if current.as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {TEMPLATE} OWNER chatpad_owner"))
            .await?;
        {
            let owner_url = with_database(&must("MIGRATION_DATABASE_URL"), TEMPLATE);
            let (mut owner, conn) = tokio_postgres::connect(&owner_url, NoTls)
                .await
                .context("connecting as owner")?;
            let handle = tokio::spawn(conn);
            crate::db::migrate(&mut owner).await?;
            drop(owner);
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE {TEMPLATE} IS '{fingerprint}'"
            ))
            .await?;
        anyhow::Ok(())
    }
    .await;
    admin
        .execute("SELECT pg_advisory_unlock(727274)", &[])
        .await?;
    result
}
