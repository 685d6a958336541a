//! Step 4 of ingest, for per-request records (`POST /v1/requests`), the
//! hot path: records read in place (strings borrowed from the body),
//! validated and aggregated in one pass, the route limiter asked once per
//! distinct route, and only the records kept as samples copied.

use super::limits::RouteLimiter;
use super::prepare::{Prepared, to_buckets};
use super::validate::{
    check_count, check_duration, check_method, check_name, check_status, check_timestamp,
};
use crate::config::CollectorConfig;
use crate::error::ApiError;
use crate::model::{BucketStats, IngestWrite, Resolution, Sample, SeriesKey, UnixMs};
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use vitals::wire::RequestBatchRef;

/// A hash map with foldhash's hasher for the per-request maps of a records
/// batch: randomly seeded per map like std's SipHash, and several times
/// cheaper on the short strings (methods, routes) it hashes per record.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The series of one record of a batch, borrowing from the body: what
/// `prepare_records` aggregates under before the route limiter is asked.
#[derive(Hash)]
struct RecordKey<'a> {
    minute: UnixMs,
    method: &'a str,
    route: &'a str,
    status_class: u8,
    caller: &'a str,
}

impl PartialEq for RecordKey<'_> {
    /// Compared inline: the strings are short (methods, routes), and the
    /// call into libc's `memcmp` per string dominated the map lookups (one
    /// per record) in `perf`.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        #[inline]
        fn same(a: &str, b: &str) -> bool {
            a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
        }
        self.minute == other.minute
            && self.status_class == other.status_class
            && same(self.route, other.route)
            && same(self.method, other.method)
            && same(self.caller, other.caller)
    }
}

impl Eq for RecordKey<'_> {}

