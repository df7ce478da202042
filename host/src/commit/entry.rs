//! One commit of the write-ahead commit log, and its CSV form.
//!
//! The same CSV bytes are the commit point (`_commits/<seq>.csv`) and the
//! seed-compatible view (`chk-<N>/subtask-<K>.csv`), so that `cat
//! chk-5/subtask-*.csv` answers "which files did checkpoint 5 commit" and
//! recovery can rebuild a missing view by copying. The first three columns
//! are the seed's; the rest are what the protocol needs.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::error::CommitError;
use crate::partition::{Owner, TopicPartition};
use crate::staging::{DropClass, FileKind, Publish, SealedFile};

/// The records of one partition a commit accounts for: every offset in
/// `first..=last` is in exactly one of the commit's files (or is a gap
/// Kafka left, such as a transaction marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRange {
    pub source: TopicPartition,
    pub first: i64,
    pub last: i64,
    pub records: u64,
}

impl Claim {
    /// Its row, and the row that says how it moved `next`, if it did.
    fn rows(&self, base: impl Fn() -> Row) -> Vec<Row> {
        let mut rows = vec![Row {
            kind: "claim".into(),
            topic: self.source.topic.clone(),
            partition: Some(self.source.partition),
            first_offset: Some(self.next),
            ..base()
        }];
        if let Some(moved) = &self.moved {
            let (kind, first, last) = if self.next > moved.from {
                ("skipped", moved.from, self.next - 1)
            } else {
                ("reset", self.next, moved.from - 1)
            };
            rows.push(Row {
                kind: kind.into(),
                topic: self.source.topic.clone(),
                partition: Some(self.source.partition),
                first_offset: Some(first),
                last_offset: Some(last),
                reason: moved.reason.clone(),
                ..base()
            });
        }
        rows
    }
}

/// A claim: from this commit on, `owner` alone may commit this partition,
/// starting at `next`. Written when a partition is assigned; it fences
/// every earlier owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub source: TopicPartition,
    pub next: i64,
    /// Set when `next` is not where the log had the partition: Kafka no
    /// longer has the offsets in between, or its log restarted.
    pub moved: Option<Moved>,
}

/// A claim that moves a partition's next offset, and why. Forward, the
/// offsets `from..next` were never read (`skipped` row); backward, the
/// partition's log restarted below what was committed (`reset` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The log's next offset before the claim.
    pub from: i64,
    pub reason: String,
}

/// The plugin build that produced a commit's files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginStamp {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// One commit: a checkpoint (files and offset ranges) and/or claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Set for a commit object that is empty or cut short (see
    /// [`Commit::torn`]); such a commit holds nothing else.
    pub torn: Option<String>,
    /// Position in the global commit sequence.
    pub seq: u64,
    /// The checkpoint number within `owner.subtask`'s own sequence; 0 for a
    /// commit that only claims partitions.
    pub checkpoint: u64,
    pub owner: Owner,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    pub plugin: PluginStamp,
    pub claims: Vec<Claim>,
    pub ranges: Vec<OffsetRange>,
    pub files: Arc<Vec<SealedFile>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Row {
    checkpoint_id: u64,
    s3_key: String,
    commit_timestamp: String,
    kind: String,
    topic: String,
    partition: Option<i32>,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    record_count: Option<u64>,
    byte_size: Option<u64>,
    subtask: u32,
    commit_seq: u64,
    owner: String,
    plugin_name: String,
    plugin_version: String,
    plugin_sha256: String,
    file_id: String,
    publish: String,
    /// Why offsets were skipped or a partition reset; absent from the
    /// first version of the format.
    #[serde(default)]
    reason: String,
    /// A file's writer schema ids, `;`-separated; absent before version 3.
    #[serde(default)]
    schema_ids: String,
}

/// The header line, for documentation and tests.
pub const HEADER: &str = "checkpoint_id,s3_key,commit_timestamp,kind,topic,partition,first_offset,last_offset,record_count,byte_size,subtask,commit_seq,owner,plugin_name,plugin_version,plugin_sha256,file_id,publish,reason,schema_ids";

