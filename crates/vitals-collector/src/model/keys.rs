//! API keys as the store keeps them: the secret's hash, its tenant and
//! its [`Role`].

use super::period::UnixMs;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May post to `/v1/ingest` and `/v1/requests`.
    Ingest,
    /// May read the query API.
    Read,
    /// May write alert rules (`POST`, `PUT`, `DELETE /v1/alert-rules`),
    /// and read everything a `read` key may.
    Admin,
}

impl Role {
    /// `ingest`, `read` or `admin`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may do what `needed` allows: its own
    /// role, and an `admin` key also reads.
    pub fn allows(self, needed: Role) -> bool {
        self == needed || (self == Role::Admin && needed == Role::Read)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingest" => Ok(Role::Ingest),
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected ingest, read or admin"
            )),
        }
    }
}

/// A stored API key: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Lowercase hex SHA-256 of the secret key.
    pub hash: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// What the key may do.
    pub role: Role,
    /// When the key was created (ms since the epoch).
    pub created_ms: UnixMs,
}
