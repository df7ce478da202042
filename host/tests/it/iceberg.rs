//! TABLE_FORMAT=iceberg: every checkpoint's files appended to an Iceberg
//! table (the SQL catalog on sqlite) as one snapshot, exactly once through
//! crashes at each new failpoint, a lost catalog reply, kill -9 under load
//! and three instances appending at once; read back by pyiceberg and
//! DuckDB's iceberg extension, and checked against the commit log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rand::Rng;
use serde_json::Value as Json;

use crate::pipeline_support::{
    Broker, Contents, Lineage, Paths, Store, assert_exactly_once, ends, generate_args, produce,
    read_output, tool, tools_dir, wait_committed,
};
use lineage::commit::Commit;
use lineage::staging::FileKind;

const PARTITIONS: i32 = 10;
pub const TABLE: &str = "lineage.events";

/// `paths` with TABLE_FORMAT=iceberg on a sqlite catalog in the test's
/// directory, for every run and every `lineage` command of the test.
pub fn with_iceberg(mut paths: Paths) -> Paths {
    let db = paths.file("catalog.db");
    paths.env.extend([
        ("TABLE_FORMAT".into(), "iceberg".into()),
        (
            "ICEBERG_CATALOG_URI".into(),
            format!("sqlite://{}", db.display()),
        ),
        ("ICEBERG_TABLE".into(), TABLE.into()),
    ]);
    paths
}

