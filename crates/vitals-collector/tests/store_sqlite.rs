//! The store suite against SQLite, in memory and on a file.

use vitals_collector::{store, testing};

#[tokio::test]
async fn sqlite_memory_passes_the_store_suite() {
    let store = store::open("sqlite::memory:").await.expect("open");
    testing::run_store_suite(store).await;
}

#[tokio::test]
async fn sqlite_file_passes_the_store_suite_and_migrates_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let path = dir.path().join("v.db").display().to_string();
    let first = vitals_collector::SqliteStore::open(&path)
        .await
        .expect("open");
    let version = first.schema_version().await.expect("version");
    assert!(version >= 2, "the custom metrics migration ran: {version}");
    drop(first);
    let store = store::open(&url).await.expect("open");
    testing::run_store_suite(store.clone()).await;
    drop(store);
    // Reopening runs no migration twice and keeps the data.
    let reopened =
        vitals_collector::SqliteStore::open(&dir.path().join("v.db").display().to_string())
            .await
            .expect("reopen");
    assert_eq!(
        reopened.schema_version().await.expect("version"),
        vitals_collector::SqliteStore::SCHEMA_VERSION
    );
}

#[tokio::test]
async fn bad_store_urls_are_clear_errors() {
    for (url, want) in [
        ("mysql://x", "expected sqlite://PATH"),
        ("sqlite://", "no file path"),
        ("postgres://localhost/db", "PostgreSQL"),
    ] {
        let err = store::open(url).await.err().expect("must fail").to_string();
        assert!(err.contains(want), "{url}: {err}");
    }
}
