//! The object-storage layer against real backends: a filesystem bucket in a
//! temporary directory and an S3 bucket on a local `moto_server`, both run
//! through the same checks; plus the configuration's parsing, validation and
//! bucket ids.
//!
//! The S3 test is skipped when `moto_server` is not installed, unless
//! SKEIN_REQUIRE_S3=1 (CI sets it); `.ci/install-moto` installs it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use clap::{CommandFactory, Parser};
use futures::{StreamExt, TryStreamExt};

use skein::objstore::config::{Backend, BucketLookup, ConfigError, Sse};
use skein::objstore::{Bucket, BucketConfig, BucketError, ObjectInfo, ObjstoreArgs};

// ---------------------------------------------------------------------------
// Shared API checks

/// Deterministic, incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

async fn paths(bucket: &Bucket, dir: &str) -> Vec<String> {
    let mut items: Vec<ObjectInfo> = bucket.iter(dir).try_collect().await.unwrap();
    items.sort_by(|a, b| a.path.cmp(&b.path));
    items.into_iter().map(|o| o.path).collect()
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, BucketError>, bucket: &Bucket, object: &str) {
    match r {
        Err(e @ BucketError::NotFound { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(bucket.id()), "{msg}");
            assert!(msg.contains(object), "{msg}");
        }
        other => panic!("expected not found for {object}, got {other:?}"),
    }
}

fn assert_invalid_range<T: std::fmt::Debug>(r: Result<T, BucketError>) {
    match r {
        Err(BucketError::InvalidRange { .. }) => {}
        other => panic!("expected an invalid range, got {other:?}"),
    }
}

