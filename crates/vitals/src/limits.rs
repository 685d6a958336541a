//! Limits on what callers may feed a registry, and counts of what was refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// Most distinct caller-defined rejection reasons kept; further ones are
/// counted under `other`.
pub const MAX_CUSTOM_REASONS: usize = 64;

/// Default longest label value kept, in bytes; longer values are truncated.
pub const DEFAULT_MAX_LABEL_VALUE_LEN: usize = 1024;

/// Why an input was refused or altered; the `reason` label of
/// `vitals_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A label value longer than the limit was truncated.
    LabelValueTooLong,
    /// A lookup gave the wrong number of label values.
    LabelCount,
    /// A label value held control characters (other than tab and newline),
    /// which were replaced with U+FFFD.
    LabelValueControlChar,
}

impl Reason {
    /// Every reason, in rendering order.
    pub const ALL: [Reason; 3] = [
        Reason::LabelValueTooLong,
        Reason::LabelCount,
        Reason::LabelValueControlChar,
    ];

    /// The label value used in `vitals_rejected_total{reason}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::LabelValueTooLong => "label_value_too_long",
            Reason::LabelCount => "label_count",
            Reason::LabelValueControlChar => "label_value_control_char",
        }
    }
}

/// Limits shared by every family of a registry.
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) max_label_value_len: usize,
    rejected: [AtomicU64; Reason::ALL.len()],
    /// Reasons counted by other crates (HTTP endpoints, ingest).
    custom: Mutex<BTreeMap<String, u64>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(DEFAULT_MAX_LABEL_VALUE_LEN)
    }
}

impl Limits {
    pub(crate) fn new(max_label_value_len: usize) -> Self {
        Limits {
            max_label_value_len: max_label_value_len.max(1),
            rejected: Default::default(),
            custom: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn count_rejected(&self, reason: Reason) {
        self.rejected[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected(&self, reason: Reason) -> u64 {
        self.rejected[reason as usize].load(Relaxed)
    }

    pub(crate) fn count_custom(&self, reason: &str) {
        let mut custom = self.custom.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = custom.get_mut(reason) {
            *n += 1;
            return;
        }
        let valid = !reason.is_empty()
            && reason.len() <= 64
            && reason
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let key = if valid && custom.len() < MAX_CUSTOM_REASONS {
            reason
        } else {
            "other"
        };
        *custom.entry(key.to_owned()).or_insert(0) += 1;
    }

    pub(crate) fn custom(&self) -> Vec<(String, u64)> {
        let custom = self.custom.lock().unwrap_or_else(PoisonError::into_inner);
        custom.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}
