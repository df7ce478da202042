//! `lineage run` against a real broker (tansu), checked by an independent
//! reader: every produced offset exactly once across committed data and
//! dropped files, through clean runs, every failpoint and kill -9.

use std::time::Duration;

use rand::Rng;

use crate::pipeline_support::{
    Broker, Lineage, Paths, Store, assert_exactly_once, ends, generate_args, produce, read_output,
    wait_committed,
};

const PARTITIONS: i32 = 10;

/// Runs to the end of the topic (`total` records), stops gracefully and
/// checks exactly once.
fn finish_and_check(broker: &Broker, topic: &str, paths: &Paths, total: usize) -> (usize, usize) {
    let contents = broker.contents(topic, PARTITIONS, total);
    let run = Lineage::start_ready(broker, topic, paths, &[]);
    wait_committed(paths, topic, &ends(&contents));
    let status = run.terminate();
    assert!(
        status.success(),
        "graceful stop failed: {status}\n{}",
        paths.log()
    );
    let counts = assert_exactly_once(&contents, &read_output(paths));
    // Uploads of crashed runs were aborted on recovery, not left to bill.
    let open = paths.open_uploads();
    assert!(open.is_empty(), "multipart uploads left open: {open:?}");
    counts
}

#[test]
fn a_clean_run_writes_every_record_exactly_once() {
    clean_run(Store::Local);
}

#[test]
fn a_clean_run_on_s3_writes_every_record_exactly_once() {
    clean_run(Store::Moto);
}

/// garage ignores conditional writes: one instance, --single-writer.
#[test]
fn a_clean_run_on_garage_writes_every_record_exactly_once() {
    clean_run(Store::Garage);
}

fn clean_run(store: Store) {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::on(store);
    produce(&broker, "events", 0, 20_000, 0.1);
    let run = Lineage::start(&broker, "events", &paths, &[]);
    wait_committed(
        &paths,
        "events",
        &ends(&broker.contents("events", PARTITIONS, 20_000)),
    );
    // More while it runs.
    produce(&broker, "events", 20_000, 5_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 25_000);
    wait_committed(&paths, "events", &ends(&contents));
    let status = run.terminate();
    let log = paths.log();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("claimed partitions"), "{log}");
    assert!(log.contains("checkpoint committed"), "{log}");

    let (kept, dropped) = assert_exactly_once(&contents, &read_output(&paths));
    assert!(
        dropped > 1_000 && kept > 20_000,
        "kept {kept}, dropped {dropped}"
    );
    if matches!(store, Store::Moto) {
        // Set up for 16 KiB parts: the files went up in several.
        let parts = paths.most_parts_of_a_file();
        assert!(parts >= 2, "no file was uploaded in more than {parts} part");
    }

    // A restart with nothing new commits nothing and stops cleanly.
    let again = Lineage::start_ready(&broker, "events", &paths, &[]);
    wait_committed(&paths, "events", &ends(&contents));
    assert!(again.terminate().success());
    assert_exactly_once(&contents, &read_output(&paths));
    // `lineage status` answers from this store's log alone.
    let status = crate::status::cli_status(&paths);
    crate::status::assert_status_matches_log(&paths, &status);
    assert!(
        status["drops"].as_array().is_some_and(|d| d.len() >= 3),
        "every class of the invalid records: {status:#}"
    );
}

/// Crashes at `point`, checks that nothing uncommitted became visible,
/// restarts, and checks exactly once.
fn crash_at(point: &str, store: Store) {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::on(store);
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
    let after_crash = read_output(&paths);
    for file in &after_crash.visible {
        assert!(
            after_crash.committed.contains_key(file),
            "{file} is visible after a crash at {point} but no checkpoint committed it"
        );
    }
    if point == "after-part-upload" && !matches!(store, Store::Local) {
        // The crash left an upload with parts; recovery must find it by
        // listing, as its id was never journalled.
        assert!(
            !paths.open_uploads().is_empty(),
            "a crash after a part upload left no open upload to abort"
        );
    }
    produce(&broker, "events", 3_000, 1_000, 0.2);
    finish_and_check(&broker, "events", &paths, 4_000);
}

macro_rules! crash_tests {
    ($($name:ident => $point:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                crash_at($point, Store::Local);
            }
        )*
        /// The same crashes with every path on S3 (moto).
        mod on_s3 {
            use super::*;
            $(
                #[test]
                fn $name() {
                    crash_at($point, Store::Moto);
                }
            )*
        }
    };
}

crash_tests! {
    crash_after_staging_entry => "after-staging-entry",
    crash_after_part_upload => "after-part-upload",
    crash_after_seal => "after-seal",
    crash_after_commit_log_write => "after-commit-log-write",
    crash_after_checkpoint_view => "after-checkpoint-view",
    crash_after_first_publish => "after-first-publish",
    crash_after_publish => "after-publish",
    crash_after_staging_cleanup => "after-staging-cleanup",
    crash_after_kafka_commit => "after-kafka-commit",
    crash_after_claim => "after-claim",
    crash_after_snapshot => "after-snapshot",
}

