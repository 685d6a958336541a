//! Opening a store by URL: `sqlite://PATH`, `sqlite::memory:`,
//! `postgres://…`, optionally behind the Redis hot tier (`redis://…`);
//! and the password redaction every log line and error about a URL uses.

use super::error::StoreError;
use super::hot_tier::{HotTier, HotTierConfig};
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{Store, StoreResult};
use std::sync::Arc;

/// Opens the store a URL names: `sqlite://PATH`, `sqlite::memory:`,
/// `postgres://…` (or `postgresql://…`).
/// Migrations run before this returns.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url == "sqlite::memory:" {
        return Ok(Arc::new(SqliteStore::open_in_memory().await?));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::InvalidUrl {
                url: url.into(),
                reason: "no file path after sqlite://".into(),
            });
        }
        check_sqlite_directory(url, path)?;
        return Ok(Arc::new(SqliteStore::open(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::open(url).await?));
    }
    Err(StoreError::InvalidUrl {
        url: url.into(),
        reason: "expected sqlite://PATH, sqlite::memory: or postgres://…".to_string(),
    })
}

/// SQLite creates the database file but not its directory, and its own
/// error ("unable to open database file") does not say which part is
/// missing: say it, and what to do.
fn check_sqlite_directory(url: &str, path: &str) -> StoreResult<()> {
    let dir = match std::path::Path::new(path).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => return Ok(()),
    };
    let reason = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => format!(
            "{} is a file, not a directory: choose a database path in a directory",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "the directory {} does not exist: create it first (mkdir -p {}) \
             or choose a path in an existing directory",
            dir.display(),
            dir.display()
        ),
        Err(e) => format!("cannot use the directory {}: {e}", dir.display()),
    };
    Err(StoreError::InvalidUrl {
        url: url.into(),
        reason,
    })
}

/// Opens the store `store_url` names and, with a `cache_url`
/// (`redis://…`), puts the shared Redis hot tier in front of it (default
/// [`HotTierConfig`], background flusher running). A `prefix=P` query
/// parameter of the cache URL sets the key prefix (default `vitals:`), so
/// several deployments can share one Redis.
pub async fn open_with_cache(
    store_url: &str,
    cache_url: Option<&str>,
) -> StoreResult<Arc<dyn Store>> {
    open_with_hot_tier(store_url, cache_url, HotTierConfig::default()).await
}

/// Like [`open_with_cache`] with the hot tier configured by `hot` (its
/// prefix is replaced by the cache URL's `prefix=`, when given); `hot` is
/// unused without a cache.
pub async fn open_with_hot_tier(
    store_url: &str,
    cache_url: Option<&str>,
    hot: HotTierConfig,
) -> StoreResult<Arc<dyn Store>> {
    let Some(url) = cache_url else {
        return open(store_url).await;
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(StoreError::InvalidUrl {
            url: url.into(),
            reason: "the cache must be a redis:// URL".into(),
        });
    }
    let (url, prefix) = split_prefix(url)?;
    let mut config = hot;
    if let Some(p) = prefix {
        config.prefix = p;
    }
    let store = open(store_url).await?;
    Ok(Arc::new(HotTier::open(&url, store, config).await?))
}

/// Takes a `prefix=` parameter out of a Redis URL's query string and
/// leaves the others to the Redis driver. The query string is read and
/// written with `serde_urlencoded`, the crate the query API reads its query
/// strings with, so percent-escapes mean the same in both.
fn split_prefix(url: &str) -> StoreResult<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let unreadable = |e: &dyn std::fmt::Display| StoreError::InvalidUrl {
        url: redact_password(url),
        reason: format!("its query string cannot be read: {e}"),
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| unreadable(&e))?;
    let (prefix, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| k == "prefix");
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        let query = serde_urlencoded::to_string(&rest).map_err(|e| unreadable(&e))?;
        format!("{base}?{query}")
    };
    // Given twice, the last one counts (as it did when read by hand).
    Ok((url, prefix.into_iter().next_back().map(|(_, p)| p)))
}

/// `url` with any password replaced by `***`, for logs and error messages:
/// store and cache URLs (`postgres://user:secret@host/db`,
/// `redis://:secret@host`) may carry credentials.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        use super::redact_password as redact;
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(redact("sqlite://vitals.db"), "sqlite://vitals.db");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }

    use super::split_prefix;

    #[test]
    fn cache_urls_carry_a_key_prefix() {
        let split = |url| split_prefix(url).expect("readable");
        assert_eq!(
            split("redis://h:6379/0?prefix=a:&protocol=resp3"),
            ("redis://h:6379/0?protocol=resp3".into(), Some("a:".into()))
        );
        assert_eq!(
            split("redis://h/?prefix=p"),
            ("redis://h/".into(), Some("p".into()))
        );
        assert_eq!(split("redis://h"), ("redis://h".into(), None));
        // Escapes are decoded as the query API decodes them.
        assert_eq!(
            split("redis://h/?prefix=team%2Fa%3A&&db=1"),
            ("redis://h/?db=1".into(), Some("team/a:".into()))
        );
    }
}
