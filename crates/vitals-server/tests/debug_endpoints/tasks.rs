//! The task tracker: its counts are exact in `/debug/metrics` and in the
//! exposition.

use crate::{exposition, get_body, json, start_with};

#[tokio::test]
async fn task_tracker_counts_exactly_in_debug_metrics_and_exposition() {
    let s = start_with(|b| b.namespace("app")).await;
    let emails = s.metrics.tasks().queue("emails");
    let thumbs = s.metrics.tasks().queue("thumbs");
    for _ in 0..5 {
        emails.enqueued();
    }
    for _ in 0..3 {
        emails.start().complete();
    }
    emails.start().fail();
    emails.start().retry();
    emails.start().complete();
    let running = thumbs.start();
    assert_eq!(
        thumbs.run(async { Err::<(), _>("corrupt image") }).await,
        Err("corrupt image")
    );

    let (status, body) = get_body(&s, "/debug/metrics").await;
    assert_eq!(status, 200);
    let t = &json(&body)["tasks"];
    assert_eq!(t["enqueued"], 5, "{t}");
    assert_eq!(t["started"], 8, "{t}");
    assert_eq!(t["completed"], 4, "{t}");
    assert_eq!(t["failed"], 2, "{t}");
    assert_eq!(t["retried"], 1, "{t}");
    assert_eq!(t["in_flight"], 1, "{t}");
    assert!(t["rate_per_sec"].as_f64().unwrap() > 0.0, "{t}");
    assert!(t["p95_ms"].as_f64().is_some(), "{t}");
    let queues = t["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0]["queue"], "emails");
    assert_eq!(queues[0]["started"], 6);
    assert_eq!(queues[0]["in_flight"], 0);
    assert_eq!(queues[1]["queue"], "thumbs");
    assert_eq!(queues[1]["failed"], 1);
    assert_eq!(queues[1]["in_flight"], 1);

    let text = exposition(&s);
    for line in [
        "app_task_enqueued_total{queue=\"emails\"} 5\n",
        "app_task_started_total{queue=\"emails\"} 6\n",
        "app_task_completed_total{queue=\"emails\"} 4\n",
        "app_task_failed_total{queue=\"emails\"} 1\n",
        "app_task_retried_total{queue=\"emails\"} 1\n",
        "app_task_in_flight{queue=\"thumbs\"} 1\n",
        "app_task_duration_seconds_count{queue=\"emails\"} 5\n",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    running.complete();
    let (_, body) = get_body(&s, "/debug/metrics").await;
    assert_eq!(json(&body)["tasks"]["in_flight"], 0);
}
