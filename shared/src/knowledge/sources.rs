//! Knowledge sources of an agent: adding (files through upload URLs, web pages and sites, typed
//! text, Q&A pairs), listing, re-syncing and deleting.
//!
//! Adding a source or asking for a re-sync only writes rows: the database's triggers put the
//! ingestion job into the outbox in the same transaction (see `migrations/V8`), and
//! [`crate::outbox`] hands it to the ingest queue. Deleting a source deletes its chunks with it
//! (cascade) and queues the deletion of its S3 object the same way.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::crawl::{CrawlMode, CrawlSettings};
use super::extract::{ExtractError, FileKind, sniff};
use super::files::FileStore;
use crate::db::{self, GenericClient};
use crate::pagination::{Cursor, Page};
use crate::{ApiError, ApiResult};

/// Largest typed text (or all Q&A pairs together), in bytes.
pub const MAX_TEXT_BYTES: usize = 200_000;
/// Bytes of an upload read to check its type (all of a DOCX).
const SNIFF_BYTES: usize = 1024 * 1024;
/// Most Q&A pairs in one source.
pub const MAX_QA_PAIRS: usize = 1_000;

/// A knowledge source as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub id: Uuid,
    pub agent_id: Uuid,
    /// `pdf`, `docx`, `csv`, `txt`, `markdown`, `html` (uploaded files), `url`, `sitemap`,
    /// `text` or `qa`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The URL of a web source, the file name of an upload.
    pub source: Option<String>,
    /// `pending` → `processing` → `ready` | `error`.
    pub status: String,
    /// Why processing failed, in words meant for the customer.
    pub error: Option<String>,
    pub progress: Progress,
    pub chunk_count: i32,
    pub byte_size: i64,
    /// Crawl settings of a web source.
    #[schema(value_type = Option<Object>)]
    pub crawl: Option<Value>,
    /// Re-sync period of a web source; absent = on demand only.
    pub sync_every_hours: Option<i32>,
    pub next_sync_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How far processing has come: pages, rows or parts done out of those found.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub items_total: i32,
    pub items_done: i32,
}

const SOURCE_COLUMNS: &str = "id, agent_id, type, title, source, status, error, items_total, items_done, \
     chunk_count, byte_size, settings -> 'crawl' AS crawl, sync_every_hours, next_sync_at, \
     last_synced_at, created_at, updated_at";

fn from_row(row: &Row) -> Source {
    Source {
        id: row.get("id"),
        agent_id: row.get("agent_id"),
        kind: row.get("type"),
        title: row.get("title"),
        source: row.get("source"),
        status: row.get("status"),
        error: row.get("error"),
        progress: Progress {
            items_total: row.get("items_total"),
            items_done: row.get("items_done"),
        },
        chunk_count: row.get("chunk_count"),
        byte_size: row.get("byte_size"),
        crawl: row.get("crawl"),
        sync_every_hours: row.get("sync_every_hours"),
        next_sync_at: row.get("next_sync_at"),
        last_synced_at: row.get("last_synced_at"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// One question and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QaPair {
    #[schema(min_length = 1, max_length = 2000)]
    pub question: String,
    #[schema(min_length = 1, max_length = 20000)]
    pub answer: String,
}

/// What to add. `type` selects the kind of source.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum NewSource {
    /// A file uploaded through an upload URL (`POST .../knowledge/uploads`).
    #[serde(rename_all = "camelCase")]
    File {
        upload_id: Uuid,
        #[schema(max_length = 500)]
        title: Option<String>,
    },
    /// A web page, a site crawled from it, or the pages of a sitemap.
    #[serde(rename_all = "camelCase")]
    Url {
        #[schema(max_length = 4096, example = "https://example.com/help")]
        url: String,
        #[schema(max_length = 500)]
        title: Option<String>,
        /// How to crawl (default: this one page).
        crawl: Option<CrawlSettings>,
        /// Re-sync every this many hours (1 to 8760); absent = on demand only.
        sync_every_hours: Option<i32>,
    },
    /// Text typed in directly (Markdown welcome).
    Text {
        #[schema(min_length = 1, max_length = 500)]
        title: String,
        #[schema(min_length = 1, max_length = 200000)]
        text: String,
    },
    /// Questions and their answers, each pair kept together as one chunk.
    Qa {
        #[schema(min_length = 1, max_length = 500)]
        title: String,
        pairs: Vec<QaPair>,
    },
}

/// Fields of a source that can be changed.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceChanges {
    #[schema(min_length = 1, max_length = 500)]
    pub title: Option<String>,
    /// Re-sync period of a web source in hours; 0 turns the schedule off.
    pub sync_every_hours: Option<i32>,
}

