//! What TABLE_FORMAT=iceberg is configured with.

use crate::setting;

/// What the committed files are registered in, besides the commit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TableFormat {
    /// Parquet files under Hive-style directories, and the commit log.
    #[default]
    None,
    /// The same files, each checkpoint appended to an Iceberg table.
    Iceberg,
}

/// Which kind of Iceberg catalog ICEBERG_CATALOG_URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CatalogKind {
    /// The SQL catalog: `sqlite:///path/catalog.db` or `postgres://…`.
    #[default]
    Sql,
    /// The REST catalog (Polaris, Lakekeeper, Nessie, Glue, S3 Tables).
    Rest,
}

#[derive(Debug, Clone)]
pub struct CatalogSettings {
    pub kind: CatalogKind,
    pub uri: String,
    /// The catalog's name: the SQL catalog's `catalog_name` column, so
    /// readers such as pyiceberg's `SqlCatalog` must use the same.
    pub name: String,
    /// Where tables go that are created without a location; by default
    /// the parent of OUTPUT_PATH for the SQL catalog.
    pub warehouse: Option<String>,
    /// OAuth2 client credentials (`client_id:client_secret`), as the REST
    /// spec's `credential` property.
    pub credential: Option<String>,
    /// A bearer token, as the REST spec's `token` property.
    pub token: Option<String>,
    /// Sign REST requests with SigV4 for this AWS service (`glue`,
    /// `s3tables`), in `region`.
    pub sigv4: Option<String>,
    pub region: Option<String>,
    /// Anything else the catalog takes (`scope`, `oauth2-server-uri`,
    /// `header.X-Iceberg-Access-Delegation`, `pool.max-connections`).
    pub properties: Vec<(String, String)>,
}

/// A table's `namespace.table` (the namespace may have dots of its own:
/// the last part is the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub namespace: Vec<String>,
    pub name: String,
}

impl TableName {
    pub fn parse(setting: &'static str, text: &str) -> Result<Self, super::TableError> {
        let parts: Vec<&str> = text.split('.').collect();
        let valid = |p: &&str| !p.is_empty() && !p.chars().any(char::is_whitespace);
        match parts.split_last() {
            Some((name, namespace)) if !namespace.is_empty() && parts.iter().all(valid) => {
                Ok(Self {
                    namespace: namespace.iter().map(|s| s.to_string()).collect(),
                    name: name.to_string(),
                })
            }
            _ => Err(super::TableError::Config {
                setting,
                problem: format!("{text:?} is not `namespace.table`"),
            }),
        }
    }

    /// The dropped records' table beside `self`: `<table>_dropped`.
    pub fn dropped(&self) -> Self {
        Self {
            namespace: self.namespace.clone(),
            name: format!("{}_dropped", self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.namespace.join("."), self.name)
    }
}

/// TABLE_FORMAT=iceberg, with its catalog and the two tables.
#[derive(Debug, Clone)]
pub struct TableSettings {
    pub catalog: CatalogSettings,
    pub data: TableName,
    pub dropped: TableName,
}

impl TableSettings {
    /// The settings as given, checked: the table name must parse, and a
    /// REST catalog needs its URI.
    pub fn new(
        catalog: CatalogSettings,
        table: &str,
        dropped: Option<&str>,
    ) -> Result<Self, super::TableError> {
        let data = TableName::parse(setting::ICEBERG_TABLE, table)?;
        let dropped = match dropped {
            Some(t) => TableName::parse(setting::ICEBERG_DROPPED_TABLE, t)?,
            None => data.dropped(),
        };
        if data == dropped {
            return Err(super::TableError::Config {
                setting: setting::ICEBERG_DROPPED_TABLE,
                problem: format!(
                    "is the data table {data}; dropped records need a table of their own"
                ),
            });
        }
        if catalog.uri.is_empty() {
            return Err(super::TableError::Config {
                setting: setting::ICEBERG_CATALOG_URI,
                problem: "is required with TABLE_FORMAT=iceberg".into(),
            });
        }
        Ok(Self {
            catalog,
            data,
            dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_name_is_a_namespace_and_a_name() {
        let t = TableName::parse("ICEBERG_TABLE", "analytics.raw.events").unwrap();
        assert_eq!(t.namespace, ["analytics", "raw"]);
        assert_eq!(t.name, "events");
        assert_eq!(t.dropped().to_string(), "analytics.raw.events_dropped");
        for bad in ["events", "a..b", ".a", "a.", "a b.c", ""] {
            let e = TableName::parse("ICEBERG_TABLE", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("ICEBERG_TABLE") && e.contains("namespace.table"),
                "{bad}: {e}"
            );
        }
    }
}
