//! Who may do what (design brief §9): the gateway's routing table and access rules.

use axum::http::Method;
use service_common::auth::Claims;

/// The services behind the gateway, and the gateway itself for what it answers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// Answered by the gateway (`/api/v1/status`).
    Gateway,
    Auth,
    Catalog,
    Customers,
    Orders,
    Ingest,
    Analytics,
    Inventory,
    Payments,
}

impl Upstream {
    /// The services (not the gateway).
    pub const ALL: [Upstream; 8] = [
        Upstream::Auth,
        Upstream::Catalog,
        Upstream::Customers,
        Upstream::Orders,
        Upstream::Ingest,
        Upstream::Analytics,
        Upstream::Inventory,
        Upstream::Payments,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Upstream::Gateway => "gateway",
            Upstream::Auth => "auth",
            Upstream::Catalog => "catalog",
            Upstream::Customers => "customers",
            Upstream::Orders => "orders",
            Upstream::Ingest => "ingest",
            Upstream::Analytics => "analytics",
            Upstream::Inventory => "inventory",
            Upstream::Payments => "payments",
        }
    }
}

/// Route classes, each with its own rate limit per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Registration and tokens (`/api/v1/auth/*`, the key set).
    Auth,
    /// Reading the catalog, customers and orders.
    Read,
    /// Changing them.
    Write,
    /// Posting activity events.
    Events,
    /// The analytics API.
    Analytics,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Auth,
        Class::Read,
        Class::Write,
        Class::Events,
        Class::Analytics,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Auth => "auth",
            Class::Read => "read",
            Class::Write => "write",
            Class::Events => "events",
            Class::Analytics => "analytics",
        }
    }
}

/// Where a request goes and what it asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The route's name in the HTTP metrics: the path prefix it covers.
    pub pattern: &'static str,
    pub upstream: Upstream,
    pub access: Access,
    pub class: Class,
}

/// What a route asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (anonymous callers are limited per address).
    Public,
    /// A valid token with one of these roles or scopes.
    AnyOf {
        roles: &'static [&'static str],
        scopes: &'static [&'static str],
    },
}

impl Access {
    pub fn admits(self, claims: &Claims) -> bool {
        match self {
            Access::Public => true,
            Access::AnyOf { roles, scopes } => {
                roles.iter().any(|r| claims.has_role(r))
                    || scopes.iter().any(|s| claims.has_scope(s))
            }
        }
    }
}

