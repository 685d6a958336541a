//! Typed lifecycle events and the data they carry.
//!
//! Instrumentation (the server layer, WebSocket and SSE wrappers, task
//! trackers) emits [`Event`]s on an [`EventBus`]; callbacks, the
//! `/debug/events` stream and the dashboard subscribe. The bus is the only
//! thing instrumentation knows about, as a tracing subscriber is to spans.
//!
//! - `data.rs`: the events and what they carry.
//! - `bus.rs`: the bus, fanning events out to callbacks and bounded
//!   channels (feature `enabled`; without it, the no-op bus of `noop.rs`).

#[cfg(feature = "enabled")]
mod bus;
mod data;

#[cfg(not(feature = "enabled"))]
pub use crate::noop::{EventBus, Subscription};
#[cfg(feature = "enabled")]
pub use bus::{EventBus, Subscription};
pub use data::{Direction, Event, EventRecord, LifespanPhase, SharedEvent, TaskState};
