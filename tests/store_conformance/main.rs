//! One conformance suite for every store backend: SQLite in a temp dir here, Table Storage
//! against Azurite in `table.rs`.

mod suite;

mod sqlite {
    use patchwave::store::sqlite::SqliteStore;
    use patchwave::store::Store;
    use std::sync::Arc;

    /// A fresh store per test; the temp dir lives as long as the store handle.
    pub async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("patchwave.db")).expect("open");
        (Arc::new(store), dir)
    }

    /// A second store on the same file: another instance of the Function App.
    #[allow(dead_code)]
    pub async fn another(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&dir.path().join("patchwave.db")).expect("open"))
    }

    crate::conformance_tests!();
}
