//! Step 3 of ingest: the limits that hold across batches (services per
//! tenant, routes and custom series per service), kept in memory and
//! seeded from the store.

use crate::config::Limits;
use crate::error::ApiError;
use crate::model::{BucketQuery, CustomQuery, OVERFLOW_ROUTE, Resolution, SeriesSelect, UnixMs};
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

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
#[derive(Debug, Default)]
pub struct RouteLimiter {
    services: Mutex<HashMap<String, HashSet<String>>>,
    pub(super) seen: Mutex<HashMap<String, HashMap<String, HashSet<String>>>>,
    custom: Mutex<CustomSeen>,
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
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let routes = seen
            .entry(tenant.into())
            .or_default()
            .entry(service.into())
            .or_default();
        for b in recent {
            if routes.len() < limits.max_routes_per_service {
                routes.insert(b.key.route);
            }
        }
        Ok(())
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
        let max = limits.max_services_per_tenant;
        if known.len() >= max {
            return Err(ApiError::bad_request(
                "too_many_services",
                format!(
                    "the tenant has {} services, at its limit of {max} (limits.max_services_per_tenant); data for new service {service:?} is refused: send it under an existing service or raise the limit",
                    known.len()
                ),
            ));
        }
        known.insert(service.into());
        Ok(())
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
        if routes.len() < limits.max_routes_per_service {
            routes.insert(route.into());
            return (route.into(), false);
        }
        (OVERFLOW_ROUTE.into(), true)
    }
}
