//! `/metrics`, `/healthz` and `/readyz` of a running `lineage run`, checked
//! against what was produced.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use crate::pipeline_support::{
    Broker, Lineage, Paths, assert_exactly_once, ends, produce, read_output, wait_committed,
    wait_or,
};

const PARTITIONS: i32 = 4;

/// A plain HTTP/1.1 GET: (status, body).
pub fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the metrics port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Where the run now writing to `log` serves /metrics: the last address
/// the log names (a restarted run appends to its log).
pub fn metrics_address(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("serving /metrics"))
        .and_then(|l| l.split("address=").nth(1))
        .map(|a| a.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
}

/// The metrics of the run now writing to `paths`' log.
pub fn scrape(paths: &Paths) -> BTreeMap<String, f64> {
    samples(&get(&metrics_address(&paths.log()), "/metrics").1)
}

/// `name{labels}` → value, for every sample of a text exposition.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {l:?}"));
            (
                name.to_owned(),
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

fn sum(samples: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// Checkpoints the commit log holds: one `chk-<N>/` view each.
fn checkpoints(paths: &Paths) -> usize {
    std::fs::read_dir(&paths.wal)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("chk-"))
        })
        .count()
}

/// Bytes of the visible Parquet files under a local output.
fn parquet_bytes(dir: &str) -> u64 {
    fn walk(dir: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() && !e.file_name().to_string_lossy().starts_with('.') {
                    walk(&path)
                } else if path.extension().is_some_and(|x| x == "parquet") {
                    e.metadata().map_or(0, |m| m.len())
                } else {
                    0
                }
            })
            .sum()
    }
    walk(std::path::Path::new(dir))
}

#[test]
fn metrics_count_what_was_produced_and_the_probes_answer() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::new();
    produce(&broker, "events", 0, 8_000, 0.2);
    let contents = broker.contents("events", PARTITIONS, 8_000);

    let run = Lineage::start_ready(&broker, "events", &paths, &[]);
    let address = metrics_address(&paths.log());
    assert_eq!(get(&address, "/healthz").0, 200);
    assert_eq!(get(&address, "/readyz").0, 200);
    assert_eq!(get(&address, "/nothing").0, 404);

    wait_committed(&paths, "events", &ends(&contents));
    // Lag is refreshed twice a second: wait for it to reach zero.
    let last = std::cell::RefCell::new(BTreeMap::new());
    wait_or(
        "the lag to reach zero",
        Duration::from_secs(30),
        || {
            let (status, body) = get(&address, "/metrics");
            assert_eq!(status, 200);
            let m = samples(&body);
            // Refreshed twice a second: once every partition has its
            // series at zero, the consumer has caught up and said so.
            let done = (0..PARTITIONS).all(|p| {
                m.get(&format!(
                    "lineage_consumer_lag_by_partition_records{{topic=\"events\",partition=\"{p}\"}}"
                )) == Some(&0.0)
            }) && m.get("lineage_records_consumed_total") == Some(&8_000.0)
                // Every checkpoint the log holds is counted.
                && m.get("lineage_checkpoints_total") == Some(&(checkpoints(&paths) as f64));
            *last.borrow_mut() = m;
            done
        },
        || format!("{:#?}", last.borrow()),
    );
    let (_, text) = get(&address, "/metrics");
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let m = samples(&text);
    let (kept, dropped) = assert_exactly_once(&contents, &read_output(&paths));
    assert_eq!(m["lineage_records_kept_total"], kept as f64);
    assert_eq!(m["lineage_records_dropped_total"], dropped as f64);
    assert!(dropped > 1_000, "a fifth of the records are invalid");
    assert_eq!(
        sum(&m, "lineage_records_dropped_by_reason_total{"),
        dropped as f64,
        "every drop is counted under a reason class"
    );
    for class in ["avro", "uuid", "empty value"] {
        assert!(
            m.get(&format!(
                "lineage_records_dropped_by_reason_total{{reason=\"{class}\"}}"
            ))
            .is_some_and(|v| *v > 0.0),
            "no drops of class {class}: {m:#?}"
        );
    }
    assert_eq!(m["lineage_partitions_assigned"], PARTITIONS as f64);
    for p in 0..PARTITIONS {
        assert_eq!(
            m.get(&format!(
                "lineage_consumer_lag_by_partition_records{{topic=\"events\",partition=\"{p}\"}}"
            )),
            Some(&0.0),
            "lag of partition {p}"
        );
    }
    assert_eq!(
        m["lineage_bytes_written_total{output=\"data\"}"],
        parquet_bytes(&paths.output) as f64
    );
    assert_eq!(
        m["lineage_bytes_written_total{output=\"dropped\"}"],
        parquet_bytes(&paths.dropped) as f64
    );
    assert_eq!(m["lineage_checkpoints_total"], checkpoints(&paths) as f64);
    assert_eq!(
        m["lineage_checkpoint_duration_seconds_count"], m["lineage_checkpoints_total"],
        "one duration per committed checkpoint"
    );
    // How many batches the consumer cut depends on the fetches: not known.
    assert!(m["lineage_plugin_batch_duration_seconds_count"] >= 1.0);
    assert_eq!(m["lineage_memory_budget_bytes"], (128u64 << 20) as f64);
    assert_eq!(
        m["lineage_rebalance_events_total{event=\"assigned\"}"],
        PARTITIONS as f64
    );

    let status = run.terminate();
    assert!(status.success(), "{}", paths.log());
}
