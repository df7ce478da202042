//! iceberg's `Storage` over the stores Lineage already has open, so that
//! table metadata goes through the same object_store clients, AWS chain,
//! fsync order on local disks and injected faults as the data files.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg::{Error, ErrorKind};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::store::{Location, S3Settings};

/// The locations open for this run, and those opened on demand for paths
/// outside them (a table created elsewhere).
pub struct Stores {
    known: Vec<Location>,
    s3: S3Settings,
    opened: Mutex<HashMap<String, Location>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.known.iter().map(|l| l.url.as_str()).collect();
        f.debug_struct("Stores").field("known", &urls).finish()
    }
}

impl Stores {
    pub fn new(known: Vec<Location>, s3: S3Settings) -> Arc<Self> {
        Arc::new(Self {
            known,
            s3,
            opened: Mutex::new(HashMap::new()),
        })
    }

    /// The store and key of an Iceberg path (`s3://b/k`, `file:///p`, `/p`).
    fn resolve(&self, path: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, Path)> {
        let path = path.strip_prefix("file://").unwrap_or(path);
        for location in &self.known {
            if let Some(key) = path
                .strip_prefix(location.url.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
            {
                return Ok((location.store.clone(), location.path(key)));
            }
        }
        let (root, key) = match path.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                (format!("s3://{bucket}"), key)
            }
            None if path.starts_with('/') => ("/".to_string(), &path[1..]),
            None => {
                return Err(Error::new(
                    ErrorKind::FeatureUnsupported,
                    format!("{path}: only s3:// and local paths are supported"),
                ));
            }
        };
        let mut opened = self.opened.lock().expect("stores lock");
        let location = match opened.get(&root) {
            Some(l) => l.clone(),
            None => {
                let l = Location::open_with("the Iceberg table location", &root, &self.s3)
                    .map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
                opened.insert(root, l.clone());
                l
            }
        };
        Ok((location.store.clone(), location.path(key)))
    }
}

fn failed(op: &str, path: &str, e: object_store::Error) -> Error {
    // Unexpected: iceberg's catalogs read it as a failure a retry may
    // get past (a metadata file not listed yet, a store that hiccuped).
    Error::new(ErrorKind::Unexpected, format!("{op} {path}")).with_source(e)
}

/// Serialisable only in name: iceberg requires it of storages, for engines
/// that ship them between processes, which Lineage never does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStorage {
    #[serde(skip)]
    stores: Option<Arc<Stores>>,
}

impl ObjectStorage {
    fn stores(&self) -> iceberg::Result<&Arc<Stores>> {
        self.stores.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "a deserialised storage has no stores",
            )
        })
    }
}

#[async_trait::async_trait]
#[typetag::serde]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (store, key) = self.stores()?.resolve(path)?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(failed("head", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (store, key) = self.stores()?.resolve(path)?;
        let meta = store
            .head(&key)
            .await
            .map_err(|e| failed("head", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (store, key) = self.stores()?.resolve(path)?;
        let got = store.get(&key).await.map_err(|e| failed("get", path, e))?;
        got.bytes().await.map_err(|e| failed("get", path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, key) = self.stores()?.resolve(path)?;
        Ok(Box::new(Reader {
            store,
            key,
            path: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (store, key) = self.stores()?.resolve(path)?;
        store
            .put(&key, PutPayload::from_bytes(bs))
            .await
            .map_err(|e| failed("put", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (store, key) = self.stores()?.resolve(path)?;
        Ok(Box::new(Writer {
            store,
            key,
            path: path.to_string(),
            buffer: Vec::new(),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.stores()?.resolve(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed("delete", path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.stores()?.resolve(path)?;
        let mut listed = store.list(Some(&key));
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| failed("list", path, e))?;
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(failed("delete", path, e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

struct Reader {
    store: Arc<dyn ObjectStore>,
    key: Path,
    path: String,
}

#[async_trait::async_trait]
impl FileRead for Reader {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store
            .get_range(&self.key, range)
            .await
            .map_err(|e| failed("get", &self.path, e))
    }
}

/// Manifests and metadata are small: written whole when closed.
struct Writer {
    store: Arc<dyn ObjectStore>,
    key: Path,
    path: String,
    buffer: Vec<u8>,
}

#[async_trait::async_trait]
impl FileWrite for Writer {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        self.buffer.extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let bytes = Bytes::from(std::mem::take(&mut self.buffer));
        self.store
            .put(&self.key, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| failed("put", &self.path, e))?;
        Ok(())
    }
}

/// Hands the catalog an [`ObjectStorage`] over `stores`, whatever
/// properties it is built with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStorageFactory {
    #[serde(skip)]
    stores: Option<Arc<Stores>>,
}

impl ObjectStorageFactory {
    pub fn new(stores: Arc<Stores>) -> Self {
        Self {
            stores: Some(stores),
        }
    }
}

#[typetag::serde]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStorage {
            stores: self.stores.clone(),
        }))
    }
}
