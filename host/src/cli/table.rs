//! TABLE_FORMAT and the Iceberg catalog's settings, shared by `run` and
//! the commands that read what it wrote.

use crate::setting;
use crate::source::parse_property;
use crate::table::{CatalogKind, CatalogSettings, TableError, TableFormat, TableSettings};

#[derive(Debug, Clone, clap::Args)]
pub struct TableArgs {
    /// `iceberg`: append every checkpoint's files to an Iceberg table as
    /// one snapshot, besides the commit log. `none`: files and the log.
    #[arg(long = "table-format", env = setting::TABLE_FORMAT, value_enum, default_value_t = TableFormat::None)]
    pub table_format: TableFormat,

    /// `sql` (sqlite or Postgres) or `rest` (Polaris, Lakekeeper, Nessie,
    /// Glue, S3 Tables).
    #[arg(long = "iceberg-catalog-type", env = setting::ICEBERG_CATALOG_TYPE, value_enum, default_value_t = CatalogKind::Sql)]
    pub catalog_type: CatalogKind,

    /// `sqlite:///var/lib/lineage/catalog.db`, `postgres://user@host/db`,
    /// or a REST catalog's base URL.
    #[arg(long = "iceberg-catalog-uri", env = setting::ICEBERG_CATALOG_URI, default_value = "")]
    pub catalog_uri: String,

    /// The catalog's name (readers of a SQL catalog must use the same).
    #[arg(long = "iceberg-catalog-name", env = setting::ICEBERG_CATALOG_NAME, default_value = "lineage")]
    pub catalog_name: String,

    /// The warehouse: a location for the SQL catalog (default
    /// OUTPUT_PATH), the REST catalog's warehouse name or ARN.
    #[arg(long = "iceberg-warehouse", env = setting::ICEBERG_WAREHOUSE)]
    pub iceberg_warehouse: Option<String>,

    /// OAuth2 client credentials for a REST catalog, `id:secret`.
    #[arg(long = "iceberg-credential", env = setting::ICEBERG_CREDENTIAL, hide_env_values = true)]
    pub iceberg_credential: Option<String>,

    /// A bearer token for a REST catalog.
    #[arg(long = "iceberg-token", env = setting::ICEBERG_TOKEN, hide_env_values = true)]
    pub iceberg_token: Option<String>,

    /// Sign a REST catalog's requests with SigV4 for this AWS service:
    /// `glue` (Glue's Iceberg REST endpoint) or `s3tables` (S3 Tables').
    #[arg(long = "iceberg-rest-sigv4", env = setting::ICEBERG_REST_SIGV4, value_parser = ["glue", "s3tables"])]
    pub iceberg_sigv4: Option<String>,

    /// More catalog properties, `key=value,...` (`scope`,
    /// `oauth2-server-uri`, `header.NAME`, `pool.max-connections`).
    #[arg(long = "iceberg-catalog-property", env = setting::ICEBERG_CATALOG_PROPERTIES, value_delimiter = ',', value_parser = parse_property)]
    pub catalog_properties: Vec<(String, String)>,

    /// The data table, `namespace.table`.
    #[arg(long = "iceberg-table", env = setting::ICEBERG_TABLE, default_value = "lineage.events")]
    pub iceberg_table: String,

    /// The dropped records' table (default `<table>_dropped`).
    #[arg(long = "iceberg-dropped-table", env = setting::ICEBERG_DROPPED_TABLE)]
    pub iceberg_dropped_table: Option<String>,
}

impl TableArgs {
    /// `None` for TABLE_FORMAT=none.
    pub fn settings(&self) -> Result<Option<TableSettings>, TableError> {
        if self.table_format == TableFormat::None {
            return Ok(None);
        }
        let catalog = CatalogSettings {
            kind: self.catalog_type,
            uri: self.catalog_uri.clone(),
            name: self.catalog_name.clone(),
            warehouse: self.iceberg_warehouse.clone().filter(|w| !w.is_empty()),
            credential: self.iceberg_credential.clone().filter(|c| !c.is_empty()),
            token: self.iceberg_token.clone().filter(|t| !t.is_empty()),
            sigv4: self.iceberg_sigv4.clone(),
            region: std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()),
            properties: self
                .catalog_properties
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .cloned()
                .collect(),
        };
        let dropped = self
            .iceberg_dropped_table
            .as_deref()
            .filter(|t| !t.is_empty());
        TableSettings::new(catalog, &self.iceberg_table, dropped).map(Some)
    }
}
