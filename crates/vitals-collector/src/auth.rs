//! API keys: `vk_` followed by 64 hex digits of randomness. Only the
//! SHA-256 of a key is stored, so a leaked database leaks no usable key.

use crate::model::{KeyRecord, Role, UnixMs};
use crate::store::{Store, StoreError, StoreResult};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Longest bearer token looked up; longer ones are refused unread.
pub const MAX_KEY_LEN: usize = 256;
/// Keys remembered in memory after a lookup.
const CACHE_CAPACITY: usize = 10_000;
/// How long a running collector trusts a key it has looked up before it
/// asks the store again: a key revoked with `vitals collector keys revoke`
/// (another process) stops working within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
/// Hex digits of a key's hash shown as its id by `keys list`.
pub const KEY_ID_LEN: usize = 12;
/// Fewest hex digits `keys revoke` accepts as an id: fewer would too
/// easily name a key the person did not mean.
pub const MIN_KEY_ID_LEN: usize = 8;

/// Lowercase hex SHA-256 of `key`: what the store keeps.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A new random key (`vk_` + 64 hex digits).
pub fn generate_key() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|source| StoreError::Randomness { source })?;
    let mut out = String::with_capacity(67);
    out.push_str("vk_");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

/// Creates a key for `tenant` with `role` in `store`; returns the secret,
/// which is shown once and never stored.
pub async fn create_key(
    store: &dyn Store,
    tenant: &str,
    role: Role,
    now_ms: UnixMs,
) -> StoreResult<String> {
    validate_tenant(tenant).map_err(StoreError::Invalid)?;
    let key = generate_key()?;
    store
        .create_key(KeyRecord {
            hash: hash_key(&key),
            tenant: tenant.into(),
            role,
            created_ms: now_ms,
        })
        .await?;
    Ok(key)
}

/// The token of an `Authorization` header value of the `Bearer` scheme,
/// the scheme matched in any case (RFC 7235, section 2.1: schemes are
/// case-insensitive), or `None` for another scheme or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim_start();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some(rest.trim()).filter(|k| !k.is_empty())
}

/// A tenant name: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn validate_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty()
        || tenant.len() > 64
        || !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "invalid tenant {tenant:?}: use 1 to 64 characters of letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// A key's id as `keys list` shows it: the first [`KEY_ID_LEN`] hex
/// digits of its hash (never of the secret).
pub fn key_id(rec: &KeyRecord) -> &str {
    rec.hash.get(..KEY_ID_LEN).unwrap_or(&rec.hash)
}

/// Every key of `tenant` (or of every tenant), oldest first.
pub async fn list_keys(store: &dyn Store, tenant: Option<&str>) -> StoreResult<Vec<KeyRecord>> {
    if let Some(t) = tenant {
        validate_tenant(t).map_err(StoreError::Invalid)?;
    }
    store.list_keys(tenant.map(str::to_owned)).await
}

/// Revokes the one key whose id (a prefix of its hash, as `keys list`
/// shows it) is `id`, and returns it. An id that is not hex, shorter than
/// [`MIN_KEY_ID_LEN`], names no key or names several is refused with a
/// message that says which.
pub async fn revoke_key(store: &dyn Store, id: &str) -> StoreResult<KeyRecord> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < MIN_KEY_ID_LEN || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::Invalid(format!(
            "invalid key id {id:?}: give the id `vitals collector keys list` shows \
             ({MIN_KEY_ID_LEN} to 64 hex digits)"
        )));
    }
    let matching: Vec<KeyRecord> = store
        .list_keys(None)
        .await?
        .into_iter()
        .filter(|k| k.hash.starts_with(&id))
        .collect();
    match matching.as_slice() {
        [] => Err(StoreError::Invalid(format!(
            "no key has the id {id:?}: `vitals collector keys list` shows the ids"
        ))),
        [one] => {
            // Revoke by the full hash: a key created since the listing
            // with the same prefix is never taken with it.
            let gone = store.revoke_keys(one.hash.clone()).await?;
            gone.into_iter().next().ok_or_else(|| {
                StoreError::Invalid(format!("key {id:?} was revoked meanwhile by someone else"))
            })
        }
        several => Err(StoreError::Invalid(format!(
            "the id {id:?} names {} keys ({}): give more of its digits",
            several.len(),
            several
                .iter()
                .map(|k| format!("{} of tenant {:?}", key_id(k), k.tenant))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Known keys by hash, each trusted for [`KEY_CACHE_TTL`] after it was
/// read from the store, so a key revoked by another process stops working
/// soon without a store read per request; unknown keys are always asked
/// of the store. Shared across request tasks behind a read-mostly lock.
#[derive(Debug, Default)]
pub struct KeyCache {
    known: RwLock<HashMap<String, (KeyRecord, Instant)>>,
}

impl KeyCache {
    /// Looks `key` up, in memory first.
    pub async fn lookup(&self, store: &dyn Store, key: &str) -> StoreResult<Option<KeyRecord>> {
        let hash = hash_key(key);
        if let Some((rec, read_at)) = self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            && read_at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(rec.clone()));
        }
        let found = store.key_by_hash(hash.clone()).await?;
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        match &found {
            Some(rec) => {
                if known.len() >= CACHE_CAPACITY {
                    known.clear();
                }
                known.insert(hash, (rec.clone(), Instant::now()));
            }
            // Revoked since it was cached: forget it at once.
            None => {
                known.remove(&hash);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let (a, b) = (generate_key().expect("key"), generate_key().expect("key"));
        assert_ne!(a, b);
        assert!(a.starts_with("vk_") && a.len() == 67);
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(validate_tenant("acme-1").is_ok());
        for bad in ["", "a b", "x/y", &"t".repeat(65)] {
            assert!(validate_tenant(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        for ok in ["Bearer k", "bearer k", "BEARER  k ", "bEaReR\tk"] {
            assert_eq!(bearer_token(ok), Some("k"), "{ok:?}");
        }
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Bearerk",
            "Basic k",
            "Bear k",
            "Beärer k",
        ] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn revoke_takes_exactly_the_one_key_its_id_names() {
        let store = crate::store::open("sqlite::memory:").await.expect("store");
        let rec = |hash: &str, tenant: &str| KeyRecord {
            hash: hash.into(),
            tenant: tenant.into(),
            role: Role::Read,
            created_ms: 1,
        };
        for (hash, tenant) in [
            ("aaaaaaaa11112222", "a"),
            ("aaaaaaaa33334444", "b"),
            ("bbbbbbbb00000000", "c"),
        ] {
            store.create_key(rec(hash, tenant)).await.expect("create");
        }
        // An id naming two keys is refused and names both.
        let err = revoke_key(&*store, "aaaaaaaa")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("names 2 keys") && err.contains("\"a\"") && err.contains("\"b\""),
            "{err}"
        );
        // Too short, not hex, unknown: refused, saying why.
        for (bad, says) in [
            ("aaaa", "8 to 64"),
            ("aaaaaaaz", "8 to 64"),
            ("cccccccc", "no key"),
        ] {
            let err = revoke_key(&*store, bad).await.unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert_eq!(
            store.list_keys(None).await.expect("list").len(),
            3,
            "nothing was revoked"
        );
        // Upper case and spaces around the id are fine; only that key goes.
        let gone = revoke_key(&*store, " AAAAAAAA3333 ").await.expect("revoke");
        assert_eq!(gone.tenant, "b");
        let left: Vec<String> = list_keys(&*store, None)
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.tenant)
            .collect();
        assert_eq!(left, ["a", "c"]);
        assert!(list_keys(&*store, Some("bad tenant")).await.is_err());
    }
}
