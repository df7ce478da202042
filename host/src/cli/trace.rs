//! `lineage trace` and `lineage log verify`: lineage questions answered
//! from the commit log and the files, human-readable or as JSON.

use std::io::Write;

use crate::commit::CommitLog;
use crate::partition::TopicPartition;
use crate::query::{
    CheckpointTrace, Found, Query, QueryError, RecordTrace, SchemaSubject, Verification,
};
use crate::registry::{Client, RegistrySettings, UserInfo};
use crate::setting;
use crate::staging::Outputs;
use crate::store::StoreError;
use crate::table::IcebergTables;

use super::run::{PathArgs, S3Args};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    #[error("{0:?} is not TOPIC/PARTITION@OFFSET (e.g. events/3@1234)")]
    Record(String),
    #[error("{setting}={path}: no such directory")]
    NoDirectory { setting: &'static str, path: String },
    #[error("writing the answer: {0}")]
    Output(#[from] std::io::Error),
    #[error("starting the I/O runtime: {0}")]
    Runtime(std::io::Error),
}

impl crate::error::Classify for TraceError {
    fn blame(&self) -> crate::error::Blame {
        use crate::error::Blame;
        match self {
            TraceError::Store(e) => e.blame(),
            TraceError::Query(e) => e.blame(),
            TraceError::Table(e) => e.blame(),
            TraceError::Record(_) | TraceError::NoDirectory { .. } => Blame::User,
            TraceError::Output(_) | TraceError::Runtime(_) => Blame::Environment,
        }
    }
}

/// Where the pipeline wrote: the same settings as `lineage run`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub paths: PathArgs,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub table: super::table::TableArgs,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl OutputArgs {
    pub fn open(&self) -> Result<Query, TraceError> {
        let (s3, paths) = (self.s3.settings(), &self.paths);
        // Opening a local location creates it; a query must not.
        for (setting, url) in [
            (setting::OUTPUT_PATH, &paths.output_path),
            (setting::DROPPED_PATH, &paths.dropped_path),
            (setting::WRITE_AHEAD_COMMIT_LOG_PATH, &paths.commit_log_path),
        ] {
            let local = url.strip_prefix("file://").unwrap_or(url);
            if !local.contains("://") && !std::path::Path::new(local).is_dir() {
                return Err(TraceError::NoDirectory {
                    setting,
                    path: url.clone(),
                });
            }
        }
        let outputs = Outputs::open(&paths.output_path, &paths.dropped_path, &s3)?;
        let wal = CommitLog::open(&paths.commit_log_path, &s3)?;
        let tables = match self.table.settings()? {
            Some(settings) => Some(
                runtime()?.block_on(IcebergTables::connect(&settings, &outputs, &s3, &wal.url))?,
            ),
            None => None,
        };
        Ok(Query {
            log: CommitLog::new(wal),
            outputs,
            tables,
        })
    }
}

#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true))]
pub struct TraceArgs {
    /// A record: TOPIC/PARTITION@OFFSET, e.g. events/3@1234.
    #[arg(group = "what")]
    pub record: Option<String>,

    /// A checkpoint: its files, offset ranges, record counts and state.
    #[arg(long, group = "what")]
    pub checkpoint: Option<u64>,

    /// With --checkpoint: only this subtask's commit.
    #[arg(long, requires = "checkpoint")]
    pub subtask: Option<u32>,

    #[command(flatten)]
    pub outputs: OutputArgs,

    /// Where a framed record's schema id is looked up for its subject and
    /// version (optional: without it, trace prints the id alone).
    #[arg(long = "schema-registry-url", env = setting::SCHEMA_REGISTRY_URL)]
    pub schema_registry_url: Option<String>,

    #[arg(long = "schema-registry-basic-auth-user-info", env = setting::SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, value_parser = UserInfo::parse, hide_env_values = true)]
    pub user_info: Option<UserInfo>,
}

