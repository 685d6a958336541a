//! Benchmark of the vitals no-op build (`default-features = false`).
//!
//! This crate exists only so that `vitals` is compiled without its `enabled`
//! feature. Cargo unifies features across every package selected in one
//! command, so run it on its own:
//!
//! ```text
//! cargo bench -p vitals-bench-noop
//! cargo test -p vitals-bench-noop
//! ```
//!
//! Built together with a package that enables `vitals/enabled` (for example
//! `cargo test --workspace`), `vitals` is the real build here too; the test
//! below then says so and checks nothing.

#[cfg(test)]
mod tests {
    #[test]
    fn counter_is_zero_sized_in_the_noop_build() {
        if vitals::ENABLED {
            eprintln!(
                "vitals/enabled was turned on by feature unification with another \
                 package in this build; run `cargo test -p vitals-bench-noop` alone \
                 to check the no-op build"
            );
            return;
        }
        assert_eq!(std::mem::size_of::<vitals::Counter>(), 0);
        assert_eq!(std::mem::size_of::<vitals::LocalCounter>(), 0);
        assert_eq!(std::mem::size_of::<vitals::Histogram>(), 0);
    }
}
