//! Where files go: a local directory, `file://`, `s3://bucket/prefix` or
//! `memory://name/prefix`, opened through object_store.
//!
//! S3 takes credentials from the standard AWS chain as object_store's
//! `from_env` reads it (static keys, web identity for IRSA, ECS and
//! instance metadata); endpoint, region and addressing come from the same
//! variables or from [`S3Settings`]. `memory://` stores live for the
//! process and are shared by name, for in-process tests.

mod credentials;
pub mod faults;
mod uploads;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::HttpConnector;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    ClientConfigKey, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};

pub use credentials::{chain as credential_chain, missing as missing_credentials};
pub use uploads::OpenUploads;

use futures::FutureExt;

use crate::error::{Blame, Classify};
use crate::retry::{Backoff, retry_at_most};

/// An opened location: the store, the prefix inside it, and how staged
/// files become visible there.
#[derive(Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// Present where files are published by completing a multipart upload
    /// at the final key; absent where they are renamed into place.
    pub multipart: Option<Arc<dyn MultipartStore>>,
    /// Where open multipart uploads can be listed (S3), so that recovery
    /// finds those whose id was never journalled.
    pub uploads: Option<Arc<OpenUploads>>,
    /// The directory of a local location: its half-written files are
    /// hidden from object_store's listing.
    pub local_dir: Option<std::path::PathBuf>,
    pub prefix: Path,
    /// What the user gave, normalised, for messages and the commit log.
    pub url: String,
    /// The setting this location came from, for messages.
    pub setting: &'static str,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("url", &self.url)
            .field("multipart", &self.multipart.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{setting}={url}: {detail}")]
    Invalid {
        setting: &'static str,
        url: String,
        detail: String,
    },
    #[error("{setting}={url}: {op} failed: {source}")]
    Unusable {
        setting: &'static str,
        url: String,
        op: &'static str,
        source: Box<object_store::Error>,
    },
    #[error("{setting}={url}: {}", credentials::looked_for(endpoint))]
    NoCredentials {
        setting: &'static str,
        url: String,
        endpoint: String,
    },
    #[error(
        "{setting}={url} does not honour create-if-absent writes (a second create of the same key succeeded), so two writers could both commit. Known to work: local disk, AWS S3, MinIO, Cloudflare R2, moto; known not to: garage. Run with --single-writer to accept the risk (one instance only, no fencing)"
    )]
    NoConditionalWrites { setting: &'static str, url: String },
}

/// A store operation that failed, naming the setting and the object.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {op} {url}: {source}")]
pub struct OpError {
    pub setting: &'static str,
    pub op: &'static str,
    pub url: String,
    pub source: Box<object_store::Error>,
}

impl Classify for OpError {
    fn blame(&self) -> Blame {
        blame(&self.source)
    }
}

impl Classify for StoreError {
    fn blame(&self) -> Blame {
        match self {
            StoreError::Invalid { .. }
            | StoreError::NoConditionalWrites { .. }
            | StoreError::NoCredentials { .. } => Blame::User,
            StoreError::Unusable { source, .. } => blame(source),
        }
    }
}

/// Whose an object store error is: credentials and permissions are the
/// user's, a missing object or a failed precondition is a logic error here,
/// everything else (network, throttling, 5xx) the environment's.
pub fn blame(e: &object_store::Error) -> Blame {
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => Blame::User,
        object_store::Error::NotFound { .. }
        | object_store::Error::AlreadyExists { .. }
        | object_store::Error::Precondition { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::InvalidPath { .. } => Blame::Internal,
        _ => Blame::Environment,
    }
}

/// S3 settings over those of the environment; `None` keeps the
/// environment's (AWS_ENDPOINT_URL, AWS_REGION,
/// AWS_VIRTUAL_HOSTED_STYLE_REQUEST) or object_store's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// For S3-compatible stores (MinIO, R2, garage); an `http://` endpoint
    /// allows plain HTTP.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `bucket.endpoint/key` rather than `endpoint/bucket/key`.
    pub virtual_hosted_style: Option<bool>,
    /// object_store's own keys (`aws_access_key_id`, ...) over everything
    /// above, for what has no setting of its own.
    pub options: Vec<(String, String)>,
}

static MEMORY: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> = LazyLock::new(Default::default);

impl Location {
    /// Opens `url` for the setting `setting` (e.g. `OUTPUT_PATH`); creates a
    /// local directory if it is missing.
    pub fn open(setting: &'static str, url: &str) -> Result<Self, StoreError> {
        Self::open_with(setting, url, &S3Settings::default())
    }

