//! Step 3 of ingest: the limits that hold across batches (services per
//! tenant, routes and custom series per service), kept in memory and
//! seeded from the store; with a store that shares bounded sets between
//! collectors (PostgreSQL, [`Store::admit`]), services and routes are
//! admitted there, and memory only caches what the store admitted.

use crate::config::Limits;
use crate::error::ApiError;
use crate::model::{
    Admission, Bucket, BucketQuery, CustomQuery, IngestWrite, MemberKind, MemberSet,
    OVERFLOW_ROUTE, Resolution, SeriesKey, SeriesSelect, UnixMs,
};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

/// The store keeps no shared sets: this process counts alone.
const MODE_MEMORY: u8 = 1;
/// The store admits services and routes for every collector on it.
const MODE_SHARED: u8 = 2;

/// Distinct services per tenant, to refuse services beyond
/// [`Limits::max_services_per_tenant`]; distinct routes per (tenant,
/// service), to fold routes beyond the limit into [`OVERFLOW_ROUTE`]; and
/// distinct custom series per (tenant, service), to drop values of series
/// beyond [`Limits::max_custom_series_per_service`]. Owned by the
/// collector, shared by request tasks behind mutexes held only for set
/// lookups (never across a store read).
///
/// The sets start empty in a new process: a tenant's service set is seeded
/// from the store's service list the first time the tenant sends, so the
/// limit holds across restarts; a service's route and custom series sets
/// are seeded from the last hour of its minute buckets and custom points.
///
/// Several collectors on one PostgreSQL (directly or behind the Redis hot
/// tier) must admit as one: there the store keeps each tenant's service
/// set and each service's route set ([`Store::admit`], atomically), the
/// sets above cache only members the store admitted, and a set the store
/// reports full is copied whole, so further names are refused without a
/// round trip. Custom series are still counted per collector.
#[derive(Debug, Default)]
pub struct RouteLimiter {
    services: Mutex<HashMap<String, HashSet<String>>>,
    pub(super) seen: Mutex<HashMap<String, HashMap<String, HashSet<String>>>>,
    custom: Mutex<CustomSeen>,
    /// 0 while unknown (no admission asked yet), then `MODE_MEMORY` or
    /// `MODE_SHARED`.
    mode: AtomicU8,
    /// `(tenant, service)` whose shared route set is at its limit (and
    /// copied whole into `seen`).
    full_routes: Mutex<HashSet<(String, String)>>,
}

/// `(tenant, service)` → the `(name, labels)` custom series it has.
type CustomSeen = HashMap<(String, String), HashSet<(String, String)>>;

impl RouteLimiter {
    /// Makes sure `service` of `tenant` is known: counts it against the
    /// tenant's service limit (refusing a service past it), then seeds its
    /// routes and custom series from the store the first time.
    pub async fn admit_service(
        &self,
        store: &dyn Store,
        tenant: &str,
        service: &str,
        now: UnixMs,
        limits: &Limits,
    ) -> Result<(), ApiError> {
        self.count_service(store, tenant, service, limits).await?;
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get(tenant).is_some_and(|s| s.contains_key(service)) {
                return Ok(());
            }
        }
        let recent = store
            .read_buckets(BucketQuery {
                tenant: tenant.into(),
                service: Some(service.into()),
                resolution: Resolution::Minute,
                start_ms: now - 3_600_000,
                end_ms: now + 3_600_000,
                series: SeriesSelect::Routes,
            })
            .await
            .map_err(ApiError::store_unavailable)?;
        let custom = store
            .read_custom(CustomQuery {
                tenant: tenant.into(),
                service: Some(service.into()),
                name: None,
                resolution: Resolution::Minute,
                start_ms: now - 3_600_000,
                end_ms: now + 3_600_000,
            })
            .await
            .map_err(ApiError::store_unavailable)?;
        {
            let mut seen = self.custom.lock().unwrap_or_else(|p| p.into_inner());
            let series = seen.entry((tenant.into(), service.into())).or_default();
            for p in custom {
                if series.len() < limits.max_custom_series_per_service {
                    series.insert((p.key.name, p.key.labels));
                }
            }
        }
        let mut recent: Vec<String> = recent
            .into_iter()
            .map(|b| b.key.route)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        recent.sort();
        recent.truncate(limits.max_routes_per_service);
        if self.mode.load(Ordering::Relaxed) == MODE_SHARED {
            // The overflow route is where refused routes go, not a member.
            recent.retain(|r| r != OVERFLOW_ROUTE);
            let set = route_set(tenant, service);
            let answer = store
                .admit(set, recent.clone(), recent, limits.max_routes_per_service)
                .await
                .map_err(ApiError::store_unavailable)?;
            if let Some(answer) = answer {
                self.learn_routes(tenant, service, answer);
                return Ok(());
            }
            return Err(ApiError::store_unavailable(
                "the store stopped sharing route sets",
            ));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let routes = seen
            .entry(tenant.into())
            .or_default()
            .entry(service.into())
            .or_default();
        routes.extend(recent);
        Ok(())
    }