/// The whole API on an empty bucket. `scratch` is a local directory for
/// files to upload.
async fn check_bucket(bucket: &Bucket, scratch: &Path) {
    // Empty.
    assert_eq!(bucket.list_dirs("").await.unwrap(), Vec::<String>::new());
    assert!(paths(bucket, "").await.is_empty());
    assert!(!bucket.exists("01A/meta.json").await.unwrap());
    assert_not_found(bucket.get("01A/meta.json").await, bucket, "01A/meta.json");
    assert_not_found(bucket.size("01A/meta.json").await, bucket, "01A/meta.json");
    assert_not_found(
        bucket.get_range("01A/meta.json", 0..4).await,
        bucket,
        "01A/meta.json",
    );
    assert_not_found(
        bucket.get_range("01A/meta.json", 3..3).await,
        bucket,
        "01A/meta.json",
    );

    // A few blocks' worth of objects.
    let before = SystemTime::now() - Duration::from_secs(3600);
    let index = pattern(10_000, 1);
    let objects: Vec<(&str, Bytes)> = vec![
        ("01A/meta.json", Bytes::from_static(b"{\"ulid\":\"01A\"}")),
        ("01A/index", Bytes::from(index.clone())),
        ("01A/chunks/000001", Bytes::from(pattern(3000, 2))),
        ("01A/chunks/000002", Bytes::from(pattern(10, 3))),
        ("01AB/meta.json", Bytes::from_static(b"{}")),
        ("01B/meta.json", Bytes::from_static(b"{\"ulid\":\"01B\"}")),
        ("debug/metas/x.json", Bytes::from_static(b"x")),
        ("top.txt", Bytes::from_static(b"top")),
        ("empty", Bytes::new()),
    ];
    for (path, data) in &objects {
        bucket.upload(path, data.clone()).await.unwrap();
    }

    // Directories.
    assert_eq!(
        bucket.list_dirs("").await.unwrap(),
        ["01A", "01AB", "01B", "debug"]
    );
    assert_eq!(bucket.list_dirs("01A").await.unwrap(), ["chunks"]);
    assert_eq!(bucket.list_dirs("/01A/").await.unwrap(), ["chunks"]);
    assert_eq!(bucket.list_dirs("debug").await.unwrap(), ["metas"]);
    assert!(bucket.list_dirs("01A/chunks").await.unwrap().is_empty());
    assert!(bucket.list_dirs("nope").await.unwrap().is_empty());

    // Recursive listing, on whole segments.
    let mut all: Vec<String> = objects.iter().map(|(p, _)| p.to_string()).collect();
    all.sort();
    assert_eq!(paths(bucket, "").await, all);
    assert_eq!(
        paths(bucket, "01A").await,
        [
            "01A/chunks/000001",
            "01A/chunks/000002",
            "01A/index",
            "01A/meta.json"
        ]
    );
    assert_eq!(
        paths(bucket, "01A/chunks/").await,
        ["01A/chunks/000001", "01A/chunks/000002"]
    );
    assert!(paths(bucket, "01").await.is_empty());
    assert!(paths(bucket, "nope").await.is_empty());
    let listed: Vec<ObjectInfo> = bucket.iter("01A").try_collect().await.unwrap();
    let after = SystemTime::now() + Duration::from_secs(3600);
    for o in &listed {
        let want = objects.iter().find(|(p, _)| *p == o.path).unwrap();
        assert_eq!(o.size, want.1.len() as u64, "{}", o.path);
        assert!(o.last_modified > before && o.last_modified < after, "{o:?}");
    }

    // Whole and ranged reads.
    for (path, data) in &objects {
        assert_eq!(&bucket.get(path).await.unwrap(), data, "{path}");
        assert_eq!(
            bucket.size(path).await.unwrap(),
            data.len() as u64,
            "{path}"
        );
        assert!(bucket.exists(path).await.unwrap(), "{path}");
    }
    let stat = bucket.stat("01A/index").await.unwrap();
    assert_eq!((stat.path.as_str(), stat.size), ("01A/index", 10_000));
    let get = |r: std::ops::Range<u64>| bucket.get_range("01A/index", r);
    assert_eq!(get(0..5).await.unwrap(), index[0..5]);
    assert_eq!(get(4321..5432).await.unwrap(), index[4321..5432]);
    assert_eq!(get(9_990..10_000).await.unwrap(), index[9_990..]);
    assert_eq!(get(0..10_000).await.unwrap(), index[..]);
    assert_eq!(get(9_999..10_000).await.unwrap(), index[9_999..]);
    // Past the end: clamped.
    assert_eq!(get(9_990..20_000).await.unwrap(), index[9_990..]);
    assert_eq!(get(0..u64::MAX).await.unwrap(), index[..]);
    // Empty ranges inside or at the end: nothing.
    assert!(get(100..100).await.unwrap().is_empty());
    assert!(get(10_000..10_000).await.unwrap().is_empty());
    // Starting at or past the end, or backwards: an error naming the range.
    assert_invalid_range(get(10_000..10_001).await);
    assert_invalid_range(get(20_000..20_100).await);
    assert_invalid_range(get(20_000..20_000).await);
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 10..5;
    assert_invalid_range(get(backwards).await);
    let e = get(10_000..10_001).await.unwrap_err();
    assert!(e.to_string().contains("01A/index"), "{e}");
    assert!(e.to_string().contains(bucket.id()), "{e}");
    // The empty object.
    assert!(bucket.get("empty").await.unwrap().is_empty());
    assert_invalid_range(bucket.get_range("empty", 0..1).await);

    // Directories are not objects.
    assert!(!bucket.exists("01A").await.unwrap());
    assert!(!bucket.exists("01A/chunks").await.unwrap());

    // Overwrite.
    bucket
        .upload("top.txt", Bytes::from_static(b"replaced"))
        .await
        .unwrap();
    assert_eq!(&bucket.get("top.txt").await.unwrap()[..], b"replaced");

    // Bad paths never reach the backend.
    for bad in ["", "/", "a//b", "../x", "a/./b", "a/../b"] {
        match bucket.get(bad).await {
            Err(BucketError::InvalidPath { .. }) => {}
            other => panic!("{bad:?}: expected an invalid path, got {other:?}"),
        }
    }
    assert!(matches!(
        bucket.list_dirs("a//b").await,
        Err(BucketError::InvalidPath { .. })
    ));

    // Uploads from local files: one request, and in parts.
    let small = scratch.join("small");
    std::fs::write(&small, pattern(1000, 4)).unwrap();
    assert_eq!(
        bucket.upload_file("01C/meta.json", &small).await.unwrap(),
        1000
    );
    assert_eq!(bucket.get("01C/meta.json").await.unwrap(), pattern(1000, 4));
    let big_len = 2 * bucket.part_size() as usize + 1234 * 1024 + 17;
    let big_data = pattern(big_len, 5);
    let big = scratch.join("big");
    std::fs::write(&big, &big_data).unwrap();
    assert_eq!(
        bucket.upload_file("01C/chunks/000001", &big).await.unwrap(),
        big_len as u64
    );
    assert_eq!(
        bucket.size("01C/chunks/000001").await.unwrap(),
        big_len as u64
    );
    let back = bucket.get("01C/chunks/000001").await.unwrap();
    assert!(
        back[..] == big_data[..],
        "multipart upload came back different"
    );
    // A range across the first part boundary.
    let p = bucket.part_size();
    let r = bucket
        .get_range("01C/chunks/000001", p - 100..p + 100)
        .await
        .unwrap();
    assert_eq!(r, big_data[(p - 100) as usize..(p + 100) as usize]);
    // A missing local file names it.
    let missing = scratch.join("missing");
    match bucket.upload_file("x", &missing).await {
        Err(e @ BucketError::LocalFile { .. }) => {
            assert!(e.to_string().contains("missing"), "{e}")
        }
        other => panic!("expected a local file error, got {other:?}"),
    }
    assert!(!bucket.exists("x").await.unwrap());

    // Deletes, including of what is not there.
    for (path, _) in objects.iter().filter(|(p, _)| p.starts_with("01B/")) {
        bucket.delete(path).await.unwrap();
    }
    bucket.delete("01B/meta.json").await.unwrap();
    bucket.delete("never/was").await.unwrap();
    assert!(!bucket.exists("01B/meta.json").await.unwrap());
    assert_not_found(bucket.get("01B/meta.json").await, bucket, "01B/meta.json");
    assert_eq!(
        bucket.list_dirs("").await.unwrap(),
        ["01A", "01AB", "01C", "debug"]
    );

    // Clean up everything, leaving an empty bucket.
    let left: Vec<ObjectInfo> = bucket.iter("").try_collect().await.unwrap();
    for o in left {
        bucket.delete(&o.path).await.unwrap();
    }
    assert!(paths(bucket, "").await.is_empty());
    assert!(bucket.list_dirs("").await.unwrap().is_empty());
}

