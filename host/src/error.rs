//! How errors say whose they are.
//!
//! Every library error type implements [`Classify`], so that the edge (the
//! CLI, later the pipeline's retry loop) decides what to do from the error
//! itself: tell the user, retry with backoff, or report a bug.

/// Who has to act for an error to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// Bad configuration or input: the user must change something.
    User,
    /// Something outside Lineage failed (disk, network, broker, store).
    Environment,
    /// A bug in Lineage.
    Internal,
}

pub trait Classify {
    fn blame(&self) -> Blame;

    /// Whether the same call may succeed later without anyone changing anything.
    fn retryable(&self) -> bool {
        self.blame() == Blame::Environment
    }
}
