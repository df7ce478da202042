//! The status page of a running `lineage run`, rendered by headless
//! Chromium, its `/status` JSON, and `lineage status`: each checked field
//! by field against the commit log, before and after a plugin swap.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value as Json;

use crate::observability::{get, metrics_address};
use crate::pipeline_support::{
    Broker, Lineage, Paths, ends, generate_args, read_output, wait_committed, wait_or,
};
use crate::support::components;
use crate::swap::{replace, sha256};

const PARTITIONS: i32 = 4;

/// `lineage status --json` over `paths`, as an operator runs it.
pub fn cli_status(paths: &Paths) -> Json {
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["status", "--json"])
        .env("OUTPUT_PATH", &paths.output)
        .env("DROPPED_PATH", &paths.dropped)
        .env("WRITE_AHEAD_COMMIT_LOG_PATH", &paths.wal)
        .envs(paths.env.iter().map(|(k, v)| (k, v)))
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lineage status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A report against the commit log, read independently: every partition's
/// owner and `next` as the log folds them, and the newest checkpoints with
/// their files, rows, bytes and build, all published once the run is idle.
pub fn assert_status_matches_log(paths: &Paths, report: &Json) {
    let commits = paths.commits();
    let last = commits.last().expect("commits");
    assert_eq!(report["commit_seq"], last.seq, "{report:#}");
    let mut owners = BTreeMap::new();
    let mut next = BTreeMap::new();
    for c in &commits {
        for claim in &c.claims {
            owners.insert(claim.source.clone(), c.owner.clone());
            next.insert(claim.source.clone(), claim.next);
        }
        for r in &c.ranges {
            next.insert(r.source.clone(), r.last + 1);
        }
    }
    let partitions = report["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), next.len(), "{report:#}");
    for p in partitions {
        let tp = lineage::partition::TopicPartition {
            topic: p["topic"].as_str().unwrap().into(),
            partition: p["partition"].as_i64().unwrap() as i32,
        };
        assert_eq!(p["next"], next[&tp], "{tp}");
        assert_eq!(p["subtask"], owners[&tp].subtask, "{tp}");
        assert_eq!(p["incarnation"], owners[&tp].incarnation.as_str(), "{tp}");
    }
    let checkpoints: Vec<_> = commits
        .iter()
        .rev()
        .filter(|c| c.checkpoint > 0)
        .take(50)
        .collect();
    let shown = report["checkpoints"].as_array().unwrap();
    assert_eq!(shown.len(), checkpoints.len(), "{report:#}");
    assert!(!shown.is_empty(), "no checkpoint in {report:#}");
    for (s, c) in shown.iter().zip(&checkpoints) {
        let rows = |kind| -> u64 {
            c.files
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| f.records)
                .sum()
        };
        assert_eq!(s["checkpoint"], c.checkpoint);
        assert_eq!(s["subtask"], c.owner.subtask);
        assert_eq!(s["commit_seq"], c.seq);
        assert_eq!(s["committed_at"], c.timestamp.as_str());
        assert_eq!(s["files"], c.files.len());
        assert_eq!(s["rows_kept"], rows(lineage::staging::FileKind::Data));
        assert_eq!(s["rows_dropped"], rows(lineage::staging::FileKind::Dropped));
        assert_eq!(s["bytes"], c.files.iter().map(|f| f.bytes).sum::<u64>());
        assert_eq!(s["plugin_sha256"], c.plugin.sha256.as_str());
        assert_eq!(s["state"], "published", "an idle run has published all");
    }
    // Drop classes: the counts the log's files carry, each example a
    // record of a dropped file of these checkpoints.
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples: Vec<(String, String)> = Vec::new();
    for c in &checkpoints {
        for f in c.files.iter() {
            for d in &f.drops {
                *classes.entry(d.class.clone()).or_default() += d.count;
                let at = format!("{}/{}@{}", f.source.topic, f.source.partition, d.example);
                examples.push((d.class.clone(), at));
            }
        }
    }
    let drops = report["drops"].as_array().unwrap();
    assert_eq!(drops.len(), classes.len().min(10), "{report:#}");
    for d in drops {
        let class = d["class"].as_str().unwrap();
        assert_eq!(d["count"], classes[class], "{class}");
        let example = (class.to_owned(), d["example"].as_str().unwrap().to_owned());
        assert!(
            examples.contains(&example),
            "{example:?} is no {class} drop of the log"
        );
    }
}

/// Reads the page as Chromium renders it, and takes a screenshot.
fn render(address: &str, screenshot: &Path) -> String {
    let chromium = |args: &[&str]| {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1280,800",
            ])
            .args(args)
            .arg(format!("http://{address}/"))
            .output()
            .expect("run chromium (scripts/install.sh installs it)");
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = chromium(&["--dump-dom"]);
    chromium(&[&format!("--screenshot={}", screenshot.display())]);
    let png = std::fs::read(screenshot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "an empty screenshot: {} bytes",
        png.len()
    );
    dom
}

