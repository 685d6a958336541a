//! The alerting store methods, on SQLite and on the real PostgreSQL
//! (`VITALS_TEST_POSTGRES`): rules per tenant, create versus replace,
//! delete with its states, the states and history in one write, history
//! filters and order, retention, and the tenants list.

use super::external::TestSchema;
use vitals_collector::Store;
use vitals_collector::model::{
    AlertEvent, AlertHistoryQuery, IngestWrite, StoredAlert, StoredRule,
};
use vitals_collector::store::SqliteStore;
use vitals_collector::testing::{key, minute_bucket};

fn rule(tenant: &str, name: &str, spec: &str) -> StoredRule {
    StoredRule {
        tenant: tenant.into(),
        name: name.into(),
        spec: spec.into(),
        updated_ms: 1,
    }
}

fn state(tenant: &str, rule: &str, service: &str, json: &str) -> StoredAlert {
    StoredAlert {
        tenant: tenant.into(),
        rule: rule.into(),
        service: service.into(),
        state: json.into(),
    }
}

fn event(tenant: &str, service: &str, at: i64, to: &str) -> AlertEvent {
    AlertEvent {
        tenant: tenant.into(),
        rule: "r".into(),
        service: service.into(),
        at_ms: at,
        from: "inactive".into(),
        to: to.into(),
        value: Some(0.5),
        labels: r#"{"alertname":"r"}"#.into(),
    }
}

fn query(tenant: &str) -> AlertHistoryQuery {
    AlertHistoryQuery {
        tenant: tenant.into(),
        state: None,
        service: None,
        since_ms: 0,
        limit: 100,
    }
}

async fn check(store: &dyn Store) {
    // Rules: create, no second create, replace, no replace of the unknown.
    assert!(
        store
            .put_alert_rule(rule("acme", "a", "{1}"), false)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_alert_rule(rule("acme", "a", "{2}"), false)
            .await
            .unwrap()
    );
    assert!(
        store
            .put_alert_rule(rule("acme", "a", "{3}"), true)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_alert_rule(rule("acme", "zz", "{}"), true)
            .await
            .unwrap()
    );
    assert!(
        store
            .put_alert_rule(rule("other", "a", "{o}"), false)
            .await
            .unwrap()
    );
    let acme = store.alert_rules(Some("acme".into())).await.unwrap();
    assert_eq!(acme.len(), 1);
    assert_eq!(acme[0].spec, "{3}");
    assert_eq!(store.alert_rules(None).await.unwrap().len(), 2);

    // States and history in one write; upsert by key; removal.
    store
        .save_alerts(
            vec![
                state("acme", "a", "checkout", "s1"),
                state("acme", "b", "checkout", "s1"),
                state("other", "a", "checkout", "s1"),
            ],
            vec![],
            vec![
                event("acme", "checkout", 100, "pending"),
                event("acme", "search", 200, "firing"),
                event("acme", "checkout", 300, "firing"),
                event("other", "checkout", 300, "firing"),
            ],
        )
        .await
        .unwrap();
    store
        .save_alerts(
            vec![state("acme", "a", "checkout", "s2")],
            vec![("acme".into(), "b".into(), "checkout".into())],
            vec![],
        )
        .await
        .unwrap();
    let mut states = store.alert_states().await.unwrap();
    states.sort_by(|a, b| (&a.tenant, &a.rule).cmp(&(&b.tenant, &b.rule)));
    let keys: Vec<(&str, &str, &str)> = states
        .iter()
        .map(|s| (s.tenant.as_str(), s.rule.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(keys, [("acme", "a", "s2"), ("other", "a", "s1")]);

    // History: newest first, filters, limit, tenant isolation.
    let h = store.alert_history(query("acme")).await.unwrap();
    let at: Vec<i64> = h.iter().map(|e| e.at_ms).collect();
    assert_eq!(at, [300, 200, 100]);
    assert_eq!(h[0].value, Some(0.5));
    assert_eq!(h[0].labels, r#"{"alertname":"r"}"#);
    let firing = AlertHistoryQuery {
        state: Some("firing".into()),
        ..query("acme")
    };
    assert_eq!(store.alert_history(firing).await.unwrap().len(), 2);
    let search = AlertHistoryQuery {
        service: Some("search".into()),
        ..query("acme")
    };
    assert_eq!(store.alert_history(search).await.unwrap().len(), 1);
    let since = AlertHistoryQuery {
        since_ms: 200,
        limit: 1,
        ..query("acme")
    };
    let h = store.alert_history(since).await.unwrap();
    assert_eq!(h.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [300]);
    // Retention.
    assert_eq!(store.drop_alert_history_before(250).await.unwrap(), 2);
    assert_eq!(store.alert_history(query("acme")).await.unwrap().len(), 1);

    // Deleting a rule deletes its states, not another tenant's.
    assert!(
        store
            .delete_alert_rule("acme".into(), "a".into())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_alert_rule("acme".into(), "a".into())
            .await
            .unwrap()
    );
    let states = store.alert_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].tenant, "other");

    // Tenants: those with services.
    assert_eq!(store.tenants().await.unwrap(), Vec::<String>::new());
    for tenant in ["t2", "t1", "t2"] {
        let now = vitals_collector::now_ms();
        store
            .ingest(IngestWrite {
                tenant: tenant.into(),
                service: "svc".into(),
                batch_id: Some(format!("{tenant}-{now}-{}", rand_suffix())),
                received_ms: now,
                buckets: vec![minute_bucket(tenant, &key("svc", "/x", ""), now, &[1.0], 0)],
                samples: vec![],
                custom: vec![],
            })
            .await
            .unwrap();
    }
    assert_eq!(store.tenants().await.unwrap(), ["t1", "t2"]);
}

fn rand_suffix() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

#[tokio::test]
async fn sqlite_keeps_rules_states_and_history() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    check(&store).await;
}

#[tokio::test]
async fn postgres_keeps_rules_states_and_history() {
    let Some(schema) = TestSchema::create("alerts").await else {
        return;
    };
    let store = schema.open().await.expect("open");
    check(&store).await;
    drop(store);
    schema.drop().await;
}
