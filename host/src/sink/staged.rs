//! A file on its way to the store, invisible until its checkpoint commits.
//!
//! Where the store has multipart uploads (S3, memory), the file is uploaded
//! as parts of a multipart upload at its final key and published by
//! completing the upload: nothing exists at the key before that. On local
//! disk it is written under a hidden staging directory of the same
//! location and published by an atomic rename. Either way the upload id or
//! staging key is journalled in the commit log before the first byte, so
//! that recovery can abort what no commit claimed.

use std::collections::VecDeque;
use std::sync::Arc;

use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::{SinkContext, SinkError};
use crate::commit::{FileKind, Publish, StagedEntry, Staging, TopicPartition};
use crate::failpoints;
use crate::retry::{Policy, retry};
use crate::store::Location;

/// Hidden directory, in each output location, for files being written on
/// stores without multipart uploads. Its files never end in `.parquet`.
pub const STAGING_DIR: &str = ".lineage-staging";

/// At most this many parts of one file are uploading at once.
const PARTS_IN_FLIGHT: usize = 2;

enum Mode {
    Multipart {
        store: Arc<dyn MultipartStore>,
        path: Path,
        upload_id: String,
        parts: Vec<PartId>,
        uploads: VecDeque<(JoinHandle<object_store::Result<PartId>>, usize, PutPayload)>,
    },
    Rename {
        staging: String,
        upload: Box<dyn MultipartUpload>,
        uploads: VecDeque<JoinHandle<object_store::Result<()>>>,
    },
}

pub struct StagedWriter {
    location: Location,
    key: String,
    runtime: Handle,
    policy: Policy,
    mode: Mode,
    bytes: u64,
}

/// Which file to start.
pub struct FileSpec<'a> {
    pub kind: FileKind,
    pub source: &'a TopicPartition,
    /// The final key inside the data or dropped location.
    pub key: String,
    pub id: &'a str,
    /// The claim the file's records were consumed under.
    pub claim: u64,
}

/// The staging key of a file on a store without multipart uploads.
fn staging_key(source: &TopicPartition, file_id: &str) -> String {
    format!(
        "{STAGING_DIR}/{}/{}/{file_id}.parquet.inprogress",
        source.topic, source.partition
    )
}