fn check_title(title: &str) -> ApiResult<()> {
    if title.trim().is_empty() || title.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "title",
            "must be 1 to 500 characters long",
        ));
    }
    Ok(())
}

fn check_schedule(hours: i32) -> ApiResult<()> {
    if !(1..=8760).contains(&hours) {
        return Err(ApiError::invalid_field(
            "syncEveryHours",
            "must be between 1 and 8760 hours (a year)",
        ));
    }
    Ok(())
}

/// Checks a web source's URL: absolute http(s), no credentials. Where it points is checked
/// when it is fetched, by the SSRF guard, at every hop.
pub fn check_url(url: &str) -> ApiResult<crate::net::Url> {
    let invalid = |why: &str| ApiError::invalid_field("url", why.to_owned());
    if url.len() > 4096 {
        return Err(invalid("must be at most 4096 characters long"));
    }
    let parsed = crate::net::Url::parse(url).map_err(|_| invalid("must be an absolute URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not contain a user name or password"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host"));
    }
    Ok(parsed)
}

/// A source row to insert.
struct Insert<'a> {
    kind: &'a str,
    title: &'a str,
    source: Option<&'a str>,
    s3_key: Option<&'a str>,
    byte_size: i64,
    settings: Value,
    sync_every_hours: Option<i32>,
}

async fn insert(tx: &impl GenericClient, agent: Uuid, new: Insert<'_>) -> ApiResult<Source> {
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO knowledge_sources
                   (agent_id, type, title, source, s3_key, byte_size, settings, sync_every_hours, next_sync_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(hours => $8))
                 RETURNING {SOURCE_COLUMNS}"
            ),
            &[
                &agent,
                &new.kind,
                &new.title.trim(),
                &new.source,
                &new.s3_key,
                &new.byte_size,
                &new.settings,
                &new.sync_every_hours,
            ],
        )
        .await?;
    Ok(from_row(&row))
}

/// Adds a source to `agent`; it starts `pending` and is queued for ingestion.
pub async fn create(
    tx: &impl GenericClient,
    files: &FileStore,
    agent: Uuid,
    new: &NewSource,
) -> ApiResult<Source> {
    // The agent must be visible: otherwise its id is as good as unknown.
    crate::agents::get(tx, agent).await?;
    match new {
        NewSource::File { upload_id, title } => {
            if let Some(title) = title {
                check_title(title)?;
            }
            let upload = tx
                .query_opt(
                    "DELETE FROM knowledge_uploads WHERE id = $1 AND agent_id = $2
                     RETURNING file_name, file_type, byte_size, s3_key, expires_at < now() AS expired",
                    &[upload_id, &agent],
                )
                .await?
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "uploadId",
                        "no such upload for this agent (or it was already used)",
                    )
                })?;
            if upload.get::<_, bool>("expired") {
                return Err(ApiError::invalid_field(
                    "uploadId",
                    "the upload URL has expired; ask for a new one",
                ));
            }
            let file_name: String = upload.get("file_name");
            let (kind, key, size): (&str, &str, i64) = (
                upload.get("file_type"),
                upload.get("s3_key"),
                upload.get("byte_size"),
            );
            check_uploaded(files, kind, key, size).await?;
            insert(
                tx,
                agent,
                Insert {
                    kind,
                    title: title.as_deref().unwrap_or(&file_name),
                    source: Some(&file_name),
                    s3_key: Some(key),
                    byte_size: size,
                    settings: json!({}),
                    sync_every_hours: None,
                },
            )
            .await
        }
        NewSource::Url {
            url,
            title,
            crawl,
            sync_every_hours,
        } => {
            let parsed = check_url(url)?;
            if let Some(title) = title {
                check_title(title)?;
            }
            if let Some(hours) = sync_every_hours {
                check_schedule(*hours)?;
            }
            let crawl = crawl.clone().unwrap_or_default();
            crawl.validate().map_err(|e| e.to_api_error("crawl"))?;
            let default_title = parsed.host_str().unwrap_or("web page").to_owned();
            insert(
                tx,
                agent,
                Insert {
                    kind: if crawl.mode == CrawlMode::Sitemap {
                        "sitemap"
                    } else {
                        "url"
                    },
                    title: title.as_deref().unwrap_or(&default_title),
                    source: Some(parsed.as_str()),
                    s3_key: None,
                    byte_size: 0,
                    settings: json!({ "crawl": crawl }),
                    sync_every_hours: *sync_every_hours,
                },
            )
            .await
        }
        NewSource::Text { title, text } => {
            check_title(title)?;
            if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
                return Err(ApiError::invalid_field(
                    "text",
                    format!("must be 1 to {MAX_TEXT_BYTES} bytes of text"),
                ));
            }
            insert(
                tx,
                agent,
                Insert {
                    kind: "text",
                    title,
                    source: None,
                    s3_key: None,
                    byte_size: text.len() as i64,
                    settings: json!({ "text": text }),
                    sync_every_hours: None,
                },
            )
            .await
        }
        NewSource::Qa { title, pairs } => {
            check_title(title)?;
            if pairs.is_empty() || pairs.len() > MAX_QA_PAIRS {
                return Err(ApiError::invalid_field(
                    "pairs",
                    format!("must hold 1 to {MAX_QA_PAIRS} question/answer pairs"),
                ));
            }
            let mut bytes = 0;
            for (i, pair) in pairs.iter().enumerate() {
                let (q, a) = (pair.question.trim(), pair.answer.trim());
                if q.is_empty() || q.chars().count() > 2000 {
                    return Err(ApiError::invalid_field(
                        &format!("pairs[{i}].question"),
                        "must be 1 to 2000 characters long",
                    ));
                }
                if a.is_empty() || a.chars().count() > 20_000 {
                    return Err(ApiError::invalid_field(
                        &format!("pairs[{i}].answer"),
                        "must be 1 to 20000 characters long",
                    ));
                }
                bytes += q.len() + a.len();
            }
            if bytes > MAX_TEXT_BYTES {
                return Err(ApiError::invalid_field(
                    "pairs",
                    format!("must hold at most {MAX_TEXT_BYTES} bytes of text in all"),
                ));
            }
            insert(
                tx,
                agent,
                Insert {
                    kind: "qa",
                    title,
                    source: None,
                    s3_key: None,
                    byte_size: bytes as i64,
                    settings: json!({ "pairs": pairs }),
                    sync_every_hours: None,
                },
            )
            .await
        }
    }
}

