//! Per-interval request aggregates, fed by the HTTP layer.
//!
//! Concurrency: each (method, route, status class, caller) is a [`Series`]
//! of atomics (count, errors, Apdex counts) plus a lock-free atomic sketch
//! ([`vitals::Histogram`], recording milliseconds), so recording is a few
//! relaxed atomic adds. Series are found through 16 `RwLock`ed hash shards
//! (read lock only, once a series exists); the layer caches the series of
//! the first successful key per route service, as it does for the route's
//! own handles, so the common request skips even that. The push task never
//! resets the atomics: it reads them and subtracts what it reported last
//! time (kept in a per-series mutex only it takes), so a request racing the
//! interval swap is reported in one interval or the next, never lost or
//! counted twice. Series live until the process ends and are bounded by
//! `max_series` (further keys share one `route="overflow"` series per
//! status class); callers are interned and bounded by `max_callers`.
//!
//! The request sample is in [`super::sample`].

use super::caller::{INVALID_CALLER, OVERFLOW_CALLER, parse_traceparent, valid_caller};
use super::config::PushConfig;
use super::ended::{Ended, duration_ms};
use super::limits::{MAX_ROUTE_LEN, MAX_SAMPLED_PATH_LEN};
use super::sample::{PendingSample, Sampler, trace_priority};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use vitals::wire::{CALLER_HEADER, RouteAggregate};
use vitals::{Counter, Registry, Sketch};

const SHARDS: usize = 16;

