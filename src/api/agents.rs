//! `/api/agents`, `/api/pool` and `/api/dispatch`: the agent pool over HTTP.

use super::{ApiError, AppState, Json};
use crate::config::POOL_SIZE_MAX;
use crate::dispatch::{CancelSession, DispatchNow, GetPool, Resize};
use crate::model::{ValidationError, REASON_MAX};
use crate::queue::{GetSession, ListSessions};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentsQuery {
    item: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<AgentsQuery>,
) -> Result<HttpResponse, ApiError> {
    let sessions = state
        .queue
        .send(ListSessions {
            item_id: query.into_inner().item.filter(|i| !i.is_empty()),
        })
        .await??;
    Ok(HttpResponse::Ok().json(sessions))
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    reason: Option<String>,
}

/// Stops a running agent (TERM, then KILL) and sends its item back to ready. The body is
/// optional: `{"reason": "..."}`.
pub async fn cancel(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CancelRequest::default()
    } else {
        super::parse_json(&body)?
    };
    let reason = crate::model::clean_reason(req.reason)?
        .unwrap_or_else(|| "cancelled by a person".to_string());
    if reason.chars().count() > REASON_MAX {
        return Err(ValidationError::new("reason", "too long").into());
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
        })
        .await?
        .map_err(|e| ApiError::conflict(format!("agent session {id} cannot be cancelled: {e}")))?;
    let session = state.queue.send(GetSession { id }).await??;
    Ok(HttpResponse::Ok().json(session))
}

pub async fn pool(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.dispatcher.send(GetPool).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    size: usize,
}

pub async fn resize(
    state: web::Data<AppState>,
    Json(req): Json<ResizeRequest>,
) -> Result<HttpResponse, ApiError> {
    if req.size > POOL_SIZE_MAX {
        return Err(
            ValidationError::new("size", format!("must be at most {POOL_SIZE_MAX}")).into(),
        );
    }
    let info = state.dispatcher.send(Resize { size: req.size }).await?;
    Ok(HttpResponse::Ok().json(info))
}

/// Fills one free slot now (the way to run items when `pool.auto_dispatch` is off).
pub async fn dispatch(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = state
        .dispatcher
        .send(DispatchNow)
        .await?
        .map_err(ApiError::unavailable)?;
    Ok(HttpResponse::Ok().json(json!({ "started": started })))
}