/// Checks the object uploaded for a `file` source: there, of the declared size, and of the
/// declared type judging by its first bytes.
async fn check_uploaded(files: &FileStore, kind: &str, key: &str, size: i64) -> ApiResult<()> {
    let invalid = |why: String| ApiError::invalid_field("uploadId", why);
    match files.size(key).await? {
        None => return Err(invalid("nothing was uploaded to the upload URL yet".into())),
        Some(stored) if stored != size => {
            return Err(invalid(format!(
                "the uploaded file has {stored} bytes, not the {size} declared"
            )));
        }
        Some(_) => {}
    }
    let declared: FileKind = kind
        .parse()
        .map_err(|e: ExtractError| invalid(e.to_string()))?;
    // A DOCX is known by its central directory at the end; the other kinds by their start.
    let sniffed = match declared {
        FileKind::Docx => size as usize,
        _ => SNIFF_BYTES.min(size as usize),
    };
    let bytes = files.read(key, sniffed).await?;
    sniff(&bytes, declared).map_err(|e| invalid(e.to_string()))?;
    Ok(())
}

/// One source.
pub async fn get(tx: &impl GenericClient, id: Uuid) -> ApiResult<Source> {
    let row = tx
        .query_opt(
            &format!("SELECT {SOURCE_COLUMNS} FROM knowledge_sources WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(from_row(
        &row.ok_or_else(|| ApiError::not_found("knowledge source"))?,
    ))
}

/// Changes a source's title or re-sync schedule.
pub async fn update(
    tx: &impl GenericClient,
    id: Uuid,
    changes: &SourceChanges,
) -> ApiResult<Source> {
    if let Some(title) = &changes.title {
        check_title(title)?;
    }
    let current = get(tx, id).await?;
    let schedule = match changes.sync_every_hours {
        None => current.sync_every_hours,
        Some(0) => None,
        Some(hours) => {
            check_schedule(hours)?;
            if !matches!(current.kind.as_str(), "url" | "sitemap") {
                return Err(ApiError::invalid_field(
                    "syncEveryHours",
                    "only web sources (url, sitemap) can be re-synced on a schedule",
                ));
            }
            Some(hours)
        }
    };
    let row = tx
        .query_opt(
            &format!(
                "UPDATE knowledge_sources SET title = coalesce($2, title), sync_every_hours = $3,
                   next_sync_at = CASE WHEN $3::int IS NULL THEN NULL
                                       WHEN sync_every_hours IS NOT DISTINCT FROM $3 THEN next_sync_at
                                       ELSE now() + make_interval(hours => $3) END
                 WHERE id = $1 RETURNING {SOURCE_COLUMNS}"
            ),
            &[&id, &changes.title.as_deref().map(str::trim), &schedule],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)),
        None => {
            Err(db::not_found_or_forbidden(tx, "knowledge_sources", id, "knowledge source").await)
        }
    }
}

