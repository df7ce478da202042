//! Support for pipeline tests: a real broker (tansu) on loopback, `lineage
//! run` as a separate process, and an independent check of the output.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value as Json;

use lineage::commit::{Commit, CommitLog};
use lineage::partition::TopicPartition;
use lineage::sink::CHECKPOINT_ID;
use lineage::store::{Location, S3Settings};

use crate::s3_servers::{Kind, S3Server};
use crate::support::{components, repo_root};

pub fn tools_dir() -> PathBuf {
    std::env::var_os("LINEAGE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lineage/tools")
        })
}

pub fn tool(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/install.sh",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` until it holds, or fails the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, ready: impl FnMut() -> bool) {
    wait_or(what, limit, ready, String::new)
}

/// Like `wait_for`, with `context` (a log, say) in the failure message.
pub fn wait_or(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tansu broker with in-memory storage on a loopback port; stopped on
/// drop.
pub struct Broker {
    child: Child,
    pub bootstrap: String,
}

impl Broker {
    pub fn start() -> Self {
        let tansu = tool(tools_dir().join("tansu-0.6.0/bin/tansu"));
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let bootstrap = format!("127.0.0.1:{port}");
        wait_for("tansu to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&bootstrap).is_ok()
        });
        Self { child, bootstrap }
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("admin client")
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin = self.admin();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let results = runtime
            .block_on(admin.create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ))
            .expect("create topic");
        for r in results {
            r.expect("topic created");
        }
    }

    pub fn delete_topic(&self, topic: &str) {
        let admin = self.admin();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let results = runtime
            .block_on(admin.delete_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ))
            .expect("delete topic");
        for r in results {
            r.expect("topic deleted");
        }
    }

    /// Everything the topic holds: see [`read_topic`].
    pub fn contents(&self, topic: &str, partitions: i32, total: usize) -> Contents {
        read_topic(&self.bootstrap, topic, partitions, total)
    }
}

/// Everything a topic holds, read by a plain consumer: the ground truth the
/// output is checked against. `total` is how many records were produced
/// (tansu's high watermarks lag, so they cannot say).
pub fn read_topic(bootstrap: &str, topic: &str, partitions: i32, total: usize) -> Contents {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < total {
        assert!(
            Instant::now() < deadline,
            "reading the topic back timed out after {} of {total} records",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("read the topic");
            out.insert((m.partition(), m.offset()), m.payload().map(<[u8]>::to_vec));
        }
    }
    out
}

/// The records of a topic by (partition, offset).
pub type Contents = BTreeMap<(i32, i64), Option<Vec<u8>>>;

/// The offset after the last record, per partition.
pub fn ends(contents: &Contents) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for (p, o) in contents.keys() {
        let end = ends.entry(*p).or_insert(0);
        *end = (*end).max(o + 1);
    }
    ends
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which store a test writes to.
#[derive(Debug, Clone, Copy)]
pub enum Store {
    Local,
    Moto,
    /// Ignores conditional writes: runs need --single-writer.
    Garage,
}

/// Output, dropped and commit-log locations of one test: local directories
/// or prefixes in a bucket of a moto or garage server.
pub struct Paths {
    _dir: tempfile::TempDir,
    pub server: Option<S3Server>,
    pub output: String,
    pub dropped: String,
    pub wal: String,
    /// What `lineage run` and the reader need to reach the store.
    pub env: Vec<(String, String)>,
    /// Every run's stderr, appended.
    pub log: PathBuf,
}

impl Paths {
    pub fn new() -> Self {
        Self::on(Store::Local)
    }