/// `prefixed` is `root` with `prefix: tenant-a`: its objects live under
/// `tenant-a/` in `root`, and it sees nothing else.
async fn check_prefix(root: &Bucket, prefixed: &Bucket) {
    assert_eq!(prefixed.id(), format!("{}/tenant-a", root.id()));
    root.upload("outside/meta.json", Bytes::from_static(b"o"))
        .await
        .unwrap();
    prefixed
        .upload("01P/meta.json", Bytes::from_static(b"p"))
        .await
        .unwrap();
    assert_eq!(prefixed.list_dirs("").await.unwrap(), ["01P"]);
    assert_eq!(paths(prefixed, "").await, ["01P/meta.json"]);
    assert_eq!(root.list_dirs("").await.unwrap(), ["outside", "tenant-a"]);
    assert_eq!(root.list_dirs("tenant-a").await.unwrap(), ["01P"]);
    assert_eq!(&root.get("tenant-a/01P/meta.json").await.unwrap()[..], b"p");
    assert!(!prefixed.exists("outside/meta.json").await.unwrap());
    assert_eq!(
        prefixed.stat("01P/meta.json").await.unwrap().path,
        "01P/meta.json"
    );
    prefixed.delete("01P/meta.json").await.unwrap();
    root.delete("outside/meta.json").await.unwrap();
    assert!(paths(root, "").await.is_empty());
}

// ---------------------------------------------------------------------------
// FILESYSTEM

fn fs_config(dir: &Path, prefix: &str) -> BucketConfig {
    let yaml = format!(
        "type: FILESYSTEM\nprefix: {prefix:?}\nconfig:\n  directory: {:?}\n",
        dir.display().to_string()
    );
    BucketConfig::parse(&yaml).unwrap()
}

#[tokio::test]
async fn filesystem_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("bucket");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();

    // The directory is created on open.
    let bucket = Bucket::open(&fs_config(&data, ""))
        .unwrap()
        .with_part_size(1024 * 1024);
    assert!(data.is_dir());
    let canonical = std::fs::canonicalize(&data).unwrap();
    assert_eq!(bucket.id(), format!("file://{}", canonical.display()));
    bucket.check().await.unwrap();
    check_bucket(&bucket, &scratch).await;

    let prefixed = Bucket::open(&fs_config(&data, "tenant-a")).unwrap();
    check_prefix(&bucket, &prefixed).await;

    // Objects are plain files under the directory.
    bucket
        .upload("01Z/meta.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(data.join("01Z/meta.json")).unwrap(), b"{}");
    // Deleting the last object of a directory removes the directory.
    bucket.delete("01Z/meta.json").await.unwrap();
    assert!(!data.join("01Z").exists());
}

#[tokio::test]
async fn filesystem_big_default_part_size() {
    // A file just over the default part size goes up in two parts.
    let tmp = tempfile::tempdir().unwrap();
    let bucket = Bucket::open(&fs_config(&tmp.path().join("b"), "")).unwrap();
    let len = bucket.part_size() as usize + 3;
    let data = pattern(len, 9);
    let local = tmp.path().join("f");
    std::fs::write(&local, &data).unwrap();
    assert_eq!(bucket.upload_file("a/b", &local).await.unwrap(), len as u64);
    assert!(bucket.get("a/b").await.unwrap()[..] == data[..]);
}

// ---------------------------------------------------------------------------
// S3 on moto

#[path = "support/moto.rs"]
mod moto;
use moto::Moto;

const MOTO_HOST: &str = "127.0.7.1";

trait MotoConfig {
    fn config(&self, bucket: &str, prefix: &str) -> BucketConfig;
}

