//! Events over HTTP: `GET /api/events?since=SEQ` replays the retained log a page at a time,
//! and `/ws?since=SEQ` replays then streams live through a WebSocket session actor.
//!
//! A page holds at most `limit` events and [`EVENTS_PAGE_BYTES`] of JSON (at least one event,
//! however large), so no replay request makes the server hold more than that for it. When more
//! events follow, the answer says where to go on: `Link: </api/events?since=N>; rel="next"`,
//! N being the `seq` of the page's last event.

use super::{ApiError, AppState, Query};
use crate::model::Event;
use crate::monitor::{WsSession, MAX_FRAME};
use crate::queue::{EventsSince, EVENTS_RETAINED};
use actix_web::http::header;
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

/// Most bytes of events in one answer of `GET /api/events`.
pub const EVENTS_PAGE_BYTES: usize = 1 << 20;

#[utoipa::path(
    get, path = "/api/events", tag = "events", operation_id = "listEvents",
    summary = "Replay the retained events after a seq, a page at a time", params(SinceQuery),
    responses((status = 200, description = "Retained events after since, oldest first: at most limit of them, cut short past a byte budget (never below one event). When more follow, the Link header names the next page.", body = [Event], headers(("Link" = String, description = "`</api/events?since=N>; rel=\"next\"` when more events follow, N being the seq of the last event in this page"))))
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
    let page = state
        .reader
        .ask(EventsSince {
            since: since as u64,
            limit: limit as usize,
            max_bytes: EVENTS_PAGE_BYTES,
        })
        .await?;
    let mut answer = HttpResponse::Ok();
    answer.insert_header(header::ContentType::json());
    if let Some(last) = page.more_after {
        answer.insert_header((
            header::LINK,
            format!("</api/events?since={last}>; rel=\"next\""),
        ));
    }
    Ok(answer.body(page.json))
}

pub async fn websocket(
    state: web::Data<AppState>,
    req: HttpRequest,
    stream: web::Payload,
    Query(query): Query<SinceQuery>,
) -> Result<HttpResponse, actix_web::Error> {
    let since = query.since.map(|s| s.max(0) as u64);
    let session = WsSession::new(state.monitor.clone(), since, state.websocket_silence);
    ws::WsResponseBuilder::new(session, &req, stream)
        .protocols(&[super::SOCKET_PROTOCOL])
        .frame_size(MAX_FRAME)
        .start()
}
