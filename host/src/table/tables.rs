//! The data and dropped records' tables: created on first start, evolved
//! with the plugin's columns, and appended to once per commit, after its
//! files are published and before their staging entries go.
//!
//! What a table holds is read from the table itself: each append's
//! snapshot summary names the commit (`lineage.subtask`,
//! `lineage.commit-seq`, `lineage.checkpoint-id`), and the same commit
//! sets the table property `lineage.subtask-<K>.commit-seq`, which
//! survives snapshot expiry. A subtask's commits are appended in the
//! order of their sequence numbers (a commit is written only once the one
//! before it is finished), so the highest of the two is how far that
//! subtask's commits are in the table.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_schema::Schema as ArrowSchema;
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableCreation, TableIdent};

use super::catalog::{OneShot, connect};
use super::error::TableError;
use super::files::{data_file, footer, written_for_a_table};
use super::settings::{TableName, TableSettings};
use super::shape::{evolution, field_ids, iceberg_schema, partition_problems, partition_spec};
use super::storage::Stores;
use crate::commit::{Commit, Tables};
use crate::error::Carried;
use crate::failpoints::{self, Failpoint};
use crate::sink::{FieldIds, TableIds};
use crate::staging::{FileKind, Outputs, SealedFile};
use crate::store::S3Settings;

const SUBTASK: &str = "lineage.subtask";
const COMMIT_SEQ: &str = "lineage.commit-seq";
const CHECKPOINT_ID: &str = "lineage.checkpoint-id";
const OWNER: &str = "lineage.owner";
/// The commit log whose sequence numbers the table's summaries and
/// watermarks count in.
const COMMIT_LOG: &str = "lineage.commit-log";
const PLUGIN: &str = "lineage.plugin-sha256";

/// The table property that says how far `subtask`'s commits are appended.
fn watermark(subtask: u32) -> String {
    format!("lineage.subtask-{subtask}.commit-seq")
}

/// Conflicts with other writers retried on fresh metadata before the
/// error goes to the committer's own retry (which retries it again).
const CONFLICT_ATTEMPTS: u32 = 20;

/// What the files of one output are registered in.
struct Handle {
    name: TableName,
    ident: TableIdent,
    ids: Arc<FieldIds>,
}

pub struct IcebergTables {
    catalog: Arc<dyn Catalog>,
    catalog_name: String,
    data: Handle,
    dropped: Handle,
    outputs: Outputs,
    /// WRITE_AHEAD_COMMIT_LOG_PATH, as the table records it.
    log: String,
    /// How far each table holds each subtask's commits, as last read.
    appended: Mutex<HashMap<(FileKind, u32), u64>>,
    /// Told of every snapshot this instance appends (the status page).
    watcher: std::sync::OnceLock<Box<Watch>>,
}

type Watch = dyn Fn(&str, i64, &Commit) + Send + Sync;

/// The two tables' shapes as the sink writes them (timestamps in micros,
/// no ids yet).
pub struct Shapes<'a> {
    pub data: &'a ArrowSchema,
    pub event_time: Option<&'a str>,
    pub dropped: &'a ArrowSchema,
}

impl IcebergTables {
    /// Connects, and creates or evolves both tables for `shapes`.
    pub async fn open(
        settings: &TableSettings,
        outputs: &Outputs,
        s3: &S3Settings,
        log: &str,
        shapes: &Shapes<'_>,
    ) -> Result<Arc<Self>, TableError> {
        let tables = Self::connect(settings, outputs, s3, log).await?;
        tables
            .ensure(FileKind::Data, shapes.data, shapes.event_time)
            .await?;
        tables
            .ensure(FileKind::Dropped, shapes.dropped, None)
            .await?;
        Ok(tables)
    }

    /// Connects, for reading what the tables hold (`trace`, `log verify`).
    pub async fn connect(
        settings: &TableSettings,
        outputs: &Outputs,
        s3: &S3Settings,
        log: &str,
    ) -> Result<Arc<Self>, TableError> {
        let stores = Stores::new(
            vec![outputs.data.clone(), outputs.dropped.clone()],
            s3.clone(),
        );
        let catalog = connect(&settings.catalog, &outputs.data.url, stores)
            .await
            .map_err(|source| TableError::Catalog {
                catalog: settings.catalog.uri.clone(),
                op: "connecting for",
                table: settings.data.to_string(),
                source: Box::new(source),
            })?;
        let handle = |name: &TableName| Handle {
            ident: TableIdent::new(
                NamespaceIdent::from_vec(name.namespace.clone())
                    .expect("a parsed name has a namespace"),
                name.name.clone(),
            ),
            name: name.clone(),
            ids: Arc::new(FieldIds::default()),
        };
        Ok(Arc::new(Self {
            catalog,
            catalog_name: settings.catalog.uri.clone(),
            data: handle(&settings.data),
            dropped: handle(&settings.dropped),
            outputs: outputs.clone(),
            log: log.to_string(),
            appended: Mutex::new(HashMap::new()),
            watcher: std::sync::OnceLock::new(),
        }))
    }

