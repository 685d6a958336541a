//! Helpers for tests against the real PostgreSQL and Redis servers: where
//! they are (`VITALS_TEST_POSTGRES`, `VITALS_TEST_REDIS`, else the standard
//! local addresses), a fresh schema per test, and the hostile-names round
//! trip every back end must pass. A server that does not answer fails the
//! test, unless `VITALS_SKIP_EXTERNAL=1` skips it (never in CI): the rule
//! of `vitals_test_support::external`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use vitals_collector::model::{
    BucketQuery, IngestOutcome, IngestWrite, KeyRecord, Resolution, Role, Sample, SeriesKey,
    SeriesSelect,
};
use vitals_collector::store::{PostgresStore, Store, StoreResult};
use vitals_collector::testing::minute_bucket;
use vitals_test_support::external::{POSTGRES, REDIS};

/// How long a server may take to answer the first connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An error and its sources: `error connecting to server: Connection refused`.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

/// A random lowercase name with `prefix`.
pub fn random_name(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

/// A fresh schema in the test database; [`TestSchema::drop`] removes it
/// (and a drop guard does, if the test panicked first).
pub struct TestSchema {
    url: String,
    pub name: String,
    client: tokio_postgres::Client,
    dropped: bool,
}

impl TestSchema {
    /// Creates `vitals_test_<what>_<random>`, or returns `None` when
    /// PostgreSQL does not answer and the test may skip (see the module
    /// doc); the test then returns.
    pub async fn create(what: &str) -> Option<TestSchema> {
        let url = POSTGRES.url();
        let connect = tokio_postgres::connect(&url, tokio_postgres::NoTls);
        let (client, conn) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                POSTGRES.unavailable(&url, with_sources(&e));
                return None;
            }
            Err(_) => {
                POSTGRES.unavailable(&url, format_args!("no answer in {CONNECT_TIMEOUT:?}"));
                return None;
            }
        };
        tokio::spawn(conn);
        let name = random_name(&format!("vitals_test_{what}"));
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        Some(TestSchema {
            url,
            name,
            client,
            dropped: false,
        })
    }

    /// The test URL with `search_path` set to this schema.
    pub fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.url, self.name)
    }

    /// A store working in this schema.
    pub async fn open(&self) -> StoreResult<PostgresStore> {
        PostgresStore::open(&self.url()).await
    }

    /// Runs SQL in this schema.
    pub async fn execute(&self, sql: &str) {
        self.client
            .batch_execute(&format!("SET search_path TO {}; {sql}", self.name))
            .await
            .expect("execute");
    }

    /// One bigint from SQL run in this schema.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        self.client
            .batch_execute(&format!("SET search_path TO {}", self.name))
            .await
            .expect("search_path");
        self.client.query_one(sql, &[]).await.expect("query").get(0)
    }

    /// The first column of every row of SQL run in this schema, as text.
    ///
    /// Retried (3 attempts) only on PostgreSQL's "could not open relation
    /// with OID", seen once in CI: the other tests of this binary drop
    /// their schemas in the same database, and a catalog query that reaches
    /// their relations (`pg_indexes` computes `pg_get_indexdef` for every
    /// schema's index of a name, and every test schema has the same index
    /// names) can meet one dropped under it. Catalog queries here filter by
    /// schema; the retry stays as a guard. Any other error fails at once.
    pub async fn query_strings(&self, sql: &str) -> Vec<String> {
        self.client
            .batch_execute(&format!("SET search_path TO {}", self.name))
            .await
            .expect("search_path");
        let mut attempt = 1;
        loop {
            match self.client.query(sql, &[]).await {
                Ok(rows) => return rows.iter().map(|r| r.get(0)).collect(),
                Err(e)
                    if attempt < 3
                        && e.as_db_error().is_some_and(|d| {
                            d.message().starts_with("could not open relation")
                        }) =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("query: {e:?}"),
            }
        }
    }

    /// Drops the schema and everything in it.
    pub async fn drop(mut self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop schema");
        self.dropped = true;
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // The test panicked: drop the schema from a thread of its own.
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
            Ok::<_, std::io::Error>(())
        })
        .join();
    }
}

