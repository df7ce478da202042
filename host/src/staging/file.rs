//! What a staged file is: which output it belongs to, how it becomes
//! visible, and the sealed file a commit names.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::partition::TopicPartition;

/// Which output a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Data,
    Dropped,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Data => "data",
            FileKind::Dropped => "dropped",
        })
    }
}

/// How a staged file is given up: what its staging entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Staging {
    /// A multipart upload at the final key. The entry is written before the
    /// upload starts, so it has no id: recovery aborts whatever upload is
    /// open at the key. In-process aborts know the id.
    Multipart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_id: Option<String>,
    },
    Rename {
        staging: String,
    },
}

/// How a staged file becomes visible at its final key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// Complete this multipart upload at the final key (S3 and the like).
    Multipart {
        upload_id: String,
        parts: Vec<String>,
    },
    /// Rename this hidden staging object to the final key (local disk).
    Rename { staging: String },
}

impl Publish {
    /// How to abort the file instead, while its writer still knows it.
    pub fn staging(&self) -> Staging {
        match self {
            Publish::Multipart { upload_id, .. } => Staging::Multipart {
                upload_id: Some(upload_id.clone()),
            },
            Publish::Rename { staging } => Staging::Rename {
                staging: staging.clone(),
            },
        }
    }
}

impl Publish {
    pub fn encode(&self) -> String {
        match self {
            Publish::Multipart { upload_id, parts } => {
                format!("multipart:{upload_id}:{}", parts.join(";"))
            }
            Publish::Rename { staging } => format!("rename:{staging}"),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        if let Some(rest) = s.strip_prefix("rename:") {
            return Some(Publish::Rename {
                staging: rest.to_owned(),
            });
        }
        let rest = s.strip_prefix("multipart:")?;
        let (upload_id, parts) = rest.split_once(':')?;
        Some(Publish::Multipart {
            upload_id: upload_id.to_owned(),
            parts: parts
                .split(';')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// A file sealed for its checkpoint: durable and invisible until a commit
/// names it; a commit's file rows are these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFile {
    pub kind: FileKind,
    /// Unique id, also the name of its staging journal entry.
    pub id: String,
    /// Full URL of the final object.
    pub url: String,
    /// Key of the final object inside its store.
    pub key: String,
    pub source: TopicPartition,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
    pub bytes: u64,
    pub publish: Publish,
    /// The Schema Registry ids its records were written with, ascending;
    /// empty for bare values.
    pub schema_ids: Vec<u32>,
    /// A dropped file's records by reason class, so that the commit log
    /// alone says why records were dropped; empty for data files.
    pub drops: Vec<DropClass>,
}

/// The dropped records of one reason class in a file: how many, and the
/// first, as an example to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropClass {
    pub class: String,
    pub count: u64,
    pub example: i64,
}

/// Classes a file keeps apart; past it they count as `other`, so that a
/// plugin that puts record data before the colon cannot grow the log.
const MAX_DROP_CLASSES: usize = 16;

/// A reason's class: what comes before its first colon, at most 40
/// characters (cut at a character boundary).
pub fn reason_class(reason: &str) -> &str {
    let class = reason.split(':').next().unwrap_or_default().trim();
    match class.char_indices().nth(40) {
        Some((at, _)) => &class[..at],
        None => class,
    }
}

impl DropClass {
    /// Counts one dropped record at `offset` into `classes`.
    pub fn count(classes: &mut Vec<DropClass>, reason: &str, offset: i64) {
        let mut class = reason_class(reason);
        if classes.len() >= MAX_DROP_CLASSES && !classes.iter().any(|c| c.class == class) {
            class = "other";
        }
        match classes.iter_mut().find(|c| c.class == class) {
            Some(c) => {
                c.count += 1;
                c.example = c.example.min(offset);
            }
            None => classes.push(DropClass {
                class: class.to_owned(),
                count: 1,
                example: offset,
            }),
        }
    }
}

impl SealedFile {
    /// Memory its description holds while it waits for the checkpoint:
    /// thousands of files sealed early add up.
    pub fn footprint(&self) -> usize {
        let publish = match &self.publish {
            Publish::Multipart { upload_id, parts } => {
                upload_id.len() + parts.iter().map(|p| p.len() + 24).sum::<usize>()
            }
            Publish::Rename { staging } => staging.len(),
        };
        std::mem::size_of::<Self>()
            + self.id.len()
            + self.url.len()
            + self.key.len()
            + self.source.topic.len()
            + 4 * self.schema_ids.len()
            + self
                .drops
                .iter()
                .map(|d| std::mem::size_of::<DropClass>() + d.class.len())
                .sum::<usize>()
            + publish
    }
}