    /// Puts what the store admitted into `service`'s cached route set;
    /// a full set is copied whole and remembered as full.
    fn learn_routes(&self, tenant: &str, service: &str, answer: Admission) {
        let full = answer.full.is_some();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let routes = seen
                .entry(tenant.into())
                .or_default()
                .entry(service.into())
                .or_default();
            routes.extend(answer.admitted);
            routes.extend(answer.full.into_iter().flatten());
        }
        if full {
            self.full_routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((tenant.into(), service.into()));
        }
    }

    /// After step 4 with a store that shares route sets: asks the store to
    /// admit the routes of `write` this collector has not seen admitted
    /// ([`RouteLimiter::route`] let them through pending), then folds the
    /// buckets of refused routes into [`OVERFLOW_ROUTE`]; returns how many
    /// buckets were folded. Without shared sets, does nothing.
    pub async fn confirm_routes(
        &self,
        store: &dyn Store,
        tenant: &str,
        write: &mut IngestWrite,
        limits: &Limits,
    ) -> Result<u64, ApiError> {
        if self.mode.load(Ordering::Relaxed) != MODE_SHARED {
            return Ok(0);
        }
        let service = write.service.clone();
        let unknown: Vec<String> = {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let known = seen.get(tenant).and_then(|s| s.get(&service));
            let mut unknown: Vec<String> = write
                .buckets
                .iter()
                .filter(|b| !b.key.is_total() && b.key.route != OVERFLOW_ROUTE)
                .map(|b| &b.key.route)
                .filter(|r| !known.is_some_and(|k| k.contains(*r)))
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            unknown.sort();
            unknown
        };
        if unknown.is_empty() {
            return Ok(0);
        }
        let answer = store
            .admit(
                route_set(tenant, &service),
                Vec::new(),
                unknown.clone(),
                limits.max_routes_per_service,
            )
            .await
            .map_err(ApiError::store_unavailable)?
            .ok_or_else(|| ApiError::store_unavailable("the store stopped sharing route sets"))?;
        let admitted: HashSet<String> = answer.admitted.iter().cloned().collect();
        self.learn_routes(tenant, &service, answer);
        let refused: HashSet<String> = unknown
            .into_iter()
            .filter(|r| !admitted.contains(r))
            .collect();
        if refused.is_empty() {
            return Ok(0);
        }
        Ok(fold_routes(&mut write.buckets, &refused))
    }

    /// Counts `service` among `tenant`'s services, or refuses it when the
    /// tenant already has [`Limits::max_services_per_tenant`] others. The
    /// first call for a tenant reads its services from the store, so a
    /// restarted collector knows the services stored before. The check and
    /// the insert happen under one lock, so concurrent first batches of
    /// new services cannot pass the limit together.
    async fn count_service(
        &self,
        store: &dyn Store,
        tenant: &str,
        service: &str,
        limits: &Limits,
    ) -> Result<(), ApiError> {
        if self.mode.load(Ordering::Relaxed) != MODE_MEMORY {
            let known = self
                .services
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(tenant)
                .is_some_and(|s| s.contains(service));
            if known {
                return Ok(());
            }
            if let Some(answer) = self
                .admit_shared_service(store, tenant, service, limits)
                .await?
            {
                self.mode.store(MODE_SHARED, Ordering::Relaxed);
                if answer.admitted.iter().any(|s| s == service) {
                    self.services
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(tenant.into())
                        .or_default()
                        .insert(service.into());
                    return Ok(());
                }
                return Err(too_many_services(answer.size, service, limits));
            }
            // Nothing was cached on the way (only a shared answer is), so
            // the memory count below starts from the store's list.
            self.mode.store(MODE_MEMORY, Ordering::Relaxed);
        }
        let loaded = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(tenant);
        if !loaded {
            let stored = store
                .services(tenant.into())
                .await
                .map_err(ApiError::store_unavailable)?;
            self.services
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(tenant.into())
                .or_insert_with(|| stored.into_iter().map(|s| s.service).collect());
        }
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let known = services.entry(tenant.into()).or_default();
        if known.contains(service) {
            return Ok(());
        }
        if known.len() >= limits.max_services_per_tenant {
            return Err(too_many_services(known.len(), service, limits));
        }
        known.insert(service.into());
        Ok(())
    }

    /// Asks the store to admit `service` into `tenant`'s shared service
    /// set, seeded the first time in this process with the services the
    /// store lists. `None` when the store keeps no shared sets.
    async fn admit_shared_service(
        &self,
        store: &dyn Store,
        tenant: &str,
        service: &str,
        limits: &Limits,
    ) -> Result<Option<Admission>, ApiError> {
        let seeded = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(tenant);
        let seed = if seeded {
            Vec::new()
        } else {
            store
                .services(tenant.into())
                .await
                .map_err(ApiError::store_unavailable)?
                .into_iter()
                .map(|s| s.service)
                .collect()
        };
        let set = MemberSet {
            tenant: tenant.into(),
            kind: MemberKind::Services,
            owner: String::new(),
        };
        let answer = store
            .admit(
                set,
                seed,
                vec![service.into()],
                limits.max_services_per_tenant,
            )
            .await
            .map_err(ApiError::store_unavailable)?;
        if answer.is_some() {
            self.services
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(tenant.into())
                .or_default();
        }
        Ok(answer)
    }

    /// Whether custom series `(name, labels)` of `service` may be stored:
    /// yes while the service has room or already knows it.
    pub fn custom_series(
        &self,
        tenant: &str,
        service: &str,
        name: &str,
        labels: &str,
        limits: &Limits,
    ) -> bool {
        let mut seen = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        let series = seen.entry((tenant.into(), service.into())).or_default();
        let key = (name.to_string(), labels.to_string());
        if series.contains(&key) {
            return true;
        }
        if series.len() < limits.max_custom_series_per_service {
            series.insert(key);
            return true;
        }
        false
    }

    /// The route to store `route` under: itself while the service has room
    /// or already knows it, else [`OVERFLOW_ROUTE`] (second value true).
    pub fn route(
        &self,
        tenant: &str,
        service: &str,
        route: &str,
        limits: &Limits,
    ) -> (String, bool) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let routes = seen
            .entry(tenant.into())
            .or_default()
            .entry(service.into())
            .or_default();
        if routes.contains(route) {
            return (route.into(), false);
        }
        if self.mode.load(Ordering::Relaxed) == MODE_SHARED {
            // The store decides ([`RouteLimiter::confirm_routes`]), unless
            // the service's set is known to be full.
            let full = self
                .full_routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&(tenant.to_string(), service.to_string()));
            return if full {
                (OVERFLOW_ROUTE.into(), true)
            } else {
                (route.into(), false)
            };
        }
        if routes.len() < limits.max_routes_per_service {
            routes.insert(route.into());
            return (route.into(), false);
        }
        (OVERFLOW_ROUTE.into(), true)
    }
}

