//! Which host names this server answers to: the defence against DNS rebinding.
//!
//! A page on `evil.example` can re-point its own name at 127.0.0.1 and then talk to this
//! server as if it were its own site: same origin, so the browser lets it read the answers.
//! Such requests carry `Host: evil.example:7878`. So a request is answered only when its
//! `Host` (and the authority of an absolute request target) names this server: the bind
//! address on its port (for a loopback bind also `localhost`, `127.0.0.1` and `[::1]`; for a
//! wildcard bind any IP address, since a rebinding attack needs a name), plus the names in
//! `server.allowed_hosts`. The `/ws` Origin check uses the same names, not the `Host` header,
//! which the page controls.

use super::ApiError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;
use std::net::{IpAddr, SocketAddr};

/// The longest host name echoed back in an error.
const ECHO_MAX: usize = 200;

/// `server.allowed_hosts`, parsed: a name, and a port when the entry names one.
#[derive(Debug, Default, Clone)]
pub struct HostPolicy {
    extra: Vec<(String, Option<u16>)>,
}

impl HostPolicy {
    pub fn new(allowed_hosts: &[String]) -> HostPolicy {
        HostPolicy {
            extra: allowed_hosts
                .iter()
                .filter_map(|h| split_authority(h))
                .collect(),
        }
    }

    /// Does `authority` (`host[:port]`, `default_port` when it has none) name this server,
    /// which listens on `bound`?
    pub fn allows(&self, bound: SocketAddr, authority: &str, default_port: u16) -> bool {
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        let port = port.unwrap_or(default_port);
        let listed = self
            .extra
            .iter()
            .any(|(name, p)| *name == host && p.is_none_or(|p| p == port));
        if listed {
            return true;
        }
        if port != bound.port() {
            return false;
        }
        let bound_ip = bound.ip();
        if host == "localhost" {
            return bound_ip.is_loopback() || bound_ip.is_unspecified();
        }
        match ip_literal(&host) {
            Some(ip) if bound_ip.is_unspecified() => ip.is_loopback() || !ip.is_unspecified(),
            Some(ip) if bound_ip.is_loopback() => ip.is_loopback(),
            Some(ip) => ip == bound_ip,
            None => false,
        }
    }

    /// The names, for messages: "127.0.0.1:7878, localhost:7878, [::1]:7878, ...".
    fn describe(&self, bound: SocketAddr) -> String {
        let port = bound.port();
        let mut names = match bound.ip() {
            ip if ip.is_loopback() => vec![
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ],
            ip if ip.is_unspecified() => vec![
                format!("localhost:{port}"),
                format!("any IP address of this machine on port {port}"),
            ],
            _ => vec![bound.to_string()],
        };
        names.extend(self.extra.iter().map(|(name, port)| match port {
            Some(p) => format!("{name}:{p}"),
            None => name.clone(),
        }));
        names.join(", ")
    }
}

/// `host[:port]` -> (lowercase host, port). IPv6 addresses keep their brackets. None for
/// anything that is not a plain authority (user info, a path, a bad port).
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim().to_ascii_lowercase();
    if authority.is_empty() || authority.contains(['@', '/', '\\', '?', '#', ' ']) {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host.to_string(), None),
            _ => (host.to_string(), Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.clone(), None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    (!host.is_empty()).then_some((host, port))
}

/// An IP address written as a host: `127.0.0.1` or `[::1]`.
fn ip_literal(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

fn policy(req: &ServiceRequest) -> HostPolicy {
    req.app_data::<web::Data<HostPolicy>>()
        .map(|p| p.get_ref().clone())
        .unwrap_or_default()
}

fn echo(text: &str) -> String {
    text.chars().take(ECHO_MAX).collect()
}

/// The host a request names that this server does not answer to, if any.
fn unknown_host(req: &ServiceRequest) -> Option<ApiError> {
    let policy = policy(req);
    let bound = req.app_config().local_addr();
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
    let absolute = req.uri().authority().map(|a| a.as_str().to_string());
    if host.is_none() && absolute.is_none() {
        return Some(ApiError::bad_request(
            "the request names no host: send a Host header, as HTTP/1.1 requires",
        ));
    }
    let wrong = [host, absolute]
        .into_iter()
        .flatten()
        .find(|name| !policy.allows(bound, name, 80))?;
    let shown = echo(&wrong);
    Some(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "unknown_host",
        format!(
            "this server does not answer to the host name {shown:?}: it answers to {}. If {shown:?} is a name of this server (behind a proxy, or seen from another machine), add it to server.allowed_hosts in the config",
            policy.describe(bound)
        ),
    ))
}

/// Answers 421 to any request naming a host this server is not (see the module docs).
pub async fn check_host(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(err) = unknown_host(&req) {
        return Ok(req.error_response(err).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// A WebSocket opened by a page of another site is refused (403): its `Origin` must name
/// this server by the rules above. Clients that send no `Origin` (not browsers) pass.
pub fn foreign_origin(req: &ServiceRequest) -> Option<ApiError> {
    let origin = req.headers().get(header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let bound = req.app_config().local_addr();
    let allowed = origin.split_once("://").is_some_and(|(scheme, authority)| {
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return false,
        };
        policy(req).allows(bound, authority.trim_end_matches('/'), default_port)
    });
    (!allowed).then(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            format!(
                "WebSocket connections are accepted only from the board's own pages ({}); this one came from a page of {:?}",
                policy(req).describe(bound),
                echo(&origin)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_loopback_bind_answers_to_its_loopback_names_on_its_port() {
        let p = HostPolicy::default();
        let bound = addr("127.0.0.1:7878");
        for ok in [
            "127.0.0.1:7878",
            "localhost:7878",
            "LOCALHOST:7878",
            "[::1]:7878",
        ] {
            assert!(p.allows(bound, ok, 80), "{ok}");
        }
        for bad in [
            "evil.example:7878",
            "127.0.0.1:7879",
            "localhost",
            "192.168.1.5:7878",
            "localhost.evil.example:7878",
            "user@127.0.0.1:7878",
            "127.0.0.1:7878/x",
            "",
        ] {
            assert!(!p.allows(bound, bad, 80), "{bad}");
        }
        assert!(p.allows(addr("127.0.0.1:80"), "localhost", 80));
    }

    #[test]
    fn a_wildcard_bind_answers_to_ip_addresses_but_not_to_other_names() {
        let p = HostPolicy::default();
        let bound = addr("0.0.0.0:7878");
        assert!(p.allows(bound, "192.168.1.5:7878", 80));
        assert!(p.allows(bound, "localhost:7878", 80));
        assert!(!p.allows(bound, "evil.example:7878", 80));
        assert!(!p.allows(bound, "0.0.0.0:7878", 80));
        let bound = addr("192.168.1.5:7878");
        assert!(p.allows(bound, "192.168.1.5:7878", 80));
        assert!(!p.allows(bound, "localhost:7878", 80));
    }

    #[test]
    fn allowed_hosts_match_with_or_without_a_port() {
        let p = HostPolicy::new(&["Flightdeck.Example.com".into(), "box.lan:9000".into()]);
        let bound = addr("127.0.0.1:7878");
        assert!(p.allows(bound, "flightdeck.example.com", 443));
        assert!(p.allows(bound, "flightdeck.example.com:8443", 80));
        assert!(p.allows(bound, "box.lan:9000", 80));
        assert!(!p.allows(bound, "box.lan:9001", 80));
        assert!(!p.allows(bound, "box.lan", 80));
        assert!(!p.allows(bound, "other.example.com", 80));
    }
}
