//! Uploaded knowledge files: upload URLs, and the S3 bucket (`KNOWLEDGE_BUCKET`) they live in.
//!
//! Bounding what a client uploads: aws-sdk-rust cannot presign an S3 POST policy (whose
//! `content-length-range` would bound the size), so the client first declares the file's name,
//! type and exact size; we check them against the per-file cap and the plan's storage, then
//! presign a PUT whose signature covers `Content-Length` and `Content-Type` — S3 refuses a body
//! of any other length or type. The client then confirms (adds a `file` source), and we check
//! the stored object again (its real size, and its type from its first bytes — magic numbers,
//! not the name) before accepting it. Upload URLs expire after 15 minutes; objects of uploads
//! never confirmed are deleted by the scheduler.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::FileKind;
use crate::db::GenericClient;
use crate::{ApiError, ApiResult};

/// How long an upload URL is valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// Default cap of one file (`KNOWLEDGE_MAX_FILE_BYTES`).
pub const DEFAULT_MAX_FILE_BYTES: i64 = 50 * 1024 * 1024;

/// The S3 bucket holding knowledge files.
#[derive(Debug, Clone)]
pub struct FileStore {
    s3: aws_sdk_s3::Client,
    bucket: String,
    /// Largest accepted file.
    pub max_file_bytes: i64,
}

impl FileStore {
    /// A store over `bucket`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: String, max_file_bytes: i64) -> Self {
        FileStore {
            s3,
            bucket,
            max_file_bytes,
        }
    }

    /// The bucket named by `KNOWLEDGE_BUCKET`, files capped by `KNOWLEDGE_MAX_FILE_BYTES`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let max = match std::env::var("KNOWLEDGE_MAX_FILE_BYTES") {
            Ok(v) => v.parse().map_err(|_| {
                anyhow::anyhow!("KNOWLEDGE_MAX_FILE_BYTES must be a number of bytes")
            })?,
            Err(_) => DEFAULT_MAX_FILE_BYTES,
        };
        Ok(FileStore::new(
            crate::aws::s3_client(sdk),
            crate::config::required_var("KNOWLEDGE_BUCKET")?,
            max,
        ))
    }

    /// The size of a stored object, or `None` when there is none.
    pub async fn size(&self, key: &str) -> anyhow::Result<Option<i64>> {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0))),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(anyhow::Error::new(err).context("S3 HeadObject")),
        }
    }

    /// Reads at most `max` bytes of an object (all of it if smaller).
    pub async fn read(&self, key: &str, max: usize) -> anyhow::Result<Vec<u8>> {
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", max.saturating_sub(1)))
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e).context("S3 GetObject"))?;
        let mut bytes = Vec::new();
        object
            .body
            .into_async_read()
            .take(max as u64)
            .read_to_end(&mut bytes)
            .await?;
        Ok(bytes)
    }

    /// Stores an object (tests and tools; customers upload through presigned URLs).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e).context("S3 PutObject"))?;
        Ok(())
    }

    /// Deletes objects; keys already gone are fine.
    pub async fn delete(&self, keys: &[String]) -> anyhow::Result<()> {
        for key in keys {
            self.s3
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| anyhow::Error::new(e).context("S3 DeleteObject"))?;
        }
        Ok(())
    }
}

/// A request for an upload URL.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadRequest {
    /// The file's name, shown as the source's title unless one is given.
    #[schema(min_length = 1, max_length = 255, example = "handbook.pdf")]
    pub file_name: String,
    /// The exact size in bytes; the upload URL accepts only this length. At most the
    /// deployment's `KNOWLEDGE_MAX_FILE_BYTES` (default 50 MiB).
    #[schema(minimum = 1)]
    pub byte_size: i64,
    /// Taken from the name's extension when absent. The stored bytes must match it.
    // Read as text, so an unknown type gets an error that lists the known ones.
    #[schema(value_type = Option<crate::knowledge::extract::FileKind>)]
    pub file_type: Option<String>,
}

/// Where and how to upload the file.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadTicket {
    /// Pass as `uploadId` when adding the `file` source.
    pub upload_id: Uuid,
    /// Always `PUT`.
    pub method: &'static str,
    pub url: String,
    /// Headers the PUT must carry exactly (they are signed).
    #[schema(value_type = Object)]
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
    pub file_type: String,
}

fn file_kind_of(request: &UploadRequest) -> ApiResult<FileKind> {
    let allowed = || FileKind::ALL.map(FileKind::as_str).join(", ");
    match &request.file_type {
        Some(kind) => kind.parse().map_err(|_| {
            ApiError::invalid_field("fileType", format!("must be one of {}", allowed()))
        }),
        None => FileKind::from_file_name(&request.file_name).ok_or_else(|| {
            ApiError::invalid_field(
                "fileType",
                format!(
                    "cannot tell the type from the file name; give one of {}",
                    allowed()
                ),
            )
        }),
    }
}

/// Hands out an upload URL for one file of `agent`, after checking its declared type and size
/// against the per-file cap and the plan's storage left.
pub async fn create_upload(
    tx: &impl GenericClient,
    store: &FileStore,
    agent: Uuid,
    request: &UploadRequest,
) -> ApiResult<UploadTicket> {
    let name = request.file_name.trim();
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "fileName",
            "must be 1 to 255 characters long, without control characters",
        ));
    }
    let kind = file_kind_of(request)?;
    let content_type = kind.content_type();
    if request.byte_size <= 0 || request.byte_size > store.max_file_bytes {
        return Err(ApiError::invalid_field(
            "byteSize",
            format!("must be between 1 and {} bytes", store.max_file_bytes),
        ));
    }
    let owner = crate::agents::get(tx, agent).await?.account_id;
    // The plan's storage (the insert trigger checks again when the source is added).
    tx.execute(
        "SELECT public.raise_plan_limit($1, 'max_storage_bytes', u.storage_bytes, p.max_storage_bytes,
                                        u.storage_bytes + $2)
         FROM account_usage($1) u, account_plan($1) p
         WHERE p.max_storage_bytes IS NOT NULL AND u.storage_bytes + $2 > p.max_storage_bytes",
        &[&owner, &request.byte_size],
    )
    .await?;

    let id = Uuid::now_v7();
    let key = format!(
        "sources/{owner}/{agent}/{id}/{}",
        crate::aws::s3_key_name(name)
    );
    let expires_at = Utc::now() + UPLOAD_URL_TTL;
    tx.execute(
        "INSERT INTO knowledge_uploads (id, agent_id, file_name, file_type, byte_size, s3_key, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&id, &agent, &name, &kind.as_str(), &request.byte_size, &key, &expires_at],
    )
    .await?;
    let (url, headers) = crate::aws::presign_put(
        &store.s3,
        &store.bucket,
        &key,
        content_type,
        request.byte_size,
        UPLOAD_URL_TTL,
    )
    .await?;
    Ok(UploadTicket {
        upload_id: id,
        method: "PUT",
        url,
        headers,
        expires_at,
        file_type: kind.as_str().to_owned(),
    })
}