/// The shared set of `service`'s routes.
fn route_set(tenant: &str, service: &str) -> MemberSet {
    MemberSet {
        tenant: tenant.into(),
        kind: MemberKind::Routes,
        owner: service.into(),
    }
}

/// The refusal of a service past the tenant's limit.
fn too_many_services(have: usize, service: &str, limits: &Limits) -> ApiError {
    let max = limits.max_services_per_tenant;
    ApiError::bad_request(
        "too_many_services",
        format!(
            "the tenant has {have} services, at its limit of {max} (limits.max_services_per_tenant); data for new service {service:?} is refused: send it under an existing service or raise the limit"
        ),
    )
}

/// Renames the route of every route bucket in `refused` to
/// [`OVERFLOW_ROUTE`] and merges buckets that then share a key; returns
/// how many buckets were folded. Totals are per service, so they stay.
fn fold_routes(buckets: &mut Vec<Bucket>, refused: &HashSet<String>) -> u64 {
    let mut folded = 0;
    let mut merged: BTreeMap<(UnixMs, SeriesKey), Bucket> = BTreeMap::new();
    let mut order = Vec::new();
    for mut b in std::mem::take(buckets) {
        if !b.key.is_total() && refused.contains(&b.key.route) {
            b.key.route = OVERFLOW_ROUTE.into();
            folded += 1;
        }
        match merged.entry((b.start_ms, b.key.clone())) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                e.get_mut().stats.merge(&b.stats)
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                order.push((b.start_ms, b.key.clone()));
                e.insert(b);
            }
        }
    }
    buckets.extend(order.into_iter().filter_map(|k| merged.remove(&k)));
    folded
}
