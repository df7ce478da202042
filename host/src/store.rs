//! Where files go: a local directory, `file://`, `s3://bucket/prefix` or
//! `memory://name/prefix`, opened through object_store.
//!
//! S3 takes endpoint, region and credentials from the standard AWS
//! environment (static keys or web identity for IRSA), as object_store's
//! `from_env` reads them. `memory://` stores live for the process and are
//! shared by name, for in-process tests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Blame, Classify};

/// An opened location: the store, the prefix inside it, and how staged
/// files become visible there.
#[derive(Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// Present where files are published by completing a multipart upload
    /// at the final key; absent where they are renamed into place.
    pub multipart: Option<Arc<dyn MultipartStore>>,
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
    #[error(
        "{setting}={url} does not honour create-if-absent writes (a second create of the same key succeeded), so two writers could both commit. Known to work: local disk, AWS S3, MinIO, Cloudflare R2, moto; known not to: garage. Run with --single-writer to accept the risk (one instance only, no fencing)"
    )]
    NoConditionalWrites { setting: &'static str, url: String },
}

impl Classify for StoreError {
    fn blame(&self) -> Blame {
        match self {
            StoreError::Invalid { .. } | StoreError::NoConditionalWrites { .. } => Blame::User,
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

static MEMORY: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> = LazyLock::new(Default::default);

impl Location {
    /// Opens `url` for the setting `setting` (e.g. `OUTPUT_PATH`); creates a
    /// local directory if it is missing.
    pub fn open(setting: &'static str, url: &str) -> Result<Self, StoreError> {
        Self::open_with(setting, url, &[])
    }

    /// Like [`Location::open`], with S3 settings (object_store's keys, such
    /// as `aws_endpoint` or `aws_access_key_id`) over those of the
    /// environment.
    pub fn open_with(
        setting: &'static str,
        url: &str,
        s3_options: &[(&str, &str)],
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
            let mut builder = object_store::aws::AmazonS3Builder::from_env();
            for (key, value) in s3_options {
                let key = key
                    .parse()
                    .map_err(|e| invalid(format!("S3 option {key}: {e}")))?;
                builder = builder.with_config(key, *value);
            }
            let s3 = builder
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| invalid(format!("cannot configure S3: {e}")))?;
            let s3 = Arc::new(s3);
            return Ok(Self {
                store: s3.clone(),
                multipart: Some(s3),
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
        let local = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| invalid(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(local),
            multipart: None,
            prefix: Path::default(),
            url: dir.display().to_string().trim_end_matches('/').to_owned(),
            setting,
        })
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

    /// Writes and deletes a probe object: an unwritable or unreachable
    /// location fails at start-up, naming its setting.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let probe = self.path(&format!("_lineage-probe-{}", uuid::Uuid::new_v4()));
        let fail = |op, source| StoreError::Unusable {
            setting: self.setting,
            url: self.url.clone(),
            op,
            source: Box::new(source),
        };
        self.store
            .put(&probe, PutPayload::from_static(b"probe"))
            .await
            .map_err(|e| fail("write", e))?;
        self.store
            .delete(&probe)
            .await
            .map_err(|e| fail("delete", e))?;
        Ok(())
    }

    /// Checks that a second create of the same key fails, as the commit
    /// protocol requires. Some stores (garage) silently overwrite.
    pub async fn check_create_if_absent(&self) -> Result<(), StoreError> {
        let probe = self.path(&format!("_lineage-probe-create-{}", uuid::Uuid::new_v4()));
        let fail = |op, source| StoreError::Unusable {
            setting: self.setting,
            url: self.url.clone(),
            op,
            source: Box::new(source),
        };
        let create = PutOptions::from(PutMode::Create);
        self.store
            .put_opts(&probe, PutPayload::from_static(b"1"), create.clone())
            .await
            .map_err(|e| fail("create-if-absent write", e))?;
        let second = self
            .store
            .put_opts(&probe, PutPayload::from_static(b"2"), create)
            .await;
        let _ = self.store.delete(&probe).await;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(object_store::Error::Precondition { .. }) => Ok(()),
            Ok(_) => Err(StoreError::NoConditionalWrites {
                setting: self.setting,
                url: self.url.clone(),
            }),
            Err(e) => Err(fail("second create-if-absent write", e)),
        }
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
