//! Confluent-framed topics: records framed by Confluent's own client
//! (confluent-kafka's AvroSerializer) against a registry on loopback, v1
//! and v2 of the writer schema interleaved with bad framing and unknown
//! ids, read by `lineage run` as a separate process and checked by the
//! independent reader. Through a kill -9, registry outages at the start and
//! in the middle of a run, and a restart with the registry down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::observability::scrape;
use crate::pipeline_support::{
    Broker, Lineage, Output, Paths, free_port, read_output, tool, tools_dir, wait_committed,
    wait_for, wait_or,
};

const PARTITIONS: i32 = 4;
const USER_INFO: &str = "lineage-svc:s3cr3t-registry-pw";

/// The stand-in registry (schema_registry.py); killed on drop. Its state
/// survives a restart, as a real registry's does.
struct SchemaRegistry {
    dir: PathBuf,
    port: u16,
    user_info: Option<&'static str>,
    child: Option<Child>,
}

impl SchemaRegistry {
    fn start(dir: PathBuf, user_info: Option<&'static str>) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut registry = Self {
            dir,
            port: free_port(),
            user_info,
            child: None,
        };
        registry.restart();
        registry
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let port_file = self.dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/schema_registry.py");
        let mut command = Command::new(tool(tools_dir().join("python/bin/python")));
        command
            .arg(script)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--port-file")
            .arg(&port_file)
            .arg("--state")
            .arg(self.dir.join("state.json"))
            .arg("--requests")
            .arg(self.dir.join("requests.log"))
            .stdout(Stdio::null());
        if let Some(info) = self.user_info {
            command.arg("--user-info").arg(info);
        }
        self.child = Some(command.spawn().expect("start the registry"));
        wait_for("the registry to listen", Duration::from_secs(30), || {
            port_file.exists()
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The requests it answered, `METHOD path` each.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One record as produce_framed.py reports it, acknowledged.
#[derive(Debug, Clone, Deserialize)]
struct Produced {
    partition: i32,
    offset: i64,
    kind: String,
    uuid: String,
    timestamp: i64,
    schema_id: Option<u32>,
}

fn produce_framed(
    broker: &Broker,
    registry: &SchemaRegistry,
    start: u64,
    count: u64,
    valid_only: bool,
) -> Vec<Produced> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/produce_framed.py");
    let mut command = Command::new(tool(tools_dir().join("python/bin/python")));
    command
        .arg(script)
        .args([&broker.bootstrap, "events", &registry.url()])
        .args([start.to_string(), count.to_string(), PARTITIONS.to_string()]);
    if valid_only {
        command.arg("--valid-only");
    }
    if let Some(info) = registry.user_info {
        command.env("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", info);
    }
    let out = command.output().expect("run the framed producer");
    assert!(
        out.status.success(),
        "framed producer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let produced: Vec<Produced> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(produced.len() as u64, count);
    produced
}

/// Each partition's next offset after what was produced.
fn ends(produced: &[Produced]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for p in produced {
        let end = ends.entry(p.partition).or_insert(0);
        *end = (*end).max(p.offset + 1);
    }
    ends
}

fn framed_env(registry: &SchemaRegistry, cache: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("INPUT_FORMAT".to_owned(), "confluent".to_owned()),
        ("SCHEMA_REGISTRY_URL".to_owned(), registry.url()),
        ("SCHEMA_CACHE_DIR".to_owned(), cache.display().to_string()),
        ("PROGRESS_INTERVAL".to_owned(), "200ms".to_owned()),
    ];
    if let Some(info) = registry.user_info {
        env.push((
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO".to_owned(),
            info.to_owned(),
        ));
    }
    env
}

fn start(broker: &Broker, paths: &Paths, env: &[(String, String)]) -> Lineage {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Lineage::start_ready(broker, "events", paths, &env)
}

/// Every produced record in exactly one committed file: v1 and v2 kept with
/// their values and schema id, the others dropped with the host's or the
/// plugin's reason and the schema id where the framing named one; no
/// record dropped for anything else.
fn assert_framed_exactly_once(produced: &[Produced], output: &Output) {
    let mut visible: Vec<&String> = output.visible.iter().collect();
    visible.sort();
    let committed: Vec<&String> = output.committed.keys().collect();
    assert_eq!(visible, committed, "visible files are the committed ones");
    let mut seen: BTreeMap<(i64, i64), (&str, &serde_json::Value)> = BTreeMap::new();
    for (kind, rows) in [("data", &output.data), ("dropped", &output.dropped)] {
        for row in rows {
            let key = (row[0].as_i64().unwrap(), row[1].as_i64().unwrap());
            assert!(seen.insert(key, (kind, row)).is_none(), "{key:?} twice");
        }
    }
    assert_eq!(seen.len(), produced.len(), "every record once, no other");
    for p in produced {
        let key = (p.partition as i64, p.offset);
        let (kind, row) = seen[&key];
        let id = output
            .schema_ids
            .get(&format!("{}@{}", p.partition, p.offset));
        let reason = row[2].as_str().unwrap_or_default();
        match p.kind.as_str() {
            "v1" | "v2" => {
                assert_eq!(kind, "data", "{p:?}: {row}");
                assert_eq!(
                    (row[2].as_str().unwrap(), row[3].as_i64().unwrap()),
                    (p.uuid.as_str(), p.timestamp),
                    "{p:?}"
                );
            }
            "bad-uuid" => assert!(
                kind == "dropped" && reason.starts_with("uuid: "),
                "{p:?}: {row}"
            ),
            "bad-magic" => assert_eq!(
                reason, "confluent framing: magic byte is 0x48, not 0x00",
                "{p:?}"
            ),
            "short" => assert_eq!(
                reason, "confluent framing: the value is 3 bytes, shorter than the 5-byte header",
                "{p:?}"
            ),
            "unknown-id" => assert_eq!(reason, "schema registry: no schema with id 9999", "{p:?}"),
            other => panic!("unknown kind {other}"),
        }
        assert_eq!(id, p.schema_id.as_ref(), "{p:?}: the row's schema_id");
    }
}

/// Until the run has retried the registry a few times and shows the
/// outage in its metrics and its progress line.
fn wait_for_outage(paths: &Paths) {
    wait_or(
        "the outage to be retried and reported",
        Duration::from_secs(60),
        || {
            let m = scrape(paths);
            m["lineage_schema_registry_down"] == 1.0
                && m["lineage_schema_registry_failures_total"] >= 3.0
                && paths.log().contains("waiting_for_schema_registry=true")
        },
        || paths.log(),
    );
}

/// `lineage trace` of a produced record, asking the registry for subjects.
fn trace(paths: &Paths, registry: &SchemaRegistry, p: &Produced, json: bool) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lineage"));
    command
        .arg("trace")
        .arg(format!("events/{}@{}", p.partition, p.offset))
        .env("OUTPUT_PATH", &paths.output)
        .env("DROPPED_PATH", &paths.dropped)
        .env("WRITE_AHEAD_COMMIT_LOG_PATH", &paths.wal)
        .env("SCHEMA_REGISTRY_URL", registry.url())
        .env("NO_COLOR", "1");
    if json {
        command.arg("--json");
    }
    if let Some(info) = registry.user_info {
        command.env("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", info);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "trace: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The two writer schemas' ids, as the producer's serializer framed them.
fn versions(produced: &[Produced]) -> BTreeSet<u32> {
    produced
        .iter()
        .filter(|p| p.kind == "v1" || p.kind == "v2")
        .filter_map(|p| p.schema_id)
        .collect()
}

#[test]
fn interleaved_schema_versions_bad_framing_and_unknown_ids_are_committed_once_across_a_kill_9() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    let registry = SchemaRegistry::start(paths.file("registry"), Some(USER_INFO));
    let produced = produce_framed(&broker, &registry, 0, 3000, false);
    assert_eq!(versions(&produced).len(), 2, "v1 and v2 have ids");

    let mut env = framed_env(&registry, &paths.file("schemas"));
    env.push(("RUST_LOG".into(), "debug".into()));
    let run = start(&broker, &paths, &env);
    wait_or(
        "a first checkpoint",
        Duration::from_secs(60),
        || paths.commits().iter().any(|c| !c.files.is_empty()),
        || paths.log(),
    );
    run.kill();
    let run = start(&broker, &paths, &env);
    wait_committed(&paths, "events", &ends(&produced));
    assert!(run.terminate().success(), "{}", paths.log());

    let output = read_output(&paths);
    assert_framed_exactly_once(&produced, &output);
    // A new writer schema never starts a new file: all records are of one
    // hour, so each checkpoint has one data file per partition, and files
    // list both versions.
    let mut files: BTreeMap<(i64, i64), BTreeSet<&str>> = BTreeMap::new();
    for row in &output.data {
        let file = row[5].as_str().unwrap();
        files
            .entry((row[0].as_i64().unwrap(), output.committed[file]))
            .or_default()
            .insert(file);
    }
    assert!(files.values().all(|f| f.len() == 1), "{files:?}");
    let listed: BTreeSet<u32> = output
        .file_schema_ids
        .iter()
        .filter(|(file, _)| output.data.iter().any(|r| r[5] == file.as_str()))
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    assert_eq!(
        listed,
        versions(&produced),
        "the commit log lists each file's writer schemas"
    );
    assert!(
        output.file_schema_ids.values().any(|ids| ids.len() == 2),
        "a file holds both versions: {:?}",
        output.file_schema_ids
    );
    // trace names a record's writer schema: its id, subject and version.
    let v2 = produced.iter().find(|p| p.kind == "v2").unwrap();
    let text = trace(&paths, &registry, v2, false);
    let id = v2.schema_id.unwrap();
    assert!(
        text.contains(&format!("schema      id {id} (events-value v2)")),
        "{text}"
    );
    let unknown = produced.iter().find(|p| p.kind == "unknown-id").unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&trace(&paths, &registry, unknown, true)).unwrap();
    assert_eq!(json["output"], "dropped", "{json}");
    assert_eq!(json["schema_id"], 9999, "{json}");
    assert_eq!(
        json["reason"], "schema registry: no schema with id 9999",
        "{json}"
    );
    assert_eq!(json["schema_unknown"], true, "{json}");
    // Each id was asked of the registry once per run at most, and the
    // credentials never reached the log, even at debug level.
    let fetches = registry
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /schemas/ids/"))
        .count();
    assert!(fetches <= 2 * 3, "{:?}", registry.requests());
    let log = paths.log();
    assert!(
        !log.contains("s3cr3t-registry-pw"),
        "the password is in the log"
    );
}

#[test]
fn a_registry_outage_pauses_consumption_drops_nothing_and_cached_ids_need_no_registry() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    let mut registry = SchemaRegistry::start(paths.file("registry"), None);
    let mut produced = produce_framed(&broker, &registry, 0, 1500, false);
    let cache = paths.file("schemas");
    let env = framed_env(&registry, &cache);

