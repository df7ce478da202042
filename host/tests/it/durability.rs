//! Exactly once when the disk, the store or Kafka misbehave: objects a
//! power cut tears (made by hand), the order of fsyncs on local disk,
//! offsets Kafka no longer has or never had, a stop while the store hangs,
//! a denied write, and the exact text of two start-up errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;

use crate::pipeline_support::{
    Broker, Contents, Lineage, Output, Paths, Store, UNSET, assert_exactly_once,
    assert_no_staged_files_left, ends, free_port, produce, read_output, wait_committed, wait_or,
};

const PARTITIONS: i32 = 4;

/// Runs to the end of `contents`, stops gracefully.
fn run_to_end(broker: &Broker, paths: &Paths, contents: &Contents, env: &[(&str, &str)]) {
    let run = Lineage::start_ready(broker, "events", paths, env);
    wait_committed(paths, "events", &ends(contents));
    let status = run.terminate();
    assert!(status.success(), "{status}\n{}", paths.log());
}

fn newest(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    names.sort();
    names
        .pop()
        .unwrap_or_else(|| panic!("nothing in {}", dir.display()))
}

/// What a power cut leaves on a disk that lost writes it had acknowledged,
/// made by hand: the newest snapshot cut short, a commit object that is
/// empty and one cut inside a row, and a staging entry cut short beside
/// its staging file. The next start reads past all of them, says so, and
/// every record is still committed exactly once with nothing left staged.
#[test]
fn torn_commits_a_torn_snapshot_and_a_torn_staging_entry_are_recovered() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    produce(&broker, "events", 0, 3_000, 0.1);
    run_to_end(
        &broker,
        &paths,
        &broker.contents("events", PARTITIONS, 3_000),
        &[],
    );

    let wal = Path::new(&paths.wal);
    let snapshot = newest(&wal.join("_snapshots"), ".json");
    let bytes = std::fs::read(&snapshot).unwrap();
    std::fs::write(&snapshot, &bytes[..bytes.len() / 2]).unwrap();
    let last = newest(&wal.join("_commits"), ".csv");
    let seq: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let commit = |seq: u64| wal.join(format!("_commits/{seq:020}.csv"));
    std::fs::write(commit(seq + 1), b"").unwrap();
    let whole = std::fs::read(commit(1)).unwrap();
    std::fs::write(commit(seq + 2), &whole[..whole.len() * 2 / 3]).unwrap();
    let id = "0123456789abcdef0123456789abcdef";
    std::fs::create_dir_all(wal.join("_staging/events/3")).unwrap();
    std::fs::write(
        wal.join(format!("_staging/events/3/{id}.json")),
        br#"{"file_id":"0123456789ab"#,
    )
    .unwrap();
    let staged =
        Path::new(&paths.output).join(format!(".lineage-staging/events/3/{id}.parquet.inprogress"));
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::write(&staged, b"PAR1 half a file").unwrap();

    produce(&broker, "events", 3_000, 1_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 4_000);
    run_to_end(&broker, &paths, &contents, &[]);
    let log = paths.log();
    for object in [commit(seq + 1), commit(seq + 2)] {
        assert!(
            log.lines().any(
                |l| l.contains("empty or cut short: read as a commit of nothing")
                    && l.contains(&object.display().to_string())
            ),
            "no line names {}:\n{log}",
            object.display()
        );
    }
    assert!(log.contains("commit log snapshot is damaged"), "{log}");
    assert!(log.contains("staging entry is empty or cut short"), "{log}");
    assert_exactly_once(&contents, &read_output(&paths));
    assert!(!staged.exists(), "the torn entry's staging file is gone");
    assert_no_staged_files_left(&paths);
}

