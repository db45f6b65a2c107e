//! Object storage for block stores: a [`Bucket`] over any `object_store`
//! backend (local filesystem, S3 and compatibles, GCS, Azure Blob), opened
//! from a Thanos-style configuration (see [`config`]).
//!
//! Object paths are `/`-separated strings relative to the bucket and its
//! configured prefix, e.g. `01HZX.../chunks/000001`. Leading and trailing `/`
//! are ignored; empty, `.` and `..` segments are refused.
//!
//! Semantics every backend shares:
//! - [`Bucket::get_range`] clamps a range that ends past the object to the
//!   object's end; a non-empty range that *starts* at or past the end is
//!   [`BucketError::InvalidRange`]. An empty range returns no bytes once the
//!   object is known to exist.
//! - [`Bucket::delete`] of a missing object succeeds (S3 cannot tell without
//!   an extra request, so the filesystem does not tell either).
//! - [`Bucket::iter`] yields objects in no particular order.
//! - S3 answers requests to a bucket that does not exist with "not found",
//!   so object reads then look like missing objects: call
//!   [`Bucket::check`] once at start-up to tell the two apart.
//! - A FILESYSTEM bucket's directory is created when the bucket is opened.

pub mod config;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

pub use config::{Backend, BucketConfig, ConfigError, ObjstoreArgs, Secret};

use crate::error::ErrorCode;
use config::{AzureConfig, FilesystemConfig, GcsConfig, HttpConfig, S3Config, Sse};

/// How many parts of one multipart upload are in flight at once.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Read size when streaming a local file into an upload.
const READ_CHUNK: usize = 1024 * 1024;

/// One object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative to the bucket (and its prefix).
    pub path: String,
    pub size: u64,
    pub last_modified: SystemTime,
}

/// What went wrong with a bucket operation. Every variant names the bucket
/// (its [`Bucket::id`]) and, where there is one, the object.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("object {object:?} not found in bucket {bucket}")]
    NotFound { bucket: String, object: String },

    #[error("invalid object path {object:?} for bucket {bucket}: {reason}")]
    InvalidPath {
        bucket: String,
        object: String,
        reason: String,
    },

    #[error("invalid range {start}..{end} of object {object:?} in bucket {bucket}: {reason}")]
    InvalidRange {
        bucket: String,
        object: String,
        start: u64,
        end: u64,
        reason: String,
    },

    #[error("{op} {object:?} in bucket {bucket}: {cause}")]
    Backend {
        bucket: String,
        object: String,
        op: &'static str,
        cause: Box<object_store::Error>,
    },

    #[error("reading {} to upload to bucket {bucket}: {cause}", local.display())]
    LocalFile {
        bucket: String,
        local: PathBuf,
        cause: std::io::Error,
    },

    #[error("opening bucket {bucket}: {message}")]
    Open { bucket: String, message: String },
}

impl BucketError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BucketError::NotFound { .. })
    }

    /// The bucket's id as the error names it.
    pub fn bucket(&self) -> &str {
        match self {
            BucketError::NotFound { bucket, .. }
            | BucketError::InvalidPath { bucket, .. }
            | BucketError::InvalidRange { bucket, .. }
            | BucketError::Backend { bucket, .. }
            | BucketError::LocalFile { bucket, .. }
            | BucketError::Open { bucket, .. } => bucket,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            BucketError::InvalidPath { .. } | BucketError::InvalidRange { .. } => {
                ErrorCode::BadData
            }
            BucketError::NotFound { .. } => ErrorCode::Execution,
            BucketError::Backend { cause, .. } => match cause.as_ref() {
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. } => ErrorCode::Internal,
                _ => ErrorCode::Unavailable,
            },
            BucketError::LocalFile { .. } | BucketError::Open { .. } => ErrorCode::Internal,
        }
    }
}

/// A bucket, or the part of one under a prefix.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// The configured prefix, empty for none.
    prefix: String,
    id: String,
    part_size: u64,
    multipart: bool,
}

