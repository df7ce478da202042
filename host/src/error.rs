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

impl Blame {
    /// What the process exits with: documented in README, "Exit codes".
    pub fn exit_code(self) -> u8 {
        match self {
            Blame::User => 2,
            Blame::Environment => 3,
            Blame::Internal => 4,
        }
    }

    /// What the person reading the error should do.
    pub fn advice(self) -> &'static str {
        match self {
            Blame::User => "fix the setting or the input named above",
            Blame::Environment => {
                "something outside Lineage failed; what was not committed is consumed again at the next start, so running again once it is back is safe"
            }
            Blame::Internal => {
                "this is a bug in Lineage; please report it with this message and the log"
            }
        }
    }
}

/// An error the edge can print and exit by: its blame travels with it.
pub trait Failure: std::error::Error + Classify + Send + Sync + 'static {}

impl<E: std::error::Error + Classify + Send + Sync + 'static> Failure for E {}

/// An error of a layer above carried through one below it (an Iceberg
/// append through the committer), keeping its class and its causes.
#[derive(Debug)]
pub struct Carried(pub Box<dyn Failure>);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Classify for Carried {
    fn blame(&self) -> Blame {
        self.0.blame()
    }

    fn retryable(&self) -> bool {
        self.0.retryable()
    }
}

/// An error and its causes on one line, each cause once.
///
/// Many errors (ours and those of librdkafka, object_store and reqwest)
/// already print their source inside their own message and return it from
/// `source()` too, so walking the chain naively repeats it: `cannot reach
/// the cluster: Meta data fetch error: X: Meta data fetch error: X`. A
/// cause whose text the line already holds is left out.
pub fn render(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("inner failure")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Middle(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[test]
    fn every_blame_has_its_own_exit_code() {
        let codes = [Blame::User, Blame::Environment, Blame::Internal].map(Blame::exit_code);
        assert_eq!(codes, [2, 3, 4]);
    }

    #[test]
    fn each_cause_is_rendered_once() {
        // Middle prints its source and returns it: a naive chain would say
        // "inner failure" twice.
        assert_eq!(render(&Middle(Inner)), "middle: inner failure");
        assert_eq!(
            render(&Outer(Middle(Inner))),
            "outer: middle: inner failure"
        );
    }
}
