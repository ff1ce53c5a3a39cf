//! Events over HTTP: `GET /api/events?since=SEQ` replays the retained log, and `/ws?since=SEQ`
//! replays then streams live through a WebSocket session actor.

use super::{ApiError, AppState, ErrorBody};
use crate::model::Event;
use crate::monitor::{WsSession, MAX_FRAME};
use crate::queue::{EventsSince, EVENTS_RETAINED};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;

/// Where to start an event replay.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// Events after this seq (default 0: all retained).
    since: Option<u64>,
    /// At most this many (default 1000).
    limit: Option<usize>,
    /// Browsers cannot set headers on a WebSocket: the token may come as a parameter.
    #[allow(dead_code)]
    token: Option<String>,
}

#[utoipa::path(get, path = "/api/events", tag = "events", params(SinceQuery), responses((status = 200, description = "Retained events after since, oldest first", body = [Event]), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
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