    /// Calls `watch` with the table, the snapshot and the commit of every
    /// append from now on.
    pub fn watch(&self, watch: impl Fn(&str, i64, &Commit) + Send + Sync + 'static) {
        let _ = self.watcher.set(Box::new(watch));
    }

    /// The field ids the sink annotates its files with.
    pub fn ids(&self) -> TableIds {
        TableIds {
            data: self.data.ids.clone(),
            dropped: self.dropped.ids.clone(),
        }
    }

    fn handle(&self, kind: FileKind) -> &Handle {
        match kind {
            FileKind::Data => &self.data,
            FileKind::Dropped => &self.dropped,
        }
    }

    fn failed(&self, op: &'static str, h: &Handle) -> impl FnOnce(iceberg::Error) -> TableError {
        let (catalog, table) = (self.catalog_name.clone(), h.name.to_string());
        move |source| TableError::Catalog {
            catalog,
            op,
            table,
            source: Box::new(source),
        }
    }

    pub async fn load(&self, kind: FileKind) -> Result<Table, TableError> {
        let h = self.handle(kind);
        self.catalog
            .load_table(&h.ident)
            .await
            .map_err(self.failed("loading", h))
    }

    /// Creates the table if it is missing, then evolves it to `shape`.
    async fn ensure(
        &self,
        kind: FileKind,
        shape: &ArrowSchema,
        event_time: Option<&str>,
    ) -> Result<(), TableError> {
        let h = self.handle(kind);
        let namespace = h.ident.namespace();
        let exists = self
            .catalog
            .namespace_exists(namespace)
            .await
            .map_err(self.failed("looking up the namespace of", h))?;
        let created = match exists {
            true => Ok(()),
            false => self
                .catalog
                .create_namespace(namespace, HashMap::new())
                .await
                .map(drop),
        };
        // Another instance may have created it first (the SQL catalog then
        // fails on its key, not with AlreadyExists).
        if let Err(e) = created
            && !self
                .catalog
                .namespace_exists(namespace)
                .await
                .unwrap_or(false)
        {
            return Err(self.failed("creating the namespace of", h)(e));
        }
        let found = self
            .catalog
            .table_exists(&h.ident)
            .await
            .map_err(self.failed("looking up", h))?;
        if !found {
            let schema = iceberg_schema(shape).map_err(self.failed("making the schema of", h))?;
            let spec =
                partition_spec(&schema, event_time).map_err(self.failed("partitioning", h))?;
            let creation = TableCreation::builder()
                .name(h.ident.name().to_string())
                .location(self.outputs.location(kind).url.clone())
                .schema(schema)
                .partition_spec(spec)
                .properties([
                    (COMMIT_LOG.to_string(), self.log.clone()),
                    ("write.format.default".to_string(), "parquet".to_string()),
                    (
                        "lineage.created-by".to_string(),
                        format!("lineage {}", env!("CARGO_PKG_VERSION")),
                    ),
                ])
                .build();
            match self.catalog.create_table(namespace, creation).await {
                Ok(_) => {
                    tracing::info!(table = %h.name, location = %self.outputs.location(kind).url, "created the Iceberg table")
                }
                Err(e) => {
                    // Another instance created it first.
                    if !self.catalog.table_exists(&h.ident).await.unwrap_or(false) {
                        return Err(self.failed("creating", h)(e));
                    }
                }
            }
        }
        let table = self.load(kind).await?;
        if let Some(other) = table.metadata().properties().get(COMMIT_LOG)
            && other != &self.log
        {
            return Err(TableError::Config {
                setting: match kind {
                    FileKind::Data => crate::setting::ICEBERG_TABLE,
                    FileKind::Dropped => crate::setting::ICEBERG_DROPPED_TABLE,
                },
                problem: format!(
                    "table {} holds the commits of the commit log at {other}, not of {}; give each pipeline its own table",
                    h.name, self.log
                ),
            });
        }
        self.evolve(kind, shape, event_time).await
    }