/// The header of the second version, without `schema_ids`.
const HEADER_V2: &str = "checkpoint_id,s3_key,commit_timestamp,kind,topic,partition,first_offset,last_offset,record_count,byte_size,subtask,commit_seq,owner,plugin_name,plugin_version,plugin_sha256,file_id,publish,reason";

/// The header of the first version, without `reason` and the `end` row.
const HEADER_V1: &str = "checkpoint_id,s3_key,commit_timestamp,kind,topic,partition,first_offset,last_offset,record_count,byte_size,subtask,commit_seq,owner,plugin_name,plugin_version,plugin_sha256,file_id,publish";

impl Commit {
    /// A commit object that is empty or cut short. Its name is linked only
    /// once its bytes are durable (docs/commit-protocol.md), so it can only
    /// be left by a disk that lost writes it had acknowledged, or written by
    /// hand: its writer never got past its commit point. It counts as a
    /// commit of nothing: it uses up its sequence number and nothing else.
    pub fn torn(seq: u64, detail: String) -> Self {
        Self {
            torn: Some(detail),
            seq,
            checkpoint: 0,
            owner: Owner {
                subtask: u32::MAX,
                incarnation: String::new(),
            },
            timestamp: String::new(),
            plugin: PluginStamp::default(),
            claims: Vec::new(),
            ranges: Vec::new(),
            files: Default::default(),
        }
    }

    pub fn to_csv(&self) -> Vec<u8> {
        let base = || Row {
            checkpoint_id: self.checkpoint,
            commit_timestamp: self.timestamp.clone(),
            subtask: self.owner.subtask,
            commit_seq: self.seq,
            owner: self.owner.incarnation.clone(),
            plugin_name: self.plugin.name.clone(),
            plugin_version: self.plugin.version.clone(),
            plugin_sha256: self.plugin.sha256.clone(),
            ..Row::default()
        };
        let mut rows = Vec::new();
        for f in self.files.iter() {
            rows.push(Row {
                s3_key: f.url.clone(),
                kind: f.kind.to_string(),
                topic: f.source.topic.clone(),
                partition: Some(f.source.partition),
                first_offset: Some(f.first_offset),
                last_offset: Some(f.last_offset),
                record_count: Some(f.records),
                byte_size: Some(f.bytes),
                file_id: f.id.clone(),
                publish: format!("{}|{}", f.key, f.publish.encode()),
                schema_ids: f
                    .schema_ids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(";"),
                ..base()
            });
            for d in &f.drops {
                rows.push(Row {
                    kind: "drops".into(),
                    topic: f.source.topic.clone(),
                    partition: Some(f.source.partition),
                    first_offset: Some(d.example),
                    record_count: Some(d.count),
                    file_id: f.id.clone(),
                    reason: d.class.clone(),
                    ..base()
                });
            }
        }
        for r in &self.ranges {
            rows.push(Row {
                kind: "offsets".into(),
                topic: r.source.topic.clone(),
                partition: Some(r.source.partition),
                first_offset: Some(r.first),
                last_offset: Some(r.last),
                record_count: Some(r.records),
                ..base()
            });
        }
        for c in &self.claims {
            rows.extend(c.rows(base));
        }
        // A commit with nothing in it still says who and when.
        if rows.is_empty() {
            rows.push(Row {
                kind: "empty".into(),
                ..base()
            });
        }
        // Last: a commit cut short anywhere lacks it or its count.
        rows.push(Row {
            kind: "end".into(),
            record_count: Some(rows.len() as u64),
            ..base()
        });
        let mut out = csv::Writer::from_writer(Vec::new());
        for row in rows {
            out.serialize(row).expect("writing CSV to memory");
        }
        out.into_inner().expect("flushing CSV to memory")
    }

