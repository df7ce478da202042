//! Hot plugin swaps in a running `lineage run`, under load: a new component
//! takes over at a checkpoint boundary, a broken one is refused and the old
//! one stays, a kill -9 right after a swap recovers, and every record is
//! still in exactly one file, written by exactly one plugin build. Then
//! `lineage trace` and `lineage log verify` over the same run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::observability::scrape;
use crate::pipeline_support::{
    Broker, Expect, Lineage, Output, Paths, assert_exactly_once_by, ends, generate_args,
    read_output, wait_committed, wait_or,
};
use crate::support::components;

const PARTITIONS: i32 = 4;

pub fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces `target` with `from`'s bytes by rename, as deployments do.
pub fn replace(target: &Path, bytes: &[u8]) {
    let incoming = target.with_file_name(".incoming");
    std::fs::write(&incoming, bytes).unwrap();
    std::fs::rename(&incoming, target).unwrap();
}

/// Checkpoints the running instance has committed, by its metrics.
fn checkpoints(paths: &Paths) -> f64 {
    scrape(paths)["lineage_checkpoints_total"]
}

/// Whether the running instance writes its checkpoints with `sha256`.
fn in_use(paths: &Paths, sha256: &str) -> bool {
    scrape(paths).keys().any(|k| {
        k.starts_with("lineage_plugin_info{") && k.contains(&format!(r#"sha256="{sha256}""#))
    })
}

/// Produces `count` records at `rate`/s on a thread.
fn produce_in_background(
    broker: &Broker,
    start: u64,
    count: u64,
    rate: f64,
) -> std::thread::JoinHandle<()> {
    let args = generate_args(broker, "events", start, count, 0.1, rate);
    std::thread::spawn(move || {
        let done = lineage::cli::generate::generate(&args, None, None).expect("produce");
        assert_eq!(done.failed, 0);
    })
}

/// Checkpoints per plugin build, from the files each commit names.
fn checkpoints_by_plugin(output: &Output) -> BTreeMap<&str, Vec<i64>> {
    let mut by: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (file, sha) in &output.plugins {
        by.entry(sha.as_str())
            .or_default()
            .push(output.committed[file]);
    }
    for v in by.values_mut() {
        v.sort_unstable();
    }
    by
}

/// Lets the records produced during the swap arrive, produces `after` more
/// for the new build, waits until all are committed and stops the run.
/// Then checks exactly once, each file against the build the commit log
/// names for it, and that the two builds are split by one checkpoint
/// boundary, the first before it and the second after.
fn finish(
    broker: &Broker,
    paths: &Paths,
    run: Lineage,
    producer: std::thread::JoinHandle<()>,
    (during, after): (u64, u64),
    [(first, first_expect), (second, second_expect)]: [(&str, Expect); 2],
) -> Output {
    producer.join().unwrap();
    produce_in_background(broker, during, after, 0.0)
        .join()
        .unwrap();
    let total = (during + after) as usize;
    let contents = broker.contents("events", PARTITIONS, total);
    wait_committed(paths, "events", &ends(&contents));
    assert!(run.terminate().success(), "{}", paths.log());
    let output = read_output(paths);
    let (kept, dropped) = assert_exactly_once_by(&contents, &output, |file| {
        match output.plugins[file].as_str() {
            sha if sha == first => first_expect,
            sha if sha == second => second_expect,
            other => panic!("{file} names an unknown plugin build {other}"),
        }
    });
    assert_eq!(kept + dropped, total);
    let by = checkpoints_by_plugin(&output);
    assert_eq!(by.len(), 2, "both builds wrote files: {by:?}");
    let (before, after) = (&by[first], &by[second]);
    assert!(
        before.last().unwrap() < after.first().unwrap(),
        "one boundary: {first} {before:?}, {second} {after:?}"
    );
    output
}

#[test]
fn sighup_swaps_the_plugin_at_a_checkpoint_and_refuses_a_broken_one() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    // A directory holding the component, as a ConfigMap mount is.
    let dir = paths.file("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let active = dir.join("plugin.wasm");
    std::fs::copy(&components().enrich, &active).unwrap();
    let (enrich, pseudonymize) = (
        sha256(&components().enrich),
        sha256(&components().pseudonymize),
    );

    let dir_text = dir.display().to_string();
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[("PLUGIN_PATH", &dir_text), ("PLUGIN_WATCH_INTERVAL", "0")],
    );
    // Records keep coming while the plugin is swapped; a second batch
    // after the switch makes sure the new plugin sees some.
    let (during, after) = (30_000, 10_000);
    let producer = produce_in_background(&broker, 0, during, 5_000.0);
    wait_or(
        "three checkpoints under the first plugin",
        Duration::from_secs(60),
        || checkpoints(&paths) >= 3.0,
        || paths.log(),
    );

    replace(&active, b"\0asm\x0d\0\x01\0 this is not a component");
    run.reload();
    wait_or(
        "the broken plugin to be refused",
        Duration::from_secs(60),
        // The labelled sample appears at the first failure.
        || scrape(&paths).get(r#"lineage_plugin_reloads_total{outcome="failed"}"#) == Some(&1.0),
        || paths.log(),
    );
    let committed_before = checkpoints(&paths) as usize;
    // It goes on committing with the old build; waited for here, since the
    // new build, once loaded, takes over at the very next checkpoint.
    wait_or(
        "a checkpoint after the refusal",
        Duration::from_secs(60),
        || checkpoints(&paths) as usize > committed_before,
        || paths.log(),
    );

    replace(&active, &std::fs::read(&components().pseudonymize).unwrap());
    run.reload();
    wait_or(
        "the new plugin to take over",
        Duration::from_secs(120),
        || in_use(&paths, &pseudonymize),
        || paths.log(),
    );
    let m = scrape(&paths);
    assert_eq!(m[r#"lineage_plugin_reloads_total{outcome="failed"}"#], 1.0);
    assert_eq!(m[r#"lineage_plugin_reloads_total{outcome="loaded"}"#], 1.0);
    let info: Vec<&String> = m
        .keys()
        .filter(|k| k.starts_with("lineage_plugin_info{"))
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(
        info[0].contains(&format!(r#"sha256="{pseudonymize}""#))
            && info[0].contains("pseudonymize"),
        "{info:?}"
    );
    // Killed right after the swap, with records still arriving: the
    // restart recovers from the log and runs the plugin now at PLUGIN_PATH.
    run.kill();
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[("PLUGIN_PATH", &dir_text), ("PLUGIN_WATCH_INTERVAL", "0")],
    );

    let output = finish(
        &broker,
        &paths,
        run,
        producer,
        (during, after),
        [
            (&enrich, Expect::ENRICH),
            (&pseudonymize, Expect::PSEUDONYMIZE),
        ],
    );
    let log = paths.log();
    assert!(
        log.contains("not a valid WebAssembly component") || log.contains("does not implement"),
        "the refusal gives its reason: {log}"
    );
    // Every checkpoint before the refusal was the old build's; one more of
    // its checkpoints means it went on committing while refusing.
    let by_old = paths
        .commits()
        .iter()
        .filter(|c| c.checkpoint > 0 && c.plugin.sha256 == enrich)
        .count();
    assert!(
        by_old > committed_before,
        "the pipeline went on committing with the old plugin while refusing the new one: {by_old} checkpoints by it, {committed_before} before the refusal"
    );
    let kept = output.data.len();
    let pseudonymized = output
        .data
        .iter()
        .filter(|r| r[2].as_str().unwrap().starts_with("user_key:"))
        .count();
    assert!(
        pseudonymized > 0 && pseudonymized < kept,
        "{pseudonymized} of {kept}"
    );
}

fn lineage_cli(paths: &Paths, args: &[&str]) -> (bool, String, String) {
    let out = paths.lineage(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn trace(paths: &Paths, args: &[&str]) -> Json {
    let mut all = vec!["trace", "--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = lineage_cli(paths, &all);
    assert!(ok, "lineage trace {args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_new_file_is_picked_up_the_python_plugin_takes_over_and_trace_answers_from_the_log() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    let active = paths.file("plugin.wasm");
    std::fs::copy(&components().enrich, &active).unwrap();
    let (enrich, python) = (
        sha256(&components().enrich),
        sha256(&components().enrich_py),
    );

    let active_text = active.display().to_string();
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[
            ("PLUGIN_PATH", &active_text),
            ("PLUGIN_WATCH_INTERVAL", "200ms"),
        ],
    );
    let (during, after) = (20_000, 10_000);
    let producer = produce_in_background(&broker, 0, during, 2_000.0);
    wait_or(
        "two checkpoints under the first plugin",
        Duration::from_secs(60),
        || checkpoints(&paths) >= 2.0,
        || paths.log(),
    );
    replace(&active, &std::fs::read(&components().enrich_py).unwrap());
    wait_or(
        "the Python plugin to take over",
        Duration::from_secs(240),
        || in_use(&paths, &python),
        || paths.log(),
    );
    let output = finish(
        &broker,
        &paths,
        run,
        producer,
        (during, after),
        [(&enrich, Expect::ENRICH), (&python, Expect::ENRICH_PY)],
    );

    // trace: a kept record of each build and a dropped one.
    let kept_by = |sha: &str| {
        output
            .data
            .iter()
            .find(|r| output.plugins[r[5].as_str().unwrap()] == sha)
            .unwrap_or_else(|| panic!("no kept row of {sha}"))
    };
    for (sha, name) in [(&enrich, "enrich"), (&python, "enrich-py")] {
        let row = kept_by(sha);
        let (partition, offset) = (row[0].as_i64().unwrap(), row[1].as_i64().unwrap());
        let t = trace(&paths, &[&format!("events/{partition}@{offset}")]);
        assert_eq!(t["output"], "data", "{t}");
        assert_eq!(t["file"], row[5], "{t}");
        assert_eq!(t["checkpoint"], row[4], "{t}");
        assert_eq!(t["plugin_name"], name, "{t}");
        assert_eq!(t["plugin_sha256"], sha.as_str(), "{t}");
        assert_eq!(t["row"]["uuid"], row[2], "{t}");
        assert_eq!(t["row"]["kafka_offset"], offset, "{t}");
    }
    let dropped = &output.dropped[0];
    let (partition, offset) = (dropped[0].as_i64().unwrap(), dropped[1].as_i64().unwrap());
    let t = trace(&paths, &[&format!("events/{partition}@{offset}")]);
    assert_eq!(t["output"], "dropped", "{t}");
    assert_eq!(t["file"], dropped[4], "{t}");
    assert_eq!(t["reason"], dropped[2], "{t}");
    assert_eq!(t["plugin_sha256"], dropped[5], "{t}");
    // Text by default.
    let (ok, text, _) = lineage_cli(&paths, &["trace", &format!("events/{partition}@{offset}")]);
    assert!(
        ok && text.contains("output      dropped") && text.contains("reason      "),
        "{text}"
    );
    // Past the end: not committed, and said so.
    let (ok, _, err) = lineage_cli(&paths, &["trace", "events/0@999999999"]);
    assert!(!ok && err.contains("not committed yet"), "{err}");

    // trace --checkpoint: the files and ranges the log holds, all visible.
    let checkpoint = dropped[3].as_i64().unwrap();
    let t = trace(&paths, &["--checkpoint", &checkpoint.to_string()]);
    let commits = t.as_array().unwrap();
    assert_eq!(commits.len(), 1, "{t}");
    assert_eq!(commits[0]["state"], "published");
    let files: Vec<&str> = commits[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["visible"], true);
            f["url"].as_str().unwrap()
        })
        .collect();
    let mut expected: Vec<&str> = output
        .committed
        .iter()
        .filter(|(_, c)| **c == checkpoint)
        .map(|(f, _)| f.as_str())
        .collect();
    let mut files = files;
    files.sort_unstable();
    expected.sort_unstable();
    assert_eq!(files, expected);
    let ranged: u64 = commits[0]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["records"].as_u64().unwrap())
        .sum();
    let filed: u64 = commits[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["records"].as_u64().unwrap())
        .sum();
    assert_eq!(ranged, filed, "every record of the ranges is in a file");

    // log verify: clean, then a missing file and a stray one are found.
    let (ok, out, err) = lineage_cli(&paths, &["log", "verify", "--json"]);
    assert!(ok, "{out}{err}");
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["files"].as_u64().unwrap() as usize,
        output.committed.len()
    );
    let gone = expected[0];
    std::fs::remove_file(gone).unwrap();
    let stray = Path::new(&paths.output).join("stray.parquet");
    std::fs::write(&stray, b"PAR1").unwrap();
    let (ok, out, _) = lineage_cli(&paths, &["log", "verify"]);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("missing     {gone}")), "{out}");
    assert!(
        out.contains(&format!("unaccounted {}", stray.display())),
        "{out}"
    );
    assert!(out.contains("PROBLEMS"), "{out}");

    // A query creates nothing: a wrong path is an error that names it.
    let wrong = Path::new(&paths.output).with_file_name("no-such-output");
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["log", "verify"])
        .env("OUTPUT_PATH", &wrong)
        .env("DROPPED_PATH", &paths.dropped)
        .env("WRITE_AHEAD_COMMIT_LOG_PATH", &paths.wal)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "OUTPUT_PATH={}: no such directory",
            wrong.display()
        )),
        "{err}"
    );
    assert!(!wrong.exists());
}
