//! Applies the schema migrations to `MIGRATION_DATABASE_URL` (the owner role). Used by
//! `make migrate`, `make dev` and deploy scripts; a second run applies nothing.

use anyhow::Context;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    chatpad::telemetry::init();
    let url = chatpad::config::required_var("MIGRATION_DATABASE_URL")?;
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .context("connecting to MIGRATION_DATABASE_URL")?;
    tokio::spawn(connection);
    let applied = chatpad::db::migrate(&mut client).await?;
    if applied.is_empty() {
        println!(
            "migrations: up to date ({} known)",
            chatpad::db::embedded_migration_count()
        );
    } else {
        println!("migrations: applied {applied:?}");
    }
    Ok(())
}