    /// Why the object `bytes` is a commit cut short, if it is one: empty,
    /// cut inside the header, or of this format and without its whole
    /// `end` row last. Anything else that does not parse (another
    /// format's header, an unknown kind) is damage, not a cut: it is not
    /// read as a commit of nothing, whose records would then be consumed
    /// again.
    pub fn cut_short(bytes: &[u8]) -> Option<String> {
        if bytes.is_empty() {
            return Some("empty".into());
        }
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let header = match reader.byte_headers() {
            Ok(h) => h.iter().collect::<Vec<_>>().join(&b","[..]),
            Err(e) => {
                return Some(format!(
                    "{} bytes, the header does not parse: {e}",
                    bytes.len()
                ));
            }
        };
        // Versions with an end row: this one, and the one before it.
        let Some(format) = [HEADER, HEADER_V2]
            .into_iter()
            .find(|h| header == h.as_bytes())
        else {
            let cut = !bytes.contains(&b'\n') && HEADER.as_bytes().starts_with(&header);
            return cut.then(|| format!("{} bytes, cut inside the header", bytes.len()));
        };
        let columns = format.split(',').count();
        let kind = format.split(',').position(|c| c == "kind").expect("kind");
        let mut last = None;
        for record in reader.byte_records() {
            match record {
                Ok(r) => last = Some(r),
                Err(e) => return Some(format!("{} bytes, {e}", bytes.len())),
            }
        }
        // A cut leaves the last row short, or no end row at all. A whole
        // end row whose count is wrong is damage, which parsing reports.
        let whole = last.is_some_and(|r| r.len() == columns && r.get(kind) == Some(&b"end"[..]));
        (!whole).then(|| format!("{} bytes, no end row: cut short", bytes.len()))
    }

    /// Parses a commit; `what` names the object for error messages.
    pub fn from_csv(bytes: &[u8], what: &str) -> Result<Self, CommitError> {
        let bad = |detail: String| CommitError::Corrupt {
            object: what.to_owned(),
            detail,
        };
        let mut reader = csv::Reader::from_reader(bytes);
        let header = reader
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .collect::<Vec<_>>()
            .join(",");
        let versioned = match header.as_str() {
            HEADER | HEADER_V2 => true,
            HEADER_V1 => false,
            _ => return Err(bad(format!("unexpected header {header:?}"))),
        };
        let mut commit: Option<Commit> = None;
        let mut moves: Vec<(TopicPartition, Moved)> = Vec::new();
        let mut ended = false;
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            let row = row.map_err(|e| bad(format!("row {}: {e}", i + 1)))?;
            if ended {
                return Err(bad(format!("row {} follows the end row", i + 1)));
            }
            let c = commit.get_or_insert_with(|| Commit::of_row(&row));
            if row.commit_seq != c.seq || row.checkpoint_id != c.checkpoint {
                return Err(bad(format!("row {} belongs to another commit", i + 1)));
            }
            ended = c
                .add_row(&row, &mut moves, versioned)
                .map_err(|detail| bad(format!("row {}: {detail}", i + 1)))?;
            if ended && row.record_count != Some(i as u64) {
                return Err(bad(format!(
                    "the end row counts {:?} rows, {i} precede it",
                    row.record_count
                )));
            }
        }
        if versioned && !ended {
            return Err(bad("no end row: the object was cut short".into()));
        }
        let mut commit = commit.ok_or_else(|| bad("no rows".into()))?;
        commit.attach(moves).map_err(bad)?;
        Ok(commit)
    }

    /// A commit with no rows yet, named as its first row names it.
    fn of_row(row: &Row) -> Self {
        Commit {
            torn: None,
            seq: row.commit_seq,
            checkpoint: row.checkpoint_id,
            owner: Owner {
                subtask: row.subtask,
                incarnation: row.owner.clone(),
            },
            timestamp: row.commit_timestamp.clone(),
            plugin: PluginStamp {
                name: row.plugin_name.clone(),
                version: row.plugin_version.clone(),
                sha256: row.plugin_sha256.clone(),
            },
            claims: Vec::new(),
            ranges: Vec::new(),
            files: Default::default(),
        }
    }

    /// Adds what one row says; `Ok(true)` for the end row.
    fn add_row(
        &mut self,
        row: &Row,
        moves: &mut Vec<(TopicPartition, Moved)>,
        versioned: bool,
    ) -> Result<bool, String> {
        let moved = |from| Moved {
            from,
            reason: row.reason.clone(),
        };
        match row.kind.as_str() {
            "data" | "dropped" => Arc::make_mut(&mut self.files).push(row.file()?),
            "drops" => {
                let file = Arc::make_mut(&mut self.files)
                    .iter_mut()
                    .find(|f| f.id == row.file_id && f.kind == FileKind::Dropped)
                    .ok_or_else(|| {
                        format!(
                            "drops of {:?}, which no dropped row before it names",
                            row.file_id
                        )
                    })?;
                file.drops.push(DropClass {
                    class: row.reason.clone(),
                    count: row.need(row.record_count.map(|n| n as i64), "record_count")? as u64,
                    example: row.need(row.first_offset, "first_offset")?,
                });
            }
            "offsets" => self.ranges.push(OffsetRange {
                source: row.source()?,
                first: row.need(row.first_offset, "first_offset")?,
                last: row.need(row.last_offset, "last_offset")?,
                records: row.record_count.unwrap_or(0),
            }),
            "claim" => self.claims.push(Claim {
                source: row.source()?,
                next: row.need(row.first_offset, "first_offset")?,
                moved: None,
            }),
            "skipped" => moves.push((
                row.source()?,
                moved(row.need(row.first_offset, "first_offset")?),
            )),
            "reset" => moves.push((
                row.source()?,
                moved(row.need(row.last_offset, "last_offset")? + 1),
            )),
            "end" if versioned => return Ok(true),
            "empty" => {}
            other => return Err(format!("unknown kind {other:?}")),
        }
        Ok(false)
    }

    /// Each skipped or reset row belongs to the claim of its partition.
    fn attach(&mut self, moves: Vec<(TopicPartition, Moved)>) -> Result<(), String> {
        for (source, moved) in moves {
            let claim = self
                .claims
                .iter_mut()
                .find(|c| c.source == source && c.moved.is_none())
                .ok_or_else(|| format!("a skipped or reset row of {source} without its claim"))?;
            claim.moved = Some(moved);
        }
        Ok(())
    }
}