    // Down before Lineage has seen any id: it waits, and says so.
    registry.stop();
    let run = start(&broker, &paths, &env);
    wait_for_outage(&paths);
    assert!(
        paths.commits().iter().all(|c| c.files.is_empty()),
        "nothing is committed while the registry is down"
    );
    let log = paths.log();
    assert!(
        log.contains("fetch schema") && log.contains("Connection refused"),
        "the log says what failed:\n{log}"
    );
    registry.restart();
    wait_committed(&paths, "events", &ends(&produced));
    assert_eq!(scrape(&paths)["lineage_schema_registry_down"], 0.0);
    assert!(run.terminate().success(), "{}", paths.log());

    // Restarted with the registry down: the ids it has seen are on disk.
    produced.extend(produce_framed(&broker, &registry, 1500, 600, true));
    registry.stop();
    let run = start(&broker, &paths, &env);
    wait_committed(&paths, "events", &ends(&produced));
    assert_eq!(
        scrape(&paths)["lineage_schema_registry_failures_total"],
        0.0,
        "no fetch was needed"
    );
    assert!(run.terminate().success(), "{}", paths.log());
    assert_framed_exactly_once(&produced, &read_output(&paths));
}

/// The registry goes down in the middle of a run, just as records with an
/// id Lineage has not looked up yet arrive (here 9999, which the registry
/// does not know: a drop decision that must wait for its answer). Nothing
/// of those records is dropped or committed while it is down; once it is
/// back they are dropped for what the registry says, and everything else is
/// committed exactly once.
#[test]
fn a_registry_down_mid_run_holds_records_of_new_ids_until_it_answers() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    let mut registry = SchemaRegistry::start(paths.file("registry"), None);
    let mut produced = produce_framed(&broker, &registry, 0, 600, true);
    let mut env = framed_env(&registry, &paths.file("schemas"));
    // It stays frozen for a whole producer run: longer than the tests'
    // usual 6 s session would allow on two busy cores.
    env.push((
        "KAFKA_PROPERTIES".into(),
        "session.timeout.ms=60000,heartbeat.interval.ms=3000".into(),
    ));
    let run = start(&broker, &paths, &env);
    wait_committed(&paths, "events", &ends(&produced));
    let before = paths.commits().len();

    // Frozen while the next records go in, so that it first meets them
    // with the registry down.
    run.freeze();
    let later = produce_framed(&broker, &registry, 600, 900, false);
    assert!(later.iter().any(|p| p.kind == "unknown-id"));
    produced.extend(later);
    registry.stop();
    run.thaw();
    let outage = std::time::Instant::now();
    wait_for_outage(&paths);
    // Down for at least 10 s, and the checkpoints of that time hold none
    // of the records that wait for it.
    wait_or(
        "10 s of outage",
        Duration::from_secs(60),
        || outage.elapsed() >= Duration::from_secs(10),
        || paths.log(),
    );
    // Per partition, the first record of the new id and all after it.
    let mut undecided: BTreeMap<i32, i64> = BTreeMap::new();
    for p in produced.iter().filter(|p| p.kind == "unknown-id") {
        let at = undecided.entry(p.partition).or_insert(p.offset);
        *at = (*at).min(p.offset);
    }
    for c in &paths.commits()[before..] {
        for r in &c.ranges {
            if let Some(&first) = undecided.get(&r.source.partition) {
                assert!(
                    r.last < first,
                    "commit {} holds {}..={} of partition {}, past offset {first}, whose id the registry was down for",
                    c.seq,
                    r.first,
                    r.last,
                    r.source.partition
                );
            }
        }
    }
    registry.restart();
    wait_committed(&paths, "events", &ends(&produced));
    assert_eq!(scrape(&paths)["lineage_schema_registry_down"], 0.0);
    assert!(run.terminate().success(), "{}", paths.log());
    assert_framed_exactly_once(&produced, &read_output(&paths));
}