/// The Redis URL for tests, once it answers PING, or `None` when it does
/// not and the test may skip (see the module doc); the test then returns.
pub async fn redis_url() -> Option<String> {
    let url = REDIS.url();
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, ping).await {
        Ok(Ok(_)) => Some(url),
        Ok(Err(e)) => {
            REDIS.unavailable(&url, with_sources(&e));
            None
        }
        Err(_) => {
            REDIS.unavailable(
                &url,
                format_args!("no answer to PING in {CONNECT_TIMEOUT:?}"),
            );
            None
        }
    }
}

/// The Redis keys under `prefix`, and a connection to delete them with.
pub async fn redis_keys(
    url: &str,
    prefix: &str,
) -> (Vec<String>, redis::aio::MultiplexedConnection) {
    let mut conn = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    (keys, conn)
}

/// A string of at most `max` bytes repeating `pattern` (whole chars only).
pub fn fill(pattern: &str, max: usize) -> String {
    let mut out = String::new();
    for c in pattern.chars().cycle() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Names at the ingest limits (128-byte names, 256-byte routes) made of
/// SQL metacharacters, quotes, format strings and multi-byte Unicode must
/// come back byte for byte.
pub async fn hostile_round_trip(store: &dyn Store, t: i64) {
    let nasty = "'; DROP TABLE buckets_1m; -- \"x\" $1 %s %n \\ \\\\ ` ${a} {{}} ¿ü€ 𝄞 😀👩\u{200d}👩\u{200d}👧 \u{202e}rtl\u{202c} ";
    let tenant = fill(&format!("tenant'\"{nasty}"), 128);
    let service = fill(&format!("svc {nasty}"), 128);
    let route = fill(&format!("/users/{{id}}/{nasty}"), 256);
    let caller = fill(&format!("caller {nasty}"), 128);
    assert!(route.len() > 250 && service.len() > 120);
    let key = SeriesKey {
        service: service.clone(),
        method: "PATCH".into(),
        route: route.clone(),
        status_class: 5,
        caller: caller.clone(),
    };
    let bucket = minute_bucket(&tenant, &key, t, &[0.5, 12.25, 3_599_999.0], 3);
    let sample = Sample {
        timestamp_ms: t,
        instance: fill(&format!("inst {nasty}"), 128),
        method: "PATCH".into(),
        path: fill(&format!("/users/1?q={nasty}"), 1024),
        route: route.clone(),
        status: 503,
        duration_ms: 12.25,
        caller: Some(caller.clone()),
        trace_id: Some(fill(nasty, 64)),
    };
    let write = IngestWrite {
        tenant: tenant.clone(),
        service: service.clone(),
        batch_id: Some(fill(&format!("batch {nasty}"), 128)),
        received_ms: t,
        buckets: vec![bucket.clone()],
        samples: vec![sample.clone()],
        custom: vec![],
    };
    assert_eq!(
        store.ingest(write.clone()).await.expect("ingest"),
        IngestOutcome::Stored
    );
    assert_eq!(
        store.ingest(write).await.expect("retry"),
        IngestOutcome::Duplicate,
        "a hostile batch id still deduplicates"
    );
    let got = store
        .read_buckets(BucketQuery {
            tenant: tenant.clone(),
            service: Some(service.clone()),
            resolution: Resolution::Minute,
            start_ms: 0,
            end_ms: i64::MAX,
            series: SeriesSelect::All,
        })
        .await
        .expect("read");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tenant, tenant);
    assert_eq!(got[0].key, key, "labels round-trip byte for byte");
    vitals_collector::testing::assert_stats_eq(&got[0].stats, &bucket.stats, "hostile bucket");
    let samples = store
        .recent_samples(tenant.clone(), service.clone(), 10)
        .await
        .expect("samples");
    assert_eq!(samples, vec![sample]);
    let services = store.services(tenant.clone()).await.expect("services");
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].service, service);
    // Nothing leaks to a tenant whose name differs by one character.
    let mut other = tenant.clone();
    other.pop();
    assert!(store.services(other).await.expect("services").is_empty());
    let rec = KeyRecord {
        hash: fill(nasty, 64),
        tenant: tenant.clone(),
        role: Role::Ingest,
        created_ms: t,
    };
    store.create_key(rec.clone()).await.expect("key");
    assert_eq!(
        store.key_by_hash(rec.hash.clone()).await.expect("lookup"),
        Some(rec)
    );
}
