//! S3 and S3-protocol stores (MinIO, R2, RunPod volumes, the loopback test server) through
//! aws-sdk-s3, path-style, with an optional custom endpoint.

use std::ops::RangeInclusive;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{sha256_hex, validate_key, ObjectInfo, ObjectStore, ObjectStream, Spool, StorageError};

/// Endpoint, region and credentials; [`S3Settings::from_env`] reads the usual variables.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:9014`; `None` for AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// `CALLSCRIPT_S3_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            endpoint: var("CALLSCRIPT_S3_ENDPOINT"),
            region: var("AWS_REGION"),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
        }
    }
}

/// A bucket, and a key prefix inside it.
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    endpoint: String,
}

const SHA256_METADATA: &str = "sha256";

impl S3Store {
    pub fn new(bucket: &str, prefix: &str, settings: S3Settings) -> Result<Self, StorageError> {
        let (Some(key_id), Some(secret)) = (settings.access_key_id, settings.secret_access_key)
        else {
            return Err(StorageError::Config {
                setting: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                reason: "both must be set to use an s3:// store".into(),
            });
        };
        if let Some(endpoint) = &settings.endpoint {
            if url::Url::parse(endpoint).is_err() {
                return Err(StorageError::Config {
                    setting: "CALLSCRIPT_S3_ENDPOINT",
                    reason: format!("{endpoint:?} is not a URL"),
                });
            }
        }
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(
                settings.region.unwrap_or_else(|| "us-east-1".to_owned()),
            ))
            .credentials_provider(Credentials::new(
                key_id,
                secret,
                settings.session_token,
                None,
                "callscript-settings",
            ))
            .force_path_style(true);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: settings.endpoint.unwrap_or_else(|| "aws".to_owned()),
        })
    }

    fn full_key(&self, key: &str) -> Result<String, StorageError> {
        validate_key(key)?;
        Ok(if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        })
    }

    fn backend<E: std::error::Error>(
        &self,
        operation: &'static str,
        key: &str,
        e: E,
    ) -> StorageError {
        StorageError::Backend {
            operation,
            store: self.describe(),
            key: key.to_owned(),
            reason: DisplayErrorContext(e).to_string(),
        }
    }

    /// One PUT of `body` (`size` bytes) with its SHA-256 as user metadata.
    async fn put_object(
        &self,
        key: &str,
        body: ByteStream,
        size: u64,
        sha256: String,
        content_type: &str,
    ) -> Result<ObjectInfo, StorageError> {
        let full_key = self.full_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full_key)
            .content_type(content_type)
            .content_length(size as i64)
            .metadata(SHA256_METADATA, &sha256)
            .body(body)
            .send()
            .await
            .map_err(|e| self.backend("put", key, e))?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size,
            sha256: Some(sha256),
            content_type: Some(content_type.to_owned()),
        })
    }

    /// The body of a GET of the object, or of `range` of it (an HTTP `Range` request).
    async fn get_object(
        &self,
        key: &str,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let full_key = self.full_key(key)?;
        let range = range.map(|r| format!("bytes={}-{}", r.start(), r.end()));
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full_key)
            .set_range(range)
            .send()
            .await
        {
            Ok(output) => Ok(output.body),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(self.not_found(key))
            }
            Err(e) => Err(self.backend("get", key, e)),
        }
    }

    fn not_found(&self, key: &str) -> StorageError {
        StorageError::NotFound {
            store: self.describe(),
            key: key.to_owned(),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    /// Creates the bucket if it does not exist (local and test servers; production buckets
    /// are made by their owners, and then this is one HEAD request).
    async fn prepare(&self) -> Result<(), StorageError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(self.backend("create bucket", "", e)),
        }
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<ObjectInfo, StorageError> {
        let sha256 = sha256_hex(&body);
        let size = body.len() as u64;
        self.put_object(key, ByteStream::from(body), size, sha256, content_type)
            .await
    }

    async fn put_spooled(
        &self,
        key: &str,
        spool: &Spool,
        content_type: &str,
    ) -> Result<ObjectInfo, StorageError> {
        let body = ByteStream::from_path(spool.path())
            .await
            .map_err(|e| self.backend("put", key, e))?;
        self.put_object(
            key,
            body,
            spool.size(),
            spool.sha256().to_owned(),
            content_type,
        )
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let body = self.get_object(key, None).await?;
        let body = body
            .collect()
            .await
            .map_err(|e| self.backend("get", key, e))?;
        Ok(body.into_bytes())
    }

    async fn get_stream(
        &self,
        key: &str,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ObjectStream, StorageError> {
        let body = self.get_object(key, range).await?;
        let (store, key) = (self.describe(), key.to_owned());
        Ok(Box::pin(futures_util::stream::unfold(
            body,
            move |mut body| {
                let (store, key) = (store.clone(), key.clone());
                async move {
                    let chunk = body.next().await?.map_err(|e| StorageError::Backend {
                        operation: "get",
                        store,
                        key,
                        reason: DisplayErrorContext(e).to_string(),
                    });
                    Some((chunk, body))
                }
            },
        )))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let full_key = self.full_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full_key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: output.content_length().unwrap_or(0).max(0) as u64,
                sha256: output
                    .metadata()
                    .and_then(|m| m.get(SHA256_METADATA))
                    .cloned(),
                content_type: output.content_type().map(str::to_owned),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(self.backend("head", key, e)),
        }
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, StorageError> {
        let full_key = self.full_key(key)?;
        let presigning = PresigningConfig::expires_in(expires_in)
            .map_err(|e| self.backend("presign", key, e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full_key)
            .presigned(presigning)
            .await
            .map_err(|e| self.backend("presign", key, e))?;
        Ok(request.uri().to_owned())
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{} at {}", self.bucket, self.endpoint)
        } else {
            format!("s3://{}/{} at {}", self.bucket, self.prefix, self.endpoint)
        }
    }
}