    /// Like [`Location::open`], with S3 settings over those of the
    /// environment.
    pub fn open_with(
        setting: &'static str,
        url: &str,
        s3: &S3Settings,
    ) -> Result<Self, StoreError> {
        let invalid = |detail: String| StoreError::Invalid {
            setting,
            url: url.to_owned(),
            detail,
        };
        if url.trim().is_empty() {
            return Err(invalid("is empty".into()));
        }
        if let Some(rest) = url.strip_prefix("memory://") {
            let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let store = MEMORY
                .lock()
                .expect("memory store registry")
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(InMemory::new()))
                .clone();
            return Ok(Self {
                store: store.clone(),
                multipart: Some(store),
                uploads: None,
                local_dir: None,
                prefix: parse_prefix(prefix).map_err(invalid)?,
                url: url.trim_end_matches('/').to_owned(),
                setting,
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(
                    "names no bucket (expected s3://bucket/prefix)".into(),
                ));
            }
            let (s3, uploads) = open_s3(bucket, s3).map_err(invalid)?;
            let s3 = Arc::new(s3);
            return Ok(Self {
                store: s3.clone(),
                multipart: Some(s3),
                uploads: Some(Arc::new(uploads)),
                local_dir: None,
                prefix: parse_prefix(prefix).map_err(invalid)?,
                url: url.trim_end_matches('/').to_owned(),
                setting,
            });
        }
        if url.contains("://") && !url.starts_with("file://") {
            return Err(invalid(
                "unsupported scheme; use a local path, file://, s3:// or memory://".into(),
            ));
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        let dir = std::path::absolute(path).map_err(|e| invalid(e.to_string()))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| invalid(format!("cannot create directory {}: {e}", dir.display())))?;
        // Durable, in the order the commit protocol needs: a file's bytes,
        // then its name, then its directory (docs/commit-protocol.md).
        let local = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| invalid(e.to_string()))?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(local),
            multipart: None,
            uploads: None,
            local_dir: Some(dir.clone()),
            prefix: Path::default(),
            url: dir.display().to_string().trim_end_matches('/').to_owned(),
            setting,
        })
    }

    /// `op` on `key` failed with `source`.
    pub fn failed(&self, op: &'static str, key: &str, source: object_store::Error) -> OpError {
        OpError {
            setting: self.setting,
            op,
            url: self.url_of(key),
            source: Box::new(source),
        }
    }

    /// Deletes `key`; on a local disk the directory is synced before this
    /// returns (object_store's fsync option covers writes, not deletes), so
    /// that what is deleted next (a staging entry naming this file) cannot
    /// outlive it through a power cut. A missing object counts as deleted.
    pub async fn delete_durably(&self, key: &str) -> object_store::Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = self
            .local_dir
            .as_ref()
            .and_then(|dir| dir.join(key).parent().map(std::path::Path::to_path_buf))
        {
            sync_dir(&parent).map_err(|e| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })?;
        }
        Ok(())
    }

    /// Removes what a writer that died left of the local file `key`:
    /// object_store writes it as `key#N` and renames it on completion, and
    /// neither lists nor deletes those.
    pub fn remove_partial(&self, key: &str) {
        let Some(dir) = &self.local_dir else {
            return;
        };
        let file = dir.join(key);
        let (Some(parent), Some(name)) = (file.parent(), file.file_name()) else {
            return;
        };
        let partial = format!("{}#", name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(parent) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&partial) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// `key` under this location's prefix.
    pub fn path(&self, key: &str) -> Path {
        let mut path = self.prefix.clone();
        for part in key.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        path
    }

    /// The URL a reader uses for `key`, as recorded in the commit log.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{}", self.url, key)
    }

    /// Keys and ids of the multipart uploads open under `prefix` (a key
    /// prefix inside this location); none where uploads cannot be listed.
    pub async fn open_uploads_under(
        &self,
        prefix: &str,
    ) -> object_store::Result<Vec<(String, String)>> {
        match &self.uploads {
            Some(uploads) => uploads.under(&self.path(prefix)).await,
            None => Ok(Vec::new()),
        }
    }

    /// Aborts the multipart uploads open at any of `keys`: files already
    /// published, whose extra uploads a retried start (a lost reply) left.
    /// Best effort: what fails is left to the lifecycle rule.
    pub async fn abort_stray_uploads(&self, keys: &[&str]) -> usize {
        let Some(multipart) = &self.multipart else {
            return 0;
        };
        let open = match self.open_uploads_under("").await {
            Ok(open) => open,
            Err(e) => {
                tracing::debug!(setting = self.setting, error = %e, "cannot list open multipart uploads");
                return 0;
            }
        };
        let wanted: std::collections::HashSet<String> =
            keys.iter().map(|k| self.path(k).to_string()).collect();
        let mut aborted = 0;
        for (key, id) in open.iter().filter(|(key, _)| wanted.contains(key)) {
            if multipart
                .abort_multipart(&Path::from(key.as_str()), id)
                .await
                .is_ok()
            {
                aborted += 1;
                tracing::info!(file = %key, "aborted a stray upload of a published file");
            }
        }
        aborted
    }

    /// Whether the multipart upload `upload_id` is still open at `key`;
    /// `None` where that cannot be listed. Asked when a part fails: a store
    /// may answer a part of an aborted upload with a 5xx (moto does) rather
    /// than NoSuchUpload, and retrying that would never end.
    pub async fn upload_is_open(&self, key: &str, upload_id: &str) -> Option<bool> {
        let uploads = self.uploads.as_ref()?;
        let ids = uploads.at(&self.path(key)).await.ok()?;
        Some(ids.iter().any(|id| id == upload_id))
    }

    /// Aborts every multipart upload open at `key`, whoever started it;
    /// returns how many. Only for keys no live writer owns. Stores without
    /// a way to list uploads (memory) report none.
    pub async fn abort_open_uploads(&self, key: &str) -> object_store::Result<usize> {
        let (Some(uploads), Some(multipart)) = (&self.uploads, &self.multipart) else {
            return Ok(0);
        };
        let path = self.path(key);
        let ids = match uploads.at(&path).await {
            Ok(ids) => ids,
            // Not allowed or not offered: the lifecycle rule is left to
            // clean up; retrying cannot help.
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::NotSupported { .. }),
            ) => {
                tracing::warn!(
                    setting = self.setting,
                    file = %self.url_of(key),
                    error = %e,
                    "cannot list open multipart uploads (needs s3:ListBucketMultipartUploads); leaving them to the bucket's lifecycle rule"
                );
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        for id in &ids {
            match multipart.abort_multipart(&path, id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ids.len())
    }

    /// Writes and deletes a probe object: an unwritable or unreachable
    /// location fails at start-up, naming its setting. Passing faults are
    /// retried a few times first.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let probe = self.path(&format!("_lineage-probe-{}", uuid::Uuid::new_v4()));
        patiently("write", || {
            self.store
                .put(&probe, PutPayload::from_static(b"probe"))
                .map(|r| r.map(drop))
        })
        .await
        .map_err(|e| self.unusable("write", e))?;
        self.delete_probe(&probe).await
    }

    /// Checks that a second create of the same key fails, as the commit
    /// protocol requires. Some stores (garage) silently overwrite.
    pub async fn check_create_if_absent(&self) -> Result<(), StoreError> {
        let probe = self.path(&format!("_lineage-probe-create-{}", uuid::Uuid::new_v4()));
        let create = || {
            self.store.put_opts(
                &probe,
                PutPayload::from_static(b"1"),
                PutOptions::from(PutMode::Create),
            )
        };
        let mut tries = 0;
        patiently("create-if-absent write", || {
            tries += 1;
            let first_try = tries == 1;
            create().map(move |r| match r {
                // A retry after a lost reply finds its own object.
                Err(object_store::Error::AlreadyExists { .. }) if !first_try => Ok(()),
                r => r.map(drop),
            })
        })
        .await
        .map_err(|e| self.unusable("create-if-absent write", e))?;
        let second = patiently("second create-if-absent write", || {
            create().map(|r| r.map(drop))
        })
        .await;
        self.delete_probe(&probe).await?;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(object_store::Error::Precondition { .. }) => Ok(()),
            Ok(()) => Err(StoreError::NoConditionalWrites {
                setting: self.setting,
                url: self.url.clone(),
            }),
            Err(e) => Err(self.unusable("second create-if-absent write", e)),
        }
    }

    async fn delete_probe(&self, probe: &Path) -> Result<(), StoreError> {
        patiently("delete", || {
            self.store.delete(probe).map(|r| match r {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                r => r,
            })
        })
        .await
        .map_err(|e| self.unusable("delete", e))
    }

    fn unusable(&self, op: &'static str, source: object_store::Error) -> StoreError {
        if let Some(missing) = credentials::missing(&source) {
            tracing::debug!(setting = self.setting, detail = %crate::error::render(&*missing.detail), "instance metadata gave no credentials");
            return StoreError::NoCredentials {
                setting: self.setting,
                url: self.url.clone(),
                endpoint: missing.endpoint.clone(),
            };
        }
        StoreError::Unusable {
            setting: self.setting,
            url: self.url.clone(),
            op,
            source: Box::new(source),
        }
    }
}

