//! The memory budget: one number for every open file and every batch in
//! flight, across all partitions and workers.
//!
//! Past the budget the consumer pauses its partitions (it keeps polling, so
//! that it stays in the group) and workers seal their largest files early,
//! which frees their buffers: memory stops growing instead of the process.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

#[derive(Debug)]
pub struct Budget {
    limit: u64,
    /// Consumption is paused: workers seal until memory is back under the
    /// mark where it resumes ([`Budget::relaxed`]), not only under the
    /// limit, or both would wait for the next checkpoint.
    paused: AtomicBool,
    /// Bytes of fetched batches not yet processed by a worker.
    in_flight: AtomicI64,
    /// Bytes held by each worker's open files.
    workers: Vec<AtomicU64>,
}

impl Budget {
    pub fn new(limit: u64, workers: usize) -> Self {
        Self {
            limit,
            paused: AtomicBool::new(false),
            in_flight: AtomicI64::new(0),
            workers: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        let files: u64 = self.workers.iter().map(|w| w.load(Ordering::Relaxed)).sum();
        files + self.in_flight.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn over(&self) -> bool {
        self.used() > self.limit
    }

    /// Under 80 %: where a paused consumer resumes.
    pub fn relaxed(&self) -> bool {
        self.used() * 5 < self.limit * 4
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Whether workers should seal files early now: over the limit, or
    /// paused and not yet back under the resume mark.
    pub fn must_shed(&self) -> bool {
        self.over() || (self.paused.load(Ordering::Relaxed) && !self.relaxed())
    }

    pub fn fetched(&self, bytes: usize) {
        self.in_flight.fetch_add(bytes as i64, Ordering::Relaxed);
    }

    pub fn processed(&self, bytes: usize) {
        self.in_flight.fetch_sub(bytes as i64, Ordering::Relaxed);
    }

    pub fn set_worker(&self, worker: usize, bytes: usize) {
        self.workers[worker].store(bytes as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_up_workers_and_batches() {
        let b = Budget::new(1000, 2);
        b.set_worker(0, 300);
        b.set_worker(1, 400);
        b.fetched(200);
        assert_eq!(b.used(), 900);
        assert!(!b.over());
        b.fetched(200);
        assert!(b.over());
        b.processed(400);
        assert!(b.relaxed());
        b.set_worker(1, 600);
        assert!(!b.relaxed());
    }

    #[test]
    fn a_paused_budget_sheds_down_to_where_consumption_resumes() {
        let b = Budget::new(1000, 1);
        b.set_worker(0, 900);
        assert!(!b.must_shed(), "under the limit, not paused");
        b.set_paused(true);
        assert!(b.must_shed(), "paused at 90 %: no resume without a seal");
        b.set_worker(0, 700);
        assert!(!b.must_shed(), "under 80 %: the consumer resumes");
    }
}