/// What the rendered page must show, from the same instance's `/status`
/// (checked against the log above): partitions, checkpoint rows, the
/// plugin, and each drop reason with its example.
fn assert_page_shows(dom: &str, status: &Json) {
    let error = dom
        .split("<div id=\"error\" class=\"error\">")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_else(|| panic!("not the status page: {dom}"));
    assert!(
        !error.contains("does not answer") && !error.contains("answered"),
        "an error page: {error}"
    );
    for p in status["partitions"].as_array().unwrap() {
        let cell = format!(
            "<td>{}/{}</td>",
            p["topic"].as_str().unwrap(),
            p["partition"]
        );
        assert!(dom.contains(&cell), "no {cell} in the page");
    }
    let table = dom
        .split("id=\"checkpoints\"")
        .nth(1)
        .expect("a checkpoints table");
    for c in status["checkpoints"].as_array().unwrap() {
        let cell = format!(
            "<tr><td>{}</td><td class=\"n\">{}</td>",
            c["checkpoint"], c["subtask"]
        );
        assert!(
            table.contains(&cell),
            "no row for checkpoint {}",
            c["checkpoint"]
        );
    }
    let plugin = &status["plugin"];
    assert!(dom.contains(&format!(
        "<b id=\"plugin-name\">{}</b>",
        plugin["name"].as_str().unwrap()
    )));
    assert!(dom.contains(&format!(
        "<code id=\"plugin-sha256\">{}</code>",
        plugin["sha256"].as_str().unwrap()
    )));
    let drops = status["drops"].as_array().unwrap();
    assert!(!drops.is_empty(), "no drop reason in {status:#}");
    for d in drops {
        let (class, example) = (d["class"].as_str().unwrap(), d["example"].as_str().unwrap());
        assert!(dom.contains(&format!("<td>{class}</td>")), "no {class} row");
        assert!(
            dom.contains(&format!(">{example}</a>")),
            "no example {example}"
        );
    }
}

/// The live report's fields that the log also has agree with `lineage
/// status` read from the log at the same moment (the run idle).
fn assert_live_matches_cli(live: &Json, cli: &Json) {
    assert_eq!(live["commit_seq"], cli["commit_seq"]);
    let (lp, cp) = (
        live["partitions"].as_array().unwrap(),
        cli["partitions"].as_array().unwrap(),
    );
    assert_eq!(lp.len(), cp.len());
    for (l, c) in lp.iter().zip(cp) {
        for field in [
            "topic",
            "partition",
            "subtask",
            "incarnation",
            "next",
            "last_commit_at",
        ] {
            assert_eq!(l[field], c[field], "{field} of {l}");
        }
    }
    let (l, c) = (
        live["checkpoints"].as_array().unwrap(),
        cli["checkpoints"].as_array().unwrap(),
    );
    assert_eq!(l.len(), c.len(), "one instance: its checkpoints are all");
    for (l, c) in l.iter().zip(c) {
        let mut l = l.clone();
        assert!(l["duration_ms"].is_u64() && l["started_at"].is_string());
        l["duration_ms"] = Json::Null;
        l["started_at"] = Json::Null;
        assert_eq!(&l, c);
    }
    for field in ["drops", "files"] {
        assert_eq!(live[field], cli[field], "{field}");
    }
}

fn produce(broker: &Broker, start: u64, count: u64) {
    let args = generate_args(broker, "events", start, count, 0.1, 0.0);
    let done = lineage::cli::generate::generate(&args, None, None).expect("produce");
    assert_eq!(done.failed, 0);
}

