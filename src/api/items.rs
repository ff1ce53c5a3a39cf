//! `/api/items` and `/api/claim`: the work queue over HTTP.

use super::{ApiError, AppState, ErrorBody, Json, Query};
use crate::dispatch::{session_log_path, CancelItem};
use crate::model::{
    render_agents_md, Artifact, ArtifactInput, ArtifactKind, CompleteRequest, ItemPatch,
    MoveRequest, Name, NewWorkItem, Priority, Status, StatusChange, WorkItem,
};
use crate::queue::{
    AddArtifacts, Claim, Complete, CreateItem, DeleteItem, GetHistory, GetItem, ListItems,
    ListSessions, MoveItem, UpdateItem,
};
use crate::queue::{CompleteOutcome, Completion};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

/// Filters of `GET /api/items`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only items in this status.
    status: Option<Status>,
    /// Only items of this priority.
    priority: Option<Priority>,
    /// Only items whose title contains this text (case-insensitive).
    #[param(max_length = 200)]
    q: Option<String>,
}

#[utoipa::path(get, path = "/api/items", tag = "items", params(ListQuery), responses((status = 200, description = "Items, by priority then age", body = [WorkItem]), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::bad_request("q must be at most 200 characters").with_field("q"));
    }
    let items = state
        .queue
        .send(ListItems {
            status: query.status,
            priority: query.priority,
            query: query.q.filter(|q| !q.is_empty()),
        })
        .await??;
    Ok(HttpResponse::Ok().json(items))
}

#[utoipa::path(post, path = "/api/items", tag = "items", request_body = NewWorkItem, responses((status = 201, description = "Created", body = WorkItem), (status = 422, description = "Unknown dependency", body = ErrorBody), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    Json(new): Json<NewWorkItem>,
) -> Result<HttpResponse, ApiError> {
    let item = state.queue.send(CreateItem(new)).await??;
    Ok(HttpResponse::Created().json(item))
}

#[utoipa::path(get, path = "/api/items/{id}", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")), responses((status = 200, body = WorkItem), (status = 404, body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let item = state
        .queue
        .send(GetItem {
            id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(item))
}

#[utoipa::path(patch, path = "/api/items/{id}", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")), request_body = ItemPatch, responses((status = 200, body = WorkItem), (status = 404, body = ErrorBody), (status = 409, description = "Dependencies of an in-flight item", body = ErrorBody), (status = 422, description = "Unknown dependency or a cycle", body = ErrorBody), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(patch): Json<ItemPatch>,
) -> Result<HttpResponse, ApiError> {
    let item = state
        .queue
        .send(UpdateItem {
            id: id.into_inner(),
            patch,
        })
        .await??;
    Ok(HttpResponse::Ok().json(item))
}

#[utoipa::path(delete, path = "/api/items/{id}", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")), responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 409, description = "The item is in flight", body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .queue
        .send(DeleteItem {
            id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::NoContent().finish())
}

/// A manual move. An item in flight has its agent stopped first, so no agent keeps working on
/// (or later completes) an item that has moved on.
#[utoipa::path(post, path = "/api/items/{id}/move", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")), request_body = MoveRequest, responses((status = 200, body = WorkItem), (status = 404, body = ErrorBody), (status = 409, description = "The state machine forbids this move; the message lists the allowed ones", body = ErrorBody), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn move_item(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(req): Json<MoveRequest>,
) -> Result<HttpResponse, ApiError> {
    let item = state
        .queue
        .send(GetItem {
            id: id.into_inner(),
        })
        .await??;
    if item.status == Status::InFlight
        && item
            .status
            .can_move_to(req.status, crate::model::Transition::Manual)
    {
        state
            .dispatcher
            .send(CancelItem {
                item_id: item.id.clone(),
                reason: format!("item moved to {} by hand", req.status),
            })
            .await?;
    }
    let item = state
        .queue
        .send(MoveItem {
            id: item.id,
            status: req.status,
            reason: req.reason.map(String::from),
        })
        .await??;
    Ok(HttpResponse::Ok().json(item))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    /// Who claims: an agent or worker id.
    agent_id: Name,
    /// The session of that agent, recorded on the item.
    session_key: Name,
}

/// A claimed item and the AGENTS.md text an agent would get for it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Claimed {
    item: WorkItem,
    context: String,
}

/// The seed's Dequeue, for remote workers: 200 with the item and its AGENTS.md text, or 204.
#[utoipa::path(post, path = "/api/claim", tag = "items", request_body = ClaimRequest, responses((status = 200, description = "The claimed item and its scoped AGENTS.md", body = Claimed), (status = 204, description = "Nothing is claimable"), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn claim(
    state: web::Data<AppState>,
    Json(req): Json<ClaimRequest>,
) -> Result<HttpResponse, ApiError> {
    let claimed = state
        .queue
        .send(Claim {
            agent_id: req.agent_id.into(),
            session_key: req.session_key.into(),
        })
        .await??;
    Ok(match claimed {
        Some(crate::queue::Claimed { item, .. }) => {
            let context = render_agents_md(&item, None);
            HttpResponse::Ok().json(Claimed { item, context })
        }
        None => HttpResponse::NoContent().finish(),
    })
}

