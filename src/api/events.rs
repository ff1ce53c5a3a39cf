//! Events over HTTP: `GET /api/events?since=SEQ` replays the retained log, and `/ws?since=SEQ`
//! replays then streams live through a WebSocket session actor.

use super::{ApiError, AppState};
use crate::monitor::{WsSession, MAX_FRAME};
use crate::queue::{EventsSince, EVENTS_RETAINED};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinceQuery {
    since: Option<u64>,
    limit: Option<usize>,
    /// Browsers cannot set headers on a WebSocket: the token may come as a parameter.
    #[allow(dead_code)]
    token: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<SinceQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(1000).min(EVENTS_RETAINED as usize);
    let events = state
        .queue
        .send(EventsSince {
            since: query.since.unwrap_or(0),
            limit,
        })
        .await??;
    Ok(HttpResponse::Ok().json(events))
}

pub async fn websocket(
    state: web::Data<AppState>,
    req: HttpRequest,
    stream: web::Payload,
    query: web::Query<SinceQuery>,
) -> Result<HttpResponse, actix_web::Error> {
    let session = WsSession::new(state.monitor.clone(), query.since);
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(MAX_FRAME)
        .start()
}