/// One commit's writes as strace saw them, in order: each file's bytes are
/// synced before the file is renamed into its staging name, every staged
/// file before the commit object is linked, the commit object's bytes
/// before its name, its directory before any file is published, and each
/// published file's directory after its rename.
#[cfg(target_arch = "x86_64")]
#[test]
fn local_writes_are_synced_in_the_order_the_protocol_needs() {
    let broker = Broker::start();
    broker.create_topic("events", 2);
    let paths = Paths::new();
    produce(&broker, "events", 0, 2_000, 0.1);
    let contents = broker.contents("events", 2, 2_000);
    let trace = paths.file("strace.txt");
    let run = Lineage::start_traced(
        &broker,
        "events",
        &paths,
        &[("CHECKPOINT_INTERVAL", "2s")],
        "fsync,fdatasync,link,linkat,rename,renameat,renameat2",
        &trace,
    );
    wait_committed(&paths, "events", &ends(&contents));
    // The signal goes to lineage itself, strace's child.
    let strace = run.pid();
    let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children"))
        .expect("strace's children");
    let lineage: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    unsafe { libc::kill(lineage, libc::SIGTERM) };
    let mut run = run;
    assert!(
        run.wait(Duration::from_secs(60)).success(),
        "{}",
        paths.log()
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    let at = |what: &str, needle: &dyn Fn(&str) -> bool, after: usize| -> usize {
        lines
            .iter()
            .enumerate()
            .skip(after)
            .find(|(_, l)| needle(l))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no {what} after line {after} of the trace"))
    };

    // The first commit that made files visible, and one of its files.
    // As the kernel names them (strace -y), symlinks resolved.
    let real = |p: &str| std::fs::canonicalize(p).unwrap().display().to_string();
    let (output_root, dropped_root) = (real(&paths.output), real(&paths.dropped));
    let wal = Path::new(&real(&paths.wal)).join("_commits");
    let (commit, row) = (1..)
        .map(|seq| wal.join(format!("{seq:020}.csv")))
        .take_while(|p| p.exists())
        .find_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let row = text.lines().find(|l| l.contains("|rename:"))?.to_owned();
            Some((p, row))
        })
        .expect("a commit with files");
    let publish = row.split(',').nth(17).unwrap();
    let (key, staging) = publish.split_once("|rename:").unwrap();
    let root = if row.contains(",dropped,") {
        &dropped_root
    } else {
        &output_root
    };
    let staging = format!("{root}/{staging}");
    let final_path = format!("{root}/{key}");
    let commit = commit.display().to_string();
    let is_sync = |path: &str| {
        let fd = format!("<{path}>");
        move |l: &str| l.contains("fsync(") && l.contains(&fd)
    };
    let is_sync_of_temp = |path: &str| {
        let fd = format!("<{path}#");
        move |l: &str| l.contains("fsync(") && l.contains(&fd)
    };
    let staging_dir = Path::new(&staging).parent().unwrap().display().to_string();
    let final_dir = Path::new(&final_path)
        .parent()
        .unwrap()
        .display()
        .to_string();

    let data_synced = at("the staged file's fsync", &is_sync_of_temp(&staging), 0);
    let data_named = at(
        "the staged file's rename",
        &|l: &str| l.contains("rename") && l.contains(&format!("\"{staging}\"")),
        data_synced,
    );
    let data_dir = at(
        "the staging directory's fsync",
        &is_sync(&staging_dir),
        data_named,
    );
    let commit_synced = at("the commit's fsync", &is_sync_of_temp(&commit), data_dir);
    let committed = at(
        "the commit's link",
        &|l: &str| l.contains("link") && l.contains(&format!("\"{commit}\"")),
        commit_synced,
    );
    let commit_dir = at(
        "the commit directory's fsync",
        &is_sync(&wal.display().to_string()),
        committed,
    );
    let published = at(
        "the publishing rename",
        &|l: &str| l.contains("rename") && l.contains(&format!("\"{final_path}\"")),
        commit_dir,
    );
    at(
        "the published file's directory fsync",
        &is_sync(&final_dir),
        published,
    );
    assert_exactly_once(&contents, &read_output(&paths));
}

/// Rows of the files committed by checkpoints `checkpoints` only, as an
/// output of their own.
fn only(output: &Output, checkpoints: impl Fn(i64) -> bool) -> Output {
    let keep = |row: &Json, at: usize| checkpoints(row[at].as_i64().unwrap());
    let committed: BTreeMap<String, i64> = output
        .committed
        .iter()
        .filter(|(_, c)| checkpoints(**c))
        .map(|(f, c)| (f.clone(), *c))
        .collect();
    let data: Vec<Json> = output.data.iter().filter(|r| keep(r, 4)).cloned().collect();
    Output {
        duckdb_rows: data.len() as i64,
        schema_ids: output.schema_ids.clone(),
        file_schema_ids: output.file_schema_ids.clone(),
        data,
        dropped: output
            .dropped
            .iter()
            .filter(|r| keep(r, 3))
            .cloned()
            .collect(),
        visible: output
            .visible
            .iter()
            .filter(|f| committed.contains_key(*f))
            .cloned()
            .collect(),
        committed,
        plugins: output.plugins.clone(),
    }
}