/// The subject versions that hold `id` (`None`: the registry has no such
/// schema). A registry that cannot answer leaves the trace with the id
/// alone, and says why on stderr.
async fn subjects(args: &TraceArgs, id: u32) -> Option<Vec<SchemaSubject>> {
    let Some(url) = args
        .schema_registry_url
        .as_deref()
        .filter(|u| !u.is_empty())
    else {
        return Some(Vec::new());
    };
    let mut settings = RegistrySettings::new(url);
    if args.user_info.is_some() {
        settings.user_info = args.user_info.clone();
    }
    let answer = match Client::new(&settings) {
        Ok(client) => client.versions(id).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(found) => found.map(|versions| {
            versions
                .into_iter()
                .map(|v| SchemaSubject {
                    subject: v.subject,
                    version: v.version,
                })
                .collect()
        }),
        Err(e) => {
            eprintln!("trace: schema {id}: subject and version unknown: {e}");
            Some(Vec::new())
        }
    }
}

pub fn parse_record(s: &str) -> Result<(TopicPartition, i64), TraceError> {
    let bad = || TraceError::Record(s.to_owned());
    let (tp, offset) = s.rsplit_once('@').ok_or_else(bad)?;
    let (topic, partition) = tp.rsplit_once('/').ok_or_else(bad)?;
    if topic.is_empty() {
        return Err(bad());
    }
    Ok((
        TopicPartition {
            topic: topic.to_owned(),
            partition: partition.parse().map_err(|_| bad())?,
        },
        offset.parse().map_err(|_| bad())?,
    ))
}

/// One runtime for the command's whole life: a catalog's connection pool
/// (sqlx's, for Postgres) lives on the runtime it was opened on.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, TraceError> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TraceError::Runtime)?;
    Ok(RUNTIME.get_or_init(|| built))
}

pub fn trace(args: &TraceArgs, out: &mut impl Write) -> Result<(), TraceError> {
    let outputs = args.outputs.open()?;
    let rt = runtime()?;
    if let Some(record) = &args.record {
        let (source, offset) = parse_record(record)?;
        let mut trace = rt.block_on(outputs.trace_record(&source, offset))?;
        if let Some(id) = trace.schema_id {
            match rt.block_on(subjects(args, id)) {
                Some(held) => trace.schema_subjects = held,
                None => trace.schema_unknown = true,
            }
        }
        if args.outputs.json {
            serde_json::to_writer(&mut *out, &trace).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            print_record(&trace, out)?;
        }
    } else if let Some(checkpoint) = args.checkpoint {
        let traces = rt.block_on(outputs.trace_checkpoint(checkpoint, args.subtask))?;
        if args.outputs.json {
            serde_json::to_writer(&mut *out, &traces).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            for t in &traces {
                print_checkpoint(t, out)?;
            }
        }
    }
    Ok(())
}

/// Returns whether the outputs match the log.
pub fn verify(args: &OutputArgs, out: &mut impl Write) -> Result<bool, TraceError> {
    let outputs = args.open()?;
    let v = runtime()?.block_on(outputs.verify())?;
    if args.json {
        let mut json = serde_json::to_value(&v).map_err(std::io::Error::from)?;
        json["ok"] = v.ok().into();
        serde_json::to_writer(&mut *out, &json).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        print_verification(&v, out)?;
    }
    Ok(v.ok())
}

fn print_record(t: &RecordTrace, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "record      {}/{}@{}", t.topic, t.partition, t.offset)?;
    match &t.found {
        Found::Data { file, row } => {
            writeln!(out, "output      data")?;
            writeln!(out, "file        {file}")?;
            writeln!(out, "row         {row}")?;
        }
        Found::DataUnindexed { files } => {
            writeln!(
                out,
                "output      data (the plugin writes no kafka_offset column; one of:)"
            )?;
            for f in files {
                writeln!(out, "file        {f}")?;
            }
        }
        Found::Dropped { file, reason, .. } => {
            writeln!(out, "output      dropped")?;
            writeln!(out, "file        {file}")?;
            writeln!(out, "reason      {reason}")?;
        }
        Found::Gap => writeln!(
            out,
            "output      none: Kafka has no record at this offset (a gap the commit accounts for)"
        )?,
        Found::Skipped {
            first,
            last,
            reason,
        } => {
            writeln!(
                out,
                "output      none: never read; offsets {first}..{last} were skipped"
            )?;
            writeln!(out, "reason      {reason}")?;
        }
    }
    if let Some(table) = &t.table {
        writeln!(out, "table       {table}")?;
        match t.snapshot_id {
            Some(id) => writeln!(out, "snapshot    {id}")?,
            None => writeln!(
                out,
                "snapshot    none: not appended yet, or expired from the table's history"
            )?,
        }
    }
    if let Some(id) = t.schema_id {
        let held: Vec<String> = t
            .schema_subjects
            .iter()
            .map(|s| format!("{} v{}", s.subject, s.version))
            .collect();
        if t.schema_unknown {
            writeln!(
                out,
                "schema      id {id} (the registry has no schema with this id)"
            )?;
        } else if held.is_empty() {
            writeln!(out, "schema      id {id}")?;
        } else {
            writeln!(out, "schema      id {id} ({})", held.join(", "))?;
        }
    }
    if let Some(note) = &t.note {
        writeln!(out, "note        {note}")?;
    }
    let c = &t.commit;
    writeln!(
        out,
        "checkpoint  {} (subtask {}, commit {})",
        c.checkpoint, c.subtask, c.commit_seq
    )?;
    writeln!(out, "committed   {}", c.committed_at)?;
    writeln!(
        out,
        "plugin      {} {} sha256:{}",
        c.plugin_name, c.plugin_version, c.plugin_sha256
    )
}