/// Validates per-request records and aggregates them into minute buckets,
/// with Apdex counted exactly against the service's threshold `apdex_t_ms`.
/// The last `samples_per_request_batch` records are kept as samples.
///
/// Hot path of `POST /v1/requests`: the records are read in place (their
/// strings borrowed from the body), aggregated in the same pass that
/// validates them, and only the records kept as samples are copied.
pub fn prepare_records(
    tenant: &str,
    batch: RequestBatchRef<'_>,
    now: UnixMs,
    config: &CollectorConfig,
    oldest_ms: i64,
    routes: &RouteLimiter,
) -> Result<Prepared, ApiError> {
    let limits = &config.limits;
    if let Some(id) = &batch.batch_id {
        check_name("batch_id", id, limits.max_name_len, true)?;
    }
    let instance = batch.instance.as_deref().unwrap_or_default();
    check_name("instance", instance, limits.max_name_len, false)?;
    check_count(
        "requests",
        batch.requests.len(),
        limits.max_records_per_batch,
    )?;
    let t = config.policy(&batch.service).apdex_t_ms;
    let keep_from = batch
        .requests
        .len()
        .saturating_sub(limits.samples_per_request_batch);
    let mut samples = Vec::with_capacity(batch.requests.len() - keep_from);
    // Aggregated under the record's own route; the route limiter is asked
    // only once everything is valid, below. Keys borrow from the body.
    let mut by_key: FastMap<RecordKey<'_>, BucketStats> = FastMap::default();
    // Distinct routes in order of first appearance: the order the route
    // limiter sees them in, as when it was asked record by record.
    let mut route_order: Vec<&str> = Vec::new();
    let mut seen_routes: FastMap<&str, ()> = FastMap::default();
    for (i, r) in batch.requests.iter().enumerate() {
        check_method(&r.method)?;
        check_status(r.status)?;
        check_duration(r.duration_ms, limits)?;
        let path = r.path.as_deref().unwrap_or_default();
        check_name("path", path, limits.max_route_len * 4, false)?;
        let route = match r.route.as_deref() {
            Some(route) if !route.is_empty() => route,
            _ => path.split(['?', '#']).next().unwrap_or_default(),
        };
        if route.is_empty() {
            return Err(ApiError::bad_request(
                "missing_field",
                "every request needs a route or a path",
            ));
        }
        check_name("route", route, limits.max_route_len, true)?;
        let caller = r.caller.as_deref().filter(|c| !c.is_empty());
        if let Some(c) = caller {
            check_name("caller", c, limits.max_name_len, false)?;
        }
        if let Some(id) = &r.trace_id {
            check_name("trace_id", id, 64, false)?;
        }
        let ts = match r.timestamp_ms {
            Some(ts) => check_timestamp("timestamp_ms", ts, now, oldest_ms, limits)?,
            None => now,
        };
        if i >= keep_from {
            samples.push(Sample {
                timestamp_ms: ts,
                instance: instance.to_string(),
                method: r.method.to_string(),
                path: path.to_string(),
                route: route.to_string(),
                status: r.status,
                duration_ms: r.duration_ms,
                caller: caller.map(str::to_string),
                trace_id: r.trace_id.as_deref().map(str::to_string),
            });
        }
        let key = RecordKey {
            minute: Resolution::Minute.floor(ts),
            method: &r.method,
            route,
            status_class: (r.status / 100) as u8,
            caller: caller.unwrap_or(""),
        };
        let stats = match by_key.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                if seen_routes.insert(route, ()).is_none() {
                    route_order.push(route);
                }
                e.insert(BucketStats::default())
            }
        };
        stats.count += 1;
        let error = r.status >= 500;
        stats.errors += u64::from(error);
        // An error is "frustrated" whatever its speed (Apdex spec).
        if error {
            // Neither satisfied nor tolerating.
        } else if r.duration_ms <= t {
            stats.satisfied += 1;
        } else if r.duration_ms <= 4.0 * t {
            stats.tolerating += 1;
        }
        stats.duration_ms.record(r.duration_ms);
    }
    // Everything is valid: only now touch the route limiter, once per
    // distinct route of the batch.
    let mut overflowed = 0;
    let mut route_of: FastMap<&str, String> = FastMap::default();
    for route in route_order {
        let (r, over) = routes.route(tenant, &batch.service, route, limits);
        overflowed += u64::from(over);
        route_of.insert(route, r);
    }
    let service = batch.service.to_string();
    let mut merged: BTreeMap<(UnixMs, SeriesKey), BucketStats> = BTreeMap::new();
    for (k, stats) in by_key {
        let RecordKey {
            minute,
            method,
            route,
            status_class,
            caller,
        } = k;
        let key = SeriesKey {
            service: service.clone(),
            method: method.into(),
            route: route_of
                .get(route)
                .map_or_else(|| route.to_string(), String::clone),
            status_class,
            caller: caller.into(),
        };
        // Routes folded into the overflow route share one bucket.
        match merged.entry((minute, key)) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(stats);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&stats),
        }
    }
    Ok(Prepared {
        write: IngestWrite {
            tenant: tenant.into(),
            service,
            batch_id: batch.batch_id.map(Cow::into_owned),
            received_ms: now,
            buckets: to_buckets(tenant, now, merged),
            samples,
            custom: Vec::new(),
        },
        overflowed,
        requests: batch.requests.len() as u64,
        custom_dropped: 0,
        apdex_estimated: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::body::{inflate_body, parse_body};
    use super::*;
    use crate::model::Bucket;
    use std::collections::HashSet;
    use vitals::wire::{RequestBatch, RequestRecord};

    /// Deterministic pseudo-random numbers (no dependency for a test).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// What `prepare_records` must produce, computed the plain way: every
    /// record made owned, the route limiter asked per record in order,
    /// aggregated under owned keys, the last N records kept as samples.
    fn reference(
        tenant: &str,
        batch: &RequestBatch,
        now: UnixMs,
        config: &CollectorConfig,
        routes: &RouteLimiter,
    ) -> (Vec<Bucket>, Vec<Sample>, u64) {
        let limits = &config.limits;
        let t = config.policy(&batch.service).apdex_t_ms;
        let mut merged: BTreeMap<(UnixMs, SeriesKey), BucketStats> = BTreeMap::new();
        let mut all = Vec::new();
        let mut overflowed = 0;
        let mut asked = HashSet::new();
        for r in &batch.requests {
            let path = r.path.clone().unwrap_or_default();
            let route = match &r.route {
                Some(route) if !route.is_empty() => route.clone(),
                _ => path
                    .split(['?', '#'])
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            let ts = r.timestamp_ms.map_or(now, |t| t as i64);
            let caller = r.caller.clone().filter(|c| !c.is_empty());
            let (stored, over) = routes.route(tenant, &batch.service, &route, limits);
            if asked.insert(route.clone()) {
                overflowed += u64::from(over);
            }
            let key = SeriesKey {
                service: batch.service.clone(),
                method: r.method.clone(),
                route: stored,
                status_class: (r.status / 100) as u8,
                caller: caller.clone().unwrap_or_default(),
            };
            let stats = merged
                .entry((Resolution::Minute.floor(ts), key))
                .or_default();
            stats.count += 1;
            let error = r.status >= 500;
            stats.errors += u64::from(error);
            if !error && r.duration_ms <= t {
                stats.satisfied += 1;
            } else if !error && r.duration_ms <= 4.0 * t {
                stats.tolerating += 1;
            }
            stats.duration_ms.record(r.duration_ms);
            all.push(Sample {
                timestamp_ms: ts,
                instance: batch.instance.clone().unwrap_or_default(),
                method: r.method.clone(),
                path,
                route,
                status: r.status,
                duration_ms: r.duration_ms,
                caller,
                trace_id: r.trace_id.clone(),
            });
        }
        let keep = all.len().saturating_sub(limits.samples_per_request_batch);
        (
            to_buckets(tenant, now, merged),
            all.split_off(keep),
            overflowed,
        )
    }

    fn random_batch(seed: u64, n: usize, now: UnixMs) -> RequestBatch {
        let mut rng = Rng(seed);
        let routes = ["/users/{id}", "/orders", "/héllo/🦀", "", "/a/b"];
        let callers = [None, Some(""), Some("web"), Some("mobile")];
        let requests = (0..n)
            .map(|_| {
                let r = rng.next();
                let route = routes[(r % 5) as usize];
                RequestRecord {
                    method: ["GET", "POST", "_OTHER"][(r >> 3) as usize % 3].into(),
                    route: (r % 7 != 0).then(|| route.to_string()),
                    path: Some(format!("/p/{}?q={}#f", r % 13, r % 3)),
                    status: [200, 201, 404, 500, 503, 302][(r >> 5) as usize % 6],
                    // Multiples of 1/8 ms: sums are exact in any order.
                    duration_ms: (rng.next() % 40_000) as f64 / 8.0,
                    caller: callers[(r >> 7) as usize % 4].map(str::to_string),
                    timestamp_ms: (r % 11 != 0).then(|| (now - (r % 300_000) as i64) as u64),
                    trace_id: (r % 5 == 0).then(|| format!("{r:032x}")),
                }
            })
            .collect();
        RequestBatch {
            service: "svc".into(),
            instance: Some("i-1".into()),
            batch_id: Some(format!("b{seed}")),
            requests,
        }
    }

    #[test]
    fn records_match_the_plain_aggregation() {
        let now = 1_700_000_000_000;
        for (seed, n, max_routes, samples) in [
            (1, 1000, 2000, 100),
            (2, 3000, 3, 100),
            (3, 50, 2000, 100),
            (4, 400, 1, 0),
            (5, 0, 2000, 100),
        ] {
            let mut config = CollectorConfig::default();
            config.limits.max_routes_per_service = max_routes;
            config.limits.samples_per_request_batch = samples;
            let batch = random_batch(seed, n, now);
            let body = serde_json::to_vec(&batch).expect("serializes");
            let view: RequestBatchRef<'_> = parse_body(&body).expect("parses");
            let got = prepare_records("t", view, now, &config, 3_600_000, &RouteLimiter::default())
                .expect("valid batch");
            let (buckets, samples, overflowed) =
                reference("t", &batch, now, &config, &RouteLimiter::default());
            assert_eq!(got.write.buckets, buckets, "seed {seed}");
            assert_eq!(got.write.samples, samples, "seed {seed}");
            assert_eq!(got.overflowed, overflowed, "seed {seed}");
            assert_eq!(got.requests, n as u64);
            assert_eq!(got.write.batch_id, batch.batch_id);
            assert_eq!(got.write.service, "svc");
        }
    }

    #[test]
    fn escaped_and_unicode_strings_are_read_unescaped() {
        let now = 1_700_000_000_000;
        let body = r#"{"service":"api","instance":"i\u002d1","requests":[
            {"method":"GET","path":"\/users\/1?x=\"y\"","status":200,"duration_ms":2,"caller":"caf\u00e9","timestamp_ms":1700000000000},
            {"method":"G\u0045T","route":"\/users\/{id}","path":"/users/2","status":200,"duration_ms":4},
            {"method":"GET","route":"/🦀/\ud83e\udd80","status":503,"duration_ms":8,"trace_id":"\u0074"}]}"#
            .as_bytes();
        let config = CollectorConfig::default();
        for gzip in [false, true] {
            let wire = if gzip {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(body).expect("gzip");
                e.finish().expect("gzip")
            } else {
                body.to_vec()
            };
            let json = inflate_body(&wire, gzip, 1 << 20).expect("inflates");
            assert_eq!(matches!(json, Cow::Owned(_)), gzip);
            let view: RequestBatchRef<'_> = parse_body(&json).expect("parses");
            let got = prepare_records("t", view, now, &config, 3_600_000, &RouteLimiter::default())
                .expect("valid");
            let keys: Vec<(&str, &str, &str)> = got
                .write
                .buckets
                .iter()
                .filter(|b| !b.key.is_total())
                .map(|b| {
                    (
                        b.key.method.as_str(),
                        b.key.route.as_str(),
                        b.key.caller.as_str(),
                    )
                })
                .collect();
            assert_eq!(
                keys,
                [
                    ("GET", "/users/1", "café"),
                    ("GET", "/users/{id}", ""),
                    ("GET", "/🦀/🦀", "")
                ]
            );
            let s = &got.write.samples;
            assert_eq!(s.len(), 3);
            assert_eq!(s[0].path, "/users/1?x=\"y\"");
            assert_eq!(s[0].instance, "i-1");
            assert_eq!(s[1].method, "GET");
            assert_eq!(s[2].trace_id.as_deref(), Some("t"));
        }
    }

    #[test]
    fn hostile_records_are_refused_with_their_reason() {
        let now = 1_700_000_000_000;
        let config = CollectorConfig::default();
        let cases: &[(&str, &str)] = &[
            (
                r#"{"method":"GE T","route":"/a","status":200,"duration_ms":1}"#,
                "invalid_method",
            ),
            (
                r#"{"method":"","route":"/a","status":200,"duration_ms":1}"#,
                "invalid_method",
            ),
            (
                r#"{"method":"GET","route":"/a","status":600,"duration_ms":1}"#,
                "invalid_status",
            ),
            (
                r#"{"method":"GET","route":"/a","status":200,"duration_ms":-1}"#,
                "invalid_duration",
            ),
            (
                r#"{"method":"GET","status":200,"duration_ms":1}"#,
                "missing_field",
            ),
            (
                r#"{"method":"GET","path":"?q","status":200,"duration_ms":1}"#,
                "missing_field",
            ),
            (
                r#"{"method":"GET","route":"/a\u0085","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a\u007f","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a","path":"\n","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a","caller":"\u009f","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a","trace_id":"\t","status":200,"duration_ms":1}"#,
                "invalid_label",
            ),
            (
                r#"{"method":"GET","route":"/a","status":200,"duration_ms":1,"timestamp_ms":5}"#,
                "timestamp_out_of_range",
            ),
        ];
        for (record, reason) in cases {
            // The bad record last, after good ones: nothing is half-taken.
            let body = format!(
                r#"{{"service":"s","requests":[{{"method":"GET","route":"/ok","status":200,"duration_ms":1}},{record}]}}"#
            );
            let view: RequestBatchRef<'_> = parse_body(body.as_bytes()).expect("parses");
            let limiter = RouteLimiter::default();
            let err =
                prepare_records("t", view, now, &config, 3_600_000, &limiter).expect_err(record);
            assert_eq!(err.reason, *reason, "{record}: {}", err.message);
            assert!(
                limiter.seen.lock().expect("lock").is_empty(),
                "a refused batch never touches the route limiter"
            );
        }
        let mut small = CollectorConfig::default();
        small.limits.max_records_per_batch = 1;
        let body = br#"{"service":"s","requests":[{"method":"GET","route":"/a","status":200,"duration_ms":1},{"method":"GET","route":"/a","status":200,"duration_ms":1}]}"#;
        let view: RequestBatchRef<'_> = parse_body(body).expect("parses");
        let err = prepare_records("t", view, now, &small, 3_600_000, &RouteLimiter::default())
            .expect_err("too many");
        assert_eq!(err.reason, "batch_too_large");
    }
}