/// A pipeline that committed a topic, stopped; the topic deleted and
/// created again with fewer records than the commit log had reached.
struct Recreated {
    broker: Broker,
    paths: Paths,
    old: Contents,
    /// The log's state before the topic was recreated.
    before: lineage::commit::LogState,
    /// Records of the new topic produced before the restart.
    new: Contents,
}

impl Recreated {
    fn new() -> Self {
        let broker = Broker::start();
        broker.create_topic("events", PARTITIONS);
        let paths = Paths::new();
        produce(&broker, "events", 0, 2_000, 0.1);
        let old = broker.contents("events", PARTITIONS, 2_000);
        run_to_end(&broker, &paths, &old, &[]);
        let before = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(paths.commit_log().load())
            .unwrap()
            .state;
        broker.delete_topic("events");
        broker.create_topic("events", PARTITIONS);
        produce(&broker, "events", 10_000, 400, 0.1);
        let new = broker.contents("events", PARTITIONS, 400);
        Self {
            broker,
            paths,
            old,
            before,
            new,
        }
    }

    fn last_old_checkpoint(&self) -> i64 {
        self.before.checkpoints[&0] as i64
    }

    /// With ON_MISSING_OFFSETS=stop the start fails, naming a partition
    /// and the offsets, and writes nothing.
    fn refused_with_stop(&self) {
        let mut stopped = Lineage::start(
            &self.broker,
            "events",
            &self.paths,
            &[("ON_MISSING_OFFSETS", "stop")],
        );
        assert!(!stopped.wait(Duration::from_secs(60)).success());
        let error = error_line(&self.paths);
        assert!(
            error.contains("events/")
                && error.contains(" < next ")
                && error.contains("ON_MISSING_OFFSETS=stop"),
            "{error}"
        );
    }

    /// The claims that reset each partition, with where they went on.
    fn resets(&self) -> Vec<(lineage::commit::Claim, lineage::commit::Moved)> {
        self.paths
            .commits()
            .into_iter()
            .filter(|c| c.seq > self.before.seq)
            .flat_map(|c| c.claims)
            .filter_map(|c| {
                let moved = c.moved.clone()?;
                Some((c, moved))
            })
            .collect()
    }
}

/// The topic is deleted and created again while the pipeline is stopped:
/// its partitions now end below the offsets the commit log had reached,
/// which a truncated log (an unclean leader election) does too. By
/// default the pipeline goes on from each log's end, so that a truncated
/// log's records are never committed twice, and records why in the commit
/// log, naming the offsets it does not read; what arrives after is
/// committed exactly once.
#[test]
fn a_log_that_ends_below_the_commit_log_is_reset_to_its_end_and_recorded() {
    let t = Recreated::new();
    t.refused_with_stop();
    let run = Lineage::start_ready(&t.broker, "events", &t.paths, &[]);
    wait_or(
        "every partition to be reset",
        Duration::from_secs(60),
        || t.resets().len() >= PARTITIONS as usize,
        || t.paths.log(),
    );
    produce(&t.broker, "events", 20_000, 200, 0.1);
    let all = t.broker.contents("events", PARTITIONS, 600);
    wait_committed(&t.paths, "events", &ends(&all));
    assert!(run.terminate().success(), "{}", t.paths.log());

    let after: Contents = all
        .iter()
        .filter(|(k, _)| !t.new.contains_key(k))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let output = read_output(&t.paths);
    let last = t.last_old_checkpoint();
    assert_exactly_once(&t.old, &only(&output, |c| c <= last));
    assert_exactly_once(&after, &only(&output, |c| c > last));
    let resets = t.resets();
    assert_eq!(resets.len(), PARTITIONS as usize, "{resets:?}");
    let ends = ends(&t.new);
    for (claim, moved) in resets {
        assert_eq!(
            claim.next, ends[&claim.source.partition],
            "at the log's end"
        );
        assert_eq!(moved.from, t.before.partition(&claim.source).unwrap().next);
        assert!(
            moved.reason.contains("the topic was deleted and recreated")
                && moved.reason.contains("are not read"),
            "{moved:?}"
        );
    }
}

