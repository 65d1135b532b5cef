//! Schema migrations: the plain SQL files in `migrations/`, embedded at build time and applied
//! in order by refinery, which records what ran in `refinery_schema_history`.

use anyhow::Context;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Applies pending migrations (none on a second run). Connect as the owner role, not the app role.
/// Returns the versions applied by this call.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<Vec<i64>> {
    let report = embedded::migrations::runner()
        .set_grouped(false)
        .run_async(client)
        .await
        .context("applying migrations")?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .collect())
}

/// The number of migration files embedded in this build.
pub fn embedded_count() -> usize {
    embedded::migrations::runner().get_migrations().len()
}

/// A fingerprint of the migrations embedded in this build (versions and refinery checksums):
/// what a database migrated by this binary holds, whatever the files on disk say now.
pub fn embedded_fingerprint() -> String {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| format!("{}:{}", m.version(), m.checksum()))
        .collect::<Vec<_>>()
        .join(",")
}