impl Row {
    fn source(&self) -> Result<TopicPartition, String> {
        Ok(TopicPartition {
            topic: self.topic.clone(),
            partition: self.partition.ok_or("no partition")?,
        })
    }

    fn need(&self, v: Option<i64>, name: &str) -> Result<i64, String> {
        v.ok_or_else(|| format!("no {name}"))
    }

    fn file(&self) -> Result<SealedFile, String> {
        let (key, publish) = self
            .publish
            .split_once('|')
            .and_then(|(k, p)| Some((k.to_owned(), Publish::decode(p)?)))
            .ok_or_else(|| format!("bad publish {:?}", self.publish))?;
        Ok(SealedFile {
            kind: if self.kind == "data" {
                FileKind::Data
            } else {
                FileKind::Dropped
            },
            id: self.file_id.clone(),
            url: self.s3_key.clone(),
            key,
            source: self.source()?,
            first_offset: self.need(self.first_offset, "first_offset")?,
            last_offset: self.need(self.last_offset, "last_offset")?,
            records: self.record_count.unwrap_or(0),
            bytes: self.byte_size.unwrap_or(0),
            publish,
            schema_ids: self
                .schema_ids
                .split(';')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map_err(|_| format!("bad schema id {s:?}")))
                .collect::<Result<_, _>>()?,
            drops: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "events".into(),
            partition: p,
        }
    }

