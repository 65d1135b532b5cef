//! Files a widget visitor attaches to a message (images, PDFs, voice messages), kept in the
//! uploads bucket (`UPLOADS_BUCKET`).
//!
//! The same scheme as knowledge files (see `knowledge::files`): aws-sdk-rust cannot presign a
//! POST policy, so the visitor declares the file's type and exact size, and gets a PUT URL
//! (valid 5 minutes) whose signature covers `Content-Type` and `Content-Length`. Keys live
//! under the agent and a hash of the visitor id, so a message can only carry the visitor's
//! own uploads. When a message names an upload, the stored object is checked again — its real
//! size, its declared type and its first bytes (magic numbers) — before the message keeps it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::{ApiError, ApiResult};

/// How long an upload URL is valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);
/// Largest attachment.
pub const MAX_BYTES: i64 = 10 * 1024 * 1024;
/// Attachments one message may carry.
pub const MAX_PER_MESSAGE: usize = 5;
/// The accepted types: images, PDF and the audio types browsers record (MediaRecorder).
pub const CONTENT_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "audio/webm",
    "audio/ogg",
    "audio/mp4",
];

/// A visitor's request for an upload URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadRequest {
    pub agent_id: Uuid,
    pub visitor_id: String,
    pub file_name: String,
    pub content_type: String,
    pub byte_size: i64,
}

/// Where and how to PUT the file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadTicket {
    /// Name it in the chat request's `attachments: [{"key"}]`.
    pub key: String,
    pub method: &'static str,
    pub url: String,
    /// Send exactly these headers (the signature covers them).
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// An attachment as a message stores it (`messages.attachments`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub key: String,
    pub name: String,
    pub content_type: String,
    pub byte_size: i64,
}

/// The key prefix of one visitor's uploads to one agent. The visitor id is hashed: it is
/// free text chosen by the browser.
pub fn visitor_prefix(agent: Uuid, visitor_id: &str) -> String {
    let digest = Sha256::digest(visitor_id.as_bytes());
    let hash: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("widget/{agent}/{hash}/")
}

/// Checks a visitor id the way the other widget endpoints do (1 to 128 printable characters).
pub fn check_visitor_id(visitor_id: &str) -> ApiResult<()> {
    if visitor_id.is_empty()
        || visitor_id.chars().count() > 128
        || visitor_id.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_field(
            "visitorId",
            "must be 1 to 128 printable characters",
        ));
    }
    Ok(())
}

/// Whether `head` (an object's first bytes) is a file of `content_type`.
pub fn magic_matches(content_type: &str, head: &[u8]) -> bool {
    match content_type {
        "image/png" => head.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => head.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/gif" => head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a"),
        "image/webp" => head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP"),
        "application/pdf" => head.starts_with(b"%PDF-"),
        "audio/webm" => head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
        "audio/ogg" => head.starts_with(b"OggS"),
        "audio/mp4" => head.get(4..8) == Some(b"ftyp"),
        _ => false,
    }
}

/// The uploads bucket.
#[derive(Debug, Clone)]
pub struct AttachmentStore {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl AttachmentStore {
    /// A store over `bucket`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: String) -> Self {
        AttachmentStore { s3, bucket }
    }

