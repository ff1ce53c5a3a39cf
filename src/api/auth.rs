//! The API token. Every `/api` route and `/ws` need it (unless `server.token = "none"`);
//! `/healthz` and the board's static files stay open. The comparison takes the same time
//! whatever the guess.
//!
//! The guards wrap the `/api` scope and the `/ws` resource themselves (see `api/mod.rs`), so
//! they run for whatever the router matched: a path spelled `/%61pi/items` reaches an `/api`
//! handler only through the guard, and anything the router does not match falls to the open
//! routes. Nothing here looks at the path.
//!
//! Browsers cannot set headers on a WebSocket, and a token in the URL would end up in logs
//! and history, so the board offers it as a subprotocol: `Sec-WebSocket-Protocol:
//! flightdeck, bearer.<token in base64url>`; the server answers `flightdeck`. Other clients
//! send `Authorization: Bearer <token>` there too. `/ws` also refuses pages from other
//! origins (see `api/host.rs`), so another site open in the same browser cannot read the
//! event stream even when the API is open.

use super::{host, ApiError};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;
use base64::Engine;

/// The subprotocol `/ws` speaks; a browser that offers one needs it named in the answer.
pub const SOCKET_PROTOCOL: &str = "flightdeck";
/// A subprotocol starting with this carries the token, base64url-encoded.
const BEARER_PROTOCOL: &str = "bearer.";

/// The token requests must present; None when `server.token = "none"`.
pub struct TokenGuard {
    token: Option<String>,
}

impl TokenGuard {
    pub fn new(token: Option<String>) -> TokenGuard {
        TokenGuard { token }
    }
}

/// Compares without an early exit, so timing tells nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() ^ b.len()) >> 8) as u8;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    diff == 0 && a.len() == b.len()
}

fn bearer_header(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// The token offered as a `bearer.<base64url>` WebSocket subprotocol.
fn bearer_protocol(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_PROTOCOL))
        .and_then(|encoded| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// None when the request may pass; the 401 otherwise.
fn refusal(req: &ServiceRequest, presented: Option<String>) -> Option<ApiError> {
    let expected = match req.app_data::<web::Data<TokenGuard>>() {
        Some(guard) => guard.token.clone()?,
        // Without its settings the guard fails closed.
        None => String::new(),
    };
    let ok = !expected.is_empty()
        && presented.is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()));
    (!ok).then(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs its API token: send Authorization: Bearer <token>. The token is in the file `token` in the server's data dir, and in the sign-in URL the server printed at start",
        )
    })
}

/// The 401 for a request without the token in `Authorization: Bearer` (None when it may
/// pass): the `/api` rule, for other routes that follow it.
pub(super) fn bearer_refusal(req: &ServiceRequest) -> Option<ApiError> {
    refusal(req, bearer_header(req))
}

/// The runner token presented, if it is one (see `runners/tokens.rs`).
fn runner_token(req: &ServiceRequest) -> Option<String> {
    let tokens = req.app_data::<web::Data<crate::runners::tokens::RunnerTokens>>()?;
    tokens.lookup(&bearer_header(req)?)
}

/// Who a request under `/api/runners` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    /// A runner, by the id of its token.
    Runner(String),
}

/// Guards the `/api` scope: the token in `Authorization: Bearer`. A runner token is told
/// that it may call only the runner routes.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(err) = bearer_refusal(&req) {
        let err = match runner_token(&req) {
            Some(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "runner_token",
                "a runner token may only call the runner routes (/api/runners/...): use the admin token for everything else",
            ),
            None => err,
        };
        return Ok(req.error_response(err).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Guards `/api/runners`: the admin token, or a runner token; the handler learns which from
/// the request's [`Caller`].
pub async fn require_runner_or_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    use actix_web::HttpMessage;
    let caller = match bearer_refusal(&req) {
        None => Caller::Admin,
        Some(err) => match runner_token(&req) {
            Some(id) => Caller::Runner(id),
            None => return Ok(req.error_response(err).map_into_right_body()),
        },
    };
    req.extensions_mut().insert(caller);
    Ok(next.call(req).await?.map_into_left_body())
}

/// Guards `/ws`: a page of this server's own origin (or no browser at all), with the token
/// in `Authorization: Bearer` or a `bearer.` subprotocol.
pub async fn guard_socket(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let refused = host::foreign_origin(&req)
        .or_else(|| refusal(&req, bearer_header(&req).or_else(|| bearer_protocol(&req))));
    if let Some(err) = refused {
        return Ok(req.error_response(err).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