/// Both tables as pyiceberg and DuckDB read them (read_table.py).
pub fn read_table(paths: &Paths, column: Option<&str>) -> Json {
    let python = tool(tools_dir().join("python/bin/python"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/read_table.py");
    let db = paths.file("catalog.db");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(format!("sqlite:///{}", db.display()))
        .arg(&paths.output)
        .arg(TABLE)
        .envs(paths.env.iter().map(|(k, v)| (k, v)));
    if let Some(c) = column {
        command.args(["--column", c]);
    }
    let out = command.output().expect("run the table reader");
    assert!(
        out.status.success(),
        "table reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reader JSON")
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// The table against the log, for one kind of file: each live file is a
/// committed one, listed once; each commit with files of this kind is
/// exactly one snapshot, whose summary names it and which added exactly
/// its files; and rows read equal rows committed. Returns the rows.
pub fn assert_table_matches_log(commits: &[Commit], table: &Json, kind: FileKind) -> u64 {
    let files = strings(&table["files"]);
    let unique: BTreeSet<&String> = files.iter().collect();
    assert_eq!(
        unique.len(),
        files.len(),
        "a file is in the table twice: {files:?}"
    );
    let mut committed = BTreeSet::new();
    let mut rows = 0;
    let mut by_commit: BTreeMap<(u64, u64), (u64, BTreeSet<String>)> = BTreeMap::new();
    for c in commits {
        let mine: BTreeSet<String> = c
            .files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.url.clone())
            .collect();
        if mine.is_empty() {
            continue;
        }
        rows += c
            .files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.records)
            .sum::<u64>();
        committed.extend(mine.iter().cloned());
        by_commit.insert((u64::from(c.owner.subtask), c.seq), (c.checkpoint, mine));
    }
    let live: BTreeSet<String> = unique.into_iter().cloned().collect();
    assert_eq!(
        live, committed,
        "the table's files are not the committed {kind:?} files"
    );
    let mut seen = BTreeSet::new();
    for snapshot in table["snapshots"].as_array().unwrap() {
        let summary = &snapshot["summary"];
        let field = |k: &str| -> u64 {
            summary[k]
                .as_str()
                .unwrap_or_else(|| panic!("no {k} in {summary}"))
                .parse()
                .unwrap()
        };
        if summary["operation"] != "append" {
            continue;
        }
        let key = (field("lineage.subtask"), field("lineage.commit-seq"));
        let (checkpoint, files) = by_commit
            .get(&key)
            .unwrap_or_else(|| panic!("snapshot {snapshot} names no commit with {kind:?} files"));
        assert_eq!(field("lineage.checkpoint-id"), *checkpoint, "{snapshot}");
        assert!(seen.insert(key), "commit {key:?} appended twice");
        let added: BTreeSet<String> = strings(&table["added"][snapshot["id"].to_string().as_str()])
            .into_iter()
            .collect();
        assert_eq!(
            &added, files,
            "snapshot {} added other files than commit {key:?}",
            snapshot["id"]
        );
    }
    let appended: BTreeSet<_> = by_commit.keys().copied().collect();
    assert_eq!(seen, appended, "commits not appended as one snapshot each");
    assert_eq!(
        table["rows"].as_u64(),
        Some(rows),
        "pyiceberg reads other rows than committed"
    );
    assert_eq!(
        table["duckdb_rows"].as_u64(),
        Some(rows),
        "DuckDB reads other rows than committed"
    );
    rows
}

/// Both tables against the log, and the Parquet files against the topic.
pub fn check(paths: &Paths, contents: &Contents) -> Json {
    let (kept, dropped) = assert_exactly_once(contents, &read_output(paths));
    let table = read_table(paths, None);
    let commits = paths.commits();
    assert_eq!(
        assert_table_matches_log(&commits, &table["data"], FileKind::Data),
        kept as u64
    );
    assert_eq!(
        assert_table_matches_log(&commits, &table["dropped"], FileKind::Dropped),
        dropped as u64
    );
    table
}

/// Runs to the end of the topic, stops gracefully, and checks the table.
fn finish_and_check(broker: &Broker, paths: &Paths, total: usize) -> Json {
    let contents = broker.contents("events", PARTITIONS, total);
    let run = Lineage::start_ready(broker, "events", paths, &[]);
    wait_committed(paths, "events", &ends(&contents));
    let status = run.terminate();
    assert!(
        status.success(),
        "graceful stop failed: {status}\n{}",
        paths.log()
    );
    check(paths, &contents)
}

#[test]
fn a_clean_run_appends_each_checkpoint_to_the_table_once() {
    clean_run(Store::Local);
}

#[test]
fn a_clean_run_with_data_on_s3_appends_each_checkpoint_to_the_table_once() {
    clean_run(Store::Moto);
}

fn clean_run(store: Store) {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = with_iceberg(Paths::on(store));
    produce(&broker, "events", 0, 20_000, 0.1);
    let run = Lineage::start(&broker, "events", &paths, &[]);
    wait_committed(
        &paths,
        "events",
        &ends(&broker.contents("events", PARTITIONS, 20_000)),
    );
    produce(&broker, "events", 20_000, 5_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 25_000);
    wait_committed(&paths, "events", &ends(&contents));
    // The status page shows the last snapshot appended.
    let last = paths
        .commits()
        .iter()
        .rev()
        .find(|c| c.files.iter().any(|f| f.kind == FileKind::Data))
        .unwrap()
        .seq;
    let address = crate::observability::metrics_address(&paths.log());
    let mut shown = Json::Null;
    crate::pipeline_support::wait_or(
        "the last append on /status",
        Duration::from_secs(30),
        || {
            let (_, body) = crate::observability::get(&address, "/status");
            let live: Json = serde_json::from_str(&body).unwrap_or_default();
            shown = live["live"]["tables"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["table"] == TABLE))
                .cloned()
                .unwrap_or_default();
            shown["commit_seq"].as_u64() == Some(last)
        },
        || paths.log(),
    );
    let status = run.terminate();
    assert!(status.success(), "{status}\n{}", paths.log());
    assert!(
        paths.log().contains("created the Iceberg table"),
        "{}",
        paths.log()
    );
    let table = check(&paths, &contents);
    let data = &table["data"];
    assert!(data["snapshots"].as_array().unwrap().len() >= 2, "{data}");
    // Hidden partitioning by the event time's hour, and every column an id.
    assert_eq!(
        data["spec"],
        serde_json::json!([["timestamp", "hour"]]),
        "{data}"
    );
    for column in [
        "uuid",
        "timestamp",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "checkpoint_id",
    ] {
        assert!(
            data["fields"][column].as_u64().is_some(),
            "{column} has no field id: {data}"
        );
    }
    for (file, partition) in data["partitions"].as_object().unwrap() {
        // year=YYYY/month=MM/day=DD/hour=HH in the path: the same hour.
        let hour = partition["timestamp_hour"]
            .as_i64()
            .unwrap_or_else(|| panic!("{file}: {partition}"));
        let dir = chrono::DateTime::from_timestamp(hour * 3600, 0)
            .unwrap()
            .format("year=%Y/month=%m/day=%d/hour=%H")
            .to_string();
        assert!(
            file.contains(&dir),
            "{file} is partitioned as hour {hour} ({dir})"
        );
    }
    check_file_field_ids(&paths, data);
    check_file_metrics(&paths.commits(), data);
    let appended_last = data["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["summary"]["lineage.commit-seq"].as_str() == Some(last.to_string().as_str()))
        .unwrap();
    assert_eq!(shown["snapshot_id"], appended_last["id"], "{shown}");

    // `lineage log verify` checks the table against the log.
    let out = paths.lineage(&["log", "verify", "--json"]);
    let verified: Json = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert!(
        out.status.success(),
        "{verified}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(
        verified["table"]["lacking"],
        serde_json::json!([]),
        "{verified}"
    );
    assert!(
        verified["table"]["files"].as_u64().unwrap() > 0,
        "{verified}"
    );

    // `lineage trace` names the snapshot that added the record's file.
    let commits = paths.commits();
    let file = commits
        .iter()
        .flat_map(|c| c.files.iter())
        .find(|f| f.kind == FileKind::Data)
        .unwrap();
    let record = format!("events/{}@{}", file.source.partition, file.first_offset);
    let out = paths.lineage(&["trace", &record, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let traced: Json = serde_json::from_slice(&out.stdout).unwrap();
    let snapshot = traced["snapshot_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{traced}"));
    let added = strings(&data["added"][snapshot.to_string().as_str()]);
    assert!(
        added.contains(&file.url),
        "snapshot {snapshot} did not add {}: {traced}",
        file.url
    );
    let out = paths.lineage(&["trace", &record]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("snapshot    {snapshot}")), "{text}");

    // A restart with nothing new appends nothing.
    let again = Lineage::start_ready(&broker, "events", &paths, &[]);
    wait_committed(&paths, "events", &ends(&contents));
    assert!(again.terminate().success());
    let after = check(&paths, &contents);
    assert_eq!(after["data"]["snapshots"], data["snapshots"]);
}

/// Each data file is registered with what its footer says: its record
/// count and size as the log has them, a value and no null per record in
/// each required column, and its Kafka offsets as the bounds of
/// `kafka_offset`, so that engines prune by them.
fn check_file_metrics(commits: &[Commit], data: &Json) {
    let metrics = data["metrics"]
        .as_object()
        .unwrap_or_else(|| panic!("{data}"));
    let mut checked = 0;
    for f in commits
        .iter()
        .flat_map(|c| c.files.iter())
        .filter(|f| f.kind == FileKind::Data)
    {
        let m = &metrics[f.url.as_str()];
        assert_eq!(
            m["record_count"].as_u64(),
            Some(f.records),
            "{}: {m}",
            f.url
        );
        assert_eq!(
            m["file_size_in_bytes"].as_u64(),
            Some(f.bytes),
            "{}: {m}",
            f.url
        );
        let offsets = &m["columns"]["kafka_offset"];
        assert_eq!(
            offsets["lower_bound"].as_i64(),
            Some(f.first_offset),
            "{}: {m}",
            f.url
        );
        assert_eq!(
            offsets["upper_bound"].as_i64(),
            Some(f.last_offset),
            "{}: {m}",
            f.url
        );
        for column in ["uuid", "timestamp", "kafka_partition", "checkpoint_id"] {
            let c = &m["columns"][column];
            assert_eq!(
                c["value_count"].as_u64(),
                Some(f.records),
                "{column} of {}: {m}",
                f.url
            );
            assert_eq!(
                c["null_value_count"].as_u64(),
                Some(0),
                "{column} of {}: {m}",
                f.url
            );
        }
        let partition = &m["columns"]["kafka_partition"];
        assert_eq!(
            partition["lower_bound"].as_i64(),
            Some(i64::from(f.source.partition)),
            "{m}"
        );
        checked += 1;
    }
    assert!(checked > 0);
}

/// The Parquet files carry the table's field ids (`PARQUET:field_id`).
fn check_file_field_ids(paths: &Paths, data: &Json) {
    if paths.output.starts_with("s3://") {
        return;
    }
    let file = strings(&data["files"]).into_iter().next().unwrap();
    let python = tool(tools_dir().join("python/bin/python"));
    let out = Command::new(python)
        .args(["-c", "import json, sys, pyarrow.parquet as pq; s = pq.read_schema(sys.argv[1]); print(json.dumps({f.name: int(f.metadata[b'PARQUET:field_id']) for f in s}))"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Json = serde_json::from_slice(&out.stdout).unwrap();
    for (name, id) in ids.as_object().unwrap() {
        assert_eq!(&data["fields"][name], id, "{name} in {file}");
    }
}

/// Crashes at `point` with the table on, restarts, and checks that the
/// table holds each commit once.
pub fn crash_at(point: &str) {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = with_iceberg(Paths::new());
    produce(&broker, "events", 0, 3_000, 0.2);
    let failpoints = format!("{point}=exit");
    let mut crashing = Lineage::start(
        &broker,
        "events",
        &paths,
        &[("LINEAGE_FAILPOINTS", failpoints.as_str())],
    );
    let status = crashing.wait(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(lineage::failpoints::EXIT_CODE),
        "lineage did not stop at {point}: {status}\n{}",
        paths.log()
    );
    let commits = paths.commits();
    let crashed = commits
        .iter()
        .rev()
        .find(|c| !c.files.is_empty())
        .expect("a commit with files");
    let table = read_table(&paths, None);
    let appended = table["data"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| {
            s["summary"]["lineage.commit-seq"].as_str() == Some(crashed.seq.to_string().as_str())
        });
    // Before the append the table lacks the commit; after it, holds it.
    assert_eq!(appended, point == "after-table-append", "{point}: {table}");
    produce(&broker, "events", 3_000, 1_000, 0.2);
    finish_and_check(&broker, &paths, 4_000);
}

/// The catalog's reply to an append is lost (the append landed, the run
/// saw an error): the retry finds the commit in the table and appends
/// nothing twice.
#[test]
fn a_lost_reply_to_every_append_appends_nothing_twice() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = with_iceberg(Paths::new());
    produce(&broker, "events", 0, 5_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 5_000);
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[("LINEAGE_FAILPOINTS", "after-table-append=error@*")],
    );
    wait_committed(&paths, "events", &ends(&contents));
    assert!(run.terminate().success(), "{}", paths.log());
    assert!(
        paths.log().contains("after-table-append"),
        "the failpoint never fired: {}",
        paths.log()
    );
    check(&paths, &contents);
}

#[test]
fn kill_9_at_random_instants_under_load_appends_each_commit_once() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = with_iceberg(Paths::new());
    let producer = {
        let args = generate_args(&broker, "events", 0, 60_000, 0.1, 6_000.0);
        std::thread::spawn(move || {
            lineage::cli::generate::generate(&args, None, None).expect("produce")
        })
    };
    let mut rng = rand::rng();
    for _ in 0..20 {
        let run = Lineage::start(&broker, "events", &paths, &[]);
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        run.kill();
    }
    assert_eq!(producer.join().expect("producer thread").failed, 0);
    finish_and_check(&broker, &paths, 60_000);
}