#[test]
fn the_status_page_and_lineage_status_match_the_commit_log_through_a_swap() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    let dir = paths.file("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let active = dir.join("plugin.wasm");
    std::fs::copy(&components().enrich, &active).unwrap();
    let dir_text = dir.display().to_string();
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[("PLUGIN_PATH", &dir_text), ("PLUGIN_WATCH_INTERVAL", "0")],
    );
    let address = metrics_address(&paths.log());
    let status = || -> Json {
        let (code, body) = get(&address, "/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };

    produce(&broker, 0, 8_000);
    wait_committed(
        &paths,
        "events",
        &ends(&broker.contents("events", PARTITIONS, 8_000)),
    );
    // Idle now: the page's data and the log's agree.
    let live = status();
    assert_eq!(live["live"]["state"]["code"], "consuming", "{live:#}");
    assert_eq!(
        live["plugin"]["sha256"],
        sha256(&components().enrich).as_str()
    );
    assert_eq!(live["plugin"]["name"], "enrich");
    let cli = cli_status(&paths);
    assert_status_matches_log(&paths, &cli);
    assert_live_matches_cli(&live, &cli);
    let output = read_output(&paths);
    let kept: u64 = live["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rows_kept"].as_u64().unwrap())
        .sum();
    assert_eq!(kept as usize, output.data.len());
    // Each drop example is a dropped record of that class, by its trace.
    for d in live["drops"].as_array().unwrap() {
        let example = d["example"].as_str().unwrap();
        let (code, body) = get(&address, &format!("/trace?record={example}"));
        assert_eq!(code, 200, "{body}");
        let trace: Json = serde_json::from_str(&body).unwrap();
        assert!(
            trace["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(d["class"].as_str().unwrap())),
            "{example}: {trace}"
        );
    }

    let screenshot = paths.file("status-page.png");
    let dom = render(&address, &screenshot);
    assert_page_shows(&dom, &live);
    if let Ok(keep) = std::env::var("LINEAGE_STATUS_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).unwrap();
    }

    // A refused build, then a swap: both in the history, the new build in
    // use and in the log's newest checkpoints.
    replace(&active, b"\0asm\x0d\0\x01\0 this is not a component");
    run.reload();
    wait_or(
        "the broken build to be refused",
        Duration::from_secs(60),
        || !status()["live"]["swaps"].as_array().unwrap().is_empty(),
        || paths.log(),
    );
    let pseudonymize = sha256(&components().pseudonymize);
    replace(&active, &std::fs::read(&components().pseudonymize).unwrap());
    run.reload();
    produce(&broker, 8_000, 2_000);
    wait_or(
        "the new build to be in use",
        Duration::from_secs(120),
        || status()["plugin"]["sha256"] == pseudonymize.as_str(),
        || paths.log(),
    );
    produce(&broker, 10_000, 2_000);
    wait_committed(
        &paths,
        "events",
        &ends(&broker.contents("events", PARTITIONS, 12_000)),
    );
    let live = status();
    let swaps = live["live"]["swaps"].as_array().unwrap();
    assert_eq!(swaps.len(), 2, "{swaps:?}");
    assert_eq!(swaps[0]["outcome"], "refused");
    assert!(
        swaps[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("component") || r.contains("WebAssembly")),
        "{swaps:?}"
    );
    assert_eq!(swaps[1]["outcome"], "loaded");
    assert_eq!(swaps[1]["sha256"], pseudonymize.as_str());
    let cli = cli_status(&paths);
    assert_status_matches_log(&paths, &cli);
    assert_live_matches_cli(&live, &cli);
    assert_eq!(cli["plugin"]["sha256"], pseudonymize.as_str());
    assert_eq!(
        cli["checkpoints"][0]["plugin_sha256"],
        pseudonymize.as_str(),
        "the newest checkpoint is the new build's"
    );

    assert!(run.terminate().success(), "{}", paths.log());
    // No instance running: the log alone still answers, in text too.
    let text = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["status", "--output-path", &paths.output])
        .args(["--dropped-path", &paths.dropped])
        .args(["--write-ahead-commit-log-path", &paths.wal])
        .args(["--kafka-bootstrap-servers", &broker.bootstrap])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    for p in 0..PARTITIONS {
        assert!(text.contains(&format!("events/{p} ")), "{text}");
    }
    assert!(
        text.contains("published") && text.contains("pseudonymize"),
        "{text}"
    );
    // With the brokers given, lag is known: everything was committed.
    let lags: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("events/"))
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(lags, vec!["0"; PARTITIONS as usize], "{text}");
}

/// A checkpoint held after its commit point, its files not yet visible
/// (at `after-checkpoint-view`): the page and `lineage status` both call
/// it committed, not published, and both say published once it is.
#[test]
fn a_checkpoint_past_its_commit_point_but_not_visible_shows_as_committed() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    produce(&broker, 0, 2_000);
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[("LINEAGE_FAILPOINTS", "after-checkpoint-view=sleep:10000@1")],
    );
    let address = metrics_address(&paths.log());
    let first = |report: &Json| -> Option<Json> {
        report["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["checkpoint"] == 1)
            .cloned()
    };
    wait_or(
        "checkpoint 1 on the page",
        Duration::from_secs(60),
        || {
            let (_, body) = get(&address, "/status");
            serde_json::from_str::<Json>(&body)
                .ok()
                .and_then(|r| first(&r))
                .is_some()
        },
        || paths.log(),
    );
    let live: Json = serde_json::from_str(&get(&address, "/status").1).unwrap();
    let held = first(&live).unwrap();
    assert_eq!(held["state"], "committed", "{held}");
    assert!(held["files"].as_u64().unwrap() > 0, "{held}");
    assert!(held["duration_ms"].is_null(), "not published yet: {held}");
    let cli = cli_status(&paths);
    assert_eq!(first(&cli).unwrap()["state"], "committed", "{cli:#}");

    wait_committed(
        &paths,
        "events",
        &ends(&broker.contents("events", PARTITIONS, 2_000)),
    );
    wait_or(
        "checkpoint 1 to be published",
        Duration::from_secs(60),
        || {
            let r: Json = serde_json::from_str(&get(&address, "/status").1).unwrap();
            first(&r).unwrap()["state"] == "published"
        },
        || paths.log(),
    );
    assert_eq!(first(&cli_status(&paths)).unwrap()["state"], "published");
    assert!(run.terminate().success(), "{}", paths.log());
}
