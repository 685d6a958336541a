//! `Gauge` (integer) and `FloatGauge`: values that go up and down.

use super::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// An integer value that can go up and down, such as active connections.
///
/// ```
/// let active = vitals::Gauge::new();
/// active.inc();
/// active.inc();
/// active.dec();
/// assert_eq!(active.get(), 1);
/// ```
#[derive(Clone)]
pub struct Gauge {
    pub(crate) value: Cell<AtomicI64>,
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge {
            value: Cell::new(AtomicI64::new(0)),
        }
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge").field("value", &self.get()).finish()
    }
}

impl Gauge {
    /// A gauge at zero, not registered anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.value.store(v, Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.sub(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Relaxed);
    }

    /// Subtracts `n`.
    #[inline]
    pub fn sub(&self, n: i64) {
        self.value.fetch_sub(n, Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.value.load(Relaxed)
    }
}

/// A floating-point value that can go up and down, such as a ratio.
///
/// ```
/// let load = vitals::FloatGauge::new();
/// load.set(0.25);
/// load.add(0.5);
/// assert_eq!(load.get(), 0.75);
/// ```
#[derive(Clone)]
pub struct FloatGauge {
    pub(crate) bits: Cell<AtomicU64>,
}

impl Default for FloatGauge {
    fn default() -> Self {
        FloatGauge {
            bits: Cell::new(AtomicU64::new(0)),
        }
    }
}

impl std::fmt::Debug for FloatGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloatGauge")
            .field("value", &self.get())
            .finish()
    }
}

impl FloatGauge {
    /// A gauge at zero, not registered anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Relaxed);
    }

    /// Adds `v` (negative to subtract).
    #[inline]
    pub fn add(&self, v: f64) {
        atomic_add_f64(&self.bits, v);
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Relaxed))
    }
}

/// Adds to an `f64` kept as bits in an `AtomicU64`.
#[inline]
pub(crate) fn atomic_add_f64(bits: &AtomicU64, v: f64) {
    let mut current = bits.load(Relaxed);
    loop {
        let new = (f64::from_bits(current) + v).to_bits();
        match bits.compare_exchange_weak(current, new, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_float_adds_are_exact_for_integers() {
        let g = FloatGauge::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let g = g.clone();
                s.spawn(move || {
                    for _ in 0..10_000 {
                        g.add(1.0);
                    }
                });
            }
        });
        assert_eq!(g.get(), 40_000.0);
    }

    #[test]
    fn gauge_goes_both_ways() {
        let g = Gauge::new();
        g.add(10);
        g.sub(15);
        assert_eq!(g.get(), -5);
        g.set(7);
        assert_eq!(g.get(), 7);
    }
}