/// `lineage generate --schema-registry` registers v1 and v2 under
/// `events-value` and produces framed records of both, with bad framing
/// and unknown ids among the invalid share; `lineage run` reads them.
#[test]
fn generate_registers_both_versions_and_produces_what_run_reads() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    let registry = SchemaRegistry::start(paths.file("registry"), None);
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args([
            "generate",
            "--count",
            "900",
            "--rate",
            "0",
            "--invalid-share",
            "0.3",
        ])
        .args(["--schema-registry", &registry.url()])
        .env("KAFKA_BOOTSTRAP_SERVERS", &broker.bootstrap)
        .env("KAFKA_TOPIC", "events")
        .env("KAFKA_PROPERTIES", "batch.num.messages=1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registered = registry
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /subjects/events-value/versions"))
        .count();
    assert_eq!(registered, 2, "{:?}", registry.requests());

    let contents = broker.contents("events", PARTITIONS, 900);
    let env = framed_env(&registry, &paths.file("schemas"));
    let run = start(&broker, &paths, &env);
    wait_committed(&paths, "events", &crate::pipeline_support::ends(&contents));
    assert!(run.terminate().success(), "{}", paths.log());
    let output = read_output(&paths);
    assert_eq!(output.data.len() + output.dropped.len(), 900);
    let kept_ids: BTreeSet<u32> = output
        .data
        .iter()
        .map(|r| output.schema_ids[&format!("{}@{}", r[0], r[1])])
        .collect();
    assert_eq!(kept_ids, BTreeSet::from([1, 2]), "both versions kept");
    let reasons: BTreeSet<String> = output
        .dropped
        .iter()
        .map(|r| r[2].as_str().unwrap().split(':').next().unwrap().to_owned())
        .collect();
    for class in ["confluent framing", "schema registry", "uuid"] {
        assert!(reasons.contains(class), "no {class} drop: {reasons:?}");
    }
}