/// The same with `auto.offset.reset=earliest` set: the user says the log
/// restarted with new records, so each partition is read again from its
/// start and the new topic is committed exactly once beside the old one.
#[test]
fn a_recreated_topic_is_read_from_its_start_with_auto_offset_reset_earliest() {
    let t = Recreated::new();
    let run = Lineage::start_ready(
        &t.broker,
        "events",
        &t.paths,
        &[(
            "KAFKA_PROPERTIES",
            "session.timeout.ms=6000,heartbeat.interval.ms=500,auto.offset.reset=earliest",
        )],
    );
    wait_or(
        "every partition to be reset",
        Duration::from_secs(60),
        || t.resets().len() >= PARTITIONS as usize,
        || t.paths.log(),
    );
    wait_committed(&t.paths, "events", &ends(&t.new));
    assert!(run.terminate().success(), "{}", t.paths.log());
    let output = read_output(&t.paths);
    let last = t.last_old_checkpoint();
    assert_exactly_once(&t.old, &only(&output, |c| c <= last));
    assert_exactly_once(&t.new, &only(&output, |c| c > last));
    let resets = t.resets();
    assert_eq!(resets.len(), PARTITIONS as usize, "{resets:?}");
    for (claim, moved) in resets {
        assert_eq!(claim.next, 0);
        assert!(
            moved.reason.contains("auto.offset.reset=earliest"),
            "{moved:?}"
        );
    }
}

/// `auto.offset.reset=latest` over a topic that already holds records: a
/// partition the commit log has never seen starts at its end, and the
/// offsets before it are recorded as skipped, with the reason, instead of
/// being read (or, worse, claimed as read). `lineage trace` of one says so.
#[test]
fn auto_offset_reset_latest_over_a_prefilled_topic_records_what_it_skips() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    produce(&broker, "events", 0, 2_000, 0.1);
    let prefilled = broker.contents("events", PARTITIONS, 2_000);
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[(
            "KAFKA_PROPERTIES",
            "session.timeout.ms=6000,heartbeat.interval.ms=500,auto.offset.reset=latest",
        )],
    );
    produce(&broker, "events", 2_000, 1_000, 0.1);
    let all = broker.contents("events", PARTITIONS, 3_000);
    wait_committed(&paths, "events", &ends(&all));
    assert!(run.terminate().success(), "{}", paths.log());
    let new: Contents = all
        .iter()
        .filter(|(k, _)| !prefilled.contains_key(k))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_exactly_once(&new, &read_output(&paths));

    let commits = paths.commits();
    for (p, end) in ends(&prefilled) {
        let claim = commits
            .iter()
            .flat_map(|c| &c.claims)
            .find(|c| c.source.partition == p)
            .expect("claimed");
        assert_eq!(claim.next, end, "partition {p} starts at its end");
        let moved = claim.moved.as_ref().expect("the skip is recorded");
        assert_eq!(moved.from, 0);
        assert!(
            moved.reason.starts_with("auto.offset.reset=latest"),
            "{moved:?}"
        );
    }
    let (p, _) = prefilled.keys().next().unwrap();
    let out = paths.lineage(&["trace", "--json", &format!("events/{p}@0")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let traced: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(traced["output"], "skipped", "{traced}");
    assert!(
        traced["reason"]
            .as_str()
            .unwrap()
            .starts_with("auto.offset.reset=latest"),
        "{traced}"
    );
}

/// Workers seal early down to where a paused consumer resumes, not only
/// under the budget: with checkpoints far apart, consumption still gets
/// to the end of the topic long before the first one.
#[test]
fn a_paused_consumer_resumes_without_waiting_for_a_checkpoint() {
    let broker = Broker::start();
    // Many small files: each early seal frees a little, so sealing stops
    // just under the budget, above where consumption resumes.
    let partitions = 24;
    broker.create_topic("events", partitions);
    let paths = Paths::new();
    produce(&broker, "events", 0, 30_000, 0.1);
    let contents = broker.contents("events", partitions, 30_000);
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[
            ("MEMORY_BUDGET", "1MiB"),
            ("CHECKPOINT_INTERVAL", "1h"),
            ("PROGRESS_INTERVAL", "200ms"),
        ],
    );
    wait_or(
        "every record to be consumed with no checkpoint in between",
        Duration::from_secs(120),
        || paths.log().contains("consumed=30000"),
        || {
            let log = paths.log();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        },
    );
    let log = paths.log();
    assert!(
        log.contains("memory budget reached; pausing consumption"),
        "{log}"
    );
    assert!(log.contains("resuming consumption"), "{log}");
    assert!(
        !log.contains("checkpoint committed"),
        "no checkpoint came in between"
    );
    assert!(run.terminate().success(), "{}", paths.log());
    assert_exactly_once(&contents, &read_output(&paths));
}

