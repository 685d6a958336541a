//! The no-op build: every instrumentation type is zero-sized and does
//! nothing, with the same API as the real one (see the `enabled` feature).

#![allow(missing_docs, clippy::unused_self)]

use crate::error::Error;
use crate::event::{Event, SharedEvent};
use crate::options::Options;
use crate::sketch::Sketch;
use crate::visit::{Collector, Visitor};
use std::marker::PhantomData;
use std::sync::mpsc::Receiver;

/// No-op counter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter;
impl Counter {
    pub fn new() -> Self {
        Counter
    }
    #[inline(always)]
    pub fn inc(&self) {}
    #[inline(always)]
    pub fn add(&self, _n: u64) {}
    pub fn get(&self) -> u64 {
        0
    }
    pub fn local(&self) -> LocalCounter {
        LocalCounter(PhantomData)
    }
}

/// No-op sharded counter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardedCounter;
impl ShardedCounter {
    pub fn new() -> Self {
        ShardedCounter
    }
    #[inline(always)]
    pub fn inc(&self) {}
    #[inline(always)]
    pub fn add(&self, _n: u64) {}
    pub fn get(&self) -> u64 {
        0
    }
}

/// No-op batch counter.
#[derive(Debug, Default)]
pub struct LocalCounter(PhantomData<std::cell::Cell<()>>);
impl LocalCounter {
    #[inline(always)]
    pub fn inc(&self) {}
    #[inline(always)]
    pub fn add(&self, _n: u64) {}
    pub fn flush(&self) {}
    pub fn pending(&self) -> u64 {
        0
    }
}
impl Drop for LocalCounter {
    fn drop(&mut self) {}
}

/// No-op gauge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauge;
impl Gauge {
    pub fn new() -> Self {
        Gauge
    }
    #[inline(always)]
    pub fn set(&self, _v: i64) {}
    #[inline(always)]
    pub fn inc(&self) {}
    #[inline(always)]
    pub fn dec(&self) {}
    #[inline(always)]
    pub fn add(&self, _n: i64) {}
    #[inline(always)]
    pub fn sub(&self, _n: i64) {}
    pub fn get(&self) -> i64 {
        0
    }
}

/// No-op float gauge.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloatGauge;
impl FloatGauge {
    pub fn new() -> Self {
        FloatGauge
    }
    #[inline(always)]
    pub fn set(&self, _v: f64) {}
    #[inline(always)]
    pub fn add(&self, _v: f64) {}
    #[inline(always)]
    pub fn sub(&self, _v: f64) {}
    pub fn get(&self) -> f64 {
        0.0
    }
}

/// No-op histogram.
#[derive(Debug, Clone, Copy, Default)]
pub struct Histogram;
impl Histogram {
    pub fn new() -> Self {
        Histogram
    }
    pub fn with_buckets(_bounds: &[f64]) -> Result<Self, Error> {
        Ok(Histogram)
    }
    #[inline(always)]
    pub fn record(&self, _v: f64) {}
    #[inline(always)]
    pub fn record_duration(&self, _d: std::time::Duration) {}
    pub fn start_timer(&self) -> Timer<'_> {
        Timer(PhantomData)
    }
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        f()
    }
    pub fn count(&self) -> u64 {
        0
    }
    pub fn sum(&self) -> f64 {
        0.0
    }
    pub fn sketch(&self) -> Sketch {
        Sketch::new()
    }
    pub fn bounds(&self) -> &[f64] {
        &[]
    }
}

/// No-op timer.
#[derive(Debug)]
#[must_use = "a timer records when dropped; bind it to a variable"]
pub struct Timer<'a>(PhantomData<&'a ()>);
impl Timer<'_> {
    pub fn stop(self) -> f64 {
        0.0
    }
    pub fn discard(self) {}
}

/// A metric type that can live in a no-op [`Family`].
pub trait Metric: Clone + Send + Sync + 'static {
    #[doc(hidden)]
    fn instance() -> &'static Self;
}
macro_rules! noop_metric {
    ($($t:ident),*) => {$(
        impl Metric for $t {
            fn instance() -> &'static Self { static I: $t = $t; &I }
        }
    )*};
}
noop_metric!(Counter, ShardedCounter, Gauge, FloatGauge, Histogram);