impl MotoConfig for Moto {
    fn config(&self, bucket: &str, prefix: &str) -> BucketConfig {
        let yaml = format!(
            r#"
type: S3
prefix: "{prefix}"
config:
  bucket: {bucket}
  endpoint: {endpoint}
  region: us-east-1
  access_key: test-access
  secret_key: test-secret
  insecure: true
  part_size: 5242880
"#,
            endpoint = self.endpoint()
        );
        BucketConfig::parse(&yaml).unwrap()
    }
}

#[tokio::test]
async fn s3_bucket_on_moto() {
    let Some(moto) = Moto::start(MOTO_HOST) else {
        return;
    };
    moto.create_bucket("skein-blocks").await;
    let scratch = tempfile::tempdir().unwrap();

    let bucket = Bucket::open(&moto.config("skein-blocks", "")).unwrap();
    assert_eq!(
        bucket.id(),
        format!("s3://{MOTO_HOST}:{}/skein-blocks", moto.port)
    );
    assert_eq!(bucket.part_size(), 5 * 1024 * 1024);
    bucket.check().await.unwrap();
    check_bucket(&bucket, scratch.path()).await;

    // A file over the part size really went up in parts: S3 gives such
    // objects an ETag ending in the part count.
    let local = scratch.path().join("three-parts");
    std::fs::write(&local, pattern(11 * 1024 * 1024, 11)).unwrap();
    bucket.upload_file("mp/object", &local).await.unwrap();
    let meta = object_store::ObjectStoreExt::head(
        bucket.store().as_ref(),
        &object_store::path::Path::from("mp/object"),
    )
    .await
    .unwrap();
    let etag = meta.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    bucket.delete("mp/object").await.unwrap();

    let prefixed = Bucket::open(&moto.config("skein-blocks", "/tenant-a/")).unwrap();
    check_prefix(&bucket, &prefixed).await;

    // A bucket that does not exist fails the check, naming it.
    let missing = Bucket::open(&moto.config("no-such-bucket", "")).unwrap();
    let e = missing.check().await.unwrap_err();
    assert!(matches!(e, BucketError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-bucket"), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");

    // Listings past S3's 1000 keys a page come back whole.
    let many: Vec<String> = (0..1010).map(|i| format!("{i:05}/meta.json")).collect();
    futures::stream::iter(many.iter())
        .map(|p| bucket.upload(p, Bytes::from_static(b"{}")))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let dirs = bucket.list_dirs("").await.unwrap();
    assert_eq!(dirs.len(), 1010);
    assert_eq!(dirs.first().map(String::as_str), Some("00000"));
    assert_eq!(dirs.last().map(String::as_str), Some("01009"));
    assert_eq!(paths(&bucket, "").await.len(), 1010);
    futures::stream::iter(many.iter())
        .map(|p| bucket.delete(p))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    assert!(bucket.list_dirs("").await.unwrap().is_empty());

    // Nothing listens: a backend error (after retries), not "not found".
    drop(moto);
    let dead = Bucket::open(&BucketConfig::parse(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.7.1:9\n  insecure: true\n  access_key: a\n  secret_key: s\n  max_retries: 0\n",
    ).unwrap()).unwrap();
    let e = dead.get("x").await.unwrap_err();
    assert!(matches!(e, BucketError::Backend { .. }), "{e:?}");
    assert!(e.code().is_retryable());
}

// ---------------------------------------------------------------------------
// Configuration

fn parse_err(yaml: &str) -> ConfigError {
    match BucketConfig::parse(yaml) {
        Ok(c) => panic!("expected an error for {yaml}, got {c:?}"),
        Err(e) => e,
    }
}

fn s3(c: &BucketConfig) -> &skein::objstore::config::S3Config {
    match &c.backend {
        Backend::S3(s) => s,
        other => panic!("not S3: {other:?}"),
    }
}

#[test]
fn filesystem_config() {
    let c = BucketConfig::parse("type: FILESYSTEM\nconfig:\n  directory: ./data\n").unwrap();
    assert_eq!(c.type_name(), "FILESYSTEM");
    assert_eq!(c.prefix, "");
    assert!(c.warnings.is_empty());
    match &c.backend {
        Backend::Filesystem(f) => assert_eq!(f.directory, PathBuf::from("./data")),
        other => panic!("{other:?}"),
    }
    let e = parse_err("type: FILESYSTEM\nconfig: {}\n");
    assert_eq!(e.key(), Some("config.directory"));
    assert!(e.to_string().contains("config.directory"), "{e}");
    let e = parse_err("type: FILESYSTEM\n");
    assert_eq!(e.key(), Some("config.directory"));
    let e = parse_err("type: FILESYSTEM\nconfig:\n  directory: [a]\n");
    assert!(e.to_string().contains("config.directory"), "{e}");
    assert!(e.to_string().contains("string"), "{e}");
}

#[test]
fn s3_config_full() {
    let c = BucketConfig::parse(
        r#"
type: s3
prefix: /thanos/blocks/
config:
  bucket: "metrics"
  endpoint: "S3.EU-West-1.amazonaws.com"
  access_key: AKIAEXAMPLE
  secret_key: "very-secret-key"
  session_token: "very-secret-token"
  insecure: false
  signature_version2: true
  aws_sdk_auth: false
  list_objects_version: "v1"
  bucket_lookup_type: auto
  part_size: 134217728
  max_retries: 3
  put_user_metadata: {}
  sse_config:
    type: SSE-KMS
    kms_key_id: "key-1"
  http_config:
    idle_conn_timeout: 1m30s
    response_header_timeout: 2m
    insecure_skip_verify: false
    max_idle_conns: 100
    tls_config:
      ca_file: /etc/ca.pem
  trace:
    enable: false
  some_new_option: 1
"#,
    )
    .unwrap();
    assert_eq!(c.type_name(), "S3");
    assert_eq!(c.prefix, "thanos/blocks");
    let s = s3(&c);
    assert_eq!(s.bucket, "metrics");
    assert_eq!(s.endpoint, "s3.eu-west-1.amazonaws.com");
    assert_eq!(s.host(), "s3.eu-west-1.amazonaws.com");
    assert_eq!(s.port(), 443);
    assert_eq!(s.effective_region(), "eu-west-1");
    assert!(s.virtual_hosted());
    assert_eq!(s.bucket_lookup, BucketLookup::Auto);
    assert_eq!(s.access_key.as_deref(), Some("AKIAEXAMPLE"));
    assert_eq!(
        s.secret_key.as_ref().map(|k| k.expose()),
        Some("very-secret-key")
    );
    assert!(!s.use_environment_credentials);
    assert_eq!(s.part_size, 128 * 1024 * 1024);
    assert_eq!(s.max_retries, Some(3));
    assert_eq!(
        s.sse,
        Some(Sse::Kms {
            key_id: "key-1".into()
        })
    );
    assert_eq!(s.http.idle_conn_timeout, Some(Duration::from_secs(90)));
    assert_eq!(
        s.http.response_header_timeout,
        Some(Duration::from_secs(120))
    );
    assert_eq!(s.http.ca_file, Some(PathBuf::from("/etc/ca.pem")));

    // Ignored options and unknown keys are warnings, each naming its key.
    let w = c.warnings.join("\n");
    for key in [
        "config.signature_version2",
        "config.list_objects_version",
        "config.http_config.max_idle_conns",
        "config.some_new_option",
    ] {
        assert!(w.contains(key), "no warning about {key}: {w}");
    }
    // Set to their defaults, they say nothing.
    for quiet in ["config.trace", "config.put_user_metadata", "aws_sdk_auth"] {
        assert!(!w.contains(quiet), "warning about {quiet}: {w}");
    }

    // Secrets stay out of Debug output.
    let debug = format!("{c:?}");
    assert!(!debug.contains("very-secret"), "{debug}");
    assert!(debug.contains("metrics"));
}

#[test]
fn s3_config_defaults_and_lookup() {
    let c = BucketConfig::parse(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: minio:9000\n  insecure: true\n",
    )
    .unwrap();
    let s = s3(&c);
    assert!(s.use_environment_credentials);
    assert!(!s.virtual_hosted(), "auto is path-style off AWS");
    assert_eq!(s.effective_region(), "us-east-1");
    assert_eq!(s.port(), 9000);
    assert_eq!(s.part_size, 64 * 1024 * 1024);
    assert_eq!(s.sse, None);

    let vh = BucketConfig::parse(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: minio:9000\n  bucket_lookup_type: virtual-hosted\n",
    )
    .unwrap();
    assert!(s3(&vh).virtual_hosted());
    assert_eq!(s3(&vh).port(), 9000);
    let path = BucketConfig::parse(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: s3.amazonaws.com\n  bucket_lookup_type: path\n",
    )
    .unwrap();
    assert!(!s3(&path).virtual_hosted());
    // Dotted bucket names stay path-style on AWS.
    let dotted =
        BucketConfig::parse("type: S3\nconfig:\n  bucket: a.b\n  endpoint: s3.amazonaws.com\n")
            .unwrap();
    assert!(!s3(&dotted).virtual_hosted());

    // Opening makes no request, so unreachable hosts open fine.
    for cfg in [&c, &vh, &path, &dotted] {
        Bucket::open(cfg).unwrap();
    }
}

#[test]
fn s3_config_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "type: S3\nconfig:\n  endpoint: e:1\n",
            "config.bucket",
        ),
        ("type: S3\nconfig:\n  bucket: b\n", "config.endpoint"),
        (
            "type: S3\nconfig:\n  bucket: \"\"\n  endpoint: e:1\n",
            "config.bucket",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: http://e:9000\n",
            "config.endpoint",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e:notaport\n",
            "config.endpoint",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e/path\n",
            "config.endpoint",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  insecure: \"yes\"\n",
            "config.insecure",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  insecure: 1\n",
            "config.insecure",
        ),
        (
            "type: S3\nconfig:\n  bucket: [b]\n  endpoint: e\n",
            "config.bucket",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  bucket_lookup_type: dns\n",
            "config.bucket_lookup_type",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  secret_key: s\n",
            "config.access_key",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  access_key: a\n",
            "config.secret_key",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  access_key: a\n  secret_key: s\n  aws_sdk_auth: true\n",
            "config.aws_sdk_auth",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  part_size: 1024\n",
            "config.part_size",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  part_size: -5\n",
            "config.part_size",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  list_objects_version: v3\n",
            "config.list_objects_version",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: SSE-KMS\n",
            "config.sse_config.kms_key_id",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: SSE-C\n",
            "config.sse_config.encryption_key",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: ROT13\n",
            "config.sse_config.type",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    idle_conn_timeout: soon\n",
            "config.http_config.idle_conn_timeout",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config: 5\n",
            "config.http_config",
        ),
        ("type: S3\nconfig: [1, 2]\n", "config"),
    ];
    for (yaml, key) in cases {
        let e = parse_err(yaml);
        assert_eq!(e.key(), Some(*key), "{yaml}: {e}");
        assert!(e.to_string().contains(key), "{yaml}: {e}");
    }
    // A wrongly typed secret does not echo it.
    let e = parse_err(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  access_key: a\n  secret_key: [hunter2]\n",
    );
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn sse_variants() {
    let c = BucketConfig::parse(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: SSE-S3\n",
    )
    .unwrap();
    assert_eq!(s3(&c).sse, Some(Sse::S3));
    Bucket::open(&c).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let yaml = format!(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: SSE-C\n    encryption_key: {:?}\n",
        key.display().to_string()
    );
    let c = BucketConfig::parse(&yaml).unwrap();
    assert_eq!(
        s3(&c).sse,
        Some(Sse::CustomerKey {
            key_file: key.clone()
        })
    );
    Bucket::open(&c).unwrap();
    // A key of the wrong length is refused when opening.
    std::fs::write(&key, b"short").unwrap();
    let e = Bucket::open(&c).unwrap_err();
    assert!(e.to_string().contains("32-byte"), "{e}");
}

