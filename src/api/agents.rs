//! `/api/agents`, `/api/pool` and `/api/dispatch`: the agent pool over HTTP.

use super::{ApiError, AppState, ErrorBody, Json, Query};
use crate::config::POOL_SIZE_MAX;
use crate::dispatch::{CancelSession, DispatchNow, GetPool, PoolInfo, Resize};
use crate::model::{AgentSession, AgentStatus, Status, Transition, ValidationError, REASON_MAX};
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

#[utoipa::path(get, path = "/api/agents", tag = "agents", params(AgentsQuery), responses((status = 200, description = "Sessions, newest first", body = [AgentSession]), (status = 404, body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    Query(query): Query<AgentsQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut sessions = state
        .queue
        .send(ListSessions {
            item_id: query.item.filter(|i| !i.is_empty()),
        })
        .await??;
    if let Some(status) = query.status {
        sessions.retain(|s| s.status == status);
    }
    Ok(HttpResponse::Ok().json(sessions))
}

#[utoipa::path(get, path = "/api/agents/{id}", tag = "agents", params(("id" = String, Path, description = "Session id")), responses((status = 200, body = AgentSession), (status = 404, body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = state
        .queue
        .send(GetSession {
            id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(session))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[schema(max_length = 2000)]
    reason: Option<String>,
    /// Where the item goes: `blocked` (the default: nothing claims it until a person moves
    /// it) or another move the state machine allows from in_flight, e.g. `ready` to requeue.
    status: Option<Status>,
}

/// Stops a running agent (TERM, then KILL) and moves its item to blocked with "cancelled by a
/// person", or to the status the body names; the attempt is not spent. The body is optional:
/// `{"reason": "...", "status": "ready"}`.
#[utoipa::path(post, path = "/api/agents/{id}/cancel", tag = "agents", params(("id" = String, Path, description = "Session id")), request_body(content = Option<CancelRequest>, description = "Optional reason and status"), responses((status = 200, body = AgentSession), (status = 404, body = ErrorBody), (status = 409, description = "The session already ended", body = ErrorBody), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
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
    let reason = crate::model::clean_reason(req.reason)?
        .unwrap_or_else(|| "cancelled by a person".to_string());
    if reason.chars().count() > REASON_MAX {
        return Err(ValidationError::new("reason", "too long").into());
    }
    let status = req.status.unwrap_or(Status::Blocked);
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
    let session = state.queue.send(GetSession { id: id.clone() }).await??;
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
    let session = state.queue.send(GetSession { id }).await??;
    Ok(HttpResponse::Ok().json(session))
}

#[utoipa::path(get, path = "/api/pool", tag = "agents", responses((status = 200, body = PoolInfo), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn pool(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.dispatcher.send(GetPool).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    #[schema(value_type = u32, minimum = 0, maximum = 256)]
    size: serde_json::Number,
}

#[utoipa::path(put, path = "/api/pool", tag = "agents", request_body = ResizeRequest, responses((status = 200, body = PoolInfo), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
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
#[utoipa::path(post, path = "/api/dispatch", tag = "agents", responses((status = 200, description = "The sessions started (at most one)", body = Dispatched), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn dispatch(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = state.dispatcher.send(DispatchNow).await??;
    Ok(HttpResponse::Ok().json(Dispatched { started }))
}
