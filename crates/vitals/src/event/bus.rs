//! `EventBus`: fan-out of lifecycle events to callbacks and bounded channels.

use crate::event::{Event, EventRecord, SharedEvent};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

type Callback = Box<dyn Fn(&SharedEvent) + Send + Sync>;
type FallibleCallback = Box<dyn Fn(&SharedEvent) -> bool + Send + Sync>;

enum Sink {
    Callback(Callback),
    /// A callback that may refuse an event (its own queue is full): the
    /// refusal is counted as a drop. How async channels plug in.
    Fallible(FallibleCallback),
    Channel(SyncSender<SharedEvent>),
}

struct Subscriber {
    id: u64,
    name: String,
    sink: Sink,
    dropped: AtomicU64,
}

struct BusInner {
    /// Number of live subscribers: the one load `emit` makes when idle.
    active: AtomicUsize,
    /// Copy-on-write list: emitters clone the `Arc` and never hold the lock
    /// while delivering, so a subscriber can unsubscribe from a callback.
    subscribers: RwLock<Arc<Vec<Arc<Subscriber>>>>,
    /// Drop counts of subscribers that have gone, kept for the exposition.
    departed: RwLock<Vec<(String, u64)>>,
    next_event: AtomicU64,
    next_subscriber: AtomicU64,
}

/// Delivers events to subscribers without ever blocking the emitter.
///
/// Callbacks run synchronously on the emitting thread and must be cheap.
/// Channel subscribers get a bounded queue; when it is full the event is
/// dropped for that subscriber and counted (`vitals_events_dropped_total{subscriber}`).
/// With no subscriber, [`emit_with`](Self::emit_with) costs one relaxed load
/// and does not even build the event.
///
/// ```
/// use vitals::{Event, EventBus};
/// let bus = EventBus::new();
/// let (_sub, rx) = bus.subscribe_channel("audit", 16);
/// bus.emit_with(|| Event::WorkerSpawned { worker: 1, pid: None });
/// assert_eq!(rx.try_recv().unwrap().event, Event::WorkerSpawned { worker: 1, pid: None });
/// ```
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.inner.active.load(Relaxed))
            .finish()
    }
}

/// Keeps a subscription alive; dropping it unsubscribes.
#[must_use = "dropping a Subscription unsubscribes at once"]
pub struct Subscription {
    bus: Weak<BusInner>,
    id: u64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.upgrade() {
            let mut list = bus
                .subscribers
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut next: Vec<Arc<Subscriber>> = (**list).clone();
            if let Some(pos) = next.iter().position(|s| s.id == self.id) {
                let gone = next.remove(pos);
                let dropped = gone.dropped.load(Relaxed);
                if dropped > 0 {
                    let mut departed = bus.departed.write().unwrap_or_else(PoisonError::into_inner);
                    match departed.iter_mut().find(|(n, _)| *n == gone.name) {
                        Some((_, n)) => *n += dropped,
                        None => departed.push((gone.name.clone(), dropped)),
                    }
                }
            }
            bus.active.store(next.len(), Release);
            *list = Arc::new(next);
        }
    }
}

impl BusInner {
    /// The subscriber list as it is now; delivery works on this copy.
    fn current(&self) -> Arc<Vec<Arc<Subscriber>>> {
        self.subscribers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        EventBus {
            inner: Arc::new(BusInner {
                active: AtomicUsize::new(0),
                subscribers: RwLock::new(Arc::new(Vec::new())),
                departed: RwLock::new(Vec::new()),
                next_event: AtomicU64::new(1),
                next_subscriber: AtomicU64::new(1),
            }),
        }
    }

    /// True when at least one subscriber is listening.
    #[inline]
    pub fn has_subscribers(&self) -> bool {
        self.inner.active.load(Relaxed) > 0
    }

    /// Emits the event `make` builds, building it only if someone listens.
    #[inline]
    pub fn emit_with(&self, make: impl FnOnce() -> Event) {
        if self.has_subscribers() {
            self.deliver(make());
        }
    }

    /// Emits an already-built event.
    #[inline]
    pub fn emit(&self, event: Event) {
        if self.has_subscribers() {
            self.deliver(event);
        }
    }

