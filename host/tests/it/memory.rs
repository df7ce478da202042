//! The memory budget holds whatever the spread of partitions and event
//! hours: measured by the kernel's own accounting (VmHWM), not by the
//! budget's count, through a run's worker (`bench pipeline`).

use std::collections::BTreeMap;

use crate::cli::{lineage, stderr, stdout};
use crate::pipeline_support::read_output_at;

/// What a process may hold beyond MEMORY_BUDGET: the binary, the plugin
/// runtime, the allocator's retention.
const ALLOWANCE_MIB: f64 = 128.0;

/// 64 partitions each receiving events over 72 hours: 4,608 data files
/// open at once, each with a few dozen rows. Counting only rows, the
/// budget let their writers and builders take several times itself.
#[test]
fn a_wide_spread_of_hours_stays_inside_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget_mib = 8.0;
    let (records, partitions) = (100_000u64, 64i64);
    let out = lineage(&[
        "bench",
        "pipeline",
        "--records",
        &records.to_string(),
        "--partitions",
        &partitions.to_string(),
        "--hours",
        "72",
        "--memory-budget",
        "8MiB",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let figure = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} in\n{text}"));
        line[name.len()..]
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no figure in {line:?}"))
    };
    let rss = figure("peak RSS");
    assert!(
        rss < budget_mib + ALLOWANCE_MIB,
        "peak RSS {rss} MiB is past the budget of {budget_mib} MiB by more than {ALLOWANCE_MIB} MiB\n{text}"
    );
    // The budget was reached, so files were sealed early.
    assert!(figure("early seals") > 0.0, "{text}");
    assert!(figure("smallest file") > 0.0, "{text}");

    // ... and every record is still in exactly one committed file.
    let path = |name: &str| dir.path().join(name).display().to_string();
    let output = read_output_at(&path("output"), &path("dropped"), &path("wal"), &[]);
    let mut visible = output.visible.clone();
    visible.sort();
    let committed: Vec<String> = output.committed.keys().cloned().collect();
    assert_eq!(visible, committed, "visible files are the committed ones");
    assert_eq!(figure("files, bytes") as usize, committed.len(), "{text}");
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for row in output.data.iter().chain(&output.dropped) {
        *seen
            .entry((row[0].as_i64().unwrap(), row[1].as_i64().unwrap()))
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "records written twice: {twice:?}");
    assert_eq!(seen.len() as u64, records, "every record once");
    for p in 0..partitions {
        let offsets: Vec<i64> = seen
            .range((p, 0)..(p + 1, 0))
            .map(|((_, o), _)| *o)
            .collect();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "partition {p}: offsets from 0, none missing"
        );
    }
}
