//! The `[alerting]` section of the configuration: its spans, rules and
//! receivers are checked when the collector starts, each mistake named.

use vitals_collector::CollectorConfig;

#[test]
fn the_section_checks_its_spans_rules_and_receivers() {
    let c = CollectorConfig::from_toml(
        r#"
        listen = "0.0.0.0:7070"
        [alerting]
        group_wait = "0s"
        retry_backoff = "250ms"
        [[alerting.rules]]
        tenant = "acme"
        name = "errors"
        service = "checkout"
        signal = "error_rate"
        op = ">"
        threshold = 0.05
        [[alerting.webhook]]
        name = "ops"
        url = "https://hooks.example/alerts"
        max_alerts = 10
        [alerting.alertmanager]
        url = "http://127.0.0.1:9093/"
        "#,
    )
    .expect("valid");
    let a = c.alerting_settings().expect("checks");
    assert_eq!(a.interval_ms, 15_000, "default");
    assert_eq!((a.group_wait_ms, a.retry_backoff_ms), (0, 250));
    assert_eq!(a.external_url, "http://0.0.0.0:7070");
    assert_eq!(a.rules[0].tenant, "acme");
    for (toml, want) in [
        ("[alerting]\ninterval = \"0s\"", "alerting.interval"),
        ("[alerting]\nretry_attempts = 0", "retry_attempts"),
        ("[alerting]\nrepeat_interval = \"10s\"", "repeat_interval"),
        (
            "[[alerting.rules]]\nname = \"x\"\nservice = \"s\"\nsignal = \"rate\"\nop = \">\"\nthreshold = 1",
            "needs a tenant",
        ),
        (
            "[[alerting.rules]]\ntenant = \"a b\"\nname = \"x\"\nservice = \"s\"\nsignal = \"rate\"\nop = \">\"\nthreshold = 1",
            "invalid tenant",
        ),
        (
            "[[alerting.rules]]\ntenant = \"a\"\nname = \"x\"\nservice = \"s\"\nsignal = \"rate\"\nop = \">\"\nthreshold = 1\n\
             [[alerting.rules]]\ntenant = \"a\"\nname = \"x\"\nservice = \"t\"\nsignal = \"rate\"\nop = \">\"\nthreshold = 1",
            "two rules named",
        ),
        (
            "[[alerting.webhook]]\nname = \"ops\"\nurl = \"ftp://x\"",
            "http://",
        ),
        (
            "[[alerting.webhook]]\nname = \"alertmanager\"\nurl = \"http://x\"",
            "taken",
        ),
        (
            "[alerting.alertmanager]\nurl = \"not a url\"",
            "alertmanager.url",
        ),
        ("[alerting]\nexternal_url = \"x\"", "external_url"),
    ] {
        let err = CollectorConfig::from_toml(toml).expect_err(toml);
        assert!(err.contains(want), "{want:?} not in {err}");
    }
}
