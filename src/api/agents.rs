//! `/api/agents`, `/api/pool` and `/api/dispatch`: the agent pool over HTTP.

use super::{ApiError, AppState, ErrorBody, Json, Query};
use crate::config::POOL_SIZE_MAX;
use crate::dispatch::{CancelSession, DispatchNow, GetPool, PoolInfo, Resize};
use crate::model::{
    optional_reason, AgentSession, AgentStatus, Reason, Status, Transition, ValidationError,
};
use crate::queue::{GetSession, ListSessions};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

/// Filters of `GET /api/agents`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgentsQuery {
    /// Only the sessions of this item (id or unique prefix).
    #[param(max_length = 64)]
    item: Option<String>,
    /// Only sessions in this status (e.g. `working` for the running ones).
    status: Option<AgentStatus>,
}

#[utoipa::path(
    get, path = "/api/agents", tag = "agents", operation_id = "listAgents",
    summary = "List agent sessions, newest first", params(AgentsQuery),
    responses(
        (status = 200, description = "The sessions that pass every filter", body = [AgentSession]),
        (status = 404, description = "The `item` filter names no item", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Query(query): Query<AgentsQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut sessions = state
        .reader
        .ask(ListSessions {
            item_id: query.item.filter(|i| !i.is_empty()),
        })
        .await?;
    if let Some(status) = query.status {
        sessions.retain(|s| s.status == status);
    }
    Ok(HttpResponse::Ok().json(sessions))
}

#[utoipa::path(
    get, path = "/api/agents/{id}", tag = "agents", operation_id = "getAgent",
    summary = "Show one agent session", params(("id" = String, Path, description = "Session id (the whole id)")),
    responses((status = 200, description = "The session", body = AgentSession))
)]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = state
        .reader
        .ask(GetSession {
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(session))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default, deserialize_with = "optional_reason")]
    reason: Option<Reason>,
    /// Where the item goes: `blocked` (the default: nothing claims it until a person moves
    /// it) or another move the state machine allows from in_flight, e.g. `ready` to requeue.
    status: Option<CancelTo>,
}

/// The statuses a cancelled item may go to: the manual moves out of `in_flight`.
#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelTo {
    Blocked,
    Ready,
    Review,
    Done,
}

impl From<CancelTo> for Status {
    fn from(to: CancelTo) -> Status {
        match to {
            CancelTo::Blocked => Status::Blocked,
            CancelTo::Ready => Status::Ready,
            CancelTo::Review => Status::Review,
            CancelTo::Done => Status::Done,
        }
    }
}

/// Stops a running agent (TERM, then KILL) and moves its item to blocked with "cancelled by a
/// person", or to the status the body names; the attempt is not spent. The body is optional:
/// `{"reason": "...", "status": "ready"}`.
#[utoipa::path(
    post, path = "/api/agents/{id}/cancel", tag = "agents", operation_id = "cancelAgent",
    summary = "Stop a running agent; its item goes to blocked (or the status named)", params(("id" = String, Path, description = "Session id (the whole id)")),
    request_body(content = Option<CancelRequest>, description = "Optional reason and status", example = json!({"reason": "wrong approach", "status": "ready"})),
    responses(
        (status = 200, description = "The session, stopped", body = AgentSession),
        (status = 409, description = "The session already ended", body = ErrorBody),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CancelRequest::default()
    } else {
        super::parse_json::<Option<CancelRequest>>(&body)?.unwrap_or_default()
    };
    let reason = req
        .reason
        .map_or_else(|| "cancelled by a person".to_string(), String::from);
    let status = req.status.map_or(Status::Blocked, Status::from);
    if !Status::InFlight.can_move_to(status, Transition::Manual) {
        return Err(ValidationError::new(
            "status",
            format!(
                "a cancelled item cannot go to {status}: {}",
                Status::InFlight.describe_moves()
            ),
        )
        .into());
    }
    let id = id.into_inner();
    let session = state.reader.ask(GetSession { id: id.clone() }).await?;
    if session.status.is_finished() {
        return Err(ApiError::conflict(format!(
            "agent session {id} already ended ({:?})",
            session.status
        )));
    }
    state
        .dispatcher
        .send(CancelSession {
            session_id: id.clone(),
            reason,
            status,
        })
        .await??;
    let session = state.reader.ask(GetSession { id }).await?;
    Ok(HttpResponse::Ok().json(session))
}

#[utoipa::path(
    get, path = "/api/pool", tag = "agents", operation_id = "getPool",
    summary = "The agent pool: size, running, free",
    responses((status = 200, description = "The pool", body = PoolInfo))
)]
pub async fn pool(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.dispatcher.send(GetPool).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    #[schema(value_type = u32, minimum = 0, maximum = 256)]
    size: serde_json::Number,
}

#[utoipa::path(
    put, path = "/api/pool", tag = "agents", operation_id = "resizePool",
    summary = "Change how many agents may run at once",
    request_body(content = ResizeRequest, example = json!({"size": 4})),
    responses((status = 200, description = "The pool at its new size", body = PoolInfo))
)]
pub async fn resize(
    state: web::Data<AppState>,
    Json(req): Json<ResizeRequest>,
) -> Result<HttpResponse, ApiError> {
    // JSON Schema's integers include 42.0; anything else is refused with the field named.
    let size = req
        .size
        .as_u64()
        .or_else(|| {
            req.size
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })
        .filter(|n| *n <= POOL_SIZE_MAX as u64)
        .ok_or_else(|| {
            ValidationError::new(
                "size",
                format!("must be a whole number from 0 to {POOL_SIZE_MAX}"),
            )
        })?;
    let info = state
        .dispatcher
        .send(Resize {
            size: size as usize,
        })
        .await?;
    Ok(HttpResponse::Ok().json(info))
}

/// What `POST /api/dispatch` started.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Dispatched {
    started: Vec<AgentSession>,
}

/// Fills one free slot now (the way to run items when `pool.auto_dispatch` is off).
#[utoipa::path(
    post, path = "/api/dispatch", tag = "agents", operation_id = "dispatch",
    summary = "Start an agent on the next ready item now, if a slot is free",
    responses((status = 200, description = "The sessions started (at most one)", body = Dispatched))
)]
pub async fn dispatch(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = state.dispatcher.send(DispatchNow).await??;
    Ok(HttpResponse::Ok().json(Dispatched { started }))
}
