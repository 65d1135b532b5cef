//! The ingestion job: one source from `pending` to `ready` (or `error` with a reason).
//!
//! Jobs arrive on the ingest queue from the outbox. Each one: mark the source `processing` →
//! get its text (S3 object through the extraction sandbox, typed text, Q&A pairs, or a crawl
//! through the SSRF guard) → chunk with the agent's sizes → embed in batches with the agent's
//! model → replace the source's chunks in one transaction → `ready`.
//!
//! At-least-once safe: chunks are written by `(source, position)` — upserted, with positions
//! past the new end deleted at the end (for web sources, the chunks of changed and vanished
//! pages are replaced in one transaction) — so a job processed twice leaves one copy of each
//! chunk; a job for a source already `ready`/`error` or deleted is a no-op. All work for a
//! source is done acting as the account's owner, under row-level security.
//!
//! Long documents are embedded in slices: when a job has used its time budget
//! ([`Ingestor::slice`], well inside the Lambda timeout) it queues its own continuation through
//! the outbox, in the same transaction as the chunks it wrote, and returns. The next message
//! resumes at the first chunk not yet embedded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::chunk::{self, Chunk, ChunkSettings};
use super::crawl::{
    Crawl, CrawlEvent, CrawlLimits, CrawlSettings, PageFailure, PageStatus, PreviousPage,
};
use super::extract::sandbox::Sandbox;
use super::extract::{self, ExtractError, FileKind};
use super::files::FileStore;
use super::search;
use super::{Extracted, Location, Part};
use crate::auth::Caller;
use crate::db::{self, Database};
use crate::embeddings::Embedder;
use crate::net::GuardedClient;
use crate::outbox::Relay;
use crate::sqs::Outcome;

/// Texts embedded per call.
const EMBED_BATCH: usize = 32;

/// A message on the ingest queue (written by the outbox triggers of `migrations/V8`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Job {
    /// Process one source.
    #[serde(rename_all = "camelCase")]
    Ingest {
        source_id: Uuid,
        user_id: Uuid,
        /// The first chunk to embed: 0, or where the previous slice stopped.
        #[serde(default)]
        resume_at: u32,
    },
    /// Delete files of deleted sources (or of uploads never confirmed).
    DeleteObjects { keys: Vec<String> },
    /// Bring an agent's vector index and word statistics in line with its size, after some of
    /// its sources were deleted.
    #[serde(rename_all = "camelCase")]
    SyncSearch { agent_id: Uuid, user_id: Uuid },
}

/// A failure of one job.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The source cannot be processed as it is; the message is for the customer.
    #[error("{0}")]
    Source(String),
    /// Something on our side (database, S3, the embeddings provider); worth retrying.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

impl From<crate::ApiError> for IngestError {
    fn from(err: crate::ApiError) -> Self {
        IngestError::Transient(anyhow::Error::new(err))
    }
}

impl From<tokio_postgres::Error> for IngestError {
    fn from(err: tokio_postgres::Error) -> Self {
        IngestError::Transient(anyhow::Error::new(err))
    }
}

/// What the ingest worker holds for its life.
#[derive(Clone)]
pub struct Ingestor {
    pub db: Database,
    pub files: FileStore,
    pub embedder: Embedder,
    pub web: GuardedClient,
    /// Reads uploaded files in a child process under memory and time limits; web pages (HTML
    /// already capped in size by the SSRF guard) are read in process with its limits.
    pub sandbox: Sandbox,
    /// Hands a job's continuation to the queue right after it commits.
    pub relay: Relay,
    /// Time one message may spend embedding before it hands the rest to a continuation.
    pub slice: Duration,
    /// Receives after which a failing job marks its source `error` instead of retrying
    /// (the queue's redrive policy moves it to the dead-letter queue at the same count).
    pub max_attempts: u32,
}

/// The source row a job works on.
struct SourceRow {
    agent_id: Uuid,
    kind: String,
    source: Option<String>,
    s3_key: Option<String>,
    settings: serde_json::Value,
}