    #[cold]
    fn deliver(&self, event: Event) {
        let list = self.inner.current();
        if list.is_empty() {
            return;
        }
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let record = Arc::new(EventRecord {
            id: self.inner.next_event.fetch_add(1, Relaxed),
            time_ms,
            event,
        });
        for sub in list.iter() {
            match &sub.sink {
                Sink::Callback(f) => f(&record),
                Sink::Fallible(f) => {
                    if !f(&record) {
                        sub.dropped.fetch_add(1, Relaxed);
                    }
                }
                Sink::Channel(tx) => match tx.try_send(record.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        sub.dropped.fetch_add(1, Relaxed);
                    }
                },
            }
        }
    }

    /// Calls `f` for every event, synchronously on the emitting thread.
    /// `name` identifies the subscriber in metrics.
    pub fn subscribe(
        &self,
        name: impl Into<String>,
        f: impl Fn(&SharedEvent) + Send + Sync + 'static,
    ) -> Subscription {
        self.add(name.into(), Sink::Callback(Box::new(f)))
    }

    /// Calls `f` for every event, synchronously on the emitting thread; `f`
    /// returns `false` when it could not take the event (typically a full
    /// bounded queue it feeds with `try_send`), which counts as a drop in
    /// `vitals_events_dropped_total{subscriber=name}`.
    ///
    /// This is how an async runtime's bounded channel becomes a subscriber
    /// while the core stays runtime-free: `f` must never block.
    ///
    /// ```
    /// use vitals::{Event, EventBus};
    /// let bus = EventBus::new();
    /// let (tx, rx) = std::sync::mpsc::sync_channel(1); // or tokio::sync::mpsc
    /// let _sub = bus.subscribe_sink("stream", move |e| tx.try_send(e.clone()).is_ok());
    /// bus.emit(Event::WorkerSpawned { worker: 1, pid: None });
    /// bus.emit(Event::WorkerSpawned { worker: 2, pid: None });
    /// assert_eq!(rx.try_iter().count(), 1);
    /// assert_eq!(bus.dropped_counts(), vec![("stream".to_string(), 1)]);
    /// ```
    pub fn subscribe_sink(
        &self,
        name: impl Into<String>,
        f: impl Fn(&SharedEvent) -> bool + Send + Sync + 'static,
    ) -> Subscription {
        self.add(name.into(), Sink::Fallible(Box::new(f)))
    }

    /// A bounded queue of events: when `capacity` events wait unread, newer
    /// ones are dropped for this subscriber and counted.
    pub fn subscribe_channel(
        &self,
        name: impl Into<String>,
        capacity: usize,
    ) -> (Subscription, Receiver<SharedEvent>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        (self.add(name.into(), Sink::Channel(tx)), rx)
    }

    fn add(&self, name: String, sink: Sink) -> Subscription {
        let id = self.inner.next_subscriber.fetch_add(1, Relaxed);
        let sub = Arc::new(Subscriber {
            id,
            name,
            sink,
            dropped: AtomicU64::new(0),
        });
        let mut list = self
            .inner
            .subscribers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next: Vec<Arc<Subscriber>> = (**list).clone();
        next.push(sub);
        self.inner.active.store(next.len(), Release);
        *list = Arc::new(next);
        Subscription {
            bus: Arc::downgrade(&self.inner),
            id,
        }
    }

    /// Events lost per subscriber name, including departed subscribers.
    pub fn dropped_counts(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .inner
            .departed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let list = self.inner.current();
        for s in list.iter() {
            let n = s.dropped.load(Relaxed);
            match out.iter_mut().find(|(name, _)| *name == s.name) {
                Some((_, total)) => *total += n,
                None => out.push((s.name.clone(), n)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn ev(worker: u32) -> Event {
        Event::WorkerSpawned { worker, pid: None }
    }

    #[test]
    fn no_subscriber_means_no_event_built() {
        let bus = EventBus::new();
        let mut built = false;
        bus.emit_with(|| {
            built = true;
            ev(1)
        });
        assert!(!built);
    }

    #[test]
    fn callbacks_see_events_in_order_with_increasing_ids() {
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let sub = bus.subscribe("cb", move |e| {
            s2.lock().unwrap().push((e.id, e.event.clone()))
        });
        for i in 0..5 {
            bus.emit(ev(i));
        }
        drop(sub);
        bus.emit(ev(99));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 5);
        for (i, (id, e)) in seen.iter().enumerate() {
            assert_eq!(*e, ev(i as u32));
            assert_eq!(*id, i as u64 + 1);
        }
    }

    #[test]
    fn slow_channel_drops_and_counts_without_blocking() {
        let bus = EventBus::new();
        let (_sub, rx) = bus.subscribe_channel("slow", 3);
        for i in 0..10 {
            bus.emit(ev(i));
        }
        let got: Vec<_> = rx.try_iter().map(|e| e.event.clone()).collect();
        assert_eq!(got, vec![ev(0), ev(1), ev(2)]);
        assert_eq!(bus.dropped_counts(), vec![("slow".to_string(), 7)]);
    }

    #[test]
    fn refused_sink_events_are_counted_and_order_kept_per_subscriber() {
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        // Takes every other event, as a queue that is full half the time.
        let _sub = bus.subscribe_sink("half", move |e| {
            if e.id % 2 == 1 {
                s2.lock().unwrap().push(e.id);
                true
            } else {
                false
            }
        });
        let (_all, rx) = bus.subscribe_channel("all", 100);
        for i in 0..10 {
            bus.emit(ev(i));
        }
        assert_eq!(*seen.lock().unwrap(), vec![1, 3, 5, 7, 9]);
        let ids: Vec<u64> = rx.try_iter().map(|e| e.id).collect();
        assert_eq!(ids, (1..=10).collect::<Vec<_>>());
        let mut counts = bus.dropped_counts();
        counts.sort();
        assert_eq!(
            counts,
            vec![("all".to_string(), 0), ("half".to_string(), 5)]
        );
    }

    #[test]
    fn a_stalled_channel_never_blocks_emitters_on_other_threads() {
        let bus = EventBus::new();
        let (_sub, rx) = bus.subscribe_channel("stalled", 2);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        bus.emit(ev(t * 1000 + i));
                    }
                })
            })
            .collect();
        // Joining proves no emitter waited on the reader, which never reads
        // until every emitter is done.
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(rx.try_iter().count(), 2);
        assert_eq!(bus.dropped_counts(), vec![("stalled".to_string(), 3998)]);
    }

    #[test]
    fn dropped_counts_survive_unsubscribe() {
        let bus = EventBus::new();
        let (sub, _rx) = bus.subscribe_channel("gone", 1);
        bus.emit(ev(0));
        bus.emit(ev(1));
        drop(sub);
        assert!(!bus.has_subscribers());
        assert_eq!(bus.dropped_counts(), vec![("gone".to_string(), 1)]);
    }

    #[test]
    fn callback_may_unsubscribe_itself_without_deadlock() {
        let bus = EventBus::new();
        let slot: Arc<Mutex<Option<Subscription>>> = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        let sub = bus.subscribe("once", move |_| {
            s2.lock().unwrap().take();
        });
        *slot.lock().unwrap() = Some(sub);
        bus.emit(ev(0));
        assert!(!bus.has_subscribers());
    }
}