    fn sample() -> Commit {
        Commit {
            torn: None,
            seq: 42,
            checkpoint: 5,
            owner: Owner {
                subtask: 1,
                incarnation: "b6f7".into(),
            },
            timestamp: "2026-11-25T20:00:00.123Z".into(),
            plugin: PluginStamp {
                name: "enrich".into(),
                version: "0.1.0".into(),
                sha256: "ab".repeat(32),
            },
            claims: vec![
                Claim {
                    source: tp(9),
                    next: 0,
                    moved: None,
                },
                Claim {
                    source: tp(7),
                    next: 5000,
                    moved: Some(Moved {
                        from: 1200,
                        reason: "log start offset 5000 > next 1200".into(),
                    }),
                },
                Claim {
                    source: tp(8),
                    next: 0,
                    moved: Some(Moved {
                        from: 300,
                        reason: "high watermark 12 < next 300".into(),
                    }),
                },
            ],
            ranges: vec![OffsetRange {
                source: tp(3),
                first: 100,
                last: 199,
                records: 100,
            }],
            files: vec![
                SealedFile {
                    kind: FileKind::Data,
                    id: "f1".into(),
                    url: "s3://b/out/year=2024/month=11/day=25/hour=16/part-events-3-100-f1.parquet"
                        .into(),
                    key: "out/year=2024/month=11/day=25/hour=16/part-events-3-100-f1.parquet".into(),
                    source: tp(3),
                    first_offset: 100,
                    last_offset: 199,
                    records: 97,
                    bytes: 4096,
                    publish: Publish::Multipart {
                        upload_id: "u-1".into(),
                        parts: vec!["e1".into(), "e2".into()],
                    },
                    schema_ids: vec![3, 17],
                    drops: vec![],
                },
                SealedFile {
                    kind: FileKind::Dropped,
                    id: "f2".into(),
                    url: "/data/dropped/year=2024/month=11/day=25/hour=16/part-events-3-117-f2.parquet"
                        .into(),
                    key: "year=2024/month=11/day=25/hour=16/part-events-3-117-f2.parquet".into(),
                    source: tp(3),
                    first_offset: 117,
                    last_offset: 190,
                    records: 3,
                    bytes: 2048,
                    publish: Publish::Rename {
                        staging: ".lineage-staging/events/3/f2.parquet.inprogress".into(),
                    },
                    schema_ids: vec![],
                    drops: vec![
                        DropClass {
                            class: "avro".into(),
                            count: 2,
                            example: 117,
                        },
                        DropClass {
                            class: "uuid".into(),
                            count: 1,
                            example: 190,
                        },
                    ],
                },
            ]
            .into(),
        }
    }

