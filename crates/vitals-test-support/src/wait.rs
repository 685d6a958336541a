//! Waits for something that happens asynchronously (a connection closing,
//! a sampler taking a point), failing the test when it never does.
//!
//! A probe returns `Ok(value)` once the condition holds, or `Err(state)`
//! describing what it saw instead. The wait returns the value, or panics
//! after the timeout with what was awaited and the last state seen: a
//! timeout can never let a test go on as if the condition had held.
//!
//! Timeouts can be generous: a wait ends as soon as the condition holds,
//! so a long timeout only costs time when the test fails anyway. Probes are
//! retried after 5 ms, then twice as long each time up to 100 ms.

use std::fmt::Display;
use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LONGEST_PAUSE: Duration = Duration::from_millis(100);

/// Calls `probe` until it returns `Ok`, and returns its value; panics
/// after `timeout` with `what` (what was awaited, e.g. "the connection to
/// close") and the last `Err` the probe returned. The probe runs at least
/// once, and once more at the deadline.
///
/// ```
/// use std::time::Duration;
/// let mut n = 0;
/// let got = vitals_test_support::wait_until("n to reach 3", Duration::from_secs(5), || {
///     n += 1;
///     if n >= 3 { Ok(n) } else { Err(format!("n = {n}")) }
/// });
/// assert_eq!(got, 3);
/// ```
#[track_caller]
pub fn wait_until<T, E: Display>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let last = match probe() {
            Ok(value) => return value,
            Err(state) => state,
        };
        let waited = start.elapsed();
        if waited >= timeout {
            timed_out(what, waited, &last);
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// [`wait_until`] for async tests: awaits `probe` and sleeps on tokio's
/// timer between tries, so other tasks (the server under test) run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// let (tx, mut rx) = tokio::sync::watch::channel(0);
/// tokio::spawn(async move { tx.send(7).unwrap(); tx.closed().await });
/// let got = vitals_test_support::wait_until_async("the value 7", Duration::from_secs(5), async || {
///     match *rx.borrow_and_update() { 7 => Ok(7), other => Err(other) }
/// })
/// .await;
/// assert_eq!(got, 7);
/// # }
/// ```
#[cfg(feature = "tokio")]
#[track_caller]
pub fn wait_until_async<T, E: Display>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> impl std::future::Future<Output = T> {
    let caller = std::panic::Location::caller();
    async move {
        let start = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            let last = match probe().await {
                Ok(value) => return value,
                Err(state) => state,
            };
            let waited = start.elapsed();
            if waited >= timeout {
                timed_out_at(caller, what, waited, &last);
            }
            tokio::time::sleep(pause.min(timeout - waited)).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}

#[track_caller]
fn timed_out(what: &str, waited: Duration, last: &dyn Display) -> ! {
    timed_out_at(std::panic::Location::caller(), what, waited, last)
}

fn timed_out_at(
    caller: &std::panic::Location<'_>,
    what: &str,
    waited: Duration,
    last: &dyn Display,
) -> ! {
    panic!(
        "timed out after {:.1} s waiting for {what} (wait at {caller}); last seen: {last}",
        waited.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_probe_passes() {
        let mut tries = 0;
        let got = wait_until("three tries", Duration::from_secs(5), || {
            tries += 1;
            if tries < 3 {
                Err(format!("{tries} tries"))
            } else {
                Ok(tries * 10)
            }
        });
        assert_eq!((got, tries), (30, 3));
    }

    #[test]
    #[should_panic(expected = "waiting for the sky to fall (wait at ")]
    fn a_timeout_fails_with_what_was_awaited() {
        wait_until("the sky to fall", Duration::from_millis(30), || {
            Err::<(), _>("still up")
        });
    }

    fn panic_message(r: std::thread::Result<()>) -> String {
        let e = r.expect_err("the wait panics");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn a_timeout_shows_the_last_state() {
        let mut n = 0;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until("a change", Duration::from_millis(40), || {
                n += 1;
                Err::<(), _>(format!("attempt {n}"))
            })
        }));
        let message = panic_message(r);
        assert!(n >= 2, "probed again until the deadline: {n}");
        assert!(
            message.starts_with("timed out after ")
                && message.contains(" s waiting for a change (wait at ")
                && message.ends_with(&format!("last seen: attempt {n}")),
            "{message}"
        );
    }

    #[test]
    fn a_zero_timeout_probes_once() {
        let mut tries = 0;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until("nothing", Duration::ZERO, || {
                tries += 1;
                Err::<(), _>("no")
            })
        }));
        assert!(r.is_err());
        assert_eq!(tries, 1);
    }

    #[tokio::test]
    async fn async_waits_let_other_tasks_run() {
        let (tx, mut rx) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            for i in 1..=5 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let _ = tx.send(i);
            }
            tx.closed().await;
        });
        let got = wait_until_async(
            "the fifth value",
            Duration::from_secs(5),
            async || match *rx.borrow_and_update() {
                5 => Ok(5),
                other => Err(other),
            },
        )
        .await;
        assert_eq!(got, 5);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a value that never comes")]
    async fn async_timeouts_fail() {
        wait_until_async(
            "a value that never comes",
            Duration::from_millis(30),
            async || Err::<(), _>("nothing yet"),
        )
        .await;
    }
}