impl StagedWriter {
    /// Starts the upload and journals it. Blocks on the store.
    pub fn open(cx: &SinkContext, spec: FileSpec<'_>) -> Result<Self, SinkError> {
        let FileSpec {
            kind,
            source,
            key,
            id: file_id,
            claim,
        } = spec;
        let (location, log, runtime, owner) = (cx.location(kind), &*cx.log, &cx.runtime, &cx.owner);
        let staging = match &location.multipart {
            Some(_) => Staging::Multipart { upload_id: None },
            None => Staging::Rename {
                staging: staging_key(source, file_id),
            },
        };
        let entry = StagedEntry {
            file_id: file_id.to_owned(),
            owner: owner.clone(),
            claim,
            kind,
            source: source.clone(),
            key: key.clone(),
            staging: staging.clone(),
        };
        runtime.block_on(retry(
            &format!("write staging entry of {source}"),
            &cx.policy,
            || log.stage(&entry),
        ))?;
        failpoints::hit("after-staging-entry")?;
        let mode = match (&location.multipart, staging) {
            (Some(mp), _) => {
                let path = location.path(&key);
                // A start whose reply was lost and that was retried leaves
                // a second upload at the key: publishing or aborting the
                // file aborts every upload open at its key.
                let upload_id = runtime.block_on(retry(
                    &format!("start multipart upload {}", location.url_of(&key)),
                    &cx.policy,
                    || async {
                        mp.create_multipart(&path).await.map_err(|e| {
                            SinkError::from(location.failed("start multipart upload", &key, e))
                        })
                    },
                ))?;
                Mode::Multipart {
                    store: mp.clone(),
                    path,
                    upload_id,
                    parts: Vec::new(),
                    uploads: VecDeque::new(),
                }
            }
            (None, Staging::Rename { staging }) => {
                let upload = runtime
                    .block_on(location.store.put_multipart(&location.path(&staging)))
                    .map_err(|e| location.failed("start staging file", &staging, e))?;
                Mode::Rename {
                    staging,
                    upload,
                    uploads: VecDeque::new(),
                }
            }
            (None, Staging::Multipart { .. }) => unreachable!("multipart needs a multipart store"),
        };
        Ok(Self {
            location: location.clone(),
            key,
            runtime: runtime.clone(),
            policy: cx.policy.clone(),
            mode,
            bytes: 0,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Uploads `bytes` as the next part, in the background; waits only when
    /// too many parts of this file are already in flight.
    pub fn put_part(&mut self, bytes: Vec<u8>) -> Result<(), SinkError> {
        self.bytes += bytes.len() as u64;
        let payload = PutPayload::from(bytes);
        match &mut self.mode {
            Mode::Multipart {
                store,
                path,
                upload_id,
                parts,
                uploads,
            } => {
                let (store, path, id, idx) = (
                    store.clone(),
                    path.clone(),
                    upload_id.clone(),
                    parts.len() + uploads.len(),
                );
                let data = payload.clone();
                uploads.push_back((
                    self.runtime
                        .spawn(async move { store.put_part(&path, &id, idx, data).await }),
                    idx,
                    payload,
                ));
            }
            Mode::Rename {
                upload, uploads, ..
            } => {
                uploads.push_back(self.runtime.spawn(upload.put_part(payload)));
            }
        }
        self.settle(PARTS_IN_FLIGHT)
    }

    /// Waits until at most `keep` part uploads are in flight.
    fn settle(&mut self, keep: usize) -> Result<(), SinkError> {
        let url = self.location.url_of(&self.key);
        let (location, key) = (&self.location, &self.key);
        let failed = |source| SinkError::from(location.failed("upload part", key, source));
        match &mut self.mode {
            Mode::Multipart {
                store,
                path,
                upload_id,
                parts,
                uploads,
            } => {
                while uploads.len() > keep {
                    let (task, idx, payload) = uploads.pop_front().expect("non-empty");
                    let part = match self.runtime.block_on(task).map_err(SinkError::Task)? {
                        Ok(part) => part,
                        // The part is still in hand: upload it again.
                        Err(e) => {
                            tracing::warn!(url = %url, part = idx, error = %e, "part upload failed; retrying");
                            self.runtime.block_on(retry(
                                &format!("upload part {idx} of {url}"),
                                &self.policy,
                                || async {
                                    match store
                                        .put_part(path, upload_id, idx, payload.clone())
                                        .await
                                    {
                                        Ok(part) => Ok(part),
                                        // Aborted under us by the partition's
                                        // new owner: not worth a retry.
                                        Err(e)
                                            if location.upload_is_open(key, upload_id).await
                                                == Some(false) =>
                                        {
                                            Err(failed(object_store::Error::NotFound {
                                                path: format!("{key} (upload {upload_id})"),
                                                source: Box::new(e),
                                            }))
                                        }
                                        Err(e) => Err(failed(e)),
                                    }
                                },
                            ))?
                        }
                    };
                    parts.push(part);
                    failpoints::hit("after-part-upload")?;
                }
            }
            Mode::Rename { uploads, .. } => {
                while uploads.len() > keep {
                    let task = uploads.pop_front().expect("non-empty");
                    self.runtime
                        .block_on(task)
                        .map_err(SinkError::Task)?
                        .map_err(failed)?;
                    failpoints::hit("after-part-upload")?;
                }
            }
        }
        Ok(())
    }

    /// Uploads the last bytes and waits for every part: the file is then
    /// durable but still invisible. Returns how to publish it.
    pub fn seal(mut self, last: Vec<u8>) -> Result<(Publish, u64), SinkError> {
        if !last.is_empty() {
            self.put_part(last)?;
        }
        self.settle(0)?;
        let bytes = self.bytes;
        match self.mode {
            Mode::Multipart {
                upload_id, parts, ..
            } => Ok((
                Publish::Multipart {
                    upload_id,
                    parts: parts.into_iter().map(|p| p.content_id).collect(),
                },
                bytes,
            )),
            Mode::Rename {
                staging,
                mut upload,
                ..
            } => {
                self.runtime
                    .block_on(upload.complete())
                    .map_err(|e| self.location.failed("finish staging file", &staging, e))?;
                Ok((Publish::Rename { staging }, bytes))
            }
        }
    }

    /// Gives the file up: nothing of it becomes visible.
    pub fn abort(mut self) {
        // Let running uploads finish first, so that none lands after the
        // abort.
        let _ = self.settle(0);
        let staging = match &self.mode {
            Mode::Multipart { upload_id, .. } => Staging::Multipart {
                upload_id: Some(upload_id.clone()),
            },
            Mode::Rename { staging, .. } => Staging::Rename {
                staging: staging.clone(),
            },
        };
        let (location, key) = (self.location.clone(), self.key.clone());
        let result = self
            .runtime
            .block_on(async move { abort(&location, &key, &staging).await });
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not abort a staged file; recovery will");
        }
    }
}

/// Makes a committed file visible. Idempotent: publishing a file that is
/// already visible succeeds.
pub async fn publish(location: &Location, key: &str, how: &Publish) -> Result<(), SinkError> {
    let path = location.path(key);
    let result = match how {
        Publish::Multipart { upload_id, parts } => {
            let mp = location.multipart.as_ref().ok_or_else(|| {
                SinkError::Invalid(format!(
                    "{}: a multipart publish on a store without multipart uploads",
                    location.url
                ))
            })?;
            let parts = parts
                .iter()
                .map(|p| PartId {
                    content_id: p.clone(),
                })
                .collect();
            mp.complete_multipart(&path, &upload_id.clone(), parts)
                .await
                .map(|_| ())
        }
        Publish::Rename { staging } => location.store.rename(&location.path(staging), &path).await,
    };
    match result {
        Ok(()) => Ok(()),
        // Done before, by us or by recovery: the upload or staging file is
        // gone and the object is there.
        Err(e) => match location.store.head(&path).await {
            Ok(_) => Ok(()),
            Err(_) => Err(location.failed("publish", key, e).into()),
        },
    }
}

/// Drops a staged file that no commit claimed. Idempotent. On S3 every
/// upload open at the key goes, not only the one whose id is known: a
/// start of the upload that object_store retried after a lost reply left
/// another there, and the key is this file's alone.
pub async fn abort(location: &Location, key: &str, staging: &Staging) -> Result<(), SinkError> {
    let result = match staging {
        Staging::Multipart { upload_id } => {
            let known = match (&location.multipart, upload_id) {
                (Some(mp), Some(id)) => mp.abort_multipart(&location.path(key), id).await,
                _ => Ok(()),
            };
            match known {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    location.abort_open_uploads(key).await.map(|n| {
                        if n > 0 {
                            tracing::info!(file = %location.url_of(key), uploads = n, "aborted open multipart uploads");
                        }
                    })
                }
                Err(e) => Err(e),
            }
        }
        Staging::Rename { staging } => {
            location.remove_partial(staging);
            location.delete_durably(staging).await
        }
    };
    match result {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(location.failed("abort", key, source).into()),
    }
}

/// Something staged in an output location for a partition: an open
/// multipart upload (S3), or a staging file (local disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    Upload { key: String, upload_id: String },
    File { file_id: String, staging: String },
}