#[test]
fn gcs_config() {
    let sa = r#"{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nsecret-material\n-----END PRIVATE KEY-----\n", "client_email": "x@y.iam.gserviceaccount.com"}"#;
    let yaml = format!(
        "type: GCS\nconfig:\n  bucket: gcs-blocks\n  service_account: |-\n    {sa}\n  use_grpc: true\n"
    );
    let c = BucketConfig::parse(&yaml).unwrap();
    assert_eq!(c.type_name(), "GCS");
    match &c.backend {
        Backend::Gcs(g) => {
            assert_eq!(g.bucket, "gcs-blocks");
            assert_eq!(g.service_account.as_ref().map(|s| s.expose()), Some(sa));
        }
        other => panic!("{other:?}"),
    }
    assert!(c.warnings.join(" ").contains("config.use_grpc"));
    assert!(!format!("{c:?}").contains("secret-material"));

    // Without a service account: application default credentials.
    let c = BucketConfig::parse("type: gcs\nconfig:\n  bucket: gcs-blocks\n").unwrap();
    let b = Bucket::open(&c).unwrap();
    assert_eq!(b.id(), "gs://gcs-blocks");

    let e = parse_err("type: GCS\nconfig:\n  service_account: '{}'\n");
    assert_eq!(e.key(), Some("config.bucket"));
    // A path where the content belongs: refused without echoing it.
    let e = parse_err(
        "type: GCS\nconfig:\n  bucket: b\n  service_account: /var/secrets/sa-secret.json\n",
    );
    assert_eq!(e.key(), Some("config.service_account"));
    assert!(!e.to_string().contains("sa-secret"), "{e}");
}

