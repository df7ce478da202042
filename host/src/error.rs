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