/// Every upload open and every staging file present for `source` in
/// `location`, whoever wrote it. Stores that cannot list uploads
/// (memory://) report none.
pub async fn leftovers(
    location: &Location,
    source: &TopicPartition,
) -> Result<Vec<Leftover>, SinkError> {
    if location.uploads.is_some() {
        let open = match location.open_uploads_under("").await {
            Ok(open) => open,
            // Not allowed or not offered: the lifecycle rule is left to
            // clean up (docs/commit-protocol.md, Known limits).
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::NotSupported { .. }),
            ) => {
                tracing::warn!(setting = location.setting, error = %e, "cannot list open multipart uploads (needs s3:ListBucketMultipartUploads); leaving those nobody names to the bucket's lifecycle rule");
                return Ok(Vec::new());
            }
            Err(e) => return Err(location.failed("list open uploads", "", e).into()),
        };
        // Keys relative to this location, and only those laid out as its
        // files are: another location nested inside this one (DROPPED_PATH
        // under OUTPUT_PATH), or beside it under the same prefix, holds
        // files named alike.
        let prefix = location.prefix.to_string();
        return Ok(open
            .into_iter()
            .filter_map(|(key, upload_id)| {
                let key = if prefix.is_empty() {
                    key
                } else {
                    key.strip_prefix(&prefix)?.strip_prefix('/')?.to_owned()
                };
                super::of_partition(&key, source).then_some(Leftover::Upload { key, upload_id })
            })
            .collect());
    }
    let Some(dir) = &location.local_dir else {
        return Ok(Vec::new());
    };
    let staging_dir = format!("{STAGING_DIR}/{}/{}", source.topic, source.partition);
    let entries = match std::fs::read_dir(dir.join(&staging_dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(location
                .failed(
                    "list staging files",
                    &staging_dir,
                    object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    },
                )
                .into());
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `<id>.parquet.inprogress`, or object_store's `...#<n>` of a file
        // whose writer died before finishing it.
        if let Some((file_id, _)) = name.split_once(".parquet.inprogress") {
            let file_id = file_id.to_owned();
            if !found
                .iter()
                .any(|l| matches!(l, Leftover::File { file_id: f, .. } if *f == file_id))
            {
                found.push(Leftover::File {
                    staging: staging_key(source, &file_id),
                    file_id,
                });
            }
        }
    }
    Ok(found)
}

/// Removes a leftover. Idempotent.
pub async fn remove(location: &Location, leftover: &Leftover) -> Result<(), SinkError> {
    let result = match leftover {
        Leftover::Upload { key, upload_id } => match &location.multipart {
            Some(mp) => mp.abort_multipart(&location.path(key), upload_id).await,
            None => Ok(()),
        },
        Leftover::File { staging, .. } => {
            location.remove_partial(staging);
            location.delete_durably(staging).await
        }
    };
    let key = match leftover {
        Leftover::Upload { key, .. } => key,
        Leftover::File { staging, .. } => staging,
    };
    match result {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(location.failed("abort", key, source).into()),
    }
}

/// The staging files a torn staging entry of `file_id` may have left, in
/// either output: its name says its id, and the id says the files.
pub fn staged_by_id(source: &TopicPartition, file_id: &str) -> Leftover {
    Leftover::File {
        file_id: file_id.to_owned(),
        staging: staging_key(source, file_id),
    }
}