/// Three instances of one group append to one table at once; one is
/// killed and restarted. Conflicts between them are retried on the new
/// metadata, and every commit is in the table once.
#[test]
fn three_instances_append_to_one_table_exactly_once() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = with_iceberg(Paths::new());
    let group = format!("iceberg-{}", uuid::Uuid::new_v4().simple());
    let log_of = |subtask: u32| {
        std::fs::read_to_string(paths.file(&format!("subtask-{subtask}.log"))).unwrap_or_default()
    };
    let start = |subtask: u32| {
        let s = subtask.to_string();
        Lineage::start_logging_to(
            &broker,
            "events",
            &paths,
            &[
                ("KAFKA_GROUP_ID", group.as_str()),
                ("SUBTASK_INDEX", s.as_str()),
                // Each append holds the metadata it checked for a while, so
                // that the others' appends land in between.
                ("LINEAGE_FAILPOINTS", "before-table-append=sleep:150@*"),
            ],
            &paths.file(&format!("subtask-{subtask}.log")),
        )
    };
    let mut runs: Vec<Lineage> = (0..3).map(start).collect();
    crate::pipeline_support::wait_or(
        "every instance to hold partitions",
        Duration::from_secs(90),
        || (0..3).all(|i| log_of(i).contains("partitions assigned assigned=events/")),
        || (0..3).map(log_of).collect::<Vec<_>>().join("\n"),
    );
    let producer = {
        let args = generate_args(&broker, "events", 0, 30_000, 0.1, 3_000.0);
        std::thread::spawn(move || {
            lineage::cli::generate::generate(&args, None, None).expect("produce")
        })
    };
    // Killed once the three have appended some, and started again.
    crate::pipeline_support::wait_or(
        "appends by every instance",
        Duration::from_secs(90),
        || (0..3).all(|i| log_of(i).contains("holding failpoint")),
        || (0..3).map(log_of).collect::<Vec<_>>().join("\n"),
    );
    runs.remove(1).kill();
    runs.insert(1, start(1));
    assert_eq!(producer.join().expect("producer thread").failed, 0);
    let contents = broker.contents("events", PARTITIONS, 30_000);
    wait_committed(&paths, "events", &ends(&contents));
    for (i, run) in runs.into_iter().enumerate() {
        let status = run.terminate();
        assert!(
            status.success(),
            "subtask {i}: {status}\n{}",
            log_of(i as u32)
        );
    }
    let table = check(&paths, &contents);
    let conflicts: usize = (0..3)
        .map(|i| log_of(i).matches("another writer moved the table").count())
        .sum();
    assert!(conflicts > 0, "the instances' appends never met");
    let subtasks: BTreeSet<String> = table["data"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["summary"]["lineage.subtask"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        subtasks.len() >= 2,
        "one table, appended to by several subtasks: {subtasks:?}"
    );
}