    #[test]
    fn round_trips_and_keeps_the_seed_columns_first() {
        let commit = sample();
        let csv = commit.to_csv();
        let text = String::from_utf8(csv.clone()).unwrap();
        assert!(
            text.starts_with("checkpoint_id,s3_key,commit_timestamp,"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        // Header, two files and the dropped one's two classes, a range,
        // three claims, a skip, a reset, end.
        assert_eq!(lines.len(), 12, "{text}");
        assert!(
            lines[3].contains(",drops,events,3,117,,2,") && lines[3].contains(",f2,,avro,"),
            "{text}"
        );
        assert!(
            lines[8].contains(",skipped,events,7,1200,4999,")
                && lines[8].ends_with("log start offset 5000 > next 1200,"),
            "{text}"
        );
        assert!(lines[10].contains(",reset,events,8,0,299,"), "{text}");
        assert!(lines[11].contains(",end,"), "{text}");
        assert!(lines[1].starts_with(
            "5,s3://b/out/year=2024/month=11/day=25/hour=16/part-events-3-100-f1.parquet,2026-11-25T20:00:00.123Z,data,"
        ));
        assert_eq!(Commit::from_csv(&csv, "t").unwrap(), commit);
    }

    #[test]
    fn an_empty_commit_still_has_a_row() {
        let mut commit = sample();
        Arc::make_mut(&mut commit.files).clear();
        commit.ranges.clear();
        commit.claims.clear();
        let parsed = Commit::from_csv(&commit.to_csv(), "t").unwrap();
        assert_eq!(parsed, commit);
    }

    #[test]
    fn corruption_is_reported_with_the_object() {
        let err = Commit::from_csv(b"a,b\n1,2\n", "_commits/7.csv").unwrap_err();
        assert!(err.to_string().contains("_commits/7.csv"), "{err}");
    }

    #[test]
    fn a_commit_cut_short_anywhere_is_told_from_a_whole_one() {
        // Cut at every byte: at a row boundary the rows before would parse,
        // so only the end row and its count tell a whole commit from a
        // part of one.
        let csv = sample().to_csv();
        let whole = csv.len() - 1; // without the last newline it is whole
        for at in 0..whole {
            assert!(
                Commit::cut_short(&csv[..at]).is_some(),
                "cut at byte {at} of {} is not seen as cut",
                csv.len()
            );
            assert!(
                matches!(
                    Commit::from_csv(&csv[..at], "x"),
                    Err(CommitError::Corrupt { .. })
                ),
                "cut at byte {at}"
            );
        }
        assert_eq!(Commit::cut_short(&csv[..whole]), None);
        assert_eq!(Commit::cut_short(&csv), None);
        assert_eq!(Commit::from_csv(&csv[..whole], "x").unwrap(), sample());
    }

    #[test]
    fn damage_that_is_not_a_cut_is_not_read_as_one() {
        // Another format's header, or a whole commit with a row this
        // version does not know: damaged, and a start must stop on it.
        assert_eq!(Commit::cut_short(b"format,of,the,future\n1,2,3,4\n"), None);
        let unknown =
            String::from_utf8(sample().to_csv())
                .unwrap()
                .replacen(",claim,", ",claim-v9,", 1);
        assert_eq!(Commit::cut_short(unknown.as_bytes()), None);
        let error = Commit::from_csv(unknown.as_bytes(), "x").unwrap_err();
        assert!(
            error.to_string().ends_with("unknown kind \"claim-v9\""),
            "{error}"
        );
    }

    #[test]
    fn commits_of_the_first_format_still_parse() {
        let v1 =
            format!("{HEADER_V1}\n0,,2026-01-01T00:00:00.000Z,claim,events,2,40,,,,0,7,a,,,,,\n");
        let commit = Commit::from_csv(v1.as_bytes(), "x").unwrap();
        assert_eq!(commit.seq, 7);
        assert_eq!(commit.claims[0].next, 40);
    }

    /// Version 2 had no `schema_ids`: its files read with none, and a cut
    /// one is still told from damage.
    #[test]
    fn commits_of_the_second_format_still_parse() {
        let current = String::from_utf8(sample().to_csv()).unwrap();
        let v2: String = current
            .lines()
            .map(|line| {
                let cells: Vec<&str> = line.split(',').collect();
                format!("{}\n", cells[..cells.len() - 1].join(","))
            })
            .collect();
        assert!(v2.starts_with(HEADER_V2), "{v2}");
        let commit = Commit::from_csv(v2.as_bytes(), "x").unwrap();
        assert!(commit.files.iter().all(|f| f.schema_ids.is_empty()));
        assert_eq!(commit.files.len(), 2);
        assert_eq!(Commit::cut_short(v2.as_bytes()), None);
        assert!(Commit::cut_short(&v2.as_bytes()[..v2.len() - 3]).is_some());
    }

    /// Drop classes belong to a dropped file of the same commit: a `drops`
    /// row whose file is not there is damage, not a count to show.
    #[test]
    fn drop_classes_without_their_file_are_refused() {
        let text = String::from_utf8(sample().to_csv()).unwrap();
        let without: Vec<&str> = text.lines().filter(|l| !l.contains(",dropped,")).collect();
        let mut bytes = without.join("\n").into_bytes();
        bytes.push(b'\n');
        // The end row counts the rows before it.
        let fixed = String::from_utf8(bytes)
            .unwrap()
            .replace(",end,,,,,10,", ",end,,,,,9,");
        let err = Commit::from_csv(fixed.as_bytes(), "c")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("which no dropped row before it names"),
            "{err}"
        );
        let back = Commit::from_csv(&sample().to_csv(), "c").unwrap();
        assert_eq!(back.files[1].drops, sample().files[1].drops);
    }
}
