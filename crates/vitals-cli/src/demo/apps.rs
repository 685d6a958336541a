//! The two demo services' routes: `users` (an API with a realistic latency
//! mix, some 4xx and 5xx, a slow tail, a task queue) and `frontend` (a
//! checkout that calls `users` with the trace carried on, a WebSocket chat
//! echo and a Server-Sent Events price feed).

use axum::Router;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};
use vitals_server::push::CallerService;
use vitals_server::{RouteMetrics, TaskQueue};

/// The plain HTTP/1 client the services and the load use.
pub(super) type HttpClient = Client<HttpConnector, Empty<bytes::Bytes>>;

/// A duration drawn from a lognormal distribution with this median and
/// shape (the usual shape of service latencies), in milliseconds.
pub(super) fn lognormal_ms(median_ms: f64, sigma: f64) -> f64 {
    // Box-Muller: one standard normal draw from two uniform ones.
    let u1: f64 = rand::random_range(f64::EPSILON..1.0);
    let u2: f64 = rand::random_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median_ms * (sigma * z).exp()
}

async fn sleep_ms(ms: f64) {
    tokio::time::sleep(Duration::from_secs_f64(ms.clamp(0.0, 5_000.0) / 1000.0)).await;
}

/// `users`: look-ups with a lognormal latency (median 8 ms) and a slow
/// tail (3 % take 150 to 900 ms), unknown users (404), a failing back end
/// now and then (2 % of look-ups are 500), `/slow` and `/fail` on demand.
pub(super) fn users_app(receipts: mpsc::Sender<()>, emails: TaskQueue) -> Router {
    Router::new()
        .route("/", get(|| async { "users service\n" }))
        .route("/users/{id}", get(user))
        .route(
            "/slow",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                let ms = q.get("ms").copied().unwrap_or(100).min(5_000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("slept {ms} ms\n")
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose\n") }),
        )
        .route(
            "/users/{id}/welcome",
            get(move |Path(id): Path<u32>| {
                let (receipts, emails) = (receipts.clone(), emails.clone());
                async move {
                    // A job for the email workers; a full queue is a 503.
                    if receipts.try_send(()).is_ok() {
                        emails.enqueued();
                        (
                            StatusCode::ACCEPTED,
                            format!("welcome mail for {id} queued\n"),
                        )
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "mail queue full\n".into())
                    }
                }
            }),
        )
}

async fn user(Path(id): Path<u32>) -> (StatusCode, String) {
    let ms = if rand::random_range(0..100) < 3 {
        rand::random_range(150.0..900.0)
    } else {
        lognormal_ms(8.0, 0.5)
    };
    sleep_ms(ms).await;
    if id >= 95 {
        return (StatusCode::NOT_FOUND, format!("no user {id}\n"));
    }
    if rand::random_range(0..100) < 2 {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "user store timed out\n".into(),
        );
    }
    (
        StatusCode::OK,
        serde_json::json!({ "id": id, "name": format!("user {id}") }).to_string(),
    )
}

/// Jobs the `emails` workers have taken, across workers: which ones fail
/// or retry is decided by their number, so the dashboard shows failures
/// and retries from the first jobs on, every run.
static EMAIL_JOBS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs the `emails` queue's jobs: about 120 ms each (lognormal); one job
/// in 20 fails for good, one in 7 is retried once first.
pub(super) async fn email_worker(
    jobs: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<()>>>,
    queue: TaskQueue,
) {
    loop {
        if jobs.lock().await.recv().await.is_none() {
            return;
        }
        let n = EMAIL_JOBS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut attempt = 1;
        loop {
            let task = queue.start();
            sleep_ms(lognormal_ms(120.0, 0.6)).await;
            if n % 20 == 1 {
                break task.fail();
            }
            if n % 7 == 2 && attempt == 1 {
                task.retry();
                attempt += 1;
                continue;
            }
            break task.complete();
        }
    }
}

/// What `frontend`'s handlers share: the instrumented client to `users`.
#[derive(Clone)]
pub(super) struct FrontendState {
    pub(super) users: CallerService<HttpClient>,
    pub(super) users_url: String,
}