/// The table append's failpoints, with TABLE_FORMAT=iceberg on.
macro_rules! table_crash_tests {
    ($($name:ident => $point:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                crate::iceberg::crash_at($point);
            }
        )*
    };
}

table_crash_tests! {
    crash_before_table_append => "before-table-append",
    crash_after_table_append => "after-table-append",
}

#[test]
fn every_failpoint_has_a_crash_test() {
    let source = include_str!("pipeline.rs");
    for point in lineage::failpoints::Failpoint::ALL.map(|p| p.name()) {
        assert!(
            source.contains(&format!("=> \"{point}\"")),
            "no crash test for failpoint {point}"
        );
    }
}

#[test]
fn kill_9_at_random_instants_under_load_loses_and_duplicates_nothing() {
    kill_9_under_load(Store::Local);
}

#[test]
fn kill_9_on_s3_at_random_instants_under_load_loses_and_duplicates_nothing() {
    kill_9_under_load(Store::Moto);
}

#[test]
fn kill_9_on_garage_at_random_instants_under_load_loses_and_duplicates_nothing() {
    kill_9_under_load(Store::Garage);
}

fn kill_9_under_load(store: Store) {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::on(store);
    let producer = {
        let args = generate_args(&broker, "events", 0, 150_000, 0.1, 10_000.0);
        std::thread::spawn(move || {
            lineage::cli::generate::generate(&args, None, None).expect("produce")
        })
    };
    let mut rng = rand::rng();
    let kills = 20;
    for i in 0..kills {
        let run = Lineage::start(&broker, "events", &paths, &[]);
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1500)));
        run.kill();
        let output = read_output(&paths);
        for file in &output.visible {
            assert!(
                output.committed.contains_key(file),
                "after kill {i}: {file} is visible but not committed"
            );
        }
    }
    let produced = producer.join().expect("producer thread");
    assert_eq!(produced.failed, 0);
    let (kept, dropped) = finish_and_check(&broker, "events", &paths, 150_000);
    assert_eq!(kept + dropped, 150_000);
}

#[test]
fn a_tight_memory_budget_seals_files_early_and_pauses_instead_of_growing() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    produce(&broker, "events", 0, 30_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 30_000);
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[("MEMORY_BUDGET", "256KiB"), ("CHECKPOINT_INTERVAL", "5s")],
    );
    wait_committed(&paths, "events", &ends(&contents));
    assert!(run.terminate().success(), "{}", paths.log());
    let output = read_output(&paths);
    assert_exactly_once(&contents, &output);
    // A budget this small cannot hold a file per partition for a whole
    // checkpoint interval: files were sealed early, and consumption paused.
    let log = paths.log();
    let stopped = log
        .lines()
        .find(|l| l.contains(" stopped "))
        .unwrap_or_else(|| panic!("no summary line in\n{log}"));
    let count = |field: &str| -> u64 {
        let at = stopped
            .find(&format!("{field}="))
            .unwrap_or_else(|| panic!("no {field} in {stopped}"));
        stopped[at + field.len() + 1..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(count("early_seals") > 0, "{stopped}");
    assert!(count("budget_pauses") > 0, "{stopped}");
    assert!(
        log.contains("memory budget reached; pausing consumption"),
        "{log}"
    );
    // Each early-sealed file was committed (besides any sealed at
    // checkpoints: at this budget there may be none).
    assert!(
        output.committed.len() as u64 >= count("early_seals"),
        "{} files, {stopped}",
        output.committed.len()
    );
}

/// `lineage run` with `env` must fail at start, naming `setting`.
/// Fails at start, naming `setting`, with the exit code of the error's
/// blame (README, "Exit codes"): 2 for the user's, 3 for the environment's.
fn fails_fast(env: &[(&str, &str)], setting: &str, code: i32) {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    let paths = Paths::new();
    let mut run = Lineage::start(&broker, "events", &paths, env);
    let status = run.wait(Duration::from_secs(60));
    let log = paths.log();
    assert_eq!(status.code(), Some(code), "{log}");
    assert!(log.contains("error: "), "{log}");
    assert!(
        log.contains(setting),
        "the error must name {setting}:\n{log}"
    );
}

#[test]
fn an_unreachable_broker_fails_fast_naming_the_setting() {
    fails_fast(
        &[("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")],
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1",
        3,
    );
}

#[test]
fn a_missing_topic_fails_fast_naming_the_setting() {
    fails_fast(
        &[("KAFKA_TOPIC", "no-such-topic")],
        "KAFKA_TOPIC=no-such-topic",
        2,
    );
}

#[test]
fn an_unwritable_path_fails_fast_naming_the_setting() {
    fails_fast(
        &[("OUTPUT_PATH", "/proc/lineage-out")],
        "OUTPUT_PATH=/proc/lineage-out",
        2,
    );
    fails_fast(
        &[("WRITE_AHEAD_COMMIT_LOG_PATH", "ftp://x/y")],
        "WRITE_AHEAD_COMMIT_LOG_PATH=ftp://x/y",
        2,
    );
}

#[test]
fn a_plugin_that_does_not_load_fails_fast_naming_the_setting() {
    fails_fast(
        &[("PLUGIN_PATH", "/nonexistent.wasm")],
        "PLUGIN_PATH: plugin /nonexistent.wasm: cannot read it",
        2,
    );
}

#[test]
fn commit_steps_that_fail_are_retried_not_skipped() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    produce(&broker, "events", 0, 5_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 5_000);
    // Each of these fails once after its write landed: the retry must find
    // the write done and go on, not write again.
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[(
            "LINEAGE_FAILPOINTS",
            "after-commit-log-write=error,after-first-publish=error,after-claim=error",
        )],
    );
    wait_committed(&paths, "events", &ends(&contents));
    assert!(run.terminate().success(), "{}", paths.log());
    let log = paths.log();
    assert!(
        log.contains("failpoint after-commit-log-write injected an error"),
        "{log}"
    );
    assert!(
        log.contains("failpoint after-first-publish injected an error"),
        "{log}"
    );
    assert_exactly_once(&contents, &read_output(&paths));
}