    pub fn on(store: Store) -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        // For post-mortems: LINEAGE_KEEP_TEST_DIRS=1 leaves them in /tmp.
        if std::env::var_os("LINEAGE_KEEP_TEST_DIRS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("test directory: {}", dir.path().display());
        }
        let log = dir.path().join("lineage.log");
        match store {
            Store::Local => {
                let at = |name: &str| dir.path().join(name).display().to_string();
                Self {
                    output: at("output"),
                    dropped: at("dropped"),
                    wal: at("wal"),
                    env: Vec::new(),
                    log,
                    server: None,
                    _dir: dir,
                }
            }
            Store::Moto | Store::Garage => {
                let kind = match store {
                    Store::Moto => Kind::Moto,
                    _ => Kind::Garage,
                };
                let server = S3Server::start(kind);
                let at = |name: &str| format!("s3://{}/it/{name}", server.bucket);
                let mut env = server.env();
                match kind {
                    Kind::Garage => env.push(("SINGLE_WRITER".into(), "true".into())),
                    // Files of a few parts even at test sizes.
                    Kind::Moto => env.extend([
                        ("UPLOAD_PART_SIZE".into(), "16KiB".into()),
                        ("ROW_GROUP_SIZE".into(), "8KiB".into()),
                    ]),
                }
                Self {
                    output: at("output"),
                    dropped: at("dropped"),
                    wal: at("wal"),
                    env,
                    log,
                    server: Some(server),
                    _dir: dir,
                }
            }
        }
    }

    /// Runs a `lineage` command (trace, log verify, status) on these
    /// paths, with the settings runs get (the store's, the table's).
    pub fn lineage(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(args)
            .env("OUTPUT_PATH", &self.output)
            .env("DROPPED_PATH", &self.dropped)
            .env("WRITE_AHEAD_COMMIT_LOG_PATH", &self.wal)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run lineage")
    }

    /// A path in the test's own directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self._dir.path().join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The commit log, opened as Lineage opens it (object_store's S3 keys
    /// are the environment's names, lower-cased).
    pub fn commit_log(&self) -> CommitLog {
        CommitLog::new(self.location("WRITE_AHEAD_COMMIT_LOG_PATH", &self.wal))
    }

    /// Every commit in the log, in order; a missing one fails the test.
    pub fn commits(&self) -> Vec<Commit> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let log = self.commit_log();
        let loaded = runtime.block_on(log.load()).expect("load the commit log");
        (1..=loaded.state.seq)
            .map(|seq| {
                runtime
                    .block_on(log.read(seq))
                    .expect("read a commit")
                    .unwrap_or_else(|| panic!("commit {seq} missing"))
            })
            .collect()
    }

    /// One of the locations, opened as Lineage opens it (object_store's S3
    /// keys are the environment's names, lower-cased).
    pub fn location(&self, setting: &'static str, url: &str) -> Location {
        let settings = S3Settings {
            options: self
                .env
                .iter()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .map(|(k, v)| (k.to_lowercase(), v.clone()))
                .collect(),
            ..S3Settings::default()
        };
        Location::open_with(setting, url, &settings).expect("open a location")
    }

    /// The most parts any committed file was uploaded in, from the
    /// `publish` column of every commit.
    pub fn most_parts_of_a_file(&self) -> usize {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let wal = self.location("WRITE_AHEAD_COMMIT_LOG_PATH", &self.wal);
        runtime.block_on(async {
            let commits: Vec<_> = wal
                .store
                .list(Some(&wal.path("_commits")))
                .try_collect()
                .await
                .expect("list commits");
            let mut most = 0;
            for meta in commits {
                let bytes = wal
                    .store
                    .get(&meta.location)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                for line in String::from_utf8_lossy(&bytes).lines() {
                    if let Some(at) = line.find("|multipart:") {
                        let parts = line[at..].split(':').nth(2).unwrap_or("");
                        most = most.max(parts.split(';').count());
                    }
                }
            }
            most
        })
    }

    /// Multipart uploads still open under the output and dropped
    /// locations: none once every file is committed or aborted.
    pub fn open_uploads(&self) -> Vec<(String, String)> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        [
            ("OUTPUT_PATH", &self.output),
            ("DROPPED_PATH", &self.dropped),
        ]
        .into_iter()
        .flat_map(|(setting, url)| {
            runtime
                .block_on(self.location(setting, url).open_uploads_under(""))
                .expect("list open uploads")
        })
        .collect()
    }
}

/// A failed test keeps its directory (logs, output, commit log) for the
/// post-mortem and says where it is.
impl Drop for Paths {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self._dir.disable_cleanup(true);
            eprintln!(
                "kept the failed test's directory: {}",
                self._dir.path().display()
            );
        }
    }
}

/// `lineage run` as its own process.
pub struct Lineage {
    child: Option<Child>,
}

pub const CHECKPOINT_INTERVAL: &str = "300ms";

/// A value in a run's `env` that removes the variable instead.
pub const UNSET: &str = "\u{0}unset";

impl Lineage {
    pub fn start(broker: &Broker, topic: &str, paths: &Paths, env: &[(&str, &str)]) -> Self {
        Self::start_logging_to(broker, topic, paths, env, &paths.log)
    }

    /// As [`Lineage::start`], with stderr appended to `log`.
    pub fn start_logging_to(
        broker: &Broker,
        topic: &str,
        paths: &Paths,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lineage"));
        command.arg("run");
        Self::spawn(command, broker, topic, paths, env, log)
    }

