//! How batches travel: a retried batch keeps its id, Retry-After is
//! honoured, a refused batch is not retried, a collector that is down
//! leaves a bounded queue and requests unaffected, intervals are pushed on
//! their own and flushed on shutdown, requests racing the interval swap are
//! counted once, huge and stalled answers are bounded.

use crate::{Collector, find, start};
use std::sync::Arc;
use std::time::Duration;
use vitals::wire::RouteAggregate;
use vitals_test_support::wait_until_async;

#[tokio::test]
async fn a_retried_batch_keeps_its_id() {
    let collector = Collector::start().await;
    collector.answer(&[(503, None), (429, Some("0")), (500, None)]);
    let s = start(&collector.url(), |c| c).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (1, 0));
    let got = collector.received();
    let answers: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [503, 429, 500, 200]);
    assert!(
        got.iter().all(|r| r.batch == got[0].batch),
        "same bytes, same id"
    );
    assert_eq!(s.counter("vitals_push_retries", &[]), 3);
    assert_eq!(s.counter("vitals_push_batches", &[("result", "sent")]), 1);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let collector = Collector::start().await;
    collector.answer(&[(429, Some("1"))]);
    let s = start(&collector.url(), |c| c).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    // Within 0.5 s only the refused attempt happened: the retry waits 1 s.
    let report = s
        .metrics
        .push_client()
        .unwrap()
        .flush(Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.pending), (0, 1));
    assert_eq!(collector.received().len(), 1);
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (2, 0));
    let got = collector.received();
    assert_eq!(got[0].batch.batch_id, got[1].batch.batch_id);
}

#[tokio::test]
async fn a_refused_batch_is_not_retried() {
    let collector = Collector::start().await;
    collector.answer(&[(400, None)]);
    let s = start(&collector.url(), |c| c).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    let report = s.flush().await;
    assert_eq!(
        (report.delivered, report.rejected, report.pending),
        (0, 1, 0)
    );
    assert_eq!(collector.received().len(), 1);
    assert_eq!(
        s.counter("vitals_push_batches", &[("result", "rejected")]),
        1
    );
    assert_eq!(s.counter("vitals_push_retries", &[]), 0);
    // The refused interval is gone; the next one is delivered.
    assert_eq!(s.get("/users/1", &[]).await, 200);
    let report = s.flush().await;
    assert_eq!(report.delivered, 1);
    let got = collector.received();
    assert_eq!(got.len(), 2);
    assert_ne!(got[0].batch.batch_id, got[1].batch.batch_id);
    assert_eq!(find(&got[1].batch, "GET", "/users/{id}", 2, None).count, 1);
}