/// A build that adds a column evolves the table before its first file:
/// rows written before read the column as null, rows after as the build
/// wrote it. A build without a required column of the table is refused
/// with the reason, and the build in use keeps running.
#[test]
fn a_swap_that_adds_a_column_evolves_the_table_and_one_that_drops_one_is_refused() {
    use crate::support::components;
    use crate::swap::{replace, sha256};

    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = with_iceberg(Paths::new());
    let dir = paths.file("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let active = dir.join("plugin.wasm");
    std::fs::copy(&components().enrich, &active).unwrap();
    let dir_text = dir.display().to_string();
    produce(&broker, "events", 0, 5_000, 0.1);
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[("PLUGIN_PATH", &dir_text), ("PLUGIN_WATCH_INTERVAL", "0")],
    );
    wait_committed(
        &paths,
        "events",
        &ends(&broker.contents("events", PARTITIONS, 5_000)),
    );

    // pseudonymize has no `uuid`, which the table requires.
    replace(&active, &std::fs::read(&components().pseudonymize).unwrap());
    run.reload();
    crate::pipeline_support::wait_or(
        "the refusal",
        Duration::from_secs(60),
        || {
            paths
                .log()
                .contains("required column \"uuid\" is not among the build's columns")
        },
        || paths.log(),
    );
    replace(&active, &std::fs::read(&components().enrich_plus).unwrap());
    run.reload();
    crate::pipeline_support::wait_or(
        "the table's new column",
        Duration::from_secs(60),
        || paths.log().contains("evolved the table's schema"),
        || paths.log(),
    );
    produce(&broker, "events", 5_000, 5_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 10_000);
    wait_committed(&paths, "events", &ends(&contents));
    assert!(run.terminate().success(), "{}", paths.log());

    let (enrich, plus) = (
        sha256(&components().enrich),
        sha256(&components().enrich_plus),
    );
    let pseudonymize = sha256(&components().pseudonymize);
    let commits = paths.commits();
    let mut build_of: BTreeMap<(i64, i64), String> = BTreeMap::new();
    for c in &commits {
        assert_ne!(
            c.plugin.sha256, pseudonymize,
            "the refused build wrote commit {}",
            c.seq
        );
        for f in c.files.iter().filter(|f| f.kind == FileKind::Data) {
            for offset in f.first_offset..=f.last_offset {
                build_of.insert(
                    (i64::from(f.source.partition), offset),
                    c.plugin.sha256.clone(),
                );
            }
        }
    }
    let table = read_table(&paths, Some("uuid_prefix"));
    let rows = table["data"]["column"]
        .as_array()
        .unwrap_or_else(|| panic!("{table}"));
    let (mut nulls, mut values) = (0, 0);
    for row in rows {
        let (p, o) = (row[0].as_i64().unwrap(), row[1].as_i64().unwrap());
        match build_of.get(&(p, o)).map(String::as_str) {
            Some(b) if b == enrich => {
                assert!(row[2].is_null(), "{row}: written before the column existed");
                nulls += 1;
            }
            Some(b) if b == plus => {
                let uuid = row[3].as_str().unwrap();
                assert_eq!(row[2].as_str(), Some(&uuid[..8]), "{row}");
                values += 1;
            }
            other => panic!("{row}: written by {other:?}"),
        }
    }
    assert!(nulls > 0 && values > 0, "{nulls} old rows, {values} new");
    check(&paths, &contents);
}

