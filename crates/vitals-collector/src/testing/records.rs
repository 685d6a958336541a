//! The store contract for what is kept beside buckets (part of
//! [`run_store_suite`](super::run_store_suite)): API keys, sampled
//! requests and the services list.

use super::fixtures::{BASE_MS, sample, unique, write};
use crate::model::{KeyRecord, Role, Sample, UnixMs};
use crate::store::{Store, StoreError};

/// Keys: stored, found by their hash, a second key with the same hash
/// refused; listed by tenant, oldest first; revoked by hash, only that
/// one, and then gone.
pub(super) async fn keys(store: &dyn Store) {
    let hash = unique("hash");
    let rec = KeyRecord {
        hash: hash.clone(),
        tenant: unique("tenant"),
        role: Role::Read,
        created_ms: BASE_MS,
    };
    store.create_key(rec.clone()).await.expect("create_key");
    assert_eq!(
        store.key_by_hash(hash.clone()).await.expect("lookup"),
        Some(rec.clone())
    );
    assert!(
        matches!(store.create_key(rec).await, Err(StoreError::DuplicateKey)),
        "a second key with the same hash must be DuplicateKey"
    );
    assert_eq!(
        store.key_by_hash(unique("nope")).await.expect("lookup"),
        None
    );

    let tenant = unique("tenant");
    let older = KeyRecord {
        hash: unique("older"),
        tenant: tenant.clone(),
        role: Role::Ingest,
        created_ms: BASE_MS,
    };
    let newer = KeyRecord {
        hash: unique("newer"),
        tenant: tenant.clone(),
        role: Role::Read,
        created_ms: BASE_MS + 1,
    };
    store.create_key(newer.clone()).await.expect("create newer");
    store.create_key(older.clone()).await.expect("create older");
    assert_eq!(
        store.list_keys(Some(tenant.clone())).await.expect("list"),
        vec![older.clone(), newer.clone()],
        "a tenant's keys, oldest first"
    );
    let all = store.list_keys(None).await.expect("list all");
    assert!(
        all.contains(&older) && all.contains(&newer),
        "every tenant's keys"
    );
    assert!(
        store
            .list_keys(Some(unique("tenant")))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store.revoke_keys(older.hash.clone()).await.expect("revoke"),
        vec![older.clone()]
    );
    assert_eq!(
        store.key_by_hash(older.hash.clone()).await.expect("lookup"),
        None,
        "a revoked key is gone"
    );
    assert_eq!(
        store.list_keys(Some(tenant)).await.expect("list"),
        vec![newer],
        "only the revoked key went"
    );
    assert!(
        store
            .revoke_keys(older.hash)
            .await
            .expect("revoke again")
            .is_empty(),
        "a key is revoked once"
    );
}

pub(super) async fn samples_and_services(store: &dyn Store) {
    let tenant = unique("tenant");
    let t = BASE_MS + 180_000;
    let samples: Vec<Sample> = (0..5).map(|i| sample(t + i, &format!("/r{i}"))).collect();
    store
        .ingest(write(
            &tenant,
            "api",
            Some("s1"),
            t + 10,
            vec![],
            samples.clone(),
        ))
        .await
        .expect("ingest samples");
    store
        .ingest(write(&tenant, "web", Some("s1"), t + 3, vec![], vec![]))
        .await
        .expect("ingest web");
    store
        .ingest(write(&tenant, "api", Some("s2"), t + 1, vec![], vec![]))
        .await
        .expect("ingest older receipt");
    let recent = store
        .recent_samples(tenant.clone(), "api".into(), 3)
        .await
        .expect("recent");
    let want: Vec<Sample> = samples.iter().rev().take(3).cloned().collect();
    assert_eq!(recent, want, "newest first, at most limit");
    assert!(
        store
            .recent_samples(unique("x"), "api".into(), 3)
            .await
            .expect("recent")
            .is_empty()
    );
    let services = store.services(tenant.clone()).await.expect("services");
    let names: Vec<(&str, UnixMs)> = services
        .iter()
        .map(|s| (s.service.as_str(), s.last_seen_ms))
        .collect();
    assert_eq!(
        names,
        vec![("api", t + 10), ("web", t + 3)],
        "last seen is the latest receipt"
    );
    assert!(
        store
            .services(unique("x"))
            .await
            .expect("services")
            .is_empty()
    );

    // A large batch of samples (written in multi-row statements of
    // several sizes) comes back whole and in order: one timestamp, so the
    // order is the insertion order alone.
    let many: Vec<Sample> = (0..105)
        .map(|i| Sample {
            caller: (i % 3 != 0).then(|| format!("c{i}")),
            trace_id: (i % 4 == 0).then(|| format!("{i:032x}")),
            status: 200 + i as u16,
            duration_ms: i as f64 / 4.0,
            ..sample(t + 20, &format!("/m{i}"))
        })
        .collect();
    store
        .ingest(write(
            &tenant,
            "many",
            Some("m1"),
            t + 20,
            vec![],
            many.clone(),
        ))
        .await
        .expect("ingest many samples");
    let recent = store
        .recent_samples(tenant.clone(), "many".into(), 200)
        .await
        .expect("recent");
    let want: Vec<Sample> = many.iter().rev().cloned().collect();
    assert_eq!(recent, want, "every sample, newest first");
}