#[tokio::test]
async fn collector_down_keeps_a_bounded_queue_and_requests_unaffected() {
    // A port nobody listens on: connections are refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = start(&url, |c| {
        c.queue_capacity(3)
            .backoff(Duration::from_secs(60), Duration::from_secs(60))
    })
    .await;
    for _ in 0..5 {
        assert_eq!(s.get("/users/1", &[]).await, 200);
        let report = s
            .metrics
            .push_client()
            .unwrap()
            .flush(Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(report.delivered, 0);
        assert!(report.pending <= 3);
    }
    assert_eq!(s.counter("vitals_push_queue_batches", &[]), 3);
    assert_eq!(
        s.counter("vitals_push_dropped", &[("reason", "queue_full")]),
        2
    );
    // Requests are still served and counted as usual.
    assert_eq!(s.get("/users/2", &[]).await, 200);
    assert_eq!(
        s.counter(
            "http_server_requests",
            &[
                ("method", "GET"),
                ("route", "/users/{id}"),
                ("status", "200")
            ]
        ),
        6
    );
    let report = s
        .metrics
        .finish_push(Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(report.pending, 3);
    assert_eq!(
        s.counter("vitals_push_dropped", &[("reason", "shutdown")]),
        3
    );
    assert!(
        s.metrics
            .push_client()
            .unwrap()
            .flush(Duration::ZERO)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn intervals_are_pushed_on_their_own_and_flushed_on_shutdown() {
    let collector = Collector::start().await;
    let mut s = start(&collector.url(), |c| c.interval(Duration::from_millis(200))).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    // The loop pushes by itself (empty intervals too).
    let got = wait_until_async(
        "two intervals pushed by the loop",
        Duration::from_secs(10),
        async || match collector.received() {
            got if got.len() >= 2 => Ok(got),
            got => Err(format!("{got:?}")),
        },
    )
    .await;
    let total: u64 = got
        .iter()
        .flat_map(|r| &r.batch.routes)
        .map(|r| r.count)
        .sum();
    assert_eq!(total, 1);
    for r in &got {
        assert!(r.batch.interval_ms < 5000);
    }

    // Requests of the last, unfinished interval reach the collector on
    // shutdown.
    let before = got.len();
    for _ in 0..3 {
        assert_eq!(s.get("/fail", &[]).await, 500);
    }
    s.shutdown.take().unwrap().send(()).unwrap();
    (&mut s.serving).await.unwrap();
    s.metrics.shutdown_finished();
    let report = s.metrics.finish_push(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.pending, 0);
    let got = collector.received();
    let fails: u64 = got[before..]
        .iter()
        .flat_map(|r| &r.batch.routes)
        .filter(|r| r.route == "/fail")
        .map(|r| r.errors)
        .sum();
    assert_eq!(fails, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_racing_the_interval_swap_are_counted_once() {
    let collector = Collector::start().await;
    let s = Arc::new(start(&collector.url(), |c| c).await);
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let path = if (t + i) % 5 == 0 {
                        "/fail"
                    } else {
                        "/users/3"
                    };
                    s.get(path, &[]).await;
                }
            })
        })
        .collect();
    // Close intervals while the requests run.
    let flusher = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                s.flush().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for t in senders {
        t.await.unwrap();
    }
    flusher.await.unwrap();
    s.flush().await;
    let got = collector.received();
    let routes: Vec<&RouteAggregate> = got.iter().flat_map(|r| &r.batch.routes).collect();
    let sum = |route: &str, f: fn(&RouteAggregate) -> u64| -> u64 {
        routes
            .iter()
            .filter(|r| r.route == route)
            .map(|r| f(r))
            .sum()
    };
    assert_eq!(sum("/users/{id}", |r| r.count), 160);
    assert_eq!(sum("/fail", |r| r.count), 40);
    assert_eq!(sum("/fail", |r| r.errors), 40);
    assert_eq!(sum("/users/{id}", |r| r.duration_ms.count()), 160);
    assert_eq!(sum("/users/{id}", |r| r.satisfied + r.tolerating), 160);
    assert!(routes.iter().all(|r| r.errors <= r.count && r.count > 0));
    let mut ids: Vec<&str> = got.iter().map(|r| r.batch.batch_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "every batch has its own id");
}

#[tokio::test]
async fn huge_and_stalled_answers_are_bounded() {
    let collector = Collector::start().await;
    // 8 MB answers: read up to the client's limit, then given up on.
    *collector.state.answer_bytes.lock().unwrap() = 8 << 20;
    // The first answer comes after 3 s, past the 300 ms request timeout.
    *collector.state.stall.lock().unwrap() = (1, Duration::from_secs(3));
    let s = start(&collector.url(), |c| {
        c.request_timeout(Duration::from_millis(300))
    })
    .await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (1, 0));
    let got = collector.received();
    assert_eq!(got.len(), 2, "the stalled attempt, then the retry");
    assert_eq!(got[0].batch.batch_id, got[1].batch.batch_id);
    assert_eq!(s.counter("vitals_push_retries", &[]), 1);
    assert_eq!(s.counter("vitals_push_batches", &[("result", "sent")]), 1);
    // Still working with the huge answers.
    assert_eq!(s.get("/users/2", &[]).await, 200);
    assert_eq!(s.flush().await.delivered, 1);
}