/// No-op family.
#[derive(Debug)]
pub struct Family<M: Metric>(PhantomData<fn() -> M>);
impl<M: Metric> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family(PhantomData)
    }
}
impl<M: Metric> Family<M> {
    #[inline(always)]
    pub fn get<S: AsRef<str>>(&self, _values: &[S]) -> &M {
        M::instance()
    }
    pub fn try_get<S: AsRef<str>>(&self, _values: &[S]) -> Result<&M, Error> {
        Ok(M::instance())
    }
    pub fn for_each(&self, _f: impl FnMut(&[Box<str>], &M)) {}
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn overflow_count(&self) -> u64 {
        0
    }
    pub fn name(&self) -> &str {
        ""
    }
}
pub type CounterVec = Family<Counter>;
pub type ShardedCounterVec = Family<ShardedCounter>;
pub type GaugeVec = Family<Gauge>;
pub type FloatGaugeVec = Family<FloatGauge>;
pub type HistogramVec = Family<Histogram>;

/// No-op registry: registration always succeeds, output is empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;
impl Registry {
    pub fn new() -> Self {
        Registry
    }
    pub fn with_max_label_value_len(_max: usize) -> Self {
        Registry
    }
    pub fn events(&self) -> &EventBus {
        static B: EventBus = EventBus;
        &B
    }
    pub fn counter(&self, _o: impl Into<Options>) -> Result<Counter, Error> {
        Ok(Counter)
    }
    pub fn counter_vec(&self, _o: impl Into<Options>, _l: &[&str]) -> Result<CounterVec, Error> {
        Ok(Family(PhantomData))
    }
    pub fn sharded_counter(&self, _o: impl Into<Options>) -> Result<ShardedCounter, Error> {
        Ok(ShardedCounter)
    }
    pub fn sharded_counter_vec(
        &self,
        _o: impl Into<Options>,
        _l: &[&str],
    ) -> Result<ShardedCounterVec, Error> {
        Ok(Family(PhantomData))
    }
    pub fn gauge(&self, _o: impl Into<Options>) -> Result<Gauge, Error> {
        Ok(Gauge)
    }
    pub fn gauge_vec(&self, _o: impl Into<Options>, _l: &[&str]) -> Result<GaugeVec, Error> {
        Ok(Family(PhantomData))
    }
    pub fn float_gauge(&self, _o: impl Into<Options>) -> Result<FloatGauge, Error> {
        Ok(FloatGauge)
    }
    pub fn float_gauge_vec(
        &self,
        _o: impl Into<Options>,
        _l: &[&str],
    ) -> Result<FloatGaugeVec, Error> {
        Ok(Family(PhantomData))
    }
    pub fn histogram(&self, _o: impl Into<Options>) -> Result<Histogram, Error> {
        Ok(Histogram)
    }
    pub fn histogram_vec(
        &self,
        _o: impl Into<Options>,
        _l: &[&str],
    ) -> Result<HistogramVec, Error> {
        Ok(Family(PhantomData))
    }
    pub fn count_rejected(&self, _reason: &str) {}
    pub fn register_collector(&self, _c: impl Collector + 'static) {}
    pub fn render(&self, format: crate::Format) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = crate::encode::TextEncoder::new(&mut out, format);
        self.visit(&mut enc);
        enc.finish();
        out
    }
    pub fn snapshot(&self) -> crate::Snapshot {
        crate::Snapshot::default()
    }
    pub fn visit(&self, _visitor: &mut dyn Visitor) {}
}

pub fn global() -> &'static Registry {
    static G: Registry = Registry;
    &G
}

/// No-op event bus: nobody ever listens.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventBus;
impl EventBus {
    pub fn new() -> Self {
        EventBus
    }
    #[inline(always)]
    pub fn has_subscribers(&self) -> bool {
        false
    }
    #[inline(always)]
    pub fn emit_with(&self, _make: impl FnOnce() -> Event) {}
    #[inline(always)]
    pub fn emit(&self, _event: Event) {}
    pub fn subscribe(
        &self,
        _name: impl Into<String>,
        _f: impl Fn(&SharedEvent) + Send + Sync + 'static,
    ) -> Subscription {
        Subscription
    }
    pub fn subscribe_sink(
        &self,
        _name: impl Into<String>,
        _f: impl Fn(&SharedEvent) -> bool + Send + Sync + 'static,
    ) -> Subscription {
        Subscription
    }
    pub fn subscribe_channel(
        &self,
        _name: impl Into<String>,
        _capacity: usize,
    ) -> (Subscription, Receiver<SharedEvent>) {
        let (_tx, rx) = std::sync::mpsc::sync_channel(1);
        (Subscription, rx)
    }
    pub fn dropped_counts(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// No-op subscription.
#[derive(Debug)]
pub struct Subscription;