/// A chunk ready to store.
struct ReadyChunk {
    content: String,
    location: Location,
    token_count: i32,
    embedding: pgvector::Vector,
}

impl Ingestor {
    /// Runs one queue message; `receive_count` is SQS's `ApproximateReceiveCount`.
    pub async fn run(&self, body: &str, receive_count: u32) -> Outcome {
        let job: Job = match serde_json::from_str(body) {
            Ok(job) => job,
            Err(err) => return Outcome::GiveUp(format!("not an ingest job: {err}")),
        };
        match job {
            Job::DeleteObjects { keys } => match self.files.delete(&keys).await {
                Ok(()) => Outcome::Done,
                Err(err) => Outcome::Retry(err),
            },
            Job::SyncSearch { agent_id, user_id } => {
                let synced = async {
                    let mut client = self.db.client().await?;
                    sync_search(&mut client, &Caller::User { user_id }, agent_id).await
                };
                match synced.await {
                    Ok(()) => Outcome::Done,
                    Err(err) => Outcome::Retry(anyhow::Error::new(err)),
                }
            }
            Job::Ingest {
                source_id,
                user_id,
                resume_at,
            } => {
                let caller = Caller::User { user_id };
                match self.ingest(&caller, source_id, resume_at).await {
                    Ok(()) => Outcome::Done,
                    Err(IngestError::Source(reason)) => {
                        self.fail(&caller, source_id, &reason).await
                    }
                    Err(IngestError::Transient(err)) if receive_count >= self.max_attempts => {
                        tracing::error!(%source_id, error = format!("{err:#}"), "giving up on a source");
                        self.fail(
                            &caller,
                            source_id,
                            &format!(
                                "processing failed {receive_count} times on our side; try a re-sync later"
                            ),
                        )
                        .await
                    }
                    Err(IngestError::Transient(err)) => Outcome::Retry(err),
                }
            }
        }
    }

    /// Marks the source `error` with `reason`.
    async fn fail(&self, caller: &Caller, source_id: Uuid, reason: &str) -> Outcome {
        let result = async {
            let mut client = self.db.client().await?;
            let tx = db::begin_as(&mut client, caller).await?;
            tx.execute(
                "UPDATE knowledge_sources SET status = 'error', error = left($2, 4000) WHERE id = $1",
                &[&source_id, &reason],
            )
            .await?;
            tx.commit().await?;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => Outcome::Done,
            Err(err) => Outcome::Retry(err),
        }
    }

    async fn ingest(
        &self,
        caller: &Caller,
        source_id: Uuid,
        resume_at: u32,
    ) -> Result<(), IngestError> {
        let started = Instant::now();
        let mut client = self.db.client().await?;
        // Claim: only a pending (or interrupted) source is processed; a duplicate message for
        // one already done, or a deleted one, is a no-op.
        let (source, settings) = {
            let tx = db::begin_as(&mut client, caller).await?;
            let Some(row) = tx
                .query_opt(
                    "UPDATE knowledge_sources SET status = 'processing', error = NULL
                     WHERE id = $1 AND status IN ('pending', 'processing')
                     RETURNING agent_id, type, source, s3_key, settings",
                    &[&source_id],
                )
                .await?
            else {
                return Ok(());
            };
            let source = SourceRow {
                agent_id: row.get("agent_id"),
                kind: row.get("type"),
                source: row.get("source"),
                s3_key: row.get("s3_key"),
                settings: row.get("settings"),
            };
            let agent = tx
                .query_one(
                    "SELECT embedding_model, chunk_size_tokens, chunk_overlap_tokens FROM agents WHERE id = $1",
                    &[&source.agent_id],
                )
                .await?;
            let model: String = agent.get("embedding_model");
            if model != self.embedder.model_id() {
                return Err(IngestError::Source(format!(
                    "the agent's embedding model {model} is not available in this deployment \
                     (it embeds with {}); change the agent's embedding model",
                    self.embedder.model_id()
                )));
            }
            let settings = ChunkSettings {
                size_tokens: agent.get::<_, i32>("chunk_size_tokens") as usize,
                overlap_tokens: agent.get::<_, i32>("chunk_overlap_tokens") as usize,
            };
            tx.commit().await?;
            (source, settings)
        };

        match source.kind.as_str() {
            "url" | "sitemap" => {
                self.ingest_web(&mut client, caller, source_id, &source, &settings)
                    .await?
            }
            _ => {
                let documents = self.documents(&source).await?;
                let chunks: Vec<Chunk> = documents
                    .iter()
                    .flat_map(|d| chunk::chunk(d, &settings))
                    .collect();
                self.embed_in_slices(&mut client, caller, source_id, &chunks, resume_at, started)
                    .await?
            }
        }
        // The agent's word statistics follow its chunks, and its vector index its size (it
        // may have grown past the exact-search size). The source is ready whatever happens
        // here: a failed sync is retried after the next source.
        if let Err(err) = sync_search(&mut client, caller, source.agent_id).await {
            tracing::warn!(agent = %source.agent_id, error = %err, "agent search indexes not synced");
        }
        Ok(())
    }