/// `lineage demo`, the README's first command: the mock cluster, the
/// generator and the real pipeline. Everything it produced is committed
/// once, and the summary says where and how to look.
#[test]
fn the_demo_commits_everything_it_produced_once() {
    use std::collections::{BTreeMap, BTreeSet};

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("lineage-data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["demo", "--duration", "4s", "--rate", "2000"])
        .arg("--checkpoint-interval=1s")
        .arg("--data-dir")
        .arg(&data_dir)
        .current_dir(crate::support::repo_root())
        .env(
            "PLUGIN_CACHE_DIR",
            crate::support::repo_root().join("target/test-plugin-cache"),
        )
        .env_remove("PLUGIN_PATH")
        .output()
        .expect("run lineage demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "produced N records, consumed N: K kept, D dropped, in C checkpoints"
    let summary = text
        .lines()
        .find(|l| l.starts_with("produced "))
        .unwrap_or_else(|| panic!("no summary in\n{text}"));
    let numbers: Vec<usize> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [produced, consumed, kept, dropped, checkpoints, ..] = numbers[..] else {
        panic!("unexpected summary {summary:?}")
    };
    assert_eq!(produced, consumed, "{summary}");
    assert!(
        produced > 2000 && kept > 0 && dropped > 0 && checkpoints >= 2,
        "{summary}"
    );
    // Every command the summary prints works here, and shows what it says.
    let commands: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  $ "))
        .collect();
    assert!(commands.len() >= 4, "{text}");
    let mut shown = Vec::new();
    for command in &commands {
        let ran = std::process::Command::new("sh")
            .args(["-c", command])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&ran.stdout);
        assert!(
            ran.status.success(),
            "{command}: {}\n{said}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let promise = if command.contains(" status ") {
            "partitions:"
        } else if command.contains(" trace ") && said.contains("output      data") {
            "output      data"
        } else if command.contains(" trace ") {
            "output      dropped"
        } else if command.starts_with("cat ") {
            "checkpoint_id,s3_key,"
        } else {
            ""
        };
        assert!(said.contains(promise), "{command} printed\n{said}");
        assert!(!said.trim().is_empty(), "{command} printed nothing");
        shown.push(promise);
    }
    for promise in [
        "partitions:",
        "output      data",
        "output      dropped",
        "checkpoint_id,s3_key,",
    ] {
        assert!(
            shown.contains(&promise),
            "no command shows {promise:?}: {text}"
        );
    }
    assert!(text.contains("status page: http://127.0.0.1:"), "{text}");

    let at = |name: &str| data_dir.join(name).display().to_string();
    let output = crate::pipeline_support::read_output_at(
        &at("output"),
        &at("dropped"),
        &at("write-ahead-commit-log"),
        &[],
    );
    let mut visible = output.visible.clone();
    visible.sort();
    assert_eq!(
        visible,
        output.committed.keys().cloned().collect::<Vec<_>>()
    );
    assert_eq!((output.data.len(), output.dropped.len()), (kept, dropped));
    let mut offsets: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for row in output.data.iter().chain(&output.dropped) {
        let fresh = offsets
            .entry(row[0].as_i64().unwrap())
            .or_default()
            .insert(row[1].as_i64().unwrap());
        assert!(fresh, "{row} appears twice");
    }
    // Each partition's offsets run from 0 without a hole.
    for (partition, seen) in &offsets {
        assert_eq!(
            seen.iter().copied().collect::<Vec<_>>(),
            (0..seen.len() as i64).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
    assert!(
        output
            .dropped
            .iter()
            .all(|r| !r[2].as_str().unwrap().is_empty())
    );
    assert!(output.duckdb_rows as usize == kept);
}
