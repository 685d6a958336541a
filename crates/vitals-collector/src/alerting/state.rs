//! One alert's state machine: inactive → pending → firing → resolved,
//! stepped once per evaluation round with whether the rule's condition
//! holds. Pure: the time is an argument, so tests drive it with any clock.
//!
//! - The condition holds: inactive or resolved → pending (→ firing at
//!   once when `for` is 0); pending → firing once it has held for `for`.
//! - It does not: pending → inactive; firing stays firing until the
//!   condition has been false for `keep_firing_for` (no flapping), then
//!   → resolved; resolved stays resolved until the condition holds again.

use crate::model::UnixMs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition does not hold.
    #[default]
    Inactive,
    /// It holds, not yet for `for`.
    Pending,
    /// It has held for `for` (or within `keep_firing_for` of holding).
    Firing,
    /// It fired, and has stopped.
    Resolved,
}

impl AlertState {
    /// `inactive`, `pending`, `firing` or `resolved`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(s: &str) -> Option<AlertState> {
        [
            AlertState::Inactive,
            AlertState::Pending,
            AlertState::Firing,
            AlertState::Resolved,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// What a receiver was last told about an alert (delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// `Firing` or `Resolved`.
    pub state: AlertState,
    /// When it was delivered.
    pub at_ms: UnixMs,
    /// The `startsAt` of the firing it was about.
    pub starts_ms: UnixMs,
}

/// One alert between rounds: its state and times, what it carried when
/// it last fired, and what each receiver was told. Stored as JSON after
/// every round that changed it, so a restart continues from here.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tracked {
    /// The state.
    pub state: AlertState,
    /// When the state began.
    pub since_ms: UnixMs,
    /// When the condition began to hold (pending's start).
    pub active_ms: Option<UnixMs>,
    /// When it began firing (`startsAt`).
    pub starts_ms: Option<UnixMs>,
    /// When it resolved (`endsAt`).
    pub ends_ms: Option<UnixMs>,
    /// The last round at which the condition held.
    pub last_met_ms: Option<UnixMs>,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations, rendered with the latest value while firing.
    pub annotations: BTreeMap<String, String>,
    /// What each receiver, by name, was last told.
    pub sent: BTreeMap<String, Sent>,
    /// The latest value (not stored: the next round has it again).
    #[serde(skip)]
    pub value: Option<f64>,
    /// The latest round (not stored).
    #[serde(skip)]
    pub evaluated_ms: UnixMs,
}

/// A state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The state before.
    pub from: AlertState,
    /// The state after.
    pub to: AlertState,
}