    /// As [`Lineage::start`], under `strace -f` writing the calls in
    /// `syscalls` (with file paths) to `trace`. Signals sent to it reach
    /// strace, which passes them on.
    pub fn start_traced(
        broker: &Broker,
        topic: &str,
        paths: &Paths,
        env: &[(&str, &str)],
        syscalls: &str,
        trace: &Path,
    ) -> Self {
        let mut command = Command::new("strace");
        command
            .args(["-f", "-qq", "-y", "-e"])
            .arg(format!("trace={syscalls}"))
            .arg("-o")
            .arg(trace)
            .arg(env!("CARGO_BIN_EXE_lineage"))
            .arg("run");
        Self::spawn(command, broker, topic, paths, env, &paths.log)
    }

    fn spawn(
        mut command: Command,
        broker: &Broker,
        topic: &str,
        paths: &Paths,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Self {
        command
            .env("KAFKA_BOOTSTRAP_SERVERS", &broker.bootstrap)
            .env("KAFKA_TOPIC", topic)
            // A fresh group per process: tansu 0.6 does not always hand the
            // partitions of killed members to a new one (seen after a burst
            // of kill -9), and offsets live in the commit log anyway.
            .env(
                "KAFKA_GROUP_ID",
                format!("it-{topic}-{}", uuid::Uuid::new_v4().simple()),
            )
            .envs(paths.env.iter().map(|(k, v)| (k, v)))
            .env("OUTPUT_PATH", &paths.output)
            .env("DROPPED_PATH", &paths.dropped)
            .env("WRITE_AHEAD_COMMIT_LOG_PATH", &paths.wal)
            .env("PLUGIN_PATH", &components().enrich)
            .env(
                "PLUGIN_CACHE_DIR",
                repo_root().join("target/test-plugin-cache"),
            )
            .env("CHECKPOINT_INTERVAL", CHECKPOINT_INTERVAL)
            .env("WORKERS", "2")
            .env("SNAPSHOT_EVERY", "2")
            // A killed member leaves the group after this, not the default
            // 45 s, so that restarts get their partitions back quickly.
            .env(
                "KAFKA_PROPERTIES",
                "session.timeout.ms=6000,heartbeat.interval.ms=500",
            )
            .env("NO_COLOR", "1")
            // A port of its own, so that tests running side by side do not
            // collide on the default.
            .env("METRICS_ADDRESS", "127.0.0.1:0")
            .env_remove("LINEAGE_FAILPOINTS")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("open the run log"),
            );
        for (k, v) in env {
            match *v {
                UNSET => command.env_remove(k),
                v => command.env(k, v),
            };
        }
        let child = command.spawn().expect("start lineage run");
        Self { child: Some(child) }
    }

    /// Starts and waits until the partitions are assigned (and claimed).
    pub fn start_ready(broker: &Broker, topic: &str, paths: &Paths, env: &[(&str, &str)]) -> Self {
        let before = paths.log().matches("partitions assigned").count();
        let run = Self::start(broker, topic, paths, env);
        wait_or(
            "lineage to be assigned partitions",
            Duration::from_secs(60),
            || paths.log().matches("partitions assigned").count() > before,
            || paths.log(),
        );
        run
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    fn signal(&self, signal: i32) {
        // SAFETY: plain syscall on a child we own.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// SIGTERM, then wait: a graceful stop.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(60))
    }

    /// SIGSTOP: frozen, heartbeats and all, as a long GC pause or a VM
    /// stall would leave it.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGHUP: check PLUGIN_PATH for a new plugin now.
    pub fn reload(&self) {
        self.signal(libc::SIGHUP);
    }

    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("running");
        child.try_wait().expect("wait for lineage").is_none()
    }

    /// SIGKILL, then wait.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(30));
    }

    /// Waits for the process to exit on its own, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let mut status = None;
        wait_for("lineage to exit", limit, || {
            status = child.try_wait().expect("wait for lineage");
            status.is_some()
        });
        self.child = None;
        status.expect("exited")
    }
}

