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

/// The catalog as a transaction of Lineage's sees it: one attempt per
/// commit, on the metadata Lineage checked. iceberg's transaction reloads
/// the table before it commits and applies its actions to whatever it
/// finds, and retries a failed commit the same way; either would append a
/// commit that another instance appended meanwhile, or whose reply was
/// lost, a second time. So `load_table` answers `base`, the table as
/// Lineage read it when it found the commit missing (the catalog then
/// refuses the commit if the table moved since), and a failed commit is
/// final: Lineage reloads, checks again and retries itself.
#[derive(Debug)]
pub struct OneShot<'a> {
    pub catalog: &'a dyn Catalog,
    pub base: &'a Table,
}

#[async_trait::async_trait]
impl Catalog for OneShot<'_> {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        self.catalog.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.catalog.create_namespace(namespace, properties).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        self.catalog.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.catalog.namespace_exists(namespace).await
    }
    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        self.catalog.update_namespace(namespace, properties).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.catalog.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.catalog.list_tables(namespace).await
    }
    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        self.catalog.create_table(namespace, creation).await
    }
    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        match table == self.base.identifier() {
            true => Ok(self.base.clone()),
            false => self.catalog.load_table(table).await,
        }
    }
    async fn drop_table(&self, table: &TableIdent) -> Result<()> {
        self.catalog.drop_table(table).await
    }
    async fn purge_table(&self, table: &TableIdent) -> Result<()> {
        self.catalog.purge_table(table).await
    }
    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        self.catalog.table_exists(table).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        self.catalog.rename_table(src, dest).await
    }
    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> Result<Table> {
        self.catalog.register_table(table, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        self.catalog
            .update_table(commit)
            .await
            .map_err(|e| e.with_retryable(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Location, S3Settings};
    use crate::table::settings::CatalogSettings;
    use iceberg::spec::{
        DataContentType, DataFileBuilder, DataFileFormat, NestedField, PrimitiveType, Schema, Type,
    };
    use iceberg::transaction::{ApplyTransactionAction, Transaction};

    fn file(path: &str) -> iceberg::spec::DataFile {
        DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path(path.to_string())
            .file_format(DataFileFormat::Parquet)
            .record_count(1)
            .file_size_in_bytes(100)
            .partition_spec_id(0)
            .build()
            .unwrap()
    }

    async fn append(
        catalog: &dyn Catalog,
        on: &Table,
        path: &str,
        one_shot: bool,
    ) -> Result<Table> {
        let tx = Transaction::new(on);
        let tx = tx.fast_append().add_data_files([file(path)]).apply(tx)?;
        match one_shot {
            true => tx.commit(&OneShot { catalog, base: on }).await,
            false => tx.commit(catalog).await,
        }
    }

    /// Another writer appends between Lineage's check and its commit: the
    /// commit must fail rather than land on the moved table.
    #[tokio::test]
    async fn a_commit_on_metadata_that_moved_conflicts_instead_of_landing() {
        let dir = tempfile::tempdir().unwrap();
        let out = Location::open("OUTPUT_PATH", dir.path().join("out").to_str().unwrap()).unwrap();
        let stores = Stores::new(vec![out.clone()], S3Settings::default());
        let settings = CatalogSettings {
            kind: CatalogKind::Sql,
            uri: format!("sqlite://{}", dir.path().join("catalog.db").display()),
            name: "lineage".into(),
            warehouse: None,
            credential: None,
            token: None,
            sigv4: None,
            region: None,
            properties: Vec::new(),
        };
        let catalog = connect(&settings, &out.url, stores).await.unwrap();
        let ns = NamespaceIdent::new("ns".into());
        catalog.create_namespace(&ns, HashMap::new()).await.unwrap();
        let schema = Schema::builder()
            .with_fields([
                NestedField::required(1, "a", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .unwrap();
        let creation = TableCreation::builder()
            .name("t".into())
            .location(out.url.clone())
            .schema(schema)
            .build();
        let stale = catalog.create_table(&ns, creation).await.unwrap();
        // The other writer's append lands first.
        append(
            catalog.as_ref(),
            &stale,
            &format!("{}/x.parquet", out.url),
            true,
        )
        .await
        .unwrap();
        let error = append(
            catalog.as_ref(),
            &stale,
            &format!("{}/y.parquet", out.url),
            true,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.kind(),
            iceberg::ErrorKind::CatalogCommitConflicts,
            "{error}"
        );
        assert!(
            !error.retryable(),
            "Lineage retries, after checking the table again"
        );
        // iceberg's own transaction would have appended it on the moved table.
        let landed = append(
            catalog.as_ref(),
            &stale,
            &format!("{}/z.parquet", out.url),
            false,
        )
        .await
        .unwrap();
        assert_eq!(landed.metadata().snapshots().count(), 2);
    }
}