#[utoipa::path(post, path = "/api/items/{id}/complete", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")), request_body = CompleteRequest, responses((status = 200, description = "Accepted (to review or done), or a failed attempt with the unmet rules", body = CompleteOutcome), (status = 404, body = ErrorBody), (status = 409, description = "The item is not in flight", body = ErrorBody), (status = 422, description = "An artifact path outside the data dir", body = ErrorBody), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn complete(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(req): Json<CompleteRequest>,
) -> Result<HttpResponse, ApiError> {
    req.validate()?;
    for (i, a) in req.artifacts.iter().enumerate() {
        check_artifact_path(&state, a).map_err(|e| e.with_field(format!("artifacts[{i}].path")))?;
    }
    let item = state
        .queue
        .send(GetItem {
            id: id.into_inner(),
        })
        .await??;
    let outcome = state
        .queue
        .send(Complete {
            id: item.id,
            work: Completion {
                artifacts: req.artifacts,
                acceptance: req.acceptance,
                ..Completion::default()
            },
        })
        .await??;
    Ok(HttpResponse::Ok().json(outcome))
}

/// A `file` artifact declared over the API must name a file inside the data dir (given
/// relative to it); other kinds are references (URLs, PR numbers) and are kept as given.
fn check_artifact_path(state: &AppState, a: &ArtifactInput) -> Result<(), ApiError> {
    if a.kind != ArtifactKind::File {
        return Ok(());
    }
    crate::dispatch::resolve_artifact(&state.data_dir, &a.path)
        .map(|_| ())
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_artifact_path", e))
}

#[utoipa::path(post, path = "/api/items/{id}/artifacts", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")), request_body = ArtifactInput, responses((status = 201, body = Artifact), (status = 404, body = ErrorBody), (status = 422, description = "A file path outside the data dir", body = ErrorBody), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn add_artifact(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(artifact): Json<ArtifactInput>,
) -> Result<HttpResponse, ApiError> {
    artifact.validate("artifact")?;
    check_artifact_path(&state, &artifact).map_err(|e| e.with_field("path"))?;
    let mut added = state
        .queue
        .send(AddArtifacts {
            id: id.into_inner(),
            artifacts: vec![artifact],
        })
        .await??;
    Ok(HttpResponse::Created().json(added.pop()))
}

/// Serves a `file` artifact's content; never anything outside the data dir.
#[utoipa::path(get, path = "/api/items/{id}/artifacts/{artifact}", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)"), ("artifact" = String, Path, description = "Artifact id")), responses((status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody), (status = 409, description = "Not a file artifact", body = ErrorBody), (status = 410, description = "The file is gone", body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn download_artifact(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (id, artifact_id) = path.into_inner();
    let item = state.queue.send(GetItem { id }).await??;
    let artifact = item
        .artifacts
        .iter()
        .find(|a| a.id == artifact_id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "artifact {artifact_id} not found on item {}",
                item.id
            ))
        })?;
    if artifact.kind != ArtifactKind::File {
        return Err(ApiError::conflict(format!(
            "artifact {artifact_id} is a {:?} reference, not a file: {}",
            artifact.kind, artifact.path
        )));
    }
    let file = crate::dispatch::resolve_artifact(&state.data_dir, &artifact.path)
        .map_err(|e| ApiError::new(StatusCode::GONE, "artifact_unavailable", e))?;
    let named = actix_files::NamedFile::open(&file).map_err(|e| {
        ApiError::new(
            StatusCode::GONE,
            "artifact_unavailable",
            format!("cannot open the artifact: {e}"),
        )
    })?;
    Ok(named.use_etag(true).prefer_utf8(true).into_response(&req))
}

#[utoipa::path(get, path = "/api/items/{id}/history", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")), responses((status = 200, body = [StatusChange]), (status = 404, body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn history(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let history = state
        .queue
        .send(GetHistory {
            id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(history))
}

/// The agents' output for an item: every attempt, oldest first, as plain text.
#[utoipa::path(get, path = "/api/items/{id}/log", tag = "items", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")), responses((status = 200, description = "Every attempt's output, oldest first", content_type = "text/plain", body = String), (status = 404, body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn log(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let item = state
        .queue
        .send(GetItem {
            id: id.into_inner(),
        })
        .await??;
    let sessions = state
        .queue
        .send(ListSessions {
            item_id: Some(item.id.clone()),
        })
        .await??;
    let mut text = String::new();
    for session in sessions.iter().rev() {
        text.push_str(&format!(
            "=== attempt {} · session {} · started {} ===\n",
            session.attempt,
            session.id,
            session
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
        match std::fs::read_to_string(session_log_path(&state.data_dir, &session.id)) {
            Ok(log) => text.push_str(&log),
            Err(_) => text.push_str("(no output recorded)\n"),
        }
        if let Some(outcome) = &session.outcome {
            text.push_str(&format!("=== {outcome} ===\n"));
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}