/// The store stops answering right after the commit point and the process
/// is asked to stop: it exits within SHUTDOWN_TIMEOUT, naming the store,
/// though every retry loop it was in would have waited for ever; a restart
/// finishes the commit.
#[test]
fn a_stop_while_the_store_hangs_after_the_commit_point_exits_within_the_timeout() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::on(Store::Moto);
    produce(&broker, "events", 0, 3_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 3_000);
    let mut run = Lineage::start(
        &broker,
        "events",
        &paths,
        &[
            ("LINEAGE_FAILPOINTS", "after-commit-log-write=sleep:3000"),
            ("SHUTDOWN_TIMEOUT", "5s"),
        ],
    );
    wait_or(
        "a commit to be held after its commit point",
        Duration::from_secs(60),
        || paths.log().contains("failpoint: holding"),
        || paths.log(),
    );
    let moto = paths.server.as_ref().expect("an S3 server").pid();
    unsafe { libc::kill(moto, libc::SIGSTOP) };
    unsafe { libc::kill(run.pid(), libc::SIGTERM) };
    // SHUTDOWN_TIMEOUT plus the time to notice, never the minutes the
    // store's own retries would take.
    let status = run.wait(Duration::from_secs(45));
    unsafe { libc::kill(moto, libc::SIGCONT) };
    assert!(!status.success(), "{}", paths.log());
    let error = error_line(&paths);
    assert!(
        error.contains("gave up at the shutdown deadline"),
        "{error}"
    );
    assert!(
        error.contains("s3://lineage/it/"),
        "the store is named: {error}"
    );

    run_to_end(&broker, &paths, &contents, &[]);
    assert_exactly_once(&contents, &read_output(&paths));
    assert_no_staged_files_left(&paths);
}

/// A write the store refuses (a missing IAM permission: here completing
/// multipart uploads under OUTPUT_PATH) will never succeed: the run fails
/// at once naming the setting, instead of retrying for ever; once the
/// permission is there, a restart finishes the commit.
#[test]
fn a_denied_publish_fails_fast_naming_the_setting() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::on(Store::Moto);
    produce(&broker, "events", 0, 2_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 2_000);
    let mut run = Lineage::start(
        &broker,
        "events",
        &paths,
        &[(
            "LINEAGE_STORE_FAULTS",
            "deny=POST:/lineage/it/output:uploadId",
        )],
    );
    let status = run.wait(Duration::from_secs(60));
    assert!(!status.success(), "{}", paths.log());
    let error = error_line(&paths);
    assert!(
        error.contains("OUTPUT_PATH: publish s3://lineage/it/output/"),
        "{error}"
    );
    assert!(error.contains("lacked the necessary privileges"), "{error}");
    let log = paths.log();
    assert!(
        !log.contains("operation=\"publish") && !log.contains("failed; retrying"),
        "a denial is not retried:\n{log}"
    );
    run_to_end(&broker, &paths, &contents, &[]);
    assert_exactly_once(&contents, &read_output(&paths));
}

/// The line a failed run ended with.
fn error_line(paths: &Paths) -> String {
    let log = paths.log();
    log.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{log}"))
        .to_owned()
}

/// The error line of a run that fails at start.
fn start_error(broker: &Broker, paths: &Paths, env: &[(&str, &str)]) -> String {
    let mut run = Lineage::start(broker, "events", paths, env);
    assert!(!run.wait(Duration::from_secs(90)).success());
    error_line(paths)
}

#[test]
fn an_unreachable_broker_is_reported_once() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    let paths = Paths::new();
    assert_eq!(
        start_error(
            &broker,
            &paths,
            &[("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")]
        ),
        "error: KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1: cannot reach the cluster: Meta data fetch error: BrokerTransportFailure (Local: Broker transport failure)"
    );
}

#[test]
fn no_aws_credentials_anywhere_is_said_with_where_lineage_looked() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    let paths = Paths::new();
    let metadata = format!("http://127.0.0.1:{}", free_port());
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut env = vec![
        ("OUTPUT_PATH", "s3://lineage/it/output"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_METADATA_ENDPOINT", metadata.as_str()),
    ];
    // The test's own environment may have some.
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        env.push((name, UNSET));
    }
    assert_eq!(
        start_error(&broker, &paths, &env),
        format!(
            "error: OUTPUT_PATH=s3://lineage/it/output: no AWS credentials found: looked for AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN (IRSA), AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI (ECS, EKS), and the instance metadata service at {metadata}, which gave none"
        )
    );
}