/// The incoming `traceparent`'s trace id with a new span id, so the call
/// to `users` belongs to the same trace (its journey spans both services).
fn child_traceparent(headers: &HeaderMap) -> Option<String> {
    let parent = headers.get("traceparent")?.to_str().ok()?;
    let trace_id = parent.split('-').nth(1)?;
    (trace_id.len() == 32).then(|| format!("00-{trace_id}-{:016x}-01", rand::random::<u64>()))
}

async fn call_users(
    state: &FrontendState,
    path: &str,
    traceparent: Option<&str>,
) -> Result<StatusCode, String> {
    let mut request = http::Request::get(format!("{}{path}", state.users_url));
    if let Some(tp) = traceparent {
        request = request.header("traceparent", tp);
    }
    let request = request
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let mut client = state.users.clone();
    let res = client
        .ready()
        .await
        .map_err(|e| e.to_string())?
        .call(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let _ = res.into_body().collect().await;
    Ok(status)
}

/// A checkout: 3 ms of its own (lognormal), then the user from `users`,
/// then (for new customers, 1 in 5) a welcome mail queued at `users`.
/// 1 % of payments are declined (402).
async fn checkout(
    State(state): State<FrontendState>,
    Path(id): Path<u32>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    sleep_ms(lognormal_ms(3.0, 0.4)).await;
    let traceparent = child_traceparent(&headers);
    match call_users(&state, &format!("/users/{id}"), traceparent.as_deref()).await {
        Ok(s) if s.is_success() => {}
        Ok(s) if s == StatusCode::NOT_FOUND => {
            return (StatusCode::NOT_FOUND, format!("no user {id}\n"));
        }
        Ok(s) => return (StatusCode::BAD_GATEWAY, format!("users answered {s}\n")),
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("users unreachable: {e}\n")),
    }
    if id % 5 == 0 {
        let _ = call_users(
            &state,
            &format!("/users/{id}/welcome"),
            traceparent.as_deref(),
        )
        .await;
    }
    if rand::random_range(0..100) == 0 {
        return (StatusCode::PAYMENT_REQUIRED, "payment declined\n".into());
    }
    (StatusCode::OK, format!("checked out for user {id}\n"))
}

/// A chat room that echoes every message back, tracked as a WebSocket
/// session.
async fn chat(upgrade: WebSocketUpgrade, tracked: RouteMetrics) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        let mut socket = tracked.websocket(socket);
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(t) => Message::Text(format!("echo: {}", t.as_str()).into()),
                Message::Binary(b) => Message::Binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

/// A price every 250 ms, as Server-Sent Events, tracked as an SSE stream.
async fn prices(tracked: RouteMetrics) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = futures_util::stream::unfold(100.0f64, |price| async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let next = (price * (1.0 + rand::random_range(-0.01..0.01))).max(1.0);
        Some((Ok(Event::default().data(format!("{next:.2}"))), next))
    });
    Sse::new(tracked.sse(Box::pin(ticks))).keep_alive(KeepAlive::default())
}

/// `frontend`: the checkout, the chat and the price feed.
pub(super) fn frontend_app(state: FrontendState) -> Router {
    Router::new()
        .route("/", get(|| async { "frontend service\n" }))
        .route("/checkout/{id}", get(checkout))
        .route("/chat", get(chat))
        .route("/prices", get(prices))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_draws_centre_on_their_median_with_a_tail() {
        let mut draws: Vec<f64> = (0..20_000).map(|_| lognormal_ms(8.0, 0.5)).collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[draws.len() / 2];
        let p99 = draws[draws.len() * 99 / 100];
        assert!((7.0..9.0).contains(&median), "median {median}");
        // exp(0.5 × 2.326) ≈ 3.2 × the median.
        assert!((20.0..32.0).contains(&p99), "p99 {p99}");
        assert!(draws.iter().all(|d| *d > 0.0));
    }

    #[test]
    fn a_call_to_users_stays_in_the_incoming_trace() {
        let mut headers = HeaderMap::new();
        assert_eq!(child_traceparent(&headers), None);
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        headers.insert(
            "traceparent",
            format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap(),
        );
        let child = child_traceparent(&headers).unwrap();
        assert!(child.starts_with(&format!("00-{trace}-")), "{child}");
        assert_ne!(child, format!("00-{trace}-00f067aa0ba902b7-01"));
        headers.insert("traceparent", "garbage".parse().unwrap());
        assert_eq!(child_traceparent(&headers), None);
    }
}