const CATALOG_WRITERS: Access = Access::AnyOf {
    roles: &["admin"],
    scopes: &["catalog:write"],
};
const PEOPLE: Access = Access::AnyOf {
    roles: &["admin", "customer"],
    scopes: &[],
};
const ADMINS: Access = Access::AnyOf {
    roles: &["admin"],
    scopes: &[],
};
const ANALYSTS: Access = Access::AnyOf {
    roles: &["admin"],
    scopes: &["analytics:read"],
};

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// The service that owns `path`, what `method` on it asks of the caller, and its rate-limit
/// class; `None` for a path no service owns.
pub fn route(method: &Method, path: &str) -> Option<Route> {
    let reading = method == Method::GET || method == Method::HEAD;
    let crud = |pattern, upstream, access| Route {
        pattern,
        upstream,
        access,
        class: if reading { Class::Read } else { Class::Write },
    };
    if under(path, "/api/v1/auth") || path == "/.well-known/jwks.json" {
        Some(Route {
            pattern: if path == "/.well-known/jwks.json" {
                "/.well-known/jwks.json"
            } else {
                "/api/v1/auth"
            },
            upstream: Upstream::Auth,
            access: Access::Public,
            class: Class::Auth,
        })
    } else if under(path, "/api/v1/products") {
        let access = if reading {
            Access::Public
        } else {
            CATALOG_WRITERS
        };
        Some(crud("/api/v1/products", Upstream::Catalog, access))
    } else if under(path, "/api/v1/customers") {
        // Which customer: the service checks that the token's subject owns the record.
        Some(crud("/api/v1/customers", Upstream::Customers, PEOPLE))
    } else if under(path, "/api/v1/orders") {
        Some(crud("/api/v1/orders", Upstream::Orders, PEOPLE))
    } else if under(path, "/api/v1/inventory") {
        // Stock levels are as public as the catalog; only administrators set them.
        let access = if reading { Access::Public } else { ADMINS };
        Some(crud("/api/v1/inventory", Upstream::Inventory, access))
    } else if under(path, "/api/v1/payments") {
        // Whose payments: the service limits a customer's token to their own.
        Some(crud("/api/v1/payments", Upstream::Payments, PEOPLE))
    } else if path == "/api/v1/events" {
        Some(Route {
            pattern: "/api/v1/events",
            upstream: Upstream::Ingest,
            access: Access::Public,
            class: Class::Events,
        })
    } else if under(path, "/api/v1/analytics") {
        Some(Route {
            pattern: "/api/v1/analytics",
            upstream: Upstream::Analytics,
            access: ANALYSTS,
            class: Class::Analytics,
        })
    } else if path == "/api/v1/status" {
        // The pipeline's state: what the analytics readers see.
        Some(Route {
            pattern: "/api/v1/status",
            upstream: Upstream::Gateway,
            access: ANALYSTS,
            class: Class::Analytics,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(roles: &[&str], scope: &str) -> Claims {
        Claims {
            iss: String::new(),
            aud: String::new(),
            sub: "s".into(),
            exp: 0,
            iat: 0,
            jti: String::new(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            scope: scope.into(),
        }
    }

    #[test]
    fn the_brief_s_rules() {
        let get = Method::GET;
        let post = Method::POST;
        let read = route(&get, "/api/v1/products/abc").unwrap();
        assert_eq!(
            (read.upstream, read.access, read.class),
            (Upstream::Catalog, Access::Public, Class::Read)
        );
        let write = route(&post, "/api/v1/products/batch").unwrap();
        assert_eq!(write.class, Class::Write);
        let write = write.access;
        assert!(write.admits(&claims(&["admin"], "")));
        assert!(write.admits(&claims(&[], "catalog:write")));
        assert!(!write.admits(&claims(&["customer"], "analytics:read")));
        let analytics = route(&get, "/api/v1/analytics/top").unwrap().access;
        assert!(analytics.admits(&claims(&[], "analytics:read")));
        assert!(!analytics.admits(&claims(&["customer"], "")));
        let orders = route(&post, "/api/v1/orders").unwrap().access;
        assert!(orders.admits(&claims(&["customer"], "")));
        assert!(!orders.admits(&claims(&[], "catalog:write")));
        assert_eq!(
            route(&post, "/api/v1/events"),
            Some(Route {
                pattern: "/api/v1/events",
                upstream: Upstream::Ingest,
                access: Access::Public,
                class: Class::Events
            })
        );
        let token = route(&post, "/api/v1/auth/token").unwrap();
        assert_eq!((token.upstream, token.class), (Upstream::Auth, Class::Auth));
        assert_eq!(
            route(&get, "/.well-known/jwks.json").map(|r| r.upstream),
            Some(Upstream::Auth)
        );
        let status = route(&get, "/api/v1/status").unwrap();
        assert_eq!(
            (status.upstream, status.access),
            (Upstream::Gateway, ANALYSTS)
        );
        let stock = route(&get, "/api/v1/inventory/p1").unwrap();
        assert_eq!(
            (stock.upstream, stock.access),
            (Upstream::Inventory, Access::Public)
        );
        let set = route(&Method::PUT, "/api/v1/inventory/p1").unwrap().access;
        assert!(set.admits(&claims(&["admin"], "")));
        assert!(!set.admits(&claims(&["customer"], "catalog:write")));
        let payments = route(&get, "/api/v1/payments?order_id=o1").unwrap();
        assert_eq!(
            (payments.upstream, payments.access),
            (Upstream::Payments, PEOPLE)
        );
        assert_eq!(route(&get, "/api/v1/productsx"), None);
        assert_eq!(route(&get, "/api/v1/unknown"), None);
        assert_eq!(route(&get, "/internal/metrics"), None);
    }
}