/// Processes a source again: a web source is re-fetched (unchanged pages are kept as they
/// are), any other is re-extracted and re-embedded. Refused while it is already queued or
/// being processed.
pub async fn resync(tx: &impl GenericClient, id: Uuid) -> ApiResult<Source> {
    let row = tx
        .query_opt(
            &format!(
                "UPDATE knowledge_sources SET status = 'pending', error = NULL
                 WHERE id = $1 AND status IN ('ready', 'error') RETURNING {SOURCE_COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    if let Some(row) = row {
        return Ok(from_row(&row));
    }
    let current = get(tx, id).await?;
    if matches!(current.status.as_str(), "pending" | "processing") {
        return Err(ApiError::Conflict {
            code: "sync_in_progress",
            message: format!(
                "this source is already {}; try again when it is done",
                current.status
            ),
        });
    }
    Err(db::not_found_or_forbidden(tx, "knowledge_sources", id, "knowledge source").await)
}

/// Deletes a source, its chunks and (through the outbox) its file.
pub async fn delete(tx: &impl GenericClient, id: Uuid) -> ApiResult<()> {
    match tx
        .execute("DELETE FROM knowledge_sources WHERE id = $1", &[&id])
        .await?
    {
        0 => Err(db::not_found_or_forbidden(tx, "knowledge_sources", id, "knowledge source").await),
        _ => Ok(()),
    }
}

/// A page of an agent's sources, newest first, optionally of one status.
pub async fn list(
    tx: &impl GenericClient,
    agent: Uuid,
    status: Option<&str>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<Page<Source>> {
    crate::agents::get(tx, agent).await?;
    if let Some(status) = status
        && !matches!(status, "pending" | "processing" | "ready" | "error")
    {
        return Err(ApiError::invalid_field(
            "status",
            "must be pending, processing, ready or error",
        ));
    }
    let limit = crate::pagination::limit(limit)?;
    let (after_time, after_id) = match crate::pagination::time_cursor(cursor)? {
        Some((time, id)) => (time, Some(id)),
        None => (Utc::now(), None),
    };
    let rows = tx
        .query(
            &format!(
                "SELECT {SOURCE_COLUMNS} FROM knowledge_sources
                 WHERE agent_id = $1 AND ($2::text IS NULL OR status = $2)
                   AND ($4::uuid IS NULL OR (created_at, id) < ($3, $4))
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            ),
            &[&agent, &status, &after_time, &after_id, &(limit + 1)],
        )
        .await?;
    let sources = rows.iter().map(from_row).collect();
    Ok(crate::pagination::page(sources, limit, |s| {
        crate::pagination::time_cursor_of(s.created_at, s.id)
    }))
}

/// A stored chunk, as listed for inspection.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChunkView {
    pub id: Uuid,
    pub position: i32,
    pub content: String,
    #[schema(value_type = Object)]
    pub location: Value,
    pub token_count: i32,
    pub embedding_model: String,
}

/// A page of a source's chunks in document order.
pub async fn list_chunks(
    tx: &impl GenericClient,
    source: Uuid,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<Page<ChunkView>> {
    get(tx, source).await?;
    let limit = crate::pagination::limit(limit)?;
    let after = cursor.map(Cursor::decode).transpose()?;
    let after_position = after
        .as_ref()
        .map_or(-1, |c| c.value.as_i64().unwrap_or(-1) as i32);
    let rows = tx
        .query(
            "SELECT id, position, content, location, token_count, embedding_model
             FROM knowledge_chunks WHERE source_id = $1 AND position > $2
             ORDER BY position LIMIT $3",
            &[&source, &after_position, &(limit + 1)],
        )
        .await?;
    let chunks = rows
        .iter()
        .map(|r| ChunkView {
            id: r.get("id"),
            position: r.get("position"),
            content: r.get("content"),
            location: r.get("location"),
            token_count: r.get("token_count"),
            embedding_model: r.get("embedding_model"),
        })
        .collect();
    Ok(crate::pagination::page(chunks, limit, |c| Cursor {
        value: c.position.into(),
        id: c.id,
    }))
}
