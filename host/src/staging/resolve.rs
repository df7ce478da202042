//! Resolving staged files: publish one a commit names, abort one no commit
//! will, and find what is staged for a partition whoever staged it.

use object_store::ObjectStoreExt;
use object_store::multipart::PartId;

use super::error::StagingError;
use super::file::{Publish, Staging};
use super::layout::{STAGING_DIR, of_partition, staging_key};
use crate::partition::TopicPartition;
use crate::store::Location;

/// Makes a committed file visible. Idempotent: publishing a file that is
/// already visible succeeds.
pub async fn publish(location: &Location, key: &str, how: &Publish) -> Result<(), StagingError> {
    let path = location.path(key);
    let result = match how {
        Publish::Multipart { upload_id, parts } => {
            let mp = location
                .multipart
                .as_ref()
                .ok_or_else(|| StagingError::NoMultipart {
                    url: location.url.clone(),
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
pub async fn abort(location: &Location, key: &str, staging: &Staging) -> Result<(), StagingError> {
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
) -> Result<Vec<Leftover>, StagingError> {
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
                of_partition(&key, source).then_some(Leftover::Upload { key, upload_id })
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
pub async fn remove(location: &Location, leftover: &Leftover) -> Result<(), StagingError> {
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
