//! Connecting to the catalog TABLE_FORMAT=iceberg names, with storage
//! over Lineage's own stores.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::{
    Catalog, CatalogBuilder, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent, table::Table,
};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::SqlCatalogBuilder;

use super::settings::{CatalogKind, CatalogSettings};
use super::storage::{ObjectStorageFactory, Stores};

/// The catalog of `settings`; `warehouse` where the settings name none.
pub async fn connect(
    settings: &CatalogSettings,
    warehouse: &str,
    stores: Arc<Stores>,
) -> Result<Arc<dyn Catalog>> {
    let mut props: HashMap<String, String> = settings.properties.iter().cloned().collect();
    let warehouse = settings
        .warehouse
        .clone()
        .unwrap_or_else(|| warehouse.into());
    props.insert("warehouse".into(), warehouse);
    let factory = Arc::new(ObjectStorageFactory::new(stores));
    match settings.kind {
        CatalogKind::Sql => {
            let mut uri = settings.uri.clone();
            // sqlx opens a sqlite file only if it exists, unless asked to create it.
            if uri.starts_with("sqlite:") && !uri.contains('?') {
                uri.push_str("?mode=rwc");
            }
            let style = match uri.starts_with("postgres") {
                true => "DollarNumeric",
                false => "QMark",
            };
            props.insert("uri".into(), uri);
            props.insert("sql_bind_style".into(), style.into());
            let catalog = SqlCatalogBuilder::default()
                .with_storage_factory(factory)
                .load(&settings.name, props)
                .await?;
            Ok(Arc::new(catalog))
        }
        CatalogKind::Rest => {
            let uri = match &settings.sigv4 {
                Some(service) => {
                    super::sigv4::start(&settings.uri, service, settings.region.clone())
                        .await
                        .map_err(|e| {
                            iceberg::Error::new(iceberg::ErrorKind::DataInvalid, "SigV4 signing")
                                .with_source(e)
                        })?
                }
                None => settings.uri.clone(),
            };
            props.insert("uri".into(), uri);
            if let Some(c) = &settings.credential {
                props.insert("credential".into(), c.clone());
            }
            if let Some(t) = &settings.token {
                props.insert("token".into(), t.clone());
            }
            let catalog = RestCatalogBuilder::default()
                .with_storage_factory(factory)
                .load(&settings.name, props)
                .await?;
            Ok(Arc::new(catalog))
        }
    }
}

/// The catalog with one attempt per table commit: iceberg's transaction
/// retries a failed commit by re-applying it on fresh metadata, which
/// after a lost reply, or a conflict with another instance appending the
/// same commit, would append it twice. Lineage retries itself, after
/// reading the table for what it already holds.
#[derive(Debug)]
pub struct OneShot<'a>(pub &'a dyn Catalog);

#[async_trait::async_trait]
impl Catalog for OneShot<'_> {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        self.0.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.0.create_namespace(namespace, properties).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        self.0.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.0.namespace_exists(namespace).await
    }
    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        self.0.update_namespace(namespace, properties).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.0.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.0.list_tables(namespace).await
    }
    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        self.0.create_table(namespace, creation).await
    }
    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        self.0.load_table(table).await
    }
    async fn drop_table(&self, table: &TableIdent) -> Result<()> {
        self.0.drop_table(table).await
    }
    async fn purge_table(&self, table: &TableIdent) -> Result<()> {
        self.0.purge_table(table).await
    }
    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        self.0.table_exists(table).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        self.0.rename_table(src, dest).await
    }
    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> Result<Table> {
        self.0.register_table(table, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        self.0
            .update_table(commit)
            .await
            .map_err(|e| e.with_retryable(false))
    }
}
