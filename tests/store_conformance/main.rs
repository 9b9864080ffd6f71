//! One conformance suite for every store backend: SQLite in a temp dir, and Table Storage
//! against Azurite (started once for this binary by `azurite.rs`), each test in its own tables.

mod azurite;
mod device_index;
mod identity;
mod suite;
mod table_only;

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

    /// A database made when device records and the device index were rowid tables is
    /// rebuilt clustered on the key when opened, and keeps every row.
    #[tokio::test]
    async fn tables_made_as_rowid_tables_are_rebuilt_without_losing_rows() {
        use rollout_core::DeviceRecord;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("patchwave.db");
        let record = serde_json::to_string(&DeviceRecord::new(1)).expect("json");
        let old = rusqlite::Connection::open(&path).expect("old database");
        old.execute_batch(&format!(
            "CREATE TABLE devices (rollout TEXT NOT NULL, device TEXT NOT NULL, version INTEGER NOT NULL, \
             record TEXT NOT NULL, PRIMARY KEY (rollout, device)); \
             CREATE TABLE device_index (device TEXT PRIMARY KEY, rollout TEXT NOT NULL); \
             INSERT INTO devices VALUES ('r', 'dev-1', 7, '{record}'); \
             INSERT INTO device_index VALUES ('dev-1', 'r');"
        ))
        .expect("old schema");
        drop(old);
        let store = SqliteStore::open(&path).expect("open");
        let loaded = store
            .load_devices("r", &["dev-1".into()])
            .await
            .expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].1.version, "7");
        assert_eq!(loaded[0].1.value.wave, 1);
        let index = store
            .rollouts_of_devices(&["dev-1".into()])
            .await
            .expect("index");
        assert_eq!(index.get("dev-1").map(String::as_str), Some("r"));
        // a record still in the old JSON form is read by routing too
        let routed = store
            .route_devices(vec!["dev-1".into()])
            .await
            .expect("route");
        let record = routed[0].record.as_ref().expect("record");
        assert_eq!(
            (record.value, record.version.as_str()),
            (DeviceRecord::new(1), "7")
        );
        let check = rusqlite::Connection::open(&path).expect("reopen");
        for table in ["devices", "device_index"] {
            let sql: String = check
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .expect("definition");
            assert!(sql.contains("WITHOUT ROWID"), "{table}: {sql}");
        }
    }

    /// Commits only append to the WAL; a background checkpointer copies it into the
    /// database file, so the file grows without any commit checkpointing it.
    #[tokio::test]
    async fn the_wal_is_checkpointed_in_the_background() {
        use rollout_core::DeviceRecord;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("patchwave.db");
        let store = SqliteStore::open(&path).expect("open");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = size();
        let records: Vec<(String, DeviceRecord)> = (0..5_000)
            .map(|i| (format!("device-{i:05}"), DeviceRecord::new(0)))
            .collect();
        store.add_devices("r", &records).await.expect("add");
        let mut grown = false;
        for _ in 0..40 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            grown = size() > before + 100_000;
            if grown {
                break;
            }
        }
        assert!(grown, "database file still {} bytes", size());
    }
}

mod table {
    use patchwave::store::table::TableStore;
    use patchwave::store::Store;
    use std::sync::Arc;

    /// Where a test's tables are: the service and the test's own table-name prefix.
    pub struct Guard {
        pub spec: String,
        pub prefix: String,
    }

    /// A fresh store per test: the shared Azurite, tables of a prefix no other test uses.
    pub async fn fresh() -> (Arc<dyn Store>, Guard) {
        let guard = Guard {
            spec: crate::azurite::connection_string(),
            prefix: crate::azurite::unique_prefix(),
        };
        let store = TableStore::connect_with_prefix(&guard.spec, &guard.prefix)
            .await
            .expect("connect to azurite");
        (Arc::new(store), guard)
    }

    /// A second store on the same account and tables: another instance of the Function App.
    pub async fn another(guard: &Guard) -> Arc<dyn Store> {
        Arc::new(
            TableStore::connect_with_prefix(&guard.spec, &guard.prefix)
                .await
                .expect("connect to azurite"),
        )
    }

    crate::conformance_tests!();
}