/// A table switched on for a pipeline that already ran: the files of
/// commits written without it (no field ids, times in milliseconds) stay
/// out of it; everything written with it is in it once.
#[test]
fn a_table_switched_on_later_holds_what_was_written_with_it() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    produce(&broker, "events", 0, 3_000, 0.1);
    let before = broker.contents("events", PARTITIONS, 3_000);
    let run = Lineage::start_ready(&broker, "events", &paths, &[]);
    wait_committed(&paths, "events", &ends(&before));
    assert!(run.terminate().success(), "{}", paths.log());
    let last_without = paths.commits().last().unwrap().seq;

    let paths = with_iceberg(paths);
    produce(&broker, "events", 3_000, 3_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 6_000);
    let run = Lineage::start_ready(&broker, "events", &paths, &[]);
    wait_committed(&paths, "events", &ends(&contents));
    assert!(run.terminate().success(), "{}", paths.log());

    assert_exactly_once(&contents, &read_output(&paths));
    let after: Vec<Commit> = paths
        .commits()
        .into_iter()
        .filter(|c| c.seq > last_without)
        .collect();
    let table = read_table(&paths, None);
    assert_table_matches_log(&after, &table["data"], FileKind::Data);
    assert_table_matches_log(&after, &table["dropped"], FileKind::Dropped);
    let out = paths.lineage(&["log", "verify", "--json"]);
    let verified: Json = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert_eq!(verified["ok"], true, "{verified}");
}
