//! `lineage status` for a person.

use std::fmt::Write;

use super::report::{Report, human_bytes};

/// Checkpoints printed; `--json` has them all.
const SHOWN: usize = 10;

pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "commit log at commit {}", report.commit_seq);
    if let Some(p) = &report.plugin {
        let _ = writeln!(out, "plugin {} {} sha256 {}", p.name, p.version, p.sha256);
    }
    let _ = writeln!(out, "\npartitions:");
    let _ = writeln!(
        out,
        "  {:<24} {:>9} {:>12} {:>12} {:>10}  last commit",
        "partition", "owner", "next", "high", "lag"
    );
    for p in &report.partitions {
        let owner = p.subtask.map_or("-".into(), |s| format!("subtask {s}"));
        let opt = |v: Option<i64>| v.map_or("-".into(), |v| v.to_string());
        let _ = writeln!(
            out,
            "  {:<24} {:>9} {:>12} {:>12} {:>10}  {}",
            format!("{}/{}", p.topic, p.partition),
            owner,
            p.next,
            opt(p.high_watermark),
            opt(p.lag),
            p.last_commit_at.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(
        out,
        "\nlast checkpoints ({} of {} shown):",
        report.checkpoints.len().min(SHOWN),
        report.checkpoints.len()
    );
    for c in report.checkpoints.iter().take(SHOWN) {
        let _ = writeln!(
            out,
            "  checkpoint {:>5} subtask {:<3} commit {:>6}  {}  {:>4} files {:>9} kept {:>7} dropped {:>10}  {}",
            c.checkpoint,
            c.subtask,
            c.commit_seq,
            c.committed_at,
            c.files,
            c.rows_kept,
            c.rows_dropped,
            human_bytes(c.bytes),
            c.state
        );
    }
    if let Some(median) = report.files.median_bytes {
        let _ = writeln!(
            out,
            "  {} files, median {}",
            report.files.count,
            human_bytes(median)
        );
    }
    if let Some(hint) = &report.files.hint {
        let _ = writeln!(out, "  hint: {hint}");
    }
    let _ = writeln!(out, "\ndrop reasons in these checkpoints:");
    if report.drops.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for d in &report.drops {
        let _ = writeln!(
            out,
            "  {:<32} {:>9}  e.g. lineage trace {}",
            d.class, d.count, d.example
        );
    }
    out
}
