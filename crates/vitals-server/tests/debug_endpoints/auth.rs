//! Endpoint auth: every debug endpoint is protected, and each refusal is
//! counted.

use crate::{exposition, get_body, get_raw, json, start_with};
use base64::Engine as _;
use http_body_util::BodyExt;

#[tokio::test]
async fn auth_protects_every_endpoint_and_counts_refusals() {
    let s = start_with(|b| b.auth_bearer("t0ken").auth_basic("ops", "pw")).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good_basic = format!("Basic {}", b64("ops:pw"));
    let bad_basic = format!("Basic {}", b64("ops:pX"));

    // No credentials: 401 with both challenges and a JSON error.
    let res = get_raw(&s, "/metrics", &[]).await;
    assert_eq!(res.status(), 401);
    let challenges: Vec<&str> = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            "Bearer realm=\"vitals\"",
            "Basic realm=\"vitals\", charset=\"UTF-8\""
        ]
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(json(&String::from_utf8_lossy(&body))["error"].is_string());

    let long = format!("Bearer {}", "x".repeat(5000));
    for (path, header, want) in [
        ("/debug/metrics", None, 401),
        ("/debug/history", None, 401),
        ("/debug/events", None, 401),
        ("/metrics", Some("Bearer wrong"), 401),
        ("/metrics", Some("Bearer t0ke"), 401),
        ("/metrics", Some("Bearer t0ken0"), 401),
        ("/metrics", Some(bad_basic.as_str()), 401),
        ("/metrics", Some("Basic %%%"), 401),
        ("/metrics", Some(long.as_str()), 401),
        ("/metrics", Some("Bearer t0ken"), 200),
        ("/metrics", Some(good_basic.as_str()), 200),
        ("/debug/metrics", Some("bearer t0ken"), 200),
        ("/debug/history", Some(good_basic.as_str()), 200),
        ("/debug/events", Some("Bearer t0ken"), 200),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("authorization", h)).into_iter().collect();
        let res = get_raw(&s, path, &headers).await;
        assert_eq!(res.status().as_u16(), want, "{path} {header:?}");
    }
    // The application's own routes stay open; unknown paths stay 404.
    // A name directly under /debug/ is the dashboard's file route
    // (`/debug/{file}`), protected like the rest: 401 before any lookup,
    // so a client without the credential learns nothing of which exist.
    assert_eq!(get_body(&s, "/users/1").await.0, 200);
    assert_eq!(get_body(&s, "/nope").await.0, 404);
    assert_eq!(get_body(&s, "/debug/nope").await.0, 401);

    let text = exposition(&s);
    assert!(
        text.contains("vitals_rejected_total{reason=\"debug_auth_missing\"} 5\n"),
        "{text}"
    );
    assert!(
        text.contains("vitals_rejected_total{reason=\"debug_auth_invalid\"} 6\n"),
        "{text}"
    );
}
