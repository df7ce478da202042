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

use super::entry::{Entries, StagedEntry};
use super::error::StagingError;
use super::file::{FileKind, Publish, SealedFile, Staging};
use super::layout::staging_key;
use super::outputs::Outputs;
use super::resolve::abort;
use crate::failpoints::{self, Failpoint};
use crate::partition::{Owner, TopicPartition};
use crate::retry::{Policy, retry};
use crate::store::Location;

/// At most this many parts of one file are uploading at once.
const PARTS_IN_FLIGHT: usize = 2;

/// What every file this instance stages shares.
#[derive(Clone)]
pub struct Stager {
    pub outputs: Outputs,
    pub entries: Entries,
    pub runtime: Handle,
    pub owner: Owner,
    /// How uploads are retried, until the run's shutdown deadline.
    pub policy: Policy,
}

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
    /// The size of the last part put, for what is in flight.
    last_part: usize,
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

impl Stager {
    /// Aborts a sealed file that will not be committed and removes its
    /// staging entry, each step retried. One left behind is resolved at
    /// the partition's next claim.
    pub fn discard(&self, file: &SealedFile) {
        let location = self.outputs.location(file.kind);
        let staging = file.publish.staging();
        let aborted = self.runtime.block_on(retry(
            &format!("abort {}", location.url_of(&file.key)),
            &self.policy,
            || abort(location, &file.key, &staging),
        ));
        match aborted {
            Ok(()) => self.unstage(&file.source, &file.id),
            Err(e) => {
                tracing::warn!(error = %e, file = %location.url_of(&file.key), "could not abort a staged file; the partition's next claim does")
            }
        }
    }

    /// Removes the staging entry of a file given up, retrying as its write
    /// was retried. One left behind (the store away past the deadline) is
    /// resolved at the partition's next claim, whoever makes it.
    pub fn unstage(&self, source: &TopicPartition, file_id: &str) {
        let result = self.runtime.block_on(retry(
            &format!("delete the staging entry {file_id} of {source}"),
            &self.policy,
            || self.entries.unstage(source, file_id),
        ));
        if let Err(e) = result {
            tracing::warn!(partition = %source, error = %e, "could not delete the staging entry of a file given up; the partition's next claim resolves it");
        }
    }
}

impl StagedWriter {
    /// Starts the upload and journals it. Blocks on the store.
    pub fn open(cx: &Stager, spec: FileSpec<'_>) -> Result<Self, StagingError> {
        let FileSpec {
            kind,
            source,
            key,
            id: file_id,
            claim,
        } = spec;
        let (location, entries, runtime, owner) = (
            cx.outputs.location(kind),
            &cx.entries,
            &cx.runtime,
            &cx.owner,
        );
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
            || entries.stage(&entry),
        ))?;
        failpoints::hit(Failpoint::AfterStagingEntry)?;
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
                            StagingError::from(location.failed("start multipart upload", &key, e))
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
            last_part: 0,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes of parts still in hand: being uploaded, or kept for a retry.
    pub fn in_flight(&self) -> usize {
        match &self.mode {
            Mode::Multipart { uploads, .. } => {
                uploads.iter().map(|(_, _, p)| p.content_length()).sum()
            }
            Mode::Rename { uploads, .. } => uploads.len() * self.last_part,
        }
    }

    /// Where the file will be visible once published.
    pub fn url(&self) -> String {
        self.location.url_of(&self.key)
    }

    /// Uploads `bytes` as the next part, in the background; waits only when
    /// too many parts of this file are already in flight.
    pub fn put_part(&mut self, bytes: Vec<u8>) -> Result<(), StagingError> {
        self.bytes += bytes.len() as u64;
        self.last_part = bytes.len();
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
    fn settle(&mut self, keep: usize) -> Result<(), StagingError> {
        let url = self.location.url_of(&self.key);
        let (location, key) = (&self.location, &self.key);
        let failed = |source| StagingError::from(location.failed("upload part", key, source));
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
                    let part = match self.runtime.block_on(task).map_err(StagingError::Task)? {
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
                    failpoints::hit(Failpoint::AfterPartUpload)?;
                }
            }
            Mode::Rename { uploads, .. } => {
                while uploads.len() > keep {
                    let task = uploads.pop_front().expect("non-empty");
                    self.runtime
                        .block_on(task)
                        .map_err(StagingError::Task)?
                        .map_err(failed)?;
                    failpoints::hit(Failpoint::AfterPartUpload)?;
                }
            }
        }
        Ok(())
    }

    /// Uploads the last bytes and waits for every part: the file is then
    /// durable but still invisible. Returns how to publish it.
    pub fn seal(mut self, last: Vec<u8>) -> Result<(Publish, u64), StagingError> {
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
