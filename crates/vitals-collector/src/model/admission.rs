//! Bounded sets shared by every collector on one store: the services of a
//! tenant and the routes of a service, each capped by a limit
//! ([`crate::config::Limits`]). [`MemberSet`] names one set;
//! [`Admission`] is the store's answer to "may these join it?".

/// What a [`MemberSet`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    /// A tenant's services (`owner` empty), capped by
    /// `limits.max_services_per_tenant`.
    Services,
    /// A service's routes (`owner` is the service), capped by
    /// `limits.max_routes_per_service`.
    Routes,
}

impl MemberKind {
    /// The kind's name as stored (`service`, `route`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::Services => "service",
            MemberKind::Routes => "route",
        }
    }
}

/// One bounded set: a tenant's services, or one service's routes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberSet {
    /// The tenant the set belongs to.
    pub tenant: String,
    /// What it holds.
    pub kind: MemberKind,
    /// The service for [`MemberKind::Routes`]; empty for services.
    pub owner: String,
}

/// The store's answer to an admission: which of the asked members are in
/// the set now (already, or added because there was room), and, when the
/// set is at its limit, every member it has, so a collector can refuse
/// further names without asking again (a set never shrinks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// The asked members that are in the set, in no particular order.
    pub admitted: Vec<String>,
    /// How many members the set has after this admission.
    pub size: usize,
    /// Every member of the set, when it has reached its limit.
    pub full: Option<Vec<String>>,
}
