//! What can go wrong asking the registry.

use std::path::PathBuf;

use crate::error::{Blame, Classify};
use crate::retry::GaveUp;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `detail` is reqwest's error with its causes ("connection
    /// refused"), which its own message leaves out.
    #[error("schema registry {url}: cannot reach it: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("schema registry {url}: answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("schema registry {url}: an answer Lineage cannot read: {detail}")]
    BadAnswer { url: String, detail: String },
    #[error("{setting}={}: cannot read it: {source}", path.display())]
    CaFile {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{setting}: {problem}")]
    Config {
        setting: &'static str,
        problem: String,
    },
    #[error(transparent)]
    GaveUp(#[from] GaveUp),
}

impl Classify for RegistryError {
    fn blame(&self) -> Blame {
        match self {
            // A refusal is the credentials'; anything else the registry's.
            RegistryError::Status {
                status: 401 | 403, ..
            } => Blame::User,
            RegistryError::Unreachable { .. }
            | RegistryError::GaveUp(_)
            | RegistryError::Status { .. }
            | RegistryError::BadAnswer { .. } => Blame::Environment,
            RegistryError::CaFile { .. } | RegistryError::Config { .. } => Blame::User,
        }
    }

    /// Only an outage is waited out: a refusal or a garbled answer stops
    /// the run instead, since no record may be dropped for either.
    fn retryable(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> RegistryError {
        RegistryError::Status {
            url: "http://r/schemas/ids/1".into(),
            status,
            body: String::new(),
        }
    }

    #[test]
    fn only_an_outage_is_waited_out() {
        let unreachable = RegistryError::Unreachable {
            url: "http://r".into(),
            detail: "connection refused".into(),
        };
        for e in [unreachable, status(503), status(500), status(429)] {
            assert!(e.retryable() && e.blame() == Blame::Environment, "{e}");
        }
        for e in [status(401), status(403)] {
            assert!(!e.retryable() && e.blame() == Blame::User, "{e}");
        }
        let garbled = RegistryError::BadAnswer {
            url: "http://r".into(),
            detail: "expected value".into(),
        };
        for e in [status(400), status(422), garbled] {
            assert!(!e.retryable(), "{e}");
        }
    }
}
