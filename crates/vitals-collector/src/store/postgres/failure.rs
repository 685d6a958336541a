//! Failures inside a transaction: a PostgreSQL error (some worth running
//! the transaction again) or any other store error; and the driver's
//! errors as [`StoreError`]s.

use crate::store::StoreError;
use tokio_postgres::error::SqlState;

/// A driver error as a store error (with its SQLSTATE).
pub(super) fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::postgres(e)
}

/// A failure inside a transaction: a PostgreSQL error (maybe worth a
/// retry) or anything else.
pub(super) enum Failure {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl Failure {
    pub(super) fn code(&self) -> Option<&SqlState> {
        match self {
            Failure::Pg(e) => e.code(),
            Failure::Store(_) => None,
        }
    }
    /// Deadlocks and serialization failures: run the transaction again.
    pub(super) fn retryable(&self) -> bool {
        matches!(self.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE)
    }
    /// "no partition of relation … found for row": a partition this
    /// process thought existed was dropped (retention elsewhere).
    pub(super) fn missing_partition(&self) -> bool {
        self.code() == Some(&SqlState::CHECK_VIOLATION)
    }
    pub(super) fn into_store(self) -> StoreError {
        match self {
            Failure::Pg(e) => db(e),
            Failure::Store(e) => e,
        }
    }
}
