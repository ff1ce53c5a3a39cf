//! Events over HTTP: `GET /api/events?since=SEQ` replays the retained log, and `/ws?since=SEQ`
//! replays then streams live through a WebSocket session actor.

use super::{ApiError, AppState, Query};
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
    #[param(minimum = 0)]
    since: Option<i64>,
    /// At most this many (default 1000).
    #[param(minimum = 1, maximum = 20000)]
    limit: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/events", tag = "events", operation_id = "listEvents",
    summary = "Replay the retained events after a seq", params(SinceQuery),
    responses((status = 200, description = "Retained events after `since`, oldest first", body = [Event]))
)]
pub async fn list(
    state: web::Data<AppState>,
    Query(query): Query<SinceQuery>,
) -> Result<HttpResponse, ApiError> {
    let since = query.since.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::bad_request("since must be 0 or more").with_field("since"));
    }
    let limit = query.limit.unwrap_or(1000);
    if !(1..=EVENTS_RETAINED as i64).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {EVENTS_RETAINED}"
        ))
        .with_field("limit"));
    }
    let events = state
        .queue
        .send(EventsSince {
            since: since as u64,
            limit: limit as usize,
        })
        .await??;
    Ok(HttpResponse::Ok().json(events))
}

pub async fn websocket(
    state: web::Data<AppState>,
    req: HttpRequest,
    stream: web::Payload,
    Query(query): Query<SinceQuery>,
) -> Result<HttpResponse, actix_web::Error> {
    let since = query.since.map(|s| s.max(0) as u64);
    let session = WsSession::new(state.monitor.clone(), since);
    ws::WsResponseBuilder::new(session, &req, stream)
        .protocols(&[super::SOCKET_PROTOCOL])
        .frame_size(MAX_FRAME)
        .start()
}