    /// Embeds and upserts `chunks` from `resume_at` on; when the time budget is used up,
    /// queues a continuation (with the chunks written so far) instead of finishing.
    async fn embed_in_slices(
        &self,
        client: &mut db::Client,
        caller: &Caller,
        source_id: Uuid,
        chunks: &[Chunk],
        resume_at: u32,
        started: Instant,
    ) -> Result<(), IngestError> {
        let total = chunks.len();
        let mut next = (resume_at as usize).min(total);
        while next < total {
            let batch = &chunks[next..total.min(next + EMBED_BATCH)];
            let ready = self.embed(batch.iter()).await?;
            let tx = db::begin_as(client, caller).await?;
            self.upsert_chunks(&tx, source_id, next as i32, ready)
                .await?;
            next += batch.len();
            tx.execute(
                "UPDATE knowledge_sources SET items_total = $2, items_done = $3 WHERE id = $1",
                &[&source_id, &(total as i32), &(next as i32)],
            )
            .await?;
            let out_of_time = started.elapsed() >= self.slice && next < total;
            if out_of_time {
                tx.execute(
                    "SELECT continue_ingest($1, $2)",
                    &[&source_id, &(next as i32)],
                )
                .await?;
            }
            tx.commit().await?;
            if out_of_time {
                tracing::info!(%source_id, done = next, total, "slice used up; continuing in a new message");
                if let Err(err) = self.relay.run(&self.db, 10).await {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "relaying the continuation failed; the scheduler will"
                    );
                }
                return Ok(());
            }
        }
        let tx = db::begin_as(client, caller).await?;
        tx.execute(
            "DELETE FROM knowledge_chunks WHERE source_id = $1 AND position >= $2",
            &[&source_id, &(total as i32)],
        )
        .await?;
        finish(&tx, source_id, total, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The documents of a file, text or Q&A source, each chunked on its own.
    async fn documents(&self, source: &SourceRow) -> Result<Vec<Extracted>, IngestError> {
        let single = |extracted| vec![extracted];
        match source.kind.as_str() {
            "text" => {
                let text = source.settings["text"].as_str().unwrap_or_default();
                Ok(single(Extracted {
                    title: None,
                    parts: vec![Part {
                        markdown: text.to_owned(),
                        location: Location::default(),
                    }],
                }))
            }
            "qa" => {
                let pairs: Vec<super::sources::QaPair> =
                    serde_json::from_value(source.settings["pairs"].clone()).unwrap_or_default();
                // Each pair is chunked alone, so a question is never cut off from its answer.
                Ok(pairs
                    .into_iter()
                    .map(|pair| Extracted {
                        title: None,
                        parts: vec![Part {
                            markdown: format!(
                                "**Q:** {}\n\n**A:** {}",
                                pair.question.trim(),
                                pair.answer.trim()
                            ),
                            location: Location {
                                section: Some(pair.question.trim().chars().take(200).collect()),
                                ..Location::default()
                            },
                        }],
                    })
                    .collect())
            }
            kind => {
                let key = source.s3_key.as_deref().ok_or_else(|| {
                    IngestError::Source("the file of this source is missing".into())
                })?;
                let declared: FileKind = kind
                    .parse()
                    .map_err(|e: ExtractError| IngestError::Source(e.to_string()))?;
                let bytes = self
                    .files
                    .read(key, self.files.max_file_bytes as usize)
                    .await?;
                let file_kind = extract::sniff(&bytes, declared).map_err(source_error)?;
                let mut extracted = self
                    .sandbox
                    .extract_async(bytes, file_kind)
                    .await
                    .map_err(source_error)?;
                if extracted.title.is_none() {
                    extracted.title = source.source.clone();
                }
                Ok(single(extracted))
            }
        }
    }

    /// Embeds `chunks` in one call.
    async fn embed<'c>(
        &self,
        chunks: impl ExactSizeIterator<Item = &'c Chunk>,
    ) -> Result<Vec<ReadyChunk>, IngestError> {
        let chunks: Vec<&Chunk> = chunks.collect();
        let texts: Vec<String> = chunks.iter().map(|c| c.content.clone()).collect();
        let vectors = self
            .embedder
            .embed(&texts)
            .await
            .map_err(anyhow::Error::new)?;
        Ok(chunks
            .into_iter()
            .zip(vectors)
            .map(|(c, v)| ReadyChunk {
                content: c.content.clone(),
                location: c.location.clone(),
                token_count: c.token_count as i32,
                embedding: pgvector::Vector::from(v),
            })
            .collect())
    }