/// The header names, parsed once: looking a header up by `&str` parses and
/// classifies the name on every call (≈ 350 instructions per request).
static CALLER: http::HeaderName = http::HeaderName::from_static(CALLER_HEADER);
static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Route of the series that takes keys past the `max_series` limit (as
/// `/debug/metrics` names the overflow series).
const OVERFLOW_ROUTE: &str = "overflow";
const OVERFLOW_METHOD: &str = crate::labels::OTHER_METHOD;

/// Counters of refused or folded push inputs: `vitals_push_rejected_total{reason}`.
struct Rejections {
    caller_invalid: Counter,
    caller_overflow: Counter,
    series_overflow: Counter,
    traceparent_invalid: Counter,
}

/// The shared accumulator; one per [`ServerMetrics`](crate::server_metrics::ServerMetrics)
/// with push configured.
pub(crate) struct Aggregator {
    apdex_t_ms: f64,
    shards: [RwLock<HashMap<u64, Vec<Arc<Series>>>>; SHARDS],
    hasher: RandomState,
    series_count: AtomicUsize,
    max_series: usize,
    /// The overflow series, by status class (index 1 to 5).
    overflow: [OnceLock<Arc<Series>>; 6],
    callers: RwLock<HashSet<Arc<str>>>,
    max_callers: usize,
    invalid_caller: Arc<str>,
    overflow_caller: Arc<str>,
    sampler: Sampler,
    rejected: Rejections,
    /// The caller's side of outbound calls (`client/`).
    pub(crate) clients: super::client_side::ClientAggregator,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("series", &self.series_count.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// One (method, route, status class, caller): cumulative atomics.
pub(crate) struct Series {
    method: &'static str,
    route: Box<str>,
    class: u8,
    caller: Option<Arc<str>>,
    count: AtomicU64,
    errors: AtomicU64,
    satisfied: AtomicU64,
    tolerating: AtomicU64,
    duration_ms: vitals::Histogram,
    /// What the push task reported so far; only it locks this.
    reported: Mutex<Reported>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("method", &self.method)
            .field("route", &self.route)
            .field("class", &self.class)
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Reported {
    count: u64,
    errors: u64,
    satisfied: u64,
    tolerating: u64,
    sketch: Sketch,
}

/// What the layer keeps about one request for the push aggregates, when
/// there is anything to keep (a caller, or the request is sampled); boxed by
/// the layer, so a request without either costs no allocation and the
/// layer's per-request state grows by one pointer only.
#[derive(Debug)]
pub(crate) struct PushRequest {
    caller: Option<Arc<str>>,
    sample: Option<PendingSample>,
}

impl Series {
    fn new(method: &'static str, route: &str, class: u8, caller: Option<Arc<str>>) -> Self {
        Series {
            method,
            route: route.into(),
            class,
            caller,
            count: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            satisfied: AtomicU64::new(0),
            tolerating: AtomicU64::new(0),
            duration_ms: vitals::Histogram::new(),
            reported: Mutex::new(Reported::default()),
        }
    }

    #[inline]
    fn matches(&self, method: &str, route: &str, class: u8, caller: Option<&Arc<str>>) -> bool {
        self.matches_class_caller(class, caller) && self.method == method && &*self.route == route
    }

    #[inline]
    fn matches_class_caller(&self, class: u8, caller: Option<&Arc<str>>) -> bool {
        // Callers are interned, so equal names are the same allocation.
        self.class == class
            && match (&self.caller, caller) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    /// Lock-free: relaxed atomic adds only. The count goes first so a
    /// concurrent read never sees more errors or Apdex counts than requests
    /// for long (the reader clamps and carries the rest anyway).
    #[inline]
    fn record(&self, e: &Ended<'_>, apdex_t_ms: f64) {
        self.count.fetch_add(1, Relaxed);
        if e.error {
            self.errors.fetch_add(1, Relaxed);
        }
        if e.timed {
            let ms = duration_ms(e.elapsed_secs);
            // An error is "frustrated" whatever its speed (Apdex spec).
            if e.error {
                // Neither satisfied nor tolerating.
            } else if ms <= apdex_t_ms {
                self.satisfied.fetch_add(1, Relaxed);
            } else if ms <= 4.0 * apdex_t_ms {
                self.tolerating.fetch_add(1, Relaxed);
            }
            self.duration_ms.record(ms);
        }
    }

    /// What happened since the last call, or `None` if nothing did.
    fn delta(&self) -> Option<RouteAggregate> {
        let mut r = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let sketch = self.duration_ms.sketch();
        let errors_now = self.errors.load(Relaxed);
        let satisfied_now = self.satisfied.load(Relaxed);
        let tolerating_now = self.tolerating.load(Relaxed);
        let count_now = self.count.load(Relaxed);
        let count = count_now.saturating_sub(r.count);
        if count == 0 {
            return None;
        }
        r.count = count_now;
        // Clamped to this interval's count; a racing remainder is carried
        // over to the next interval because `reported` only grows by what
        // was sent.
        let errors = errors_now.saturating_sub(r.errors).min(count);
        r.errors += errors;
        let satisfied = satisfied_now.saturating_sub(r.satisfied).min(count);
        r.satisfied += satisfied;
        let tolerating = tolerating_now
            .saturating_sub(r.tolerating)
            .min(count - satisfied);
        r.tolerating += tolerating;
        let mut duration_ms = sketch.clone();
        duration_ms.subtract(&r.sketch);
        r.sketch = sketch;
        Some(RouteAggregate {
            method: self.method.to_owned(),
            route: self.route.to_string(),
            status_class: self.class,
            caller: self.caller.as_deref().map(str::to_owned),
            count,
            errors,
            satisfied,
            tolerating,
            duration_ms,
        })
    }
}

impl Aggregator {
    pub(crate) fn new(config: &PushConfig, registry: &Registry) -> Result<Self, vitals::Error> {
        let rejected = registry.counter_vec(
            (
                "vitals_push_rejected_total",
                "Push inputs refused or folded: bad or surplus callers, surplus series, bad traceparent",
            ),
            &["reason"],
        )?;
        let r = |reason: &str| rejected.get(&[reason]).clone();
        let invalid_caller: Arc<str> = INVALID_CALLER.into();
        let overflow_caller: Arc<str> = OVERFLOW_CALLER.into();
        // The two markers are interned too, so a client sending them by
        // name lands in the same series.
        let callers = HashSet::from([invalid_caller.clone(), overflow_caller.clone()]);
        Ok(Aggregator {
            apdex_t_ms: config.apdex_t_ms,
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            hasher: RandomState::new(),
            series_count: AtomicUsize::new(0),
            max_series: config.max_series,
            overflow: std::array::from_fn(|_| OnceLock::new()),
            callers: RwLock::new(callers),
            max_callers: config.max_callers,
            invalid_caller,
            overflow_caller,
            sampler: Sampler::new(config.sample_size),
            clients: super::client_side::ClientAggregator::new(config.max_series),
            rejected: Rejections {
                caller_invalid: r("caller_invalid"),
                caller_overflow: r("caller_overflow"),
                series_overflow: r("series_overflow"),
                traceparent_invalid: r("traceparent_invalid"),
            },
        })
    }

    pub(crate) fn apdex_t_ms(&self) -> f64 {
        self.apdex_t_ms
    }

    /// Reads what the request carries for the aggregates: its caller and,
    /// if the reservoir picks it, its path and trace id (`None`: neither).
    #[inline]
    pub(crate) fn begin<B>(&self, req: &http::Request<B>) -> Option<Box<PushRequest>> {
        let headers = req.headers();
        let (caller, traceparent) = push_headers(headers);
        let caller = caller.map(|v| self.intern_caller(v.as_bytes()));
        // A traced request is kept by its trace id (the same decision in
        // every service), any other by the reservoir.
        let trace_id = traceparent.and_then(|v| {
            let id = parse_traceparent(v.as_bytes());
            if id.is_none() {
                self.rejected.traceparent_invalid.inc();
            }
            id
        });
        let picked = match &trace_id {
            Some(id) => {
                let priority = trace_priority(id);
                self.sampler
                    .reserve_traced(priority)
                    .map(|epoch| (epoch, 0, Some(priority)))
            }
            None => self
                .sampler
                .reserve()
                .map(|(epoch, slot)| (epoch, slot, None)),
        };
        let sample = picked.map(|(epoch, slot, priority)| PendingSample {
            epoch,
            slot,
            priority,
            timestamp_unix_ms: now_unix_ms(),
            path: cap(req.uri().path(), MAX_SAMPLED_PATH_LEN),
            trace_id,
        });
        if caller.is_none() && sample.is_none() {
            return None;
        }
        Some(Box::new(PushRequest { caller, sample }))
    }

    fn intern_caller(&self, name: &[u8]) -> Arc<str> {
        if !valid_caller(name) {
            self.rejected.caller_invalid.inc();
            return self.invalid_caller.clone();
        }
        // Valid names are ASCII.
        let Ok(name) = std::str::from_utf8(name) else {
            return self.invalid_caller.clone();
        };
        if let Some(c) = read(&self.callers).get(name) {
            return c.clone();
        }
        let mut callers = self.callers.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = callers.get(name) {
            return c.clone();
        }
        // The two markers are in the set but not in the limit.
        if callers.len() >= self.max_callers + 2 {
            self.rejected.caller_overflow.inc();
            return self.overflow_caller.clone();
        }
        let c: Arc<str> = name.into();
        callers.insert(c.clone());
        c
    }

    /// Records an ended request; `cache` is the layer's per-route slot,
    /// and `route_matched` says the layer's own cache already found this
    /// request's method and route equal to the first one the slot was
    /// filled for (so only the status class and caller are compared).
    #[inline]
    pub(crate) fn finish(
        &self,
        cache: &OnceLock<Arc<Series>>,
        route_matched: bool,
        req: Option<Box<PushRequest>>,
        mut e: Ended<'_>,
    ) {
        // The collector refuses a batch holding a longer route; cut it here
        // (no allocation), before the lookup, so the key stays stable.
        e.route = truncate(e.route, MAX_ROUTE_LEN);
        let class = (e.status / 100).clamp(1, 5) as u8;
        let caller = req.as_ref().and_then(|r| r.caller.as_ref());
        match cache.get().filter(|s| {
            if route_matched {
                s.matches_class_caller(class, caller)
            } else {
                s.matches(e.method, e.route, class, caller)
            }
        }) {
            Some(s) => s.record(&e, self.apdex_t_ms),
            None => {
                let s = self.series(e.method, e.route, class, caller);
                s.record(&e, self.apdex_t_ms);
                // Filled for the route the layer's cache holds (`route_matched`
                // is true only for that one), so the two caches agree.
                if class == 2 && route_matched && cache.get().is_none() {
                    let _ = cache.set(s);
                }
            }
        }
        if let Some(PushRequest {
            caller,
            sample: Some(p),
        }) = req.map(|r| *r)
        {
            self.sampler.store(p, &e, caller.as_deref());
        }
    }

    fn series(
        &self,
        method: &'static str,
        route: &str,
        class: u8,
        caller: Option<&Arc<str>>,
    ) -> Arc<Series> {
        let hash = self
            .hasher
            .hash_one((method, route, class, caller.map(|c| &**c)));
        let shard = &self.shards[(hash % SHARDS as u64) as usize];
        let find = |map: &HashMap<u64, Vec<Arc<Series>>>| {
            map.get(&hash).and_then(|v| {
                v.iter()
                    .find(|s| s.matches(method, route, class, caller))
                    .cloned()
            })
        };
        if let Some(s) = find(&read(shard)) {
            return s;
        }
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = find(&map) {
            return s;
        }
        if self.series_count.load(Relaxed) >= self.max_series {
            self.rejected.series_overflow.inc();
            return self.overflow[class as usize]
                .get_or_init(|| Arc::new(Series::new(OVERFLOW_METHOD, OVERFLOW_ROUTE, class, None)))
                .clone();
        }
        self.series_count.fetch_add(1, Relaxed);
        let s = Arc::new(Series::new(method, route, class, caller.cloned()));
        map.entry(hash).or_default().push(s.clone());
        s
    }

    /// Closes the interval: every series' change since the last call, and
    /// the sampled requests (oldest first).
    pub(crate) fn take(&self) -> (Vec<RouteAggregate>, Vec<vitals::wire::RequestSample>) {
        let mut routes = Vec::new();
        for shard in &self.shards {
            for list in read(shard).values() {
                routes.extend(list.iter().filter_map(|s| s.delta()));
            }
        }
        routes.extend(self.overflow.iter().filter_map(|o| o.get()?.delta()));
        routes.sort_by(|a, b| {
            (&a.route, &a.method, a.status_class, &a.caller).cmp(&(
                &b.route,
                &b.method,
                b.status_class,
                &b.caller,
            ))
        });
        (routes, self.sampler.take())
    }
}

/// The caller and `traceparent` headers. A request carries few headers,
/// and comparing a standard header's name with a custom one is one
/// comparison, so one scan of a short map is cheaper than hashing both
/// names for two lookups.
#[inline]
fn push_headers(
    headers: &http::HeaderMap,
) -> (Option<&http::HeaderValue>, Option<&http::HeaderValue>) {
    if headers.len() > 8 {
        return (headers.get(&CALLER), headers.get(&TRACEPARENT));
    }
    let (mut caller, mut traceparent) = (None, None);
    for (name, value) in headers {
        if *name == CALLER {
            caller = caller.or(Some(value));
        } else if *name == TRACEPARENT {
            traceparent = traceparent.or(Some(value));
        }
    }
    (caller, traceparent)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn cap(s: &str, max: usize) -> String {
    truncate(s, max).to_owned()
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(config: PushConfig) -> Aggregator {
        Aggregator::new(&config, &Registry::new()).unwrap()
    }

    fn ended(route: &str, status: u16, ms: f64) -> Ended<'_> {
        Ended {
            method: "GET",
            route,
            status,
            error: status >= 500,
            elapsed_secs: ms / 1000.0,
            timed: true,
        }
    }

    fn req(caller: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder().uri("/a?q=1");
        if let Some(c) = caller {
            b = b.header(CALLER_HEADER, c);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn intervals_report_each_request_once() {
        let a = agg(PushConfig::new("http://x", "k").unwrap().sample_size(2));
        let cache = OnceLock::new();
        for (status, ms) in [(200, 100.0), (200, 700.0), (503, 10.0)] {
            a.finish(&cache, false, a.begin(&req(None)), ended("/a", status, ms));
        }
        let (routes, samples) = a.take();
        assert_eq!(routes.len(), 2);
        let ok = &routes[0];
        assert_eq!((ok.status_class, ok.count, ok.errors), (2, 2, 0));
        assert_eq!((ok.satisfied, ok.tolerating), (1, 1));
        assert_eq!(ok.duration_ms.count(), 2);
        let err = &routes[1];
        assert_eq!((err.status_class, err.count, err.errors), (5, 1, 1));
        assert_eq!((err.satisfied, err.tolerating), (0, 0));
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].path, "/a");
        // Nothing new: nothing reported.
        assert_eq!(a.take(), (vec![], vec![]));
        a.finish(&cache, false, a.begin(&req(None)), ended("/a", 200, 1.0));
        let (routes, _) = a.take();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].count, 1);
        assert_eq!(routes[0].duration_ms.count(), 1);
    }

    #[test]
    fn what_the_collector_would_refuse_is_kept_in_range() {
        let a = agg(PushConfig::new("http://x", "k").unwrap());
        let cache = OnceLock::new();
        let long = format!("/{}", "r".repeat(400));
        for _ in 0..2 {
            a.finish(&cache, false, a.begin(&req(None)), ended(&long, 200, 1.0));
        }
        // Two hours; and a status HTTP does not have.
        a.finish(
            &cache,
            false,
            a.begin(&req(None)),
            ended("/a", 200, 7_200_000.0),
        );
        a.finish(&cache, false, a.begin(&req(None)), ended("/a", 700, 1.0));
        let (routes, samples) = a.take();
        let cut = routes.iter().find(|r| r.route.starts_with("/r")).unwrap();
        assert_eq!((cut.route.len(), cut.count), (super::MAX_ROUTE_LEN, 2));
        let slow = routes
            .iter()
            .find(|r| r.route == "/a" && r.status_class == 2)
            .unwrap();
        let max = slow.duration_ms.quantile(1.0).unwrap();
        assert!(max <= crate::push::limits::MAX_DURATION_MS * 1.01, "{max}");
        assert_eq!(slow.duration_ms.sum(), crate::push::limits::MAX_DURATION_MS);
        // Status 700 is aggregated (as 5xx) but not sampled.
        assert_eq!(
            routes.iter().find(|r| r.status_class == 5).unwrap().count,
            1
        );
        assert_eq!(samples.len(), 3);
        assert!(
            samples
                .iter()
                .all(|s| s.status == 200 && s.route.len() <= 256)
        );
    }

    #[test]
    fn callers_and_series_are_bounded() {
        let a = agg(PushConfig::new("http://x", "k")
            .unwrap()
            .max_callers(2)
            .max_series(3));
        let cache = OnceLock::new();
        for c in ["a", "b", "c", "bad caller", "invalid"] {
            a.finish(&cache, false, a.begin(&req(Some(c))), ended("/a", 200, 1.0));
        }
        let (routes, _) = a.take();
        let callers: Vec<_> = routes.iter().map(|r| r.caller.as_deref()).collect();
        // a, b, then c past the caller limit; both invalid ones share a
        // series, which is the overflow series for being the fourth.
        assert_eq!(
            callers,
            [Some("_overflow"), Some("a"), Some("b"), None],
            "{routes:?}"
        );
        let overflow = routes.last().unwrap();
        assert_eq!(
            (
                overflow.method.as_str(),
                overflow.route.as_str(),
                overflow.count
            ),
            ("_OTHER", "overflow", 2)
        );
    }
}
