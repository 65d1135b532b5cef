//! Seeds the local demo: an owner, an agent and an API key, through the same row-level
//! security as the functions (it connects as the application role and acts as the owner).
//! Idempotent: the owner and agent are reused; the demo key is replaced. Writes the
//! identifiers and fresh credentials to `.local/demo.env` for `make dev` to print.

use std::time::Duration;

use anyhow::Context;
use chatpad::auth::{Caller, api_keys, jwt};
use chatpad::config::Config;
use chatpad::db::{self, Database};
use secrecy::ExposeSecret;
use uuid::Uuid;

const DEMO_SUBJECT: &str = "demo-owner";
const DEMO_EMAIL: &str = "owner@demo.chatpad.local";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let database = Database::connect_lazy(&config.database_url, 1)?;
    let mut client = database
        .client()
        .await
        .context("connecting to DATABASE_URL")?;

    let claims = jwt::TokenClaims {
        sub: DEMO_SUBJECT.into(),
        email: Some(DEMO_EMAIL.into()),
        exp: 0,
        iss: config.jwt.issuer.clone(),
        aud: config.jwt.audience.clone(),
    };
    let owner = jwt::sign_in(&client, &claims).await?;
    grant_demo_plan(owner).await?;
    let tx = db::begin_as(&mut client, &Caller::User { user_id: owner }).await?;
    let agent: Uuid = match tx.query_opt("SELECT id FROM agents WHERE user_id = $1 AND name = 'Demo agent' ORDER BY created_at LIMIT 1", &[&owner]).await? {
        Some(row) => row.get(0),
        None => tx
            .query_one(
                "INSERT INTO agents (user_id, name, system_prompt, greeting)
                 VALUES ($1, 'Demo agent', 'You are the helpful support agent of a demo shop.', 'Hi! Ask me anything about the demo shop.')
                 RETURNING id",
                &[&owner],
            )
            .await?
            .get(0),
    };
    tx.execute(
        "DELETE FROM api_keys WHERE user_id = $1 AND name = 'demo'",
        &[&owner],
    )
    .await?;
    let key = api_keys::generate(&config.api_key_pepper);
    tx.execute(
        "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, created_by) VALUES ($1, 'demo', $2, $3, '{admin}', $1)",
        &[&owner, &key.prefix, &key.hash.as_slice()],
    )
    .await?;
    tx.commit().await?;

    let token = config
        .jwt
        .hs256_secret
        .as_ref()
        .map(|secret| {
            jwt::issue_dev_token(
                secret,
                &config.jwt,
                DEMO_SUBJECT,
                Some(DEMO_EMAIL),
                Duration::from_secs(24 * 3600),
            )
        })
        .unwrap_or_default();
    let lines = format!(
        "DEMO_USER_ID={owner}\nDEMO_AGENT_ID={agent}\nDEMO_API_KEY={}\nDEMO_JWT={token}\n",
        key.plaintext.expose_secret()
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/demo.env");
    std::fs::write(path, &lines).with_context(|| format!("writing {path}"))?;
    println!(
        "demo: owner {owner}, agent {agent}, API key {} (written to .local/demo.env)",
        key.prefix
    );
    Ok(())
}

/// Plans are managed by platform admins; the local demo account simply gets Pro, written with
/// the owner role (the application role cannot change subscriptions).
async fn grant_demo_plan(owner: Uuid) -> anyhow::Result<()> {
    let url = chatpad::config::required_var("MIGRATION_DATABASE_URL")?;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .context("connecting to MIGRATION_DATABASE_URL")?;
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO subscriptions (user_id, plan_id) VALUES ($1, 'pro') ON CONFLICT (user_id) DO NOTHING",
            &[&owner],
        )
        .await
        .context("granting the demo account a plan")?;
    Ok(())
}