    /// The bucket named by `UPLOADS_BUCKET`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        Ok(Self::new(
            crate::aws::s3_client(sdk),
            crate::config::required_var("UPLOADS_BUCKET")?,
        ))
    }

    /// A presigned PUT for `request` (type and size checked here, bound by the signature).
    pub async fn presign(&self, request: &UploadRequest) -> ApiResult<UploadTicket> {
        check_visitor_id(&request.visitor_id)?;
        let name = request.file_name.trim();
        if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(
                "fileName",
                "must be 1 to 255 characters long, without control characters",
            ));
        }
        let content_type = request.content_type.trim().to_ascii_lowercase();
        if !CONTENT_TYPES.contains(&content_type.as_str()) {
            return Err(ApiError::invalid_field(
                "contentType",
                format!("must be one of {}", CONTENT_TYPES.join(", ")),
            ));
        }
        if request.byte_size <= 0 || request.byte_size > MAX_BYTES {
            return Err(ApiError::invalid_field(
                "byteSize",
                format!("must be between 1 and {MAX_BYTES} bytes"),
            ));
        }
        let key = format!(
            "{}{}/{}",
            visitor_prefix(request.agent_id, &request.visitor_id),
            Uuid::now_v7(),
            crate::aws::s3_key_name(name)
        );
        let (url, headers) = crate::aws::presign_put(
            &self.s3,
            &self.bucket,
            &key,
            &content_type,
            request.byte_size,
            UPLOAD_URL_TTL,
        )
        .await?;
        Ok(UploadTicket {
            key,
            method: "PUT",
            url,
            headers,
            expires_at: Utc::now() + UPLOAD_URL_TTL,
        })
    }

    /// The attachments named by `keys`, each checked: under this visitor's prefix, stored,
    /// within the size limit, of an accepted type whose first bytes match it. 422 otherwise.
    pub async fn verify(
        &self,
        agent: Uuid,
        visitor_id: &str,
        keys: &[String],
    ) -> ApiResult<Vec<Attachment>> {
        let invalid = |message: String| ApiError::invalid_field("attachments", message);
        if keys.len() > MAX_PER_MESSAGE {
            return Err(invalid(format!("at most {MAX_PER_MESSAGE} per message")));
        }
        let prefix = visitor_prefix(agent, visitor_id);
        let mut out: Vec<Attachment> = Vec::with_capacity(keys.len());
        for key in keys {
            // S3 keys are literal (no `..` resolution): the prefix and the shape suffice.
            if !key.starts_with(&prefix)
                || key.split('/').count() != 5
                || out.iter().any(|a| &a.key == key)
            {
                return Err(invalid(format!("{key} is not an upload of this visitor")));
            }
            let head = match self
                .s3
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(head) => head,
                Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                    return Err(invalid(format!("{key} was not uploaded")));
                }
                Err(err) => {
                    return Err(anyhow::Error::new(err)
                        .context(format!("S3 HeadObject {key}"))
                        .into());
                }
            };
            let size = head.content_length().unwrap_or(0);
            let content_type = head
                .content_type()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if size <= 0 || size > MAX_BYTES || !CONTENT_TYPES.contains(&content_type.as_str()) {
                return Err(invalid(format!(
                    "{key} is empty, too large or of a refused type"
                )));
            }
            let first = self.first_bytes(key).await?;
            if !magic_matches(&content_type, &first) {
                return Err(invalid(format!("{key} is not a {content_type} file")));
            }
            out.push(Attachment {
                key: key.clone(),
                name: key.rsplit('/').next().unwrap_or_default().to_owned(),
                content_type,
                byte_size: size,
            });
        }
        Ok(out)
    }

    async fn first_bytes(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range("bytes=0-15")
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("S3 GetObject {key}")))?;
        let mut bytes = Vec::new();
        object
            .body
            .into_async_read()
            .take(16)
            .read_to_end(&mut bytes)
            .await?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_visitor_has_its_own_key_prefix() {
        let agent = Uuid::nil();
        let prefix = visitor_prefix(agent, "v_1");
        assert!(prefix.starts_with("widget/00000000-0000-0000-0000-000000000000/"));
        assert_ne!(prefix, visitor_prefix(agent, "v_2"));
    }

    #[test]
    fn magic_numbers_decide_the_type() {
        assert!(magic_matches("image/png", b"\x89PNG\r\n\x1a\n...."));
        assert!(!magic_matches("image/png", b"%PDF-1.7"));
        assert!(magic_matches("application/pdf", b"%PDF-1.7"));
        assert!(magic_matches("audio/webm", &[0x1A, 0x45, 0xDF, 0xA3, 0]));
        assert!(magic_matches("audio/mp4", b"\0\0\0\x20ftypM4A "));
        assert!(!magic_matches("text/html", b"<html>"));
    }
}