fn print_checkpoint(t: &CheckpointTrace, out: &mut impl Write) -> std::io::Result<()> {
    let c = &t.commit;
    writeln!(
        out,
        "checkpoint {} subtask {}: {} (commit {}, {})",
        c.checkpoint, c.subtask, t.state, c.commit_seq, c.committed_at
    )?;
    writeln!(
        out,
        "  plugin {} {} sha256:{}",
        c.plugin_name, c.plugin_version, c.plugin_sha256
    )?;
    for r in &t.ranges {
        writeln!(
            out,
            "  offsets {}/{} {}..={} ({} records)",
            r.topic, r.partition, r.first_offset, r.last_offset, r.records
        )?;
    }
    for f in &t.files {
        writeln!(
            out,
            "  {:<7} {}/{} {}..={} {} records {} bytes{} {}",
            f.kind,
            f.topic,
            f.partition,
            f.first_offset,
            f.last_offset,
            f.records,
            f.bytes,
            if f.visible { "" } else { " NOT VISIBLE" },
            f.url
        )?;
    }
    Ok(())
}

fn print_verification(v: &Verification, out: &mut impl Write) -> std::io::Result<()> {
    for (what, problems) in [("missing", &v.missing), ("wrong size", &v.wrong_size)] {
        for p in problems {
            writeln!(
                out,
                "{what:<11} {} (checkpoint {}, subtask {}): {}",
                p.url, p.checkpoint, p.subtask, p.detail
            )?;
        }
    }
    for u in &v.unaccounted {
        writeln!(out, "unaccounted {u}: no committed checkpoint names it")?;
    }
    for s in &v.staged {
        writeln!(
            out,
            "staged      {s}: not committed (being written, or left by a crash: the next start removes it)"
        )?;
    }
    if let Some(t) = &v.table {
        for p in &t.lacking {
            writeln!(
                out,
                "not in table {} (checkpoint {}, subtask {}): {}",
                p.url, p.checkpoint, p.subtask, p.detail
            )?;
        }
        for u in &t.unknown {
            writeln!(out, "in table    {u}: a live table file no commit names")?;
        }
        for (table, snapshot) in &t.snapshots {
            let at = snapshot.map_or("no snapshot".to_string(), |s| format!("snapshot {s}"));
            writeln!(out, "table       {table} at {at}")?;
        }
        writeln!(
            out,
            "table check: {} live files, {} committed files lacking, {} unknown",
            t.files,
            t.lacking.len(),
            t.unknown.len()
        )?;
    }
    writeln!(
        out,
        "log verify: {} commits, {} files: {} missing, {} of the wrong size, {} unaccounted, {} staged — {}",
        v.commits,
        v.files,
        v.missing.len(),
        v.wrong_size.len(),
        v.unaccounted.len(),
        v.staged.len(),
        if v.ok() { "ok" } else { "PROBLEMS" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_topic_partition_at_offset() {
        let (tp, offset) = parse_record("my/topic/3@1234").unwrap();
        assert_eq!(
            (tp.topic.as_str(), tp.partition, offset),
            ("my/topic", 3, 1234)
        );
        for bad in ["events/3", "events@3", "/3@1", "events/x@1", "events/3@"] {
            assert!(parse_record(bad).is_err(), "{bad}");
        }
    }
}