    /// Adds the columns of `shape` the table lacks, or says why `shape`
    /// cannot be written to it; then takes the table's field ids. Run
    /// before a build's first file (at start, and when a swap is offered).
    pub async fn evolve(
        &self,
        kind: FileKind,
        shape: &ArrowSchema,
        event_time: Option<&str>,
    ) -> Result<(), TableError> {
        let h = self.handle(kind);
        let wanted = iceberg_schema(shape).map_err(self.failed("making the schema for", h))?;
        for attempt in 1.. {
            let table = self.load(kind).await?;
            let current = table.metadata().current_schema();
            let spec = table.metadata().default_partition_spec();
            let mut problems = partition_problems(current, spec, event_time);
            let add = evolution(current, &wanted).unwrap_or_else(|more| {
                problems.extend(more);
                Vec::new()
            });
            if !problems.is_empty() {
                return Err(TableError::Incompatible {
                    table: h.name.to_string(),
                    problems,
                });
            }
            if add.is_empty() {
                h.ids.set(field_ids(current));
                return Ok(());
            }
            let tx = Transaction::new(&table);
            let mut update = tx.update_schema();
            for field in &add {
                update = update.add_column(AddColumn::optional(
                    &field.name,
                    (*field.field_type).clone(),
                ));
            }
            let tx = update.apply(tx).map_err(self.failed("evolving", h))?;
            match tx
                .commit(&OneShot {
                    catalog: self.catalog.as_ref(),
                    base: &table,
                })
                .await
            {
                Ok(table) => {
                    let names: Vec<&str> = add.iter().map(|f| f.name.as_str()).collect();
                    tracing::info!(table = %h.name, added = ?names, "evolved the table's schema");
                    h.ids.set(field_ids(table.metadata().current_schema()));
                    return Ok(());
                }
                Err(e)
                    if e.kind() == ErrorKind::CatalogCommitConflicts
                        && attempt < CONFLICT_ATTEMPTS =>
                {
                    backoff(attempt).await;
                }
                Err(e) => return Err(self.failed("evolving", h)(e)),
            }
        }
        unreachable!("the loop returns")
    }

    async fn append_kind(
        &self,
        kind: FileKind,
        commit: &Commit,
        files: &[&SealedFile],
    ) -> Result<(), TableError> {
        let subtask = commit.owner.subtask;
        if self.known(kind, subtask) >= Some(commit.seq) {
            return Ok(());
        }
        let h = self.handle(kind);
        let location = self.outputs.location(kind);
        // Read once, and only for a commit the table lacks: a start
        // finishes up to a snapshot's worth of commits, mostly appended.
        let mut footers = None;
        for attempt in 1.. {
            let table = self.load(kind).await?;
            let through = appended_through(table.metadata(), subtask);
            if through >= Some(commit.seq) {
                self.note(kind, subtask, through);
                return Ok(());
            }
            if footers.is_none() {
                footers = Some(read_footers(location, files).await?);
            }
            let read = footers.as_ref().expect("read above");
            if !read.iter().all(written_for_a_table) {
                tracing::warn!(table = %h.name, commit_seq = commit.seq, owner = %commit.owner, "not appending a commit whose files were written without TABLE_FORMAT=iceberg (before the table was switched on, or by an instance without it)");
                return Ok(());
            }
            let metadata = table.metadata();
            let (schema, spec) = (metadata.current_schema(), metadata.default_partition_spec());
            let data_files = files
                .iter()
                .zip(read)
                .map(|(f, m)| data_file(f, m, schema, spec))
                .collect::<Result<Vec<_>, _>>()?;
            let tx = Transaction::new(&table);
            let append = tx
                .fast_append()
                .with_check_duplicate(false)
                .add_data_files(data_files)
                .set_snapshot_properties(summary(commit));
            let tx = append.apply(tx).map_err(self.failed("appending to", h))?;
            let props = tx
                .update_table_properties()
                .set(watermark(subtask), commit.seq.to_string());
            let tx = props.apply(tx).map_err(self.failed("appending to", h))?;
            // Between the check and the commit: held here, another
            // instance's append lands in between and this one conflicts.
            failpoints::hit(Failpoint::BeforeTableAppend)?;
            match tx
                .commit(&OneShot {
                    catalog: self.catalog.as_ref(),
                    base: &table,
                })
                .await
            {
                Ok(table) => {
                    let snapshot = table.metadata().current_snapshot_id();
                    tracing::debug!(table = %h.name, commit_seq = commit.seq, snapshot = ?snapshot, files = files.len(), "appended a commit to the table");
                    failpoints::hit(Failpoint::AfterTableAppend)?;
                    self.note(kind, subtask, Some(commit.seq));
                    if let (Some(watch), Some(snapshot)) = (self.watcher.get(), snapshot) {
                        watch(&h.name.to_string(), snapshot, commit);
                    }
                    return Ok(());
                }
                Err(e)
                    if e.kind() == ErrorKind::CatalogCommitConflicts
                        && attempt < CONFLICT_ATTEMPTS =>
                {
                    tracing::info!(table = %h.name, commit_seq = commit.seq, attempt, "another writer moved the table; checking it again before retrying the append");
                    backoff(attempt).await;
                }
                Err(e) => return Err(self.failed("appending to", h)(e)),
            }
        }
        unreachable!("the loop returns")
    }

