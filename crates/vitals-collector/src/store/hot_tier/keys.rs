//! Redis key names: every key under the configured prefix, parts of
//! arbitrary names length-prefixed so they never run into each other, and
//! the random ids of snapshots and sample members.

use crate::model::UnixMs;
use crate::store::{StoreError, StoreResult};

/// A length-prefixed key part, so arbitrary names never run into each other.
pub(super) fn part(s: &str) -> String {
    format!("{}:{s}", s.len())
}

/// A random 128-bit id in hex (snapshot ids, sample members).
pub(super) fn random_id() -> StoreResult<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|source| StoreError::Randomness { source })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The names of every key of one hot tier, under its prefix.
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn dedup(&self) -> String {
        format!("{}dedup", self.prefix)
    }
    pub(super) fn dirty(&self) -> String {
        format!("{}dirty", self.prefix)
    }
    pub(super) fn sealed(&self) -> String {
        format!("{}sealed", self.prefix)
    }
    pub(super) fn services(&self, tenant: &str) -> String {
        format!("{}svc:{}", self.prefix, part(tenant))
    }
    pub(super) fn recent(&self, tenant: &str, service: &str) -> String {
        format!("{}rs:{}{}", self.prefix, part(tenant), part(service))
    }
    /// The query view of one tenant's minute (every service).
    pub(super) fn view(&self, tenant: &str, minute: UnixMs) -> String {
        format!("{}q:{}{minute}", self.prefix, part(tenant))
    }
    /// The custom query view of one tenant's minute (every service).
    pub(super) fn custom_view(&self, tenant: &str, minute: UnixMs) -> String {
        format!("{}cq:{}{minute}", self.prefix, part(tenant))
    }

    /// The query view of one tenant's minute holding only the per-service
    /// total series, so overviews read a few fields instead of every route.
    pub(super) fn view_totals(&self, tenant: &str, minute: UnixMs) -> String {
        format!("{}qt:{}{minute}", self.prefix, part(tenant))
    }
    /// The minutes with a query view, per tenant.
    pub(super) fn view_minutes(&self, tenant: &str) -> String {
        format!("{}qm:{}", self.prefix, part(tenant))
    }
    /// Not-yet-flushed data of one `(tenant, service, minute)`.
    pub(super) fn delta(&self, tenant: &str, service: &str, minute: UnixMs) -> String {
        format!("{}u:{}{}{minute}", self.prefix, part(tenant), part(service))
    }
    pub(super) fn snapshot(&self, id: &str) -> String {
        format!("{}f:{id}", self.prefix)
    }
    pub(super) fn samples_of(unit: &str) -> String {
        format!("{unit}:s")
    }
}

/// `s` with the characters `SCAN MATCH` treats as a pattern escaped.
pub(super) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_never_run_into_each_other() {
        assert_ne!(
            format!("{}{}", part("a:1"), part("b")),
            format!("{}{}", part("a"), part("1:b"))
        );
        assert_eq!(glob_escape("p*?[x]\\:"), "p\\*\\?\\[x\\]\\\\:");
    }
}
