//! What can go wrong in a store, said so a person can act on it.
//!
//! A failure of the database keeps the driver's error as its
//! [`source`](std::error::Error::source), and the SQL state where the
//! database gives one (PostgreSQL's SQLSTATE, SQLite's extended result
//! code), so code can tell a deadlock from a full disk without reading
//! text. The `Display` text stands on its own (the database's own words,
//! then what to do), because the collector logs errors with `{e}` alone.

use tokio_postgres::error::SqlState;

/// Convenience alias for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL could not be understood.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// SQLite refused or failed an operation.
    #[error("SQLite failed{}: {source}{}", sqlite_code(*.extended_code), sqlite_hint(*.extended_code))]
    Sqlite {
        /// SQLite's extended result code when SQLite itself failed (`5`
        /// `SQLITE_BUSY`, `13` `SQLITE_FULL`, `2067`
        /// `SQLITE_CONSTRAINT_UNIQUE`, …; see
        /// <https://sqlite.org/rescode.html>); `None` when the driver
        /// failed around it (a value of an unexpected type, say).
        extended_code: Option<i32>,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL refused or failed an operation, or could not be reached.
    #[error("PostgreSQL{}: {message}{}", postgres_code(.sql_state.as_ref()), postgres_hint(.sql_state.as_ref()))]
    Postgres {
        /// The SQLSTATE the server answered with (`40P01` deadlock,
        /// `28P01` wrong password, …), when it answered at all.
        sql_state: Option<SqlState>,
        /// What failed: the server's message and detail, or what the
        /// client could not do.
        message: String,
        /// The driver's or the connection pool's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Redis (the hot tier) refused or failed a command, or could not be
    /// reached.
    #[error("Redis failed: {source}{}", redis_hint(.source))]
    Redis {
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
    /// The store cannot hold a write as it is (the Redis hot tier refuses
    /// counts above 2^53 and non-finite values); sending it again
    /// unchanged fails again.
    #[error("the store cannot hold this write: {0}")]
    Unstorable(String),
    /// A value the store was asked to keep is not valid (a tenant name, say).
    #[error("invalid value: {0}")]
    Invalid(String),
    /// The operating system's random number source failed (new API keys
    /// and the hot tier's snapshot ids need it).
    #[error("the system's random number source failed: {source}")]
    Randomness {
        /// The error `getrandom` reported.
        #[source]
        source: getrandom::Error,
    },
    /// The schema in the database is newer than this build understands.
    #[error(
        "database schema version {found} is newer than this collector supports ({supported}); upgrade the collector"
    )]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A key with this hash exists already.
    #[error("a key with this hash exists already")]
    DuplicateKey,
    /// The blocking task running the operation failed (panicked or was cancelled).
    #[error("storage task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// A failure reported by SQLite or its driver.
    pub(crate) fn sqlite(e: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            extended_code: e.sqlite_extended_error_code(),
            source: e,
        }
    }

    /// A failure reported by PostgreSQL or its driver: the server's
    /// message with its detail, when the server answered.
    pub(crate) fn postgres(e: tokio_postgres::Error) -> Self {
        let message = match e.as_db_error() {
            Some(d) => match d.detail() {
                Some(detail) => format!("{} ({detail})", d.message()),
                None => d.message().to_string(),
            },
            None => e.to_string(),
        };
        StoreError::Postgres {
            sql_state: e.code().cloned(),
            message,
            source: Some(Box::new(e)),
        }
    }

    /// A PostgreSQL failure the client found itself (no server answer),
    /// caused by `source` if given.
    pub(crate) fn postgres_client(
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Postgres {
            sql_state: None,
            message: message.into(),
            source,
        }
    }

    /// A failure reported by Redis or its driver.
    pub(crate) fn redis(e: redis::RedisError) -> Self {
        StoreError::Redis { source: e }
    }
}

/// ` (code N)` after "SQLite failed", when SQLite gave a code.
fn sqlite_code(code: Option<i32>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

/// What to do about a SQLite failure, by its primary result code (the
/// low byte of the extended one).
fn sqlite_hint(code: Option<i32>) -> &'static str {
    match code.map(|c| c & 0xff) {
        Some(5 | 6) => {
            "; another process holds the database file locked: stop it, or give this collector a file of its own"
        }
        Some(8) => "; the database file or its directory is read-only: check their permissions",
        Some(10) => "; the disk reported an I/O error: check the disk",
        Some(11 | 26) => {
            "; the file is damaged or not a SQLite database: restore it from a backup or point the collector at another file"
        }
        Some(13) => "; the disk is full: free some space",
        Some(14) => "; the file cannot be opened: check that its directory exists and is writable",
        _ => "",
    }
}

/// ` SQLSTATE` after "PostgreSQL", when the server answered with one.
fn postgres_code(state: Option<&SqlState>) -> String {
    state.map(|s| format!(" {}", s.code())).unwrap_or_default()
}

/// What to do about a PostgreSQL failure, by its SQLSTATE class.
fn postgres_hint(state: Option<&SqlState>) -> &'static str {
    let Some(code) = state.map(SqlState::code) else {
        return "";
    };
    match code {
        "3D000" => "; the database does not exist: create it or fix the URL",
        "3F000" => "; the schema does not exist: create it or fix the URL's search_path",
        "42501" => {
            "; the user lacks a privilege the collector needs (creating and altering its tables): grant it or use another user"
        }
        _ if code.starts_with("08") => {
            "; the connection failed: check that the server is up and reachable at the URL"
        }
        _ if code.starts_with("28") => {
            "; the server refused the login: check the user and password"
        }
        _ if code.starts_with("40") => {
            "; it conflicted with another writer: the write was not stored and can be retried"
        }
        _ if code.starts_with("53") => {
            "; the server is out of resources (disk, memory or connections): free some or raise its limits"
        }
        _ if code.starts_with("57") => "; the server is shutting down or restarting: retry later",
        _ => "",
    }
}

/// What to do about a Redis failure that is about reaching it.
fn redis_hint(e: &redis::RedisError) -> &'static str {
    if e.is_connection_refusal() || e.is_timeout() || e.is_io_error() {
        "; check that Redis is up and reachable at the cache URL"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_errors_keep_their_code_and_source() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .expect("create");
        let insert = || conn.execute("INSERT INTO t VALUES (1)", []);
        insert().expect("first insert");
        let e = StoreError::sqlite(insert().expect_err("a duplicate key"));
        let StoreError::Sqlite { extended_code, .. } = &e else {
            panic!("{e:?}");
        };
        // SQLITE_CONSTRAINT_PRIMARYKEY.
        assert_eq!(*extended_code, Some(1555));
        let text = e.to_string();
        assert!(
            text.starts_with("SQLite failed (code 1555): UNIQUE constraint failed"),
            "{text}"
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
    }

    #[test]
    fn hints_say_what_to_do() {
        assert!(sqlite_hint(Some(5)).contains("locked"));
        assert!(sqlite_hint(Some(13)).contains("disk is full"));
        assert_eq!(sqlite_hint(None), "");
        let e = StoreError::Postgres {
            sql_state: Some(SqlState::INVALID_PASSWORD),
            message: "password authentication failed for user \"u\"".into(),
            source: None,
        };
        assert_eq!(
            e.to_string(),
            "PostgreSQL 28P01: password authentication failed for user \"u\"; \
             the server refused the login: check the user and password"
        );
        assert!(postgres_hint(Some(&SqlState::T_R_DEADLOCK_DETECTED)).contains("retried"));
        assert!(postgres_hint(Some(&SqlState::UNDEFINED_TABLE)).is_empty());
    }
}