// By hand, so no client's configuration (credentials) can reach a log line.
impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("id", &self.id)
            .field("store", &self.store.to_string())
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// Opens the bucket a configuration describes. No request is made: a
    /// wrong endpoint or credential shows on first use (or with
    /// [`check`](Self::check)).
    pub fn open(config: &BucketConfig) -> Result<Bucket, BucketError> {
        let (store, base_id, part_size, multipart): (Arc<dyn ObjectStore>, String, u64, bool) =
            match &config.backend {
                Backend::Filesystem(fs) => {
                    let (store, id) = open_filesystem(fs)?;
                    (store, id, config::DEFAULT_PART_SIZE, true)
                }
                Backend::S3(s3) => {
                    let (store, id) = open_s3(s3)?;
                    (store, id, s3.part_size, !s3.disable_multipart)
                }
                Backend::Gcs(gcs) => {
                    let (store, id) = open_gcs(gcs)?;
                    (store, id, config::DEFAULT_PART_SIZE, true)
                }
                Backend::Azure(az) => {
                    let (store, id) = open_azure(az)?;
                    (store, id, config::DEFAULT_PART_SIZE, true)
                }
            };
        Ok(Bucket {
            store,
            id: join_id(&base_id, &config.prefix),
            prefix: config.prefix.clone(),
            part_size,
            multipart,
        })
    }

    /// Wraps any store, e.g. `object_store::memory::InMemory` in tests. `id`
    /// should follow [`id`](Self::id)'s rules.
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        id: &str,
        prefix: &str,
    ) -> Result<Bucket, ConfigError> {
        let prefix = config::normalize_prefix(prefix.to_string())?;
        Ok(Bucket {
            store,
            id: join_id(id.trim_end_matches('/'), &prefix),
            prefix,
            part_size: config::DEFAULT_PART_SIZE,
            multipart: true,
        })
    }

    /// Uploads of local files larger than this go up in parts of this size.
    /// S3 refuses parts under 5 MiB (except the last).
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    /// A stable identity for the bucket and prefix, equal for every process
    /// configured with the same place however it was spelt:
    /// `file:///abs/dir`, `s3://host:port/bucket`, `gs://bucket`,
    /// `azure://account.endpoint/container`, each followed by `/prefix` when
    /// there is one. Hosts are lower-cased, ports explicit, relative
    /// directories made absolute, trailing slashes dropped.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The configured prefix (empty for none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The underlying store, for operations this type does not wrap. Paths
    /// given to it are *not* prefixed.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// One listing of the bucket's top level: fails when the bucket cannot
    /// be reached, does not exist or the credentials are refused.
    pub async fn check(&self) -> Result<(), BucketError> {
        let root = self.dir_path("")?;
        match self.store.list_with_delimiter(root.as_ref()).await {
            Ok(_) => Ok(()),
            // Listing a prefix with nothing under it is no error, so a
            // "not found" here is about the bucket itself. S3 says so in an
            // error code the client passes on only as text.
            Err(e)
                if matches!(e, object_store::Error::NotFound { .. })
                    || format!("{e:?}").contains("NoSuchBucket") =>
            {
                Err(open_err(
                    &self.id,
                    "the bucket does not exist (or these credentials cannot see it)",
                ))
            }
            Err(e) => Err(self.backend_err("list", "", e)),
        }
    }

    /// The names of the "directories" directly under `dir` (`""` for the
    /// top level), e.g. block ULIDs; sorted, without trailing `/`.
    pub async fn list_dirs(&self, dir: &str) -> Result<Vec<String>, BucketError> {
        let path = self.dir_path(dir)?;
        let listing = match self.store.list_with_delimiter(path.as_ref()).await {
            Ok(l) => l,
            // A directory that does not exist has no children.
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.backend_err("list", dir, e)),
        };
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every object under `dir` (`""` for all), recursively, in no
    /// particular order. `dir` matches whole segments: `"01A"` does not list
    /// `01AB/meta.json`.
    pub fn iter(&self, dir: &str) -> BoxStream<'static, Result<ObjectInfo, BucketError>> {
        let path = match self.dir_path(dir) {
            Ok(p) => p,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let bucket = self.id.clone();
        let prefix = self.prefix.clone();
        let dir = dir.to_string();
        self.store
            .list(path.as_ref())
            .filter_map(move |item| {
                let out = match item {
                    Ok(meta) => Some(Ok(ObjectInfo {
                        path: strip_prefix(&prefix, meta.location.as_ref()).to_string(),
                        size: meta.size,
                        last_modified: meta.last_modified.into(),
                    })),
                    // Listing a directory that vanished or never was: nothing.
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(cause) => Some(Err(BucketError::Backend {
                        bucket: bucket.clone(),
                        object: dir.clone(),
                        op: "list",
                        cause: Box::new(cause),
                    })),
                };
                futures::future::ready(out)
            })
            .boxed()
    }

    /// The whole object.
    pub async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        let loc = self.object_path(path)?;
        let result = self
            .store
            .get(&loc)
            .await
            .map_err(|e| self.backend_err("get", path, e))?;
        result
            .bytes()
            .await
            .map_err(|e| self.backend_err("get", path, e))
    }

    /// Bytes `range.start..range.end` of the object; see the module docs
    /// for ranges past the end.
    pub async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        let loc = self.object_path(path)?;
        if range.start > range.end {
            return Err(self.range_err(path, &range, "start is after end"));
        }
        if range.start == range.end {
            let size = self.size(path).await?;
            if range.start > size {
                return Err(self.range_err(path, &range, &format!("object has {size} bytes")));
            }
            return Ok(Bytes::new());
        }
        match self.store.get_range(&loc, range.clone()).await {
            Ok(bytes) => Ok(bytes),
            Err(e @ object_store::Error::NotFound { .. }) => Err(self.backend_err("get", path, e)),
            Err(e) => {
                // Backends word a range past the end differently (a local
                // error, HTTP 416): ask for the size to tell it apart.
                match self.store.head(&loc).await {
                    Ok(meta) if range.start >= meta.size => Err(self.range_err(
                        path,
                        &range,
                        &format!("object has {} bytes", meta.size),
                    )),
                    _ => Err(self.backend_err("get", path, e)),
                }
            }
        }
    }

    /// The object's size and modification time.
    pub async fn stat(&self, path: &str) -> Result<ObjectInfo, BucketError> {
        let loc = self.object_path(path)?;
        let meta = self
            .store
            .head(&loc)
            .await
            .map_err(|e| self.backend_err("stat", path, e))?;
        Ok(ObjectInfo {
            path: strip_prefix(&self.prefix, meta.location.as_ref()).to_string(),
            size: meta.size,
            last_modified: meta.last_modified.into(),
        })
    }

    pub async fn size(&self, path: &str) -> Result<u64, BucketError> {
        Ok(self.stat(path).await?.size)
    }

    /// Whether the object exists; a directory is not an object.
    pub async fn exists(&self, path: &str) -> Result<bool, BucketError> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes the object in one request, replacing any object at `path`.
    pub async fn upload(&self, path: &str, data: Bytes) -> Result<(), BucketError> {
        let loc = self.object_path(path)?;
        self.store
            .put(&loc, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(|e| self.backend_err("upload", path, e))
    }

    /// Streams a local file into the object, replacing any object at `path`;
    /// files larger than [`part_size`](Self::part_size) go up as a multipart
    /// upload, holding at most a few parts in memory. Returns the bytes sent.
    pub async fn upload_file(
        &self,
        path: &str,
        local: &std::path::Path,
    ) -> Result<u64, BucketError> {
        let loc = self.object_path(path)?;
        let local_err = |cause| BucketError::LocalFile {
            bucket: self.id.clone(),
            local: local.to_path_buf(),
            cause,
        };
        let mut file = tokio::fs::File::open(local).await.map_err(local_err)?;
        let len = file.metadata().await.map_err(local_err)?.len();
        if len <= self.part_size || !self.multipart {
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut buf).await.map_err(local_err)?;
            let sent = buf.len() as u64;
            self.upload(path, Bytes::from(buf)).await?;
            return Ok(sent);
        }
        let upload = self
            .store
            .put_multipart(&loc)
            .await
            .map_err(|e| self.backend_err("upload", path, e))?;
        let chunk = usize::try_from(self.part_size).unwrap_or(usize::MAX);
        let mut writer = WriteMultipart::new_with_chunk_size(upload, chunk);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut sent = 0u64;
        let streamed: Result<(), BucketError> = async {
            loop {
                writer
                    .wait_for_capacity(MAX_PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.backend_err("upload", path, e))?;
                let n = file.read(&mut buf).await.map_err(local_err)?;
                if n == 0 {
                    return Ok(());
                }
                writer.write(&buf[..n]);
                sent += n as u64;
            }
        }
        .await;
        match streamed {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| self.backend_err("upload", path, e))?;
                Ok(sent)
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::debug!(bucket = %self.id, object = path, error = %abort,
                        "aborting a failed multipart upload failed too");
                }
                Err(e)
            }
        }
    }

    /// Removes the object; a missing object is not an error.
    pub async fn delete(&self, path: &str) -> Result<(), BucketError> {
        let loc = self.object_path(path)?;
        match self.store.delete(&loc).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend_err("delete", path, e)),
        }
    }

    /// The full path of an object; refuses the empty path.
    fn object_path(&self, path: &str) -> Result<ObjectPath, BucketError> {
        let rel = path.trim_matches('/');
        if rel.is_empty() {
            return Err(self.path_err(path, "empty object path"));
        }
        self.full_path(path, rel)
    }

    /// The full path of a directory; `""` is the bucket's root. `None`
    /// lists the whole store.
    fn dir_path(&self, dir: &str) -> Result<Option<ObjectPath>, BucketError> {
        let rel = dir.trim_matches('/');
        if rel.is_empty() && self.prefix.is_empty() {
            return Ok(None);
        }
        self.full_path(dir, rel).map(Some)
    }

    fn full_path(&self, given: &str, rel: &str) -> Result<ObjectPath, BucketError> {
        let full = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        ObjectPath::parse(&full).map_err(|e| self.path_err(given, &e.to_string()))
    }

    fn path_err(&self, object: &str, reason: &str) -> BucketError {
        BucketError::InvalidPath {
            bucket: self.id.clone(),
            object: object.to_string(),
            reason: reason.to_string(),
        }
    }

    fn range_err(&self, object: &str, range: &Range<u64>, reason: &str) -> BucketError {
        BucketError::InvalidRange {
            bucket: self.id.clone(),
            object: object.to_string(),
            start: range.start,
            end: range.end,
            reason: reason.to_string(),
        }
    }

    fn backend_err(
        &self,
        op: &'static str,
        object: &str,
        cause: object_store::Error,
    ) -> BucketError {
        match cause {
            object_store::Error::NotFound { .. } => BucketError::NotFound {
                bucket: self.id.clone(),
                object: object.trim_matches('/').to_string(),
            },
            cause => BucketError::Backend {
                bucket: self.id.clone(),
                object: object.trim_matches('/').to_string(),
                op,
                cause: Box::new(cause),
            },
        }
    }
}

