//! Which notification an alert owes a receiver now, from its state and
//! what the receiver was last told ([`Sent`]). Pure, so a restart that
//! reloads both decides the same: a firing alert already delivered is not
//! sent again before its repeat time, and a resolution not yet delivered
//! still goes out.
//!
//! Webhooks follow Alertmanager's timing per group (here one rule and one
//! service): the first firing waits `group_wait` after `startsAt`; a
//! change after a notification (resolved, or firing anew) waits for
//! `group_interval` after it; a firing alert is repeated every
//! `repeat_interval`. Alertmanager itself gets a firing alert at once and
//! again every `resend_interval` (it de-duplicates, and an alert not
//! re-sent expires there), and its resolution at once.

use super::state::{AlertState, Sent, Tracked};
use crate::model::UnixMs;

/// How a receiver is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    /// Alertmanager's webhook JSON, grouped and timed like Alertmanager.
    Webhook,
    /// Alertmanager's `POST /api/v2/alerts`.
    Alertmanager,
}

/// Notification timing, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Before a group's first notification.
    pub group_wait_ms: i64,
    /// Between notifications of a group about changes.
    pub group_interval_ms: i64,
    /// Between repeats of a firing alert.
    pub repeat_interval_ms: i64,
    /// Between re-sends to Alertmanager.
    pub resend_interval_ms: i64,
}

/// The state to notify `kind` of at `now`, if a notification is due.
pub fn due(
    t: &Tracked,
    sent: Option<&Sent>,
    kind: ReceiverKind,
    timing: &Timing,
    now: UnixMs,
) -> Option<AlertState> {
    let starts = t.starts_ms?;
    let webhook = kind == ReceiverKind::Webhook;
    let told_this_firing = sent.filter(|s| s.starts_ms == starts);
    match t.state {
        AlertState::Firing => match told_this_firing {
            Some(s) if s.state == AlertState::Firing => {
                let every = if webhook {
                    timing.repeat_interval_ms
                } else {
                    timing.resend_interval_ms
                };
                (now >= s.at_ms.saturating_add(every)).then_some(AlertState::Firing)
            }
            // Resolved earlier for this very firing: nothing (it cannot fire
            // again without a new startsAt).
            Some(_) => None,
            None if !webhook => Some(AlertState::Firing),
            None => {
                let after_wait = now >= starts.saturating_add(timing.group_wait_ms);
                // The group heard about an earlier firing: wait for its interval.
                let after_interval =
                    sent.is_none_or(|s| now >= s.at_ms.saturating_add(timing.group_interval_ms));
                (after_wait && after_interval).then_some(AlertState::Firing)
            }
        },
        AlertState::Resolved => match told_this_firing {
            Some(s) if s.state == AlertState::Firing => {
                let ready = !webhook || now >= s.at_ms.saturating_add(timing.group_interval_ms);
                ready.then_some(AlertState::Resolved)
            }
            // Never told it fired (resolved within group_wait), or told already.
            _ => None,
        },
        AlertState::Inactive | AlertState::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        group_wait_ms: 30_000,
        group_interval_ms: 300_000,
        repeat_interval_ms: 3_600_000,
        resend_interval_ms: 60_000,
    };

    fn firing(starts: i64) -> Tracked {
        Tracked {
            state: AlertState::Firing,
            starts_ms: Some(starts),
            ..Tracked::default()
        }
    }

    fn sent(state: AlertState, at: i64, starts: i64) -> Sent {
        Sent {
            state,
            at_ms: at,
            starts_ms: starts,
        }
    }

    #[test]
    fn webhooks_wait_group_wait_then_repeat() {
        let t = firing(1_000);
        let w = ReceiverKind::Webhook;
        assert_eq!(due(&t, None, w, &TIMING, 30_999), None);
        assert_eq!(due(&t, None, w, &TIMING, 31_000), Some(AlertState::Firing));
        let told = sent(AlertState::Firing, 31_000, 1_000);
        assert_eq!(due(&t, Some(&told), w, &TIMING, 31_000 + 3_599_999), None);
        assert_eq!(
            due(&t, Some(&told), w, &TIMING, 31_000 + 3_600_000),
            Some(AlertState::Firing)
        );
    }

    #[test]
    fn resolutions_go_once_after_group_interval() {
        let mut t = firing(1_000);
        t.state = AlertState::Resolved;
        let w = ReceiverKind::Webhook;
        let told = sent(AlertState::Firing, 31_000, 1_000);
        assert_eq!(due(&t, Some(&told), w, &TIMING, 100_000), None);
        assert_eq!(
            due(&t, Some(&told), w, &TIMING, 331_000),
            Some(AlertState::Resolved)
        );
        let done = sent(AlertState::Resolved, 331_000, 1_000);
        assert_eq!(due(&t, Some(&done), w, &TIMING, 10_000_000), None);
        // Resolved before anyone heard it fired: silence.
        assert_eq!(due(&t, None, w, &TIMING, 10_000_000), None);
        // Alertmanager hears at once.
        assert_eq!(
            due(&t, Some(&told), ReceiverKind::Alertmanager, &TIMING, 31_001),
            Some(AlertState::Resolved)
        );
    }

    #[test]
    fn alertmanager_gets_firing_at_once_and_every_resend() {
        let t = firing(1_000);
        let am = ReceiverKind::Alertmanager;
        assert_eq!(due(&t, None, am, &TIMING, 1_000), Some(AlertState::Firing));
        let told = sent(AlertState::Firing, 1_000, 1_000);
        assert_eq!(due(&t, Some(&told), am, &TIMING, 60_999), None);
        assert_eq!(
            due(&t, Some(&told), am, &TIMING, 61_000),
            Some(AlertState::Firing)
        );
    }

    #[test]
    fn a_new_firing_waits_for_the_group_interval() {
        let t = firing(500_000);
        let old = sent(AlertState::Resolved, 400_000, 1_000);
        let w = ReceiverKind::Webhook;
        assert_eq!(due(&t, Some(&old), w, &TIMING, 530_000), None);
        assert_eq!(
            due(&t, Some(&old), w, &TIMING, 700_000),
            Some(AlertState::Firing)
        );
        for s in [AlertState::Inactive, AlertState::Pending] {
            let t = Tracked {
                state: s,
                ..firing(1)
            };
            assert_eq!(due(&t, None, w, &TIMING, i64::MAX), None);
        }
    }
}