#[test]
fn azure_config() {
    let c = BucketConfig::parse(
        "type: AZURE\nconfig:\n  storage_account: Acct\n  storage_account_key: \"a2V5LXNlY3JldA==\"\n  container: blocks\n  max_retries: 2\n  reader_config:\n    max_retry_requests: 3\n",
    )
    .unwrap();
    assert_eq!(c.type_name(), "AZURE");
    match &c.backend {
        Backend::Azure(a) => {
            assert_eq!(a.storage_account, "Acct");
            assert_eq!(a.container, "blocks");
            assert_eq!(a.endpoint, "blob.core.windows.net");
            assert_eq!(a.max_retries, Some(2));
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("a2V5LXNlY3JldA"));
    assert!(c.warnings.join(" ").contains("config.reader_config"));
    let b = Bucket::open(&c).unwrap();
    assert_eq!(b.id(), "azure://acct.blob.core.windows.net/blocks");

    let custom = BucketConfig::parse(
        "type: azure\nconfig:\n  storage_account: acct\n  container: blocks\n  endpoint: blob.core.chinacloudapi.cn\n",
    )
    .unwrap();
    assert_eq!(
        Bucket::open(&custom).unwrap().id(),
        "azure://acct.blob.core.chinacloudapi.cn/blocks"
    );

    for (yaml, key) in [
        ("type: AZURE\nconfig:\n  container: c\n", "config.storage_account"),
        ("type: AZURE\nconfig:\n  storage_account: a\n", "config.container"),
        (
            "type: AZURE\nconfig:\n  storage_account: a\n  container: c\n  endpoint: https://x\n",
            "config.endpoint",
        ),
        (
            "type: AZURE\nconfig:\n  storage_account: a\n  container: c\n  storage_account_key: k\n  user_assigned_id: u\n",
            "config.user_assigned_id",
        ),
        (
            "type: AZURE\nconfig:\n  storage_account: a\n  container: c\n  client_secret: s\n",
            "config.client_secret",
        ),
    ] {
        let e = parse_err(yaml);
        assert_eq!(e.key(), Some(key), "{yaml}: {e}");
    }
}

#[test]
fn types_and_top_level() {
    let e = parse_err("type: FOO\nconfig: {}\n");
    assert!(matches!(e, ConfigError::UnknownType { .. }));
    let msg = e.to_string();
    assert!(msg.contains("FOO"), "{msg}");
    for t in ["FILESYSTEM", "S3", "GCS", "AZURE"] {
        assert!(msg.contains(t), "{msg}");
    }
    // A Thanos type without a client here gets its own message.
    let e = parse_err("type: SWIFT\nconfig: {}\n");
    assert!(matches!(e, ConfigError::UnsupportedType { .. }), "{e}");
    assert!(e.to_string().contains("SWIFT"));

    assert_eq!(parse_err("config: {}\n").key(), Some("type"));
    assert_eq!(parse_err("").key(), Some("type"));
    assert_eq!(parse_err("type: [S3]\n").key(), Some("type"));
    assert!(matches!(
        parse_err("type: S3\n  bad: [\n"),
        ConfigError::Yaml(_)
    ));
    assert!(matches!(
        parse_err("- a\n- b\n"),
        ConfigError::Invalid { .. }
    ));

    // Case does not matter for the type.
    for t in ["filesystem", "FileSystem", "FILESYSTEM"] {
        let c = BucketConfig::parse(&format!("type: {t}\nconfig:\n  directory: /d\n")).unwrap();
        assert_eq!(c.type_name(), "FILESYSTEM");
    }

    // Unknown top-level keys warn.
    let c = BucketConfig::parse(
        "type: FILESYSTEM\nconfig:\n  directory: /d\n  extra: 1\nextra_top: true\n",
    )
    .unwrap();
    let w = c.warnings.join("\n");
    assert!(w.contains("config.extra"), "{w}");
    assert!(w.contains("extra_top"), "{w}");
}

#[test]
fn prefixes() {
    for (given, want) in [
        ("", ""),
        ("/", ""),
        ("a", "a"),
        ("/a/b/", "a/b"),
        ("a/b", "a/b"),
    ] {
        let c = BucketConfig::parse(&format!(
            "type: FILESYSTEM\nprefix: {given:?}\nconfig:\n  directory: /d\n"
        ))
        .unwrap();
        assert_eq!(c.prefix, want, "{given:?}");
    }
    for bad in ["a//b", "a/../b", "./a"] {
        let e = parse_err(&format!(
            "type: FILESYSTEM\nprefix: {bad:?}\nconfig:\n  directory: /d\n"
        ));
        assert_eq!(e.key(), Some("prefix"), "{bad}");
    }
}

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    objstore: ObjstoreArgs,
}

