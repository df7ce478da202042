//! Peak memory, from the kernel's own accounting.

/// Starts the peak-RSS count over (Linux: writing 5 to clear_refs resets
/// VmHWM), so that one process can measure two runs apart.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set of this process in KiB (Linux), the high-water mark
/// since the start or the last reset.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
