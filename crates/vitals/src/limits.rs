//! Limits on what callers may feed a registry, and counts of what was refused.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
        }
    }

    pub(crate) fn count_rejected(&self, reason: Reason) {
        self.rejected[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected(&self, reason: Reason) -> u64 {
        self.rejected[reason as usize].load(Relaxed)
    }
}