#[test]
fn flags() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bucket.yaml");
    std::fs::write(
        &file,
        "type: FILESYSTEM\nconfig:\n  directory: /from-file\n",
    )
    .unwrap();

    let cli = Cli::try_parse_from(["t", "--objstore.config-file", file.to_str().unwrap()]).unwrap();
    let c = cli.objstore.require().unwrap();
    match &c.backend {
        Backend::Filesystem(f) => assert_eq!(f.directory, PathBuf::from("/from-file")),
        other => panic!("{other:?}"),
    }

    let inline = "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  access_key: a\n  secret_key: inline-secret\n";
    let cli = Cli::try_parse_from(["t", "--objstore.config", inline]).unwrap();
    assert_eq!(cli.objstore.require().unwrap().type_name(), "S3");
    // The inline YAML can hold secrets: Debug hides it.
    assert!(!format!("{cli:?}").contains("inline-secret"));

    // Neither: nothing configured.
    let cli = Cli::try_parse_from(["t"]).unwrap();
    assert!(!cli.objstore.is_set());
    assert!(cli.objstore.load().unwrap().is_none());
    assert!(matches!(cli.objstore.require(), Err(ConfigError::Missing)));

    // Both: refused by the parser.
    assert!(Cli::try_parse_from([
        "t",
        "--objstore.config",
        inline,
        "--objstore.config-file",
        file.to_str().unwrap()
    ])
    .is_err());

    // A missing file names it.
    let cli = Cli::try_parse_from(["t", "--objstore.config-file", "/nonexistent/b.yaml"]).unwrap();
    let e = cli.objstore.load().unwrap_err();
    assert!(e.to_string().contains("/nonexistent/b.yaml"), "{e}");

    // Both flags have environment variables, whose values help hides.
    let cmd = Cli::command();
    let env_of = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
    };
    assert_eq!(
        env_of("objstore_config_file").as_deref(),
        Some("SKEIN_OBJSTORE_CONFIG_FILE")
    );
    assert_eq!(
        env_of("objstore_config").as_deref(),
        Some("SKEIN_OBJSTORE_CONFIG")
    );
}