fn strip_prefix<'a>(prefix: &str, full: &'a str) -> &'a str {
    if prefix.is_empty() {
        return full;
    }
    full.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(full)
}

fn join_id(base: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{prefix}")
    }
}

fn open_err(bucket: &str, message: impl std::fmt::Display) -> BucketError {
    BucketError::Open {
        bucket: bucket.to_string(),
        message: message.to_string(),
    }
}

fn open_filesystem(fs: &FilesystemConfig) -> Result<(Arc<dyn ObjectStore>, String), BucketError> {
    let shown = fs.directory.display().to_string();
    // Created up front, as a sidecar may be the first to write there.
    std::fs::create_dir_all(&fs.directory)
        .map_err(|e| open_err(&shown, format!("creating the directory: {e}")))?;
    let dir = config::absolute_dir(&fs.directory).map_err(|e| open_err(&shown, e))?;
    let id = format!("file://{}", dir.display().to_string().trim_end_matches('/'));
    let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
        .map_err(|e| open_err(&id, e))?
        // Deleting a block's last object removes its directory, as on S3.
        .with_automatic_cleanup(true);
    Ok((Arc::new(store), id))
}

/// The id's host part: lower-case, IPv6 in brackets.
fn id_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    }
}

fn client_options(
    http: &HttpConfig,
    bucket: &str,
) -> Result<object_store::ClientOptions, BucketError> {
    // No deadline on a whole request: index and chunk files can take
    // minutes to stream. A stalled read is caught by the read timeout.
    let mut o = object_store::ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(
            http.tls_handshake_timeout
                .unwrap_or(Duration::from_secs(10)),
        )
        .with_read_timeout(
            http.response_header_timeout
                .unwrap_or(Duration::from_secs(120)),
        )
        .with_pool_idle_timeout(http.idle_conn_timeout.unwrap_or(Duration::from_secs(90)));
    if let Some(n) = http.max_idle_conns_per_host {
        o = o.with_pool_max_idle_per_host(n);
    }
    if http.insecure_skip_verify {
        o = o.with_allow_invalid_certificates(true);
    }
    if let Some(ca) = &http.ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            open_err(
                bucket,
                format!("reading tls_config.ca_file {}: {e}", ca.display()),
            )
        })?;
        let certs = object_store::Certificate::from_pem_bundle(&pem).map_err(|e| {
            open_err(
                bucket,
                format!("parsing tls_config.ca_file {}: {e}", ca.display()),
            )
        })?;
        for cert in certs {
            o = o.with_root_certificate(cert);
        }
    }
    Ok(o)
}