    /// Writes chunks at positions `first_position`…, replacing what those positions held.
    async fn upsert_chunks(
        &self,
        tx: &db::Transaction<'_>,
        source_id: Uuid,
        first_position: i32,
        chunks: impl IntoIterator<Item = ReadyChunk>,
    ) -> Result<(), IngestError> {
        let statement = tx
            .prepare(
                "INSERT INTO knowledge_chunks (source_id, position, content, location, token_count, embedding_model, embedding)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (source_id, position) DO UPDATE SET content = EXCLUDED.content,
                   location = EXCLUDED.location, token_count = EXCLUDED.token_count,
                   embedding_model = EXCLUDED.embedding_model, embedding = EXCLUDED.embedding",
            )
            .await?;
        let model = self.embedder.model_id();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let position = first_position + i as i32;
            tx.execute(
                &statement,
                &[
                    &source_id,
                    &position,
                    &chunk.content,
                    &Json(&chunk.location),
                    &chunk.token_count,
                    &model,
                    &chunk.embedding,
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// A web source: crawl (conditionally, against what the last sync saw), reading each page
    /// as it arrives, then replace the chunks of new, changed and vanished pages in one
    /// transaction; unchanged pages keep theirs.
    async fn ingest_web(
        &self,
        client: &mut db::Client,
        caller: &Caller,
        source_id: Uuid,
        source: &SourceRow,
        settings: &ChunkSettings,
    ) -> Result<(), IngestError> {
        let start = source
            .source
            .as_deref()
            .and_then(|u| crate::net::Url::parse(u).ok())
            .ok_or_else(|| IngestError::Source("the source's URL is invalid".into()))?;
        let crawl_settings: CrawlSettings =
            serde_json::from_value(source.settings["crawl"].clone())
                .map_err(|e| IngestError::Source(format!("invalid crawl settings: {e}")))?;
        let previous: HashMap<String, PreviousPage> = {
            let tx = db::begin_as(client, caller).await?;
            let rows = tx
                .query(
                    "SELECT url, etag, last_modified, content_hash, links FROM knowledge_pages WHERE source_id = $1",
                    &[&source_id],
                )
                .await?;
            tx.commit().await?;
            rows.iter()
                .map(|r| {
                    let Json(links): Json<Vec<String>> = r.get("links");
                    (
                        r.get::<_, String>("url"),
                        PreviousPage {
                            etag: r.get("etag"),
                            last_modified: r.get("last_modified"),
                            content_hash: r.get("content_hash"),
                            links: Some(links),
                        },
                    )
                })
                .collect()
        };

        // Pages are read (and their bodies dropped) as the crawl hands them out.
        let mut crawl = Crawl::start(
            &self.web,
            &start,
            &crawl_settings,
            &previous,
            CrawlLimits::default(),
        )
        .await
        .map_err(|e| IngestError::Source(e.to_string()))?;
        let mut pages = Vec::new();
        let mut fresh: Vec<(String, Vec<Chunk>)> = Vec::new();
        let mut failures = Vec::new();
        while let Some(event) = crawl.next().await {
            let page = match event {
                CrawlEvent::Page(page) => page,
                CrawlEvent::Failed(failure) => {
                    failures.push(failure);
                    continue;
                }
            };
            let url = page.url.to_string();
            if page.status != PageStatus::Unchanged {
                let html = page
                    .content_type
                    .as_deref()
                    .is_none_or(|t| t.contains("html"));
                let kind = if html { FileKind::Html } else { FileKind::Txt };
                match extract::extract(&page.body, kind, &self.sandbox.limits) {
                    Ok(mut extracted) => {
                        for part in &mut extracted.parts {
                            part.location.url = Some(url.clone());
                        }
                        fresh.push((url.clone(), chunk::chunk(&extracted, settings)));
                    }
                    Err(err) => {
                        failures.push(PageFailure {
                            url,
                            reason: err.to_string(),
                        });
                        continue;
                    }
                }
            }
            pages.push(PageRecord {
                url: page.url.to_string(),
                unchanged: page.status == PageStatus::Unchanged,
                etag: page.etag,
                last_modified: page.last_modified,
                content_hash: page.content_hash,
                links: page.links,
            });
            progress(client, caller, source_id, pages.len() + 1, pages.len()).await?;
        }
        if pages.is_empty() {
            let why = failures
                .first()
                .map(|f| format!("{}: {}", f.url, f.reason))
                .unwrap_or_else(|| "no page with text was found".into());
            return Err(IngestError::Source(format!(
                "nothing could be read from this site ({why})"
            )));
        }
        let mut embedded = Vec::with_capacity(fresh.len());
        for (url, chunks) in &fresh {
            let mut ready = Vec::with_capacity(chunks.len());
            for batch in chunks.chunks(EMBED_BATCH) {
                ready.extend(self.embed(batch.iter()).await?);
            }
            embedded.push((url, ready));
        }

        let tx = db::begin_as(client, caller).await?;
        tx.query_one(
            "SELECT 1 FROM knowledge_sources WHERE id = $1 FOR UPDATE",
            &[&source_id],
        )
        .await?;
        // Pages no longer found, and pages re-read, lose their old chunks.
        let kept: Vec<&str> = pages
            .iter()
            .filter(|p| p.unchanged)
            .map(|p| p.url.as_str())
            .collect();
        tx.execute(
            "DELETE FROM knowledge_chunks WHERE source_id = $1 AND NOT (location ->> 'url' = ANY ($2))",
            &[&source_id, &kept],
        )
        .await?;
        let seen: Vec<&str> = pages.iter().map(|p| p.url.as_str()).collect();
        tx.execute(
            "DELETE FROM knowledge_pages WHERE source_id = $1 AND NOT (url = ANY ($2))",
            &[&source_id, &seen],
        )
        .await?;
        let mut next: i32 = tx
            .query_one(
                "SELECT coalesce(max(position) + 1, 0) FROM knowledge_chunks WHERE source_id = $1",
                &[&source_id],
            )
            .await?
            .get(0);
        let mut per_page: HashMap<&str, i32> = HashMap::new();
        for (url, ready) in embedded {
            per_page.insert(url, ready.len() as i32);
            let count = ready.len() as i32;
            self.upsert_chunks(&tx, source_id, next, ready).await?;
            next += count;
        }
        for page in &pages {
            tx.execute(
                "INSERT INTO knowledge_pages (source_id, url, etag, last_modified, content_hash, chunk_count, links, fetched_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $8, now())
                 ON CONFLICT (source_id, url) DO UPDATE SET etag = EXCLUDED.etag,
                   last_modified = EXCLUDED.last_modified, content_hash = EXCLUDED.content_hash,
                   links = EXCLUDED.links,
                   chunk_count = CASE WHEN $7 THEN knowledge_pages.chunk_count ELSE EXCLUDED.chunk_count END,
                   fetched_at = now()",
                &[
                    &source_id,
                    &page.url,
                    &page.etag,
                    &page.last_modified,
                    &page.content_hash,
                    &per_page.get(page.url.as_str()).copied().unwrap_or(0),
                    &page.unchanged,
                    &Json(&page.links),
                ],
            )
            .await?;
        }
        let warning = failures.first().map(|first| {
            format!(
                "{} page(s) could not be read, e.g. {}: {}",
                failures.len(),
                first.url,
                first.reason
            )
        });
        finish(&tx, source_id, pages.len(), warning.as_deref()).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// What a sync keeps of a crawled page (its body is read and dropped at once).
struct PageRecord {
    url: String,
    unchanged: bool,
    etag: Option<String>,
    last_modified: Option<String>,
    content_hash: String,
    links: Vec<String>,
}

/// An extraction failure: the customer's file, unless the failure is ours (then retried).
fn source_error(err: ExtractError) -> IngestError {
    if err.is_retryable() {
        IngestError::Transient(anyhow::Error::new(err))
    } else {
        IngestError::Source(err.to_string())
    }
}

/// Records progress in its own short transaction, so the API shows it while the job runs.
async fn progress(
    client: &mut db::Client,
    caller: &Caller,
    source_id: Uuid,
    total: usize,
    done: usize,
) -> Result<(), IngestError> {
    let tx = db::begin_as(client, caller).await?;
    tx.execute(
        "UPDATE knowledge_sources SET items_total = $2, items_done = $3 WHERE id = $1",
        &[&source_id, &(total as i32), &(done as i32)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Marks the source `ready` with its counts; `warning` (pages that failed) is kept as its error
/// text although the source is usable.
async fn finish(
    tx: &db::Transaction<'_>,
    source_id: Uuid,
    items: usize,
    warning: Option<&str>,
) -> Result<(), IngestError> {
    tx.execute(
        "UPDATE knowledge_sources SET status = 'ready', error = left($3, 4000), items_total = $2, items_done = $2,
           chunk_count = (SELECT count(*) FROM knowledge_chunks WHERE source_id = $1),
           content_hash = (SELECT encode(sha256(convert_to(string_agg(content, '' ORDER BY position), 'UTF8')), 'hex')
                           FROM knowledge_chunks WHERE source_id = $1),
           last_synced_at = now()
         WHERE id = $1",
        &[&source_id, &(items as i32), &warning],
    )
    .await?;
    Ok(())
}

/// Builds or drops the agent's own vector index to match its size and refreshes its word
/// statistics (each a no-op when nothing changed enough; an agent gone meanwhile is `NotFound`,
/// not an error).
async fn sync_search(
    client: &mut db::Client,
    caller: &Caller,
    agent: Uuid,
) -> crate::ApiResult<()> {
    let tx = db::begin_as(client, caller).await?;
    let index = search::sync_vector_index(&tx, agent).await?;
    let terms = search::sync_term_stats(&tx, agent).await?;
    tx.commit().await?;
    tracing::debug!(%agent, ?index, ?terms, "agent search indexes");
    Ok(())
}