impl Tracked {
    /// One evaluation at `now`: `met` is whether the condition holds.
    /// Returns the changes made (at most two: inactive → pending → firing
    /// when `for` is 0).
    pub fn step(&mut self, now: UnixMs, met: bool, for_ms: i64, keep_ms: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut go = |t: &mut Tracked, to: AlertState| {
            changes.push(Change { from: t.state, to });
            t.state = to;
            t.since_ms = now;
        };
        if met {
            self.last_met_ms = Some(now);
            if matches!(self.state, AlertState::Inactive | AlertState::Resolved) {
                self.active_ms = Some(now);
                self.ends_ms = None;
                go(self, AlertState::Pending);
            }
            if self.state == AlertState::Pending && now - self.active_ms.unwrap_or(now) >= for_ms {
                self.starts_ms = Some(now);
                go(self, AlertState::Firing);
            }
        } else {
            match self.state {
                AlertState::Pending => {
                    self.active_ms = None;
                    go(self, AlertState::Inactive);
                }
                AlertState::Firing if now - self.last_met_ms.unwrap_or(i64::MIN / 2) >= keep_ms => {
                    self.active_ms = None;
                    self.ends_ms = Some(now);
                    go(self, AlertState::Resolved);
                }
                _ => {}
            }
        }
        self.evaluated_ms = now;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::*;

    const S: i64 = 1_000;

    /// Steps `t` through `(seconds, met)` rounds; the states after each.
    fn run(t: &mut Tracked, rounds: &[(i64, bool)], for_s: i64, keep_s: i64) -> Vec<AlertState> {
        rounds
            .iter()
            .map(|&(at, met)| {
                t.step(at * S, met, for_s * S, keep_s * S);
                t.state
            })
            .collect()
    }

    #[test]
    fn pending_then_firing_after_for() {
        let mut t = Tracked::default();
        let states = run(
            &mut t,
            &[(0, true), (15, true), (45, true), (60, true), (75, true)],
            60,
            0,
        );
        assert_eq!(states, [Pending, Pending, Pending, Firing, Firing]);
        assert_eq!(t.active_ms, Some(0));
        assert_eq!(t.starts_ms, Some(60 * S));
        // A break while pending starts `for` again.
        let mut t = Tracked::default();
        let states = run(
            &mut t,
            &[(0, true), (30, false), (45, true), (90, true), (105, true)],
            60,
            0,
        );
        assert_eq!(states, [Pending, Inactive, Pending, Pending, Firing]);
        assert_eq!(t.starts_ms, Some(105 * S));
    }

    #[test]
    fn for_zero_fires_at_once_with_both_changes() {
        let mut t = Tracked::default();
        let changes = t.step(5 * S, true, 0, 0);
        assert_eq!(
            changes,
            [
                Change {
                    from: Inactive,
                    to: Pending
                },
                Change {
                    from: Pending,
                    to: Firing
                }
            ]
        );
        assert_eq!(t.starts_ms, Some(5 * S));
    }

    #[test]
    fn keep_firing_for_stops_flapping() {
        let mut t = Tracked::default();
        // Fires, then the condition flickers off and on within 60 s.
        let states = run(
            &mut t,
            &[
                (0, true),
                (15, false),
                (30, true),
                (45, false),
                (75, false),
                (90, false),
            ],
            0,
            60,
        );
        // Resolved once false for 60 s since it last held (at 30 s).
        assert_eq!(states, [Firing, Firing, Firing, Firing, Firing, Resolved]);
        assert_eq!(t.starts_ms, Some(0), "one firing, not three");
        assert_eq!(t.ends_ms, Some(90 * S));
        // Without keep_firing_for the same input flaps.
        let mut t = Tracked::default();
        let states = run(
            &mut t,
            &[(0, true), (15, false), (30, true), (45, false)],
            0,
            0,
        );
        assert_eq!(states, [Firing, Resolved, Firing, Resolved]);
    }

    #[test]
    fn resolved_stays_until_the_condition_holds_again() {
        let mut t = Tracked::default();
        let states = run(
            &mut t,
            &[(0, true), (15, false), (30, false), (45, true), (60, true)],
            15,
            0,
        );
        assert_eq!(states, [Pending, Inactive, Inactive, Pending, Firing]);
        let states = run(&mut t, &[(75, false), (90, false), (105, true)], 15, 0);
        assert_eq!(states, [Resolved, Resolved, Pending]);
        assert_eq!(t.ends_ms, None, "a new pending clears the old end");
    }

    #[test]
    fn state_names_round_trip() {
        for s in [Inactive, Pending, Firing, Resolved] {
            assert_eq!(AlertState::parse(s.as_str()), Some(s));
        }
        assert_eq!(AlertState::parse("fired"), None);
    }

    #[test]
    fn the_stored_json_survives_a_restart_without_the_volatile_fields() {
        let mut t = Tracked::default();
        t.step(0, true, 60_000, 0);
        t.value = Some(0.5);
        let json = serde_json::to_string(&t).expect("json");
        let back: Tracked = serde_json::from_str(&json).expect("back");
        assert_eq!(back.state, Pending);
        assert_eq!(back.active_ms, Some(0));
        assert_eq!(back.value, None);
        // Continues where it stopped: fires 60 s after it became pending.
        let mut back = back;
        back.step(60_000, true, 60_000, 0);
        assert_eq!(back.state, Firing);
    }
}
