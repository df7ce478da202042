//! S3 as users run it: faults between Lineage and the store, an outage,
//! a store that ignores conditional writes (garage), and credentials that
//! must never reach a log line.

use std::time::Duration;

use crate::pipeline_support::{
    Broker, Lineage, Paths, Store, assert_exactly_once, ends, produce, read_output, wait_committed,
    wait_or,
};
use crate::s3_servers::SECRET_ACCESS_KEY;

const PARTITIONS: i32 = 10;

/// Stops gracefully, then checks exactly once and that no multipart upload
/// was left open.
fn stop_and_check(run: Lineage, paths: &Paths, contents: &crate::pipeline_support::Contents) {
    let status = run.terminate();
    assert!(status.success(), "{status}\n{}", paths.log());
    assert_exactly_once(contents, &read_output(paths));
    let open = paths.open_uploads();
    assert!(open.is_empty(), "multipart uploads left open: {open:?}");
}

#[test]
fn a_tenth_of_store_requests_failing_loses_and_duplicates_nothing() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::on(Store::Moto);
    produce(&broker, "events", 0, 20_000, 0.1);
    let run = Lineage::start(
        &broker,
        "events",
        &paths,
        &[("LINEAGE_STORE_FAULTS", "rate=0.1,stall=300ms")],
    );
    wait_committed(
        &paths,
        "events",
        &ends(&broker.contents("events", PARTITIONS, 20_000)),
    );
    produce(&broker, "events", 20_000, 5_000, 0.1);
    let contents = broker.contents("events", PARTITIONS, 25_000);
    wait_committed(&paths, "events", &ends(&contents));
    let log = paths.log();
    let injected = log.matches("injected store fault").count();
    // Hundreds of requests at 10 %: far more than 20 unless the faults
    // were not injected at all.
    assert!(injected >= 20, "only {injected} faults injected\n{log}");
    for fault in ["Reset", "LostReply", "Stall", "SlowDown"] {
        assert!(
            log.contains(&format!("fault={fault}")),
            "no {fault} fault\n{log}"
        );
    }
    stop_and_check(run, &paths, &contents);
}

/// The `consumed` figures of the run's progress lines, in order.
fn consumed_by_progress(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(" progress ") || l.ends_with(" progress"))
        .filter_map(|l| {
            let at = l.find("consumed=")? + "consumed=".len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn a_store_outage_stops_consumption_and_the_run_resumes_exactly_once() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::on(Store::Moto);
    produce(&broker, "events", 0, 5_000, 0.1);
    // Rows wait in memory until a file must upload, so a budget the
    // outage's records outgrow is what brings consumption to a stop.
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[("PROGRESS_INTERVAL", "100ms"), ("MEMORY_BUDGET", "1MiB")],
    );
    wait_committed(
        &paths,
        "events",
        &ends(&broker.contents("events", PARTITIONS, 5_000)),
    );
    let moto = paths.server.as_ref().expect("an S3 server").pid();
    // The store hangs: connections are accepted, nothing is answered.
    unsafe { libc::kill(moto, libc::SIGSTOP) };
    let before = consumed_by_progress(&paths.log()).len();
    produce(&broker, "events", 5_000, 60_000, 0.1);
    // Consumption must come to a stop well short of the topic's end, and
    // stay stopped: ten progress lines in a row with the same count.
    wait_or(
        "consumption to stop while the store is down",
        Duration::from_secs(90),
        || {
            let counts = consumed_by_progress(&paths.log());
            let after = &counts[before.min(counts.len())..];
            after.len() >= 10 && {
                let last = &after[after.len() - 10..];
                last.iter().all(|c| *c == last[0]) && last[0] < 65_000
            }
        },
        || paths.log(),
    );
    unsafe { libc::kill(moto, libc::SIGCONT) };
    let contents = broker.contents("events", PARTITIONS, 65_000);
    wait_committed(&paths, "events", &ends(&contents));
    stop_and_check(run, &paths, &contents);
}

#[test]
fn a_store_that_ignores_conditional_writes_is_refused_naming_the_option() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    let paths = Paths::on(Store::Garage);
    let mut run = Lineage::start(&broker, "events", &paths, &[("SINGLE_WRITER", "false")]);
    let status = run.wait(Duration::from_secs(60));
    let log = paths.log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(
            "WRITE_AHEAD_COMMIT_LOG_PATH=s3://lineage/it/wal does not honour create-if-absent"
        ),
        "{log}"
    );
    assert!(log.contains("--single-writer"), "{log}");
}

/// Secrets a run was given must appear nowhere in what it printed.
fn assert_no_secrets(log: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "a credential reached the log:\n{log}"
        );
    }
}

#[test]
fn credentials_never_reach_the_logs_even_at_debug_level() {
    let broker = Broker::start();
    broker.create_topic("events", PARTITIONS);
    let paths = Paths::on(Store::Moto);
    produce(&broker, "events", 0, 2_000, 0.1);
    let token = "lineage-test-session-token-0f1e2d3c4b5a";
    let run = Lineage::start_ready(
        &broker,
        "events",
        &paths,
        &[
            ("LINEAGE_LOG", "debug"),
            ("AWS_SESSION_TOKEN", token),
            ("PROGRESS_INTERVAL", "200ms"),
            // Every kind of failure message on the way, too.
            ("LINEAGE_STORE_FAULTS", "rate=0.2,stall=100ms"),
        ],
    );
    let contents = broker.contents("events", PARTITIONS, 2_000);
    wait_committed(&paths, "events", &ends(&contents));
    assert!(run.terminate().success(), "{}", paths.log());
    let log = paths.log();
    assert!(log.contains("injected store fault"), "{log}");
    assert!(log.contains("DEBUG"), "debug logging is not on:\n{log}");
    assert_no_secrets(&log, &[SECRET_ACCESS_KEY, token]);
}

#[test]
fn a_rejected_secret_fails_fast_without_printing_it() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    let paths = Paths::on(Store::Garage);
    let wrong = "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0d";
    let mut run = Lineage::start(
        &broker,
        "events",
        &paths,
        &[("AWS_SECRET_ACCESS_KEY", wrong), ("LINEAGE_LOG", "debug")],
    );
    let status = run.wait(Duration::from_secs(120));
    let log = paths.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("OUTPUT_PATH=s3://lineage/it/output"), "{log}");
    assert_no_secrets(&log, &[wrong, SECRET_ACCESS_KEY]);
}