/// Makes a directory's entries durable. A directory a delete emptied may be
/// gone already (object_store removes empty directories): then its parent
/// holds the change.
fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut dir = dir;
    loop {
        match std::fs::File::open(dir) {
            Ok(d) => return d.sync_all(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match dir.parent() {
                Some(parent) => dir = parent,
                None => return Ok(()),
            },
            Err(e) => return Err(e),
        }
    }
}

impl Classify for object_store::Error {
    fn blame(&self) -> Blame {
        blame(self)
    }
}

/// Start-up probes: a few quick retries of the environment's errors, so
/// that a passing fault does not fail the start and a store that is away
/// does within seconds.
async fn patiently<T, F, Fut>(what: &str, op: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = object_store::Result<T>>,
{
    let backoff = Backoff {
        first: std::time::Duration::from_millis(100),
        max: std::time::Duration::from_secs(2),
    };
    retry_at_most(what, backoff, 6, op).await
}

/// The S3 client, and a lister of open uploads that signs and connects the
/// same way.
fn open_s3(
    bucket: &str,
    settings: &S3Settings,
) -> Result<(object_store::aws::AmazonS3, OpenUploads), String> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let Some(virtual_hosted) = settings.virtual_hosted_style {
        builder = builder.with_virtual_hosted_style_request(virtual_hosted);
    }
    for (key, value) in &settings.options {
        let key = key.parse().map_err(|e| format!("S3 option {key}: {e}"))?;
        builder = builder.with_config(key, value);
    }
    let get = |key| builder.get_config_value(&key);
    let endpoint = get(AmazonS3ConfigKey::S3Endpoint).or(get(AmazonS3ConfigKey::Endpoint));
    let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
    let virtual_hosted = get(AmazonS3ConfigKey::VirtualHostedStyleRequest)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut allow_http = get(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // Naming a plain-HTTP endpoint is consent enough.
    if endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
        && !allow_http
    {
        allow_http = true;
        builder = builder.with_allow_http(true);
    }
    let faults = faults::Faults::from_env()?;
    let connector: Arc<dyn HttpConnector> = match faults {
        Some(f) => Arc::new(faults::FaultyConnector(f)),
        None => Arc::new(object_store::client::ReqwestConnector::default()),
    };
    let builder = builder.with_http_connector(SharedConnector(connector.clone()));
    let s3 = credentials::explained(builder)
        .and_then(AmazonS3Builder::build)
        .map_err(|e| format!("cannot configure S3: {e}"))?;
    let bucket_endpoint = match (endpoint, virtual_hosted) {
        (Some(endpoint), true) => endpoint,
        (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
    };
    let client = connector
        .connect(&ClientOptions::new().with_allow_http(allow_http))
        .map_err(|e| format!("cannot configure S3: {e}"))?;
    let uploads = OpenUploads {
        client,
        credentials: s3.credentials().clone(),
        bucket_endpoint,
        region,
    };
    Ok((s3, uploads))
}

/// One connector for the store and the upload lister.
#[derive(Debug)]
struct SharedConnector(Arc<dyn HttpConnector>);

impl HttpConnector for SharedConnector {
    fn connect(
        &self,
        options: &ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        self.0.connect(options)
    }
}

fn parse_prefix(prefix: &str) -> Result<Path, String> {
    Path::parse(prefix.trim_matches('/')).map_err(|e| format!("invalid prefix: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_directories_are_created_and_probed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out/nested");
        let location = Location::open("OUTPUT_PATH", root.to_str().unwrap()).unwrap();
        assert!(root.is_dir());
        assert!(location.multipart.is_none());
        location.check_writable().await.unwrap();
        location.check_create_if_absent().await.unwrap();
        assert_eq!(
            location.url_of("a/b.parquet"),
            format!("{}/a/b.parquet", root.display())
        );
        let same = Location::open("OUTPUT_PATH", &format!("file://{}", root.display())).unwrap();
        assert_eq!(same.url, location.url);
    }

    #[tokio::test]
    async fn memory_stores_are_shared_by_name() {
        let a = Location::open("OUTPUT_PATH", "memory://shared/out").unwrap();
        let b = Location::open("DROPPED_PATH", "memory://shared/dropped").unwrap();
        a.store
            .put(&a.path("x"), PutPayload::from_static(b"1"))
            .await
            .unwrap();
        assert!(b.store.head(&Path::from("out/x")).await.is_ok());
        assert!(a.multipart.is_some());
        a.check_create_if_absent().await.unwrap();
    }

    #[test]
    fn bad_urls_name_the_setting() {
        let err = Location::open("OUTPUT_PATH", "ftp://x/y")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("OUTPUT_PATH=ftp://x/y: unsupported scheme"),
            "{err}"
        );
        let err = Location::open("DROPPED_PATH", "s3:///x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no bucket"), "{err}");
        let err = Location::open("OUTPUT_PATH", "/proc/forbidden/here")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("OUTPUT_PATH=/proc/forbidden/here: cannot create directory"),
            "{err}"
        );
    }
}
