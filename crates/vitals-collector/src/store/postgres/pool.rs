//! The store value itself: its connection pool and the day partitions it
//! knows exist, and taking a connection from the pool. Every other file of
//! the back end adds its methods to [`PostgresStore`] and imports it from
//! here; connecting and migrating are in `mod.rs`.

use super::failure::db;
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::Pool;
use std::collections::HashSet;
use std::sync::Mutex;

/// The PostgreSQL store. Cheap to share: it holds a connection pool.
pub struct PostgresStore {
    pub(super) pool: Pool,
    /// Partitions known to exist, as `(table, day)`.
    pub(super) partitions: Mutex<HashSet<(&'static str, i64)>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A connection from the pool; a failure to connect says what to check.
    pub(super) async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            // Connecting failed: the server refused the login (with a
            // SQLSTATE), or could not be reached at all.
            deadpool_postgres::PoolError::Backend(e) if e.as_db_error().is_none() => {
                StoreError::postgres_client(
                    format!("cannot connect: {e}; check that the server is up and reachable at the URL"),
                    Some(Box::new(e)),
                )
            }
            deadpool_postgres::PoolError::Backend(e) => db(e),
            other => StoreError::postgres_client(
                format!(
                    "no connection from the pool: {other}; check that the server is up and reachable at the URL"
                ),
                Some(Box::new(other)),
            ),
        })
    }
}
