//! The label values every concern shares: the `method` label as the layer
//! records it (and the push client aggregates it), and the `route` of
//! requests no route matched.

use http::Method;

/// Route label for requests no route matched.
pub const UNMATCHED: &str = "unmatched";
/// Method label for methods outside the standard set.
pub const OTHER_METHOD: &str = "_OTHER";

/// The method as a label: one of the standard methods, or `_OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => OTHER_METHOD,
    }
}
