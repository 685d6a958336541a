//! API keys: `vk_` followed by 64 hex digits of randomness. Only the
//! SHA-256 of a key is stored, so a leaked database leaks no usable key.

use crate::model::{KeyRecord, Role, UnixMs};
use crate::store::{Store, StoreError, StoreResult};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::RwLock;

/// Longest bearer token looked up; longer ones are refused unread.
pub const MAX_KEY_LEN: usize = 256;
/// Keys remembered in memory after a lookup.
const CACHE_CAPACITY: usize = 10_000;

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

/// Known keys by hash. Keys are never revoked at run time, so a positive
/// lookup can be remembered; unknown keys are always asked of the store.
/// Shared across request tasks behind a read-mostly lock.
#[derive(Debug, Default)]
pub struct KeyCache {
    known: RwLock<HashMap<String, KeyRecord>>,
}

impl KeyCache {
    /// Looks `key` up, in memory first.
    pub async fn lookup(&self, store: &dyn Store, key: &str) -> StoreResult<Option<KeyRecord>> {
        let hash = hash_key(key);
        if let Some(rec) = self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
        {
            return Ok(Some(rec.clone()));
        }
        let found = store.key_by_hash(hash.clone()).await?;
        if let Some(rec) = &found {
            let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
            if known.len() >= CACHE_CAPACITY {
                known.clear();
            }
            known.insert(hash, rec.clone());
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
}