impl Drop for Lineage {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Producer settings for tests. tansu 0.6's memory engine serves the wrong
/// records to a fetch that starts inside a multi-record batch (it skips or
/// repeats some), and a restart resumes anywhere: one record per batch
/// keeps every offset a batch boundary.
pub fn test_producer_properties() -> Vec<(String, String)> {
    vec![("batch.num.messages".into(), "1".into())]
}

pub fn generate_args(
    broker: &Broker,
    topic: &str,
    start: u64,
    count: u64,
    invalid_share: f64,
    rate: f64,
) -> lineage::cli::generate::GenerateArgs {
    lineage::cli::generate::GenerateArgs {
        kafka: lineage::cli::run::KafkaArgs {
            bootstrap_servers: broker.bootstrap.clone(),
            topic: topic.into(),
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            properties: test_producer_properties(),
        },
        rate,
        count: Some(count),
        invalid_share,
        start,
        schema_registry: None,
    }
}

/// Produces `count` seed records, a share of them invalid, with sequence
/// numbers from `start`.
pub fn produce(broker: &Broker, topic: &str, start: u64, count: u64, invalid_share: f64) {
    let args = generate_args(broker, topic, start, count, invalid_share, 0.0);
    let done = lineage::cli::generate::generate(&args, None, None).expect("produce");
    assert_eq!(done.records, count);
    assert_eq!(done.failed, 0);
}

/// Waits until the commit log accounts for every offset before `ends`.
pub fn wait_committed(paths: &Paths, topic: &str, ends: &BTreeMap<i32, i64>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let log = paths.commit_log();
    let tail = || {
        let log = paths.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    wait_or(
        "the commit log to catch up",
        Duration::from_secs(120),
        || {
            let Ok(loaded) = runtime.block_on(log.load()) else {
                return false;
            };
            ends.iter().all(|(p, h)| {
                *h == 0
                    || loaded
                        .state
                        .partition(&TopicPartition {
                            topic: topic.into(),
                            partition: *p,
                        })
                        .is_some_and(|s| s.next >= *h)
            })
        },
        tail,
    );
}

/// What the output holds, read by pyarrow and DuckDB.
pub struct Output {
    pub data: Vec<Json>,
    pub dropped: Vec<Json>,
    pub visible: Vec<String>,
    pub committed: BTreeMap<String, i64>,
    /// The plugin build (sha256) the commit log names for each file.
    pub plugins: BTreeMap<String, String>,
    /// `partition@offset` → the schema id its row carries (framed input).
    pub schema_ids: BTreeMap<String, u32>,
    /// The schema ids the commit log lists for each file.
    pub file_schema_ids: BTreeMap<String, Vec<u32>>,
    pub duckdb_rows: i64,
}

pub fn read_output(paths: &Paths) -> Output {
    read_output_at(&paths.output, &paths.dropped, &paths.wal, &paths.env)
}

pub fn read_output_at(output: &str, dropped: &str, wal: &str, env: &[(String, String)]) -> Output {
    let python = tool(tools_dir().join("python/bin/python"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/read_output.py");
    let out = Command::new(python)
        .arg(script)
        .args([output, dropped, wal])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run the reader");
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Json = serde_json::from_slice(&out.stdout).expect("reader JSON");
    let list = |k: &str| doc[k].as_array().cloned().unwrap_or_default();
    Output {
        data: list("data"),
        dropped: list("dropped"),
        visible: list("visible")
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        committed: doc["committed"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
            .collect(),
        plugins: doc["plugins"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect(),
        schema_ids: serde_json::from_value(doc["schema_ids"].clone()).unwrap(),
        file_schema_ids: serde_json::from_value(doc["file_schema_ids"].clone()).unwrap(),
        duckdb_rows: doc["duckdb_rows"].as_i64().unwrap(),
    }
}

/// The promise: every record of the topic is in exactly one committed data
/// or dropped file, valid ones as data with the right values and hour,
/// invalid ones as dropped with the plugin's reason; nothing uncommitted is
/// visible. Returns (kept, dropped).
pub fn assert_exactly_once(contents: &Contents, output: &Output) -> (usize, usize) {
    assert_exactly_once_by(contents, output, |_| Expect::ENRICH)
}

/// A plugin's decision on a record value.
pub type Outcome = fn(Option<&[u8]>) -> Result<(String, i64), String>;

/// What a plugin makes of a record value: the kept row's first column
/// (uuid, or `user_key:` and the key) and event time, or the drop reason.
#[derive(Clone, Copy)]
pub struct Expect {
    pub outcome: Outcome,
    /// Compare only the reason's class (the text before the first colon):
    /// another language's plugin words its messages its own way.
    pub reason_class_only: bool,
}

impl Expect {
    pub const ENRICH: Expect = Expect {
        outcome: |v| guest_enrich::enrich(v).map(|e| (e.uuid, e.timestamp)),
        reason_class_only: false,
    };
    pub const ENRICH_PY: Expect = Expect {
        reason_class_only: true,
        ..Expect::ENRICH
    };
    /// The Kafka timestamp is not known here: the generator's events are
    /// never late, so the rule keeps them all.
    pub const PSEUDONYMIZE: Expect = Expect {
        outcome: |v| {
            pseudonymize::pseudonymize(v, None).map(|(key, ts)| (format!("user_key:{key}"), ts))
        },
        reason_class_only: false,
    };
}

/// As [`assert_exactly_once`], with each file checked against what the
/// plugin that wrote it (`expect(file)`) makes of its records.
pub fn assert_exactly_once_by(
    contents: &Contents,
    output: &Output,
    expect: impl Fn(&str) -> Expect,
) -> (usize, usize) {
    let mut seen: BTreeMap<(i32, i64), &'static str> = BTreeMap::new();
    let mut twice = Vec::new();
    let mut visible: Vec<&String> = output.visible.iter().collect();
    visible.sort();
    let mut committed: Vec<&String> = output.committed.keys().collect();
    committed.sort();
    assert_eq!(
        visible, committed,
        "the visible files must be exactly the committed ones"
    );
    for row in &output.data {
        let key = (row[0].as_i64().unwrap() as i32, row[1].as_i64().unwrap());
        if seen.insert(key, "data").is_some() {
            twice.push(key);
        }
        let value = contents
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} is in the output but not in the topic"));
        let file = row[5].as_str().unwrap();
        let (id, timestamp) = (expect(file).outcome)(value.as_deref())
            .unwrap_or_else(|e| panic!("{key:?} was kept in {file} but is invalid: {e}"));
        assert_eq!(row[2].as_str().unwrap(), id, "{key:?} uuid");
        assert_eq!(row[3].as_i64().unwrap(), timestamp, "{key:?} timestamp");
        let hour = lineage::staging::Hour::of_millis(timestamp).unwrap().dir();
        assert!(
            file.contains(&hour),
            "{key:?} is in {file}, not under {hour}"
        );
        assert_eq!(
            Some(&row[4].as_i64().unwrap()),
            output.committed.get(file),
            "{key:?}: {CHECKPOINT_ID} differs from the checkpoint that committed {file}"
        );
    }
    for row in &output.dropped {
        let key = (row[0].as_i64().unwrap() as i32, row[1].as_i64().unwrap());
        if seen.insert(key, "dropped").is_some() {
            twice.push(key);
        }
        let value = contents
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} is in the output but not in the topic"));
        let file = row[4].as_str().unwrap();
        let expected = expect(file);
        let reason = (expected.outcome)(value.as_deref())
            .err()
            .unwrap_or_else(|| panic!("{key:?} was dropped in {file} but is valid"));
        let written = row[2].as_str().unwrap();
        if expected.reason_class_only {
            let class = |r: &str| r.split(':').next().unwrap_or_default().to_owned();
            assert_eq!(class(written), class(&reason), "{key:?} reason: {written}");
        } else {
            assert_eq!(written, reason, "{key:?} reason");
        }
        assert_eq!(
            Some(row[5].as_str().unwrap()),
            output.plugins.get(file).map(String::as_str),
            "{key:?}: the dropped row names another plugin than the commit of {file}"
        );
        assert_eq!(
            Some(&row[3].as_i64().unwrap()),
            output.committed.get(file),
            "{key:?}: {CHECKPOINT_ID} differs from its checkpoint"
        );
    }
    assert!(
        twice.is_empty(),
        "records written twice: {:?}",
        &twice[..twice.len().min(20)]
    );
    let missing: Vec<_> = contents.keys().filter(|k| !seen.contains_key(k)).collect();
    assert!(
        missing.is_empty(),
        "{} records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert_eq!(
        output.duckdb_rows,
        output.data.len() as i64,
        "DuckDB reads every data row"
    );
    (output.data.len(), output.dropped.len())
}

/// Files and staging entries of fenced, killed and frozen instances were
/// all aborted: no entry, no half-written file, no open upload is left.
pub fn assert_no_staged_files_left(paths: &Paths) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let log = paths.commit_log();
    let mut entries = Vec::new();
    for tp in runtime
        .block_on(log.entries().staged_partitions())
        .expect("list staging entries")
    {
        let staged = runtime
            .block_on(log.entries().staged(&tp))
            .expect("read staging entries");
        for entry in staged.entries {
            entries.push(format!("{} {} by {}", tp, entry.key, entry.owner));
        }
        for id in staged.torn {
            entries.push(format!("{tp} torn entry {id}"));
        }
    }
    assert!(entries.is_empty(), "staging entries left: {entries:?}");
    let mut files = local_files(std::path::Path::new(&paths.output));
    files.extend(local_files(std::path::Path::new(&paths.dropped)));
    files.retain(|f| f.contains(".lineage-staging"));
    assert!(files.is_empty(), "staged files left: {files:?}");
    let open = paths.open_uploads();
    assert!(open.is_empty(), "multipart uploads left open: {open:?}");
}

fn local_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(local_files(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}
