//! Seeds the local demo: an owner, an agent and an API key, through the same row-level
//! security as the functions (it connects as the application role and acts as the owner).
//! Idempotent: the owner and agent are reused; the demo key is replaced. Writes the
//! identifiers and fresh credentials to `.local/demo.env` for `make dev` to print.
//!
//! Also an empty account for the property tests (`PROPERTY_TEST_JWT`), deleted and made again
//! on every run: what schemathesis creates — dozens of webhook endpoints at made-up hosts
//! among it — would otherwise pile up in the demo account run after run, and every demo
//! conversation would queue deliveries to all of them.

use std::time::Duration;

use anyhow::Context;
use chatpad::auth::{Caller, api_keys, jwt};
use chatpad::config::Config;
use chatpad::db::{self, Database};
use secrecy::ExposeSecret;
use uuid::Uuid;

const DEMO_SUBJECT: &str = "demo-owner";
const DEMO_EMAIL: &str = "owner@demo.chatpad.local";
const PROPERTY_TEST_SUBJECT: &str = "property-tests";
const PROPERTY_TEST_EMAIL: &str = "property-tests@demo.chatpad.local";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let database = Database::connect_lazy(&config.database_url, 1)?;
    let mut client = database
        .client()
        .await
        .context("connecting to DATABASE_URL")?;

    let owner_role = owner_client().await?;
    let owner = sign_in_with_plan(&client, &owner_role, &config, DEMO_SUBJECT, DEMO_EMAIL).await?;
    owner_role
        .execute(
            "DELETE FROM users WHERE auth_subject = $1",
            &[&PROPERTY_TEST_SUBJECT],
        )
        .await
        .context("emptying the property tests' account")?;
    sign_in_with_plan(
        &client,
        &owner_role,
        &config,
        PROPERTY_TEST_SUBJECT,
        PROPERTY_TEST_EMAIL,
    )
    .await?;
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

    let token = |subject, email| {
        config
            .jwt
            .hs256_secret
            .as_ref()
            .map(|secret| {
                jwt::issue_dev_token(
                    secret,
                    &config.jwt,
                    subject,
                    Some(email),
                    Duration::from_secs(24 * 3600),
                )
            })
            .unwrap_or_default()
    };
    let lines = format!(
        "DEMO_USER_ID={owner}\nDEMO_AGENT_ID={agent}\nDEMO_API_KEY={}\nDEMO_JWT={}\nPROPERTY_TEST_JWT={}\n",
        key.plaintext.expose_secret(),
        token(DEMO_SUBJECT, DEMO_EMAIL),
        token(PROPERTY_TEST_SUBJECT, PROPERTY_TEST_EMAIL),
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/demo.env");
    std::fs::write(path, &lines).with_context(|| format!("writing {path}"))?;
    println!(
        "demo: owner {owner}, agent {agent}, API key {} (written to .local/demo.env)",
        key.prefix
    );
    Ok(())
}

/// A connection with the owner role: plans are managed by platform admins and accounts are not
/// deleted through the API, so the application role can do neither.
async fn owner_client() -> anyhow::Result<tokio_postgres::Client> {
    let url = chatpad::config::required_var("MIGRATION_DATABASE_URL")?;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .context("connecting to MIGRATION_DATABASE_URL")?;
    tokio::spawn(connection);
    Ok(client)
}

/// The account of `subject` (made on first sign-in), on the Pro plan so that every feature can
/// be tried locally.
async fn sign_in_with_plan(
    client: &db::Client,
    owner_role: &tokio_postgres::Client,
    config: &Config,
    subject: &str,
    email: &str,
) -> anyhow::Result<Uuid> {
    let claims = jwt::TokenClaims {
        sub: subject.into(),
        email: Some(email.into()),
        exp: 0,
        iss: config.jwt.issuer.clone(),
        aud: config.jwt.audience.clone(),
    };
    let user = jwt::sign_in(client, &claims).await?;
    owner_role
        .execute(
            "INSERT INTO subscriptions (user_id, plan_id) VALUES ($1, 'pro') ON CONFLICT (user_id) DO NOTHING",
            &[&user],
        )
        .await
        .context("granting a local account a plan")?;
    Ok(user)
}
