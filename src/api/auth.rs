//! The API token. With `server.token` set, every `/api` route and `/ws` need
//! `Authorization: Bearer <token>` (or, for `/ws`, where browsers cannot set headers, a
//! `token` query parameter). The comparison takes the same time whatever the guess.
//! `/healthz` and the board's static files stay open. `/ws` also refuses pages from other
//! origins, so another site open in the same browser cannot read the event stream.

use super::ApiError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;

/// The configured token; empty means no auth.
pub struct TokenGuard {
    pub token: String,
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

fn presented_token(req: &ServiceRequest) -> Option<String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        return value.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    if req.path() == "/ws" {
        return web::Query::<std::collections::HashMap<String, String>>::from_query(
            req.query_string(),
        )
        .ok()
        .and_then(|q| q.get("token").cloned());
    }
    None
}

/// A WebSocket opened by a page from another origin is refused (403).
fn foreign_origin(req: &ServiceRequest) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return false;
    };
    let host = req.connection_info().host().to_string();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin)
        .trim_end_matches('/');
    origin_host != host
}

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let path = req.path();
    let docs = path == "/api/docs" || path.starts_with("/api/docs/");
    let protected = path == "/ws" || path == "/api" || (path.starts_with("/api/") && !docs);
    if protected {
        if path == "/ws" && foreign_origin(&req) {
            let err = ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "WebSocket connections are accepted only from the board's own origin",
            );
            return Ok(req.error_response(err).map_into_right_body());
        }
        let token = req
            .app_data::<web::Data<TokenGuard>>()
            .map(|g| g.token.clone())
            .unwrap_or_default();
        if !token.is_empty() {
            let ok = presented_token(&req)
                .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
            if !ok {
                let err = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this server needs its API token: Authorization: Bearer <token>",
                );
                return Ok(req.error_response(err).map_into_right_body());
            }
        }
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
