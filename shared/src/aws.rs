//! AWS SDK clients. `aws-config` reads `AWS_ENDPOINT_URL` itself, which is how the local stack
//! (moto on loopback) is reached through the same code as production.

use aws_config::BehaviorVersion;

/// Shared SDK configuration from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// An S3 client; path-style addressing when an endpoint override is set (moto, MinIO).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let builder =
        aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// An SQS client.
pub fn sqs_client(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// A DynamoDB client.
pub fn dynamodb_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// A presigned S3 PUT whose signature binds the object's type and exact size: the URL and the
/// headers the uploader must send with it. (aws-sdk-rust cannot presign a POST policy, which
/// would bound a size range instead.)
pub async fn presign_put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    byte_size: i64,
    valid_for: std::time::Duration,
) -> anyhow::Result<(String, std::collections::BTreeMap<String, String>)> {
    let presigned = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_length(byte_size)
        .content_type(content_type)
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(
            valid_for,
        )?)
        .await
        .map_err(|e| anyhow::Error::new(e).context(format!("presigning a PUT of {key}")))?;
    let mut headers: std::collections::BTreeMap<String, String> = presigned
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    headers.insert("content-type".into(), content_type.to_owned());
    headers.insert("content-length".into(), byte_size.to_string());
    Ok((presigned.uri().to_owned(), headers))
}

/// A customer's file name made safe as the last segment of an S3 key: letters, digits, `.`,
/// `-`, `_` (anything else becomes `_`), at most 100 characters, no leading dot, and `file`
/// when nothing meaningful is left.
pub fn s3_key_name(file_name: &str) -> String {
    let cleaned: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.trim_matches(['.', '_']).is_empty() {
        "file".into()
    } else {
        cleaned.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::s3_key_name;

    #[test]
    fn key_names_keep_safe_characters_only() {
        assert_eq!(s3_key_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(s3_key_name("résumé 1.pdf"), "r_sum__1.pdf");
        assert_eq!(s3_key_name("..."), "file");
        assert_eq!(s3_key_name("_._"), "file");
        assert_eq!(s3_key_name(&"a".repeat(300)).len(), 100);
    }
}