fn fs_id(dir: &str) -> String {
    let c = BucketConfig::parse(&format!(
        "type: FILESYSTEM\nconfig:\n  directory: {dir:?}\n"
    ))
    .unwrap();
    Bucket::open(&c).unwrap().id().to_string()
}

fn s3_id(endpoint: &str, bucket: &str, insecure: bool, prefix: &str) -> String {
    let c = BucketConfig::parse(&format!(
        "type: S3\nprefix: {prefix:?}\nconfig:\n  bucket: {bucket}\n  endpoint: {endpoint:?}\n  insecure: {insecure}\n"
    ))
    .unwrap();
    Bucket::open(&c).unwrap().id().to_string()
}

#[test]
fn ids_are_normalised() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    let dir = root.join("data");
    let want = format!("file://{}", dir.display());
    let d = dir.display().to_string();
    assert_eq!(fs_id(&d), want);
    assert_eq!(fs_id(&format!("{d}/")), want);
    assert_eq!(fs_id(&format!("{d}//")), want);
    assert_eq!(fs_id(&format!("{}/./data", root.display())), want);
    assert_eq!(fs_id(&format!("{}/data/../data", root.display())), want);
    // Relative to the working directory.
    let cwd = std::env::current_dir().unwrap();
    let ups = "../".repeat(cwd.components().count() - 1);
    let relative = format!("{ups}{}", d.trim_start_matches('/'));
    assert_eq!(fs_id(&relative), want);
    // Through a symlink.
    let link = root.join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    assert_eq!(fs_id(&link.display().to_string()), want);

    // S3: case, default ports, trailing slash.
    let a = s3_id("s3.example.com", "b", false, "");
    assert_eq!(a, "s3://s3.example.com:443/b");
    assert_eq!(s3_id("S3.Example.com:443", "b", false, ""), a);
    assert_eq!(s3_id("s3.example.com/", "b", false, ""), a);
    assert_eq!(s3_id("s3.example.com:443/", "b", false, "/"), a);
    assert_eq!(
        s3_id("minio", "b", true, ""),
        s3_id("minio:80", "b", true, "")
    );
    assert_eq!(s3_id("minio", "b", true, ""), "s3://minio:80/b");
    assert_ne!(s3_id("minio", "b", true, ""), s3_id("minio", "c", true, ""));
    assert_eq!(s3_id("[::1]:9000", "b", true, ""), "s3://[::1]:9000/b");
    // The prefix is part of the identity.
    assert_eq!(
        s3_id("s3.example.com", "b", false, "/p/q/"),
        "s3://s3.example.com:443/b/p/q"
    );
    // Path-style or virtual-hosted, it is the same bucket.
    let vh = BucketConfig::parse(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: s3.example.com\n  bucket_lookup_type: virtual-hosted\n",
    )
    .unwrap();
    assert_eq!(Bucket::open(&vh).unwrap().id(), a);
}

#[test]
fn error_codes() {
    use skein::error::ErrorCode;
    let nf = BucketError::NotFound {
        bucket: "b".into(),
        object: "o".into(),
    };
    assert!(nf.is_not_found());
    assert_eq!(nf.bucket(), "b");
    assert_eq!(nf.code(), ErrorCode::Execution);
    let range = BucketError::InvalidRange {
        bucket: "b".into(),
        object: "o".into(),
        start: 5,
        end: 9,
        reason: "r".into(),
    };
    assert_eq!(range.code(), ErrorCode::BadData);
    assert!(range.to_string().contains("5..9"));
}
