//! Who may do what (design brief §9): the gateway's routing table and access rules.

use axum::http::Method;
use service_common::auth::Claims;

/// The services behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    Auth,
    Catalog,
    Customers,
    Orders,
    Ingest,
    Analytics,
}

impl Upstream {
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Auth => "auth",
            Upstream::Catalog => "catalog",
            Upstream::Customers => "customers",
            Upstream::Orders => "orders",
            Upstream::Ingest => "ingest",
            Upstream::Analytics => "analytics",
        }
    }
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
const ANALYSTS: Access = Access::AnyOf {
    roles: &["admin"],
    scopes: &["analytics:read"],
};

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// The service that owns `path`, and what `method` on it asks of the caller; `None` for a
/// path no service owns.
pub fn route(method: &Method, path: &str) -> Option<(Upstream, Access)> {
    let reading = method == Method::GET || method == Method::HEAD;
    if under(path, "/api/v1/auth") || path == "/.well-known/jwks.json" {
        Some((Upstream::Auth, Access::Public))
    } else if under(path, "/api/v1/products") {
        Some((
            Upstream::Catalog,
            if reading {
                Access::Public
            } else {
                CATALOG_WRITERS
            },
        ))
    } else if under(path, "/api/v1/customers") {
        // Which customer: the service checks that the token's subject owns the record.
        Some((Upstream::Customers, PEOPLE))
    } else if under(path, "/api/v1/orders") {
        Some((Upstream::Orders, PEOPLE))
    } else if path == "/api/v1/events" {
        Some((Upstream::Ingest, Access::Public))
    } else if under(path, "/api/v1/analytics") {
        Some((Upstream::Analytics, ANALYSTS))
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
        assert_eq!(
            route(&get, "/api/v1/products/abc"),
            Some((Upstream::Catalog, Access::Public))
        );
        let (_, write) = route(&post, "/api/v1/products/batch").unwrap();
        assert!(write.admits(&claims(&["admin"], "")));
        assert!(write.admits(&claims(&[], "catalog:write")));
        assert!(!write.admits(&claims(&["customer"], "analytics:read")));
        let (_, analytics) = route(&get, "/api/v1/analytics/top").unwrap();
        assert!(analytics.admits(&claims(&[], "analytics:read")));
        assert!(!analytics.admits(&claims(&["customer"], "")));
        let (_, orders) = route(&post, "/api/v1/orders").unwrap();
        assert!(orders.admits(&claims(&["customer"], "")));
        assert!(!orders.admits(&claims(&[], "catalog:write")));
        assert_eq!(
            route(&post, "/api/v1/events"),
            Some((Upstream::Ingest, Access::Public))
        );
        assert_eq!(
            route(&post, "/api/v1/auth/token").map(|r| r.0),
            Some(Upstream::Auth)
        );
        assert_eq!(
            route(&get, "/.well-known/jwks.json").map(|r| r.0),
            Some(Upstream::Auth)
        );
        assert_eq!(route(&get, "/api/v1/productsx"), None);
        assert_eq!(route(&get, "/api/v1/unknown"), None);
        assert_eq!(route(&get, "/internal/metrics"), None);
    }
}