    fn known(&self, kind: FileKind, subtask: u32) -> Option<u64> {
        self.appended
            .lock()
            .expect("appended lock")
            .get(&(kind, subtask))
            .copied()
    }

    fn note(&self, kind: FileKind, subtask: u32, seq: Option<u64>) {
        if let Some(seq) = seq {
            let mut appended = self.appended.lock().expect("appended lock");
            let known = appended.entry((kind, subtask)).or_default();
            *known = (*known).max(seq);
        }
    }
}

#[async_trait::async_trait]
impl Tables for IcebergTables {
    async fn append(&self, commit: &Commit) -> Result<(), Carried> {
        for kind in [FileKind::Data, FileKind::Dropped] {
            let files: Vec<&SealedFile> = commit.files.iter().filter(|f| f.kind == kind).collect();
            if !files.is_empty() {
                self.append_kind(kind, commit, &files)
                    .await
                    .map_err(|e| Carried(Box::new(e)))?;
            }
        }
        Ok(())
    }
}

/// The footers of `files`, 16 reads at a time.
async fn read_footers(
    location: &crate::store::Location,
    files: &[&SealedFile],
) -> Result<Vec<parquet::file::metadata::ParquetMetaData>, TableError> {
    let mut footers = Vec::with_capacity(files.len());
    for chunk in files.chunks(16) {
        let reads = chunk.iter().map(|f| Box::pin(footer(location, f)));
        footers.extend(futures::future::try_join_all(reads).await?);
    }
    Ok(footers)
}

/// How far `subtask`'s commits are in the table: the highest commit its
/// snapshots name, or its property says.
fn appended_through(metadata: &TableMetadata, subtask: u32) -> Option<u64> {
    let property = metadata
        .properties()
        .get(&watermark(subtask))
        .and_then(|v| v.parse().ok());
    let summaries = metadata.snapshots().filter_map(|s| {
        let (sub, seq) = named_commit(s)?;
        (sub == subtask).then_some(seq)
    });
    summaries.chain(property).max()
}

/// The commit a snapshot appended, by its summary.
fn named_commit(snapshot: &iceberg::spec::Snapshot) -> Option<(u32, u64)> {
    let props = &snapshot.summary().additional_properties;
    Some((
        props.get(SUBTASK)?.parse().ok()?,
        props.get(COMMIT_SEQ)?.parse().ok()?,
    ))
}

fn summary(commit: &Commit) -> HashMap<String, String> {
    HashMap::from([
        (SUBTASK.to_string(), commit.owner.subtask.to_string()),
        (COMMIT_SEQ.to_string(), commit.seq.to_string()),
        (CHECKPOINT_ID.to_string(), commit.checkpoint.to_string()),
        (OWNER.to_string(), commit.owner.to_string()),
        (PLUGIN.to_string(), commit.plugin.sha256.clone()),
    ])
}

async fn backoff(attempt: u32) {
    let ms = 20u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(ms + rand::random_range(0..ms))).await;
}

/// What a table holds, for `lineage log verify` and `lineage trace`.
pub struct Holdings {
    /// Every live data file's path.
    pub files: HashSet<String>,
    /// The commits its snapshots name, with the snapshot.
    pub commits: HashMap<(u32, u64), i64>,
    /// Its current snapshot.
    pub current: Option<i64>,
}

impl IcebergTables {
    pub async fn holdings(&self, kind: FileKind) -> Result<Holdings, TableError> {
        let h = self.handle(kind);
        let table = self.load(kind).await?;
        let metadata = table.metadata();
        let commits = metadata
            .snapshots()
            .filter_map(|s| named_commit(s).map(|c| (c, s.snapshot_id())))
            .collect();
        let mut files = HashSet::new();
        if let Some(snapshot) = metadata.current_snapshot() {
            let list = table
                .manifest_list_reader(snapshot)
                .load()
                .await
                .map_err(self.failed("reading the manifests of", h))?;
            for manifest in list.entries() {
                let manifest = manifest
                    .load_manifest(table.file_io())
                    .await
                    .map_err(self.failed("reading a manifest of", h))?;
                for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                    files.insert(entry.data_file().file_path().to_string());
                }
            }
        }
        Ok(Holdings {
            files,
            commits,
            current: metadata.current_snapshot_id(),
        })
    }

    /// The snapshot that appended `subtask`'s commit `seq`, if the table
    /// still has it.
    pub async fn snapshot_of(
        &self,
        kind: FileKind,
        subtask: u32,
        seq: u64,
    ) -> Result<Option<i64>, TableError> {
        let table = self.load(kind).await?;
        Ok(table
            .metadata()
            .snapshots()
            .find(|s| named_commit(s) == Some((subtask, seq)))
            .map(|s| s.snapshot_id()))
    }

    pub fn table_name(&self, kind: FileKind) -> String {
        self.handle(kind).name.to_string()
    }
}