fn retry(max_retries: Option<usize>) -> object_store::RetryConfig {
    let mut r = object_store::RetryConfig::default();
    if let Some(n) = max_retries {
        r.max_retries = n;
    }
    r
}

fn open_s3(s3: &S3Config) -> Result<(Arc<dyn ObjectStore>, String), BucketError> {
    use object_store::aws::AmazonS3Builder;

    let id = format!("s3://{}:{}/{}", id_host(s3.host()), s3.port(), s3.bucket);
    let scheme = if s3.insecure { "http" } else { "https" };
    let virtual_hosted = s3.virtual_hosted();
    let endpoint = if virtual_hosted {
        format!("{scheme}://{}.{}", s3.bucket, s3.endpoint)
    } else {
        format!("{scheme}://{}", s3.endpoint)
    };
    let mut b = if s3.use_environment_credentials {
        AmazonS3Builder::from_env()
    } else {
        AmazonS3Builder::new()
    };
    b = b
        .with_client_options(client_options(&s3.http, &id)?)
        .with_allow_http(s3.insecure)
        .with_bucket_name(&s3.bucket)
        .with_endpoint(endpoint)
        .with_virtual_hosted_style_request(virtual_hosted)
        .with_retry(retry(s3.max_retries));
    if let Some(region) = s3.region_or_derived() {
        b = b.with_region(region);
    } else if !s3.use_environment_credentials {
        b = b.with_region(s3.effective_region());
    }
    if let (Some(key), Some(secret)) = (&s3.access_key, &s3.secret_key) {
        b = b
            .with_access_key_id(key)
            .with_secret_access_key(secret.expose());
        if let Some(token) = &s3.session_token {
            b = b.with_token(token.expose());
        }
    }
    match &s3.sse {
        None => {}
        Some(Sse::S3) => {
            let key: object_store::aws::AmazonS3ConfigKey = "aws_server_side_encryption"
                .parse()
                .map_err(|e| open_err(&id, e))?;
            b = b.with_config(key, "AES256");
        }
        Some(Sse::Kms { key_id }) => b = b.with_sse_kms_encryption(key_id),
        Some(Sse::CustomerKey { key_file }) => {
            let key = std::fs::read(key_file).map_err(|e| {
                open_err(
                    &id,
                    format!(
                        "reading sse_config.encryption_key {}: {e}",
                        key_file.display()
                    ),
                )
            })?;
            if key.len() != 32 {
                return Err(open_err(
                    &id,
                    format!(
                        "sse_config.encryption_key {} must hold a 32-byte key, not {} bytes",
                        key_file.display(),
                        key.len()
                    ),
                ));
            }
            b = b.with_ssec_encryption(base64_encode(&key));
        }
    }
    let store = b.build().map_err(|e| open_err(&id, e))?;
    Ok((Arc::new(store), id))
}

