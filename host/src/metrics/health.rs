//! What the probes answer, as the pipeline moves through its lifecycle.

use std::sync::atomic::{AtomicBool, Ordering};

/// What the probes answer.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    stopping: AtomicBool,
    failed: AtomicBool,
}

impl Health {
    /// Start-up checks passed and the consumer is in the group.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// A graceful stop began: no longer ready, still alive.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The pipeline failed and is exiting.
    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn live(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }

    pub fn ready(&self) -> bool {
        self.live() && self.ready.load(Ordering::SeqCst) && !self.stopping.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_lifecycle() {
        let h = Health::default();
        assert!(h.live() && !h.ready());
        h.set_ready();
        assert!(h.ready());
        h.set_stopping();
        assert!(h.live() && !h.ready());
        h.set_failed();
        assert!(!h.live());
    }
}
