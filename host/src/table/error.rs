//! What can go wrong between the commit log and an Iceberg table.

use crate::error::{Blame, Classify};
use crate::failpoints::FailpointError;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{setting}: {problem}")]
    Config {
        setting: &'static str,
        problem: String,
    },
    /// A catalog call failed; `iceberg::Error` says whether it conflicted.
    #[error("Iceberg catalog {catalog}: {op} {table}")]
    Catalog {
        catalog: String,
        op: &'static str,
        table: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    /// The plugin's columns cannot be written into the table as it is.
    #[error("the plugin's columns cannot evolve table {table}: {}", problems.join("; "))]
    Incompatible {
        table: String,
        problems: Vec<String>,
    },
    #[error("reading the Parquet footer of {url}")]
    Footer {
        url: String,
        #[source]
        source: FooterError,
    },
    /// A file whose footer says something the table cannot hold.
    #[error("{url}: {problem}")]
    File { url: String, problem: String },
    #[error(transparent)]
    Failpoint(#[from] FailpointError),
}

#[derive(Debug, thiserror::Error)]
pub enum FooterError {
    #[error(transparent)]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl Classify for TableError {
    fn blame(&self) -> Blame {
        match self {
            TableError::Config { .. } | TableError::Incompatible { .. } => Blame::User,
            TableError::Catalog { source, .. } => match source.kind() {
                // A table or namespace someone dropped under a running
                // pipeline is theirs to restore; no retry brings it back.
                iceberg::ErrorKind::DataInvalid
                | iceberg::ErrorKind::FeatureUnsupported
                | iceberg::ErrorKind::TableNotFound
                | iceberg::ErrorKind::NamespaceNotFound => Blame::User,
                _ => Blame::Environment,
            },
            TableError::Footer { source, .. } => match source {
                FooterError::Store(e) => crate::store::blame(e),
                FooterError::Parquet(_) => Blame::Internal,
            },
            TableError::File { .. } => Blame::Internal,
            TableError::Failpoint(_) => Blame::Environment,
        }
    }
}