fn open_gcs(gcs: &GcsConfig) -> Result<(Arc<dyn ObjectStore>, String), BucketError> {
    use object_store::gcp::GoogleCloudStorageBuilder;

    let id = format!("gs://{}", gcs.bucket);
    let mut b = GoogleCloudStorageBuilder::new()
        .with_bucket_name(&gcs.bucket)
        .with_client_options(client_options(&HttpConfig::default(), &id)?)
        .with_retry(retry(gcs.max_retries));
    match &gcs.service_account {
        Some(sa) => b = b.with_service_account_key(sa.expose()),
        None => {
            // Application default credentials, as the Go client finds them.
            if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
                b = b.with_application_credentials(path.to_string_lossy());
            }
        }
    }
    let store = b.build().map_err(|e| open_err(&id, e))?;
    Ok((Arc::new(store), id))
}

fn open_azure(az: &AzureConfig) -> Result<(Arc<dyn ObjectStore>, String), BucketError> {
    use object_store::azure::MicrosoftAzureBuilder;

    let host = format!(
        "{}.{}",
        az.storage_account.to_ascii_lowercase(),
        az.endpoint
    );
    let id = format!("azure://{host}/{}", az.container);
    let mut b = MicrosoftAzureBuilder::new()
        .with_account(&az.storage_account)
        .with_container_name(&az.container)
        .with_endpoint(format!("https://{host}"))
        .with_client_options(client_options(&HttpConfig::default(), &id)?)
        .with_retry(retry(az.max_retries));
    if let Some(key) = &az.storage_account_key {
        b = b.with_access_key(key.expose());
    } else if let (Some(tenant), Some(client), Some(secret)) =
        (&az.tenant_id, &az.client_id, &az.client_secret)
    {
        b = b.with_client_secret_authorization(client, secret.expose(), tenant);
    } else if let Some(client) = az.user_assigned_id.as_ref().or(az.client_id.as_ref()) {
        b = b.with_client_id(client);
    }
    let store = b.build().map_err(|e| open_err(&id, e))?;
    Ok((Arc::new(store), id))
}

/// Standard base64 with padding, for the SSE-C key header.
fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn prefixes_are_stripped_on_whole_segments() {
        assert_eq!(strip_prefix("", "a/b"), "a/b");
        assert_eq!(strip_prefix("a", "a/b"), "b");
        assert_eq!(strip_prefix("a", "ab/c"), "ab/c");
    }
}
