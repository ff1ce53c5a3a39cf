//! `/api/items` and `/api/claim`: the work queue over HTTP.

use super::{ApiError, AppState, ErrorBody, Json, Query};
use crate::dispatch::{session_log_path, CancelItem};
use crate::model::{
    render_agents_md, Artifact, ArtifactInput, ArtifactKind, CompleteRequest, ItemPatch,
    MoveRequest, NewWorkItem, Priority, Status, StatusChange, ValidationError, WorkItem,
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

#[utoipa::path(
    get, path = "/api/items", tag = "items", operation_id = "listItems",
    summary = "List work items, by priority then age", params(ListQuery),
    responses((status = 200, description = "The items that pass every filter", body = [WorkItem]))
)]
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

#[utoipa::path(
    post, path = "/api/items", tag = "items", operation_id = "createItem",
    summary = "Add a work item",
    request_body(content = NewWorkItem, example = json!({
        "title": "Add a --json flag to export",
        "description": "Print the export as JSON when asked.",
        "priority": "high", "complexity": "s", "status": "ready",
        "acceptanceCriteria": ["export --json prints valid JSON"],
        "blockedBy": []
    })),
    responses(
        (status = 201, description = "The new item", body = WorkItem),
        (status = 422, description = "A `blockedBy` id names no item", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Json(new): Json<NewWorkItem>,
) -> Result<HttpResponse, ApiError> {
    let item = state.queue.send(CreateItem(new.validate()?)).await??;
    Ok(HttpResponse::Created().json(item))
}

#[utoipa::path(
    get, path = "/api/items/{id}", tag = "items", operation_id = "getItem",
    summary = "Show one work item", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    responses((status = 200, description = "The item", body = WorkItem))
)]
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

#[utoipa::path(
    patch, path = "/api/items/{id}", tag = "items", operation_id = "updateItem",
    summary = "Change an item's fields (not its status: see move)", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    request_body(content = ItemPatch, example = json!({"priority": "critical", "title": "Add a --json flag to export and import"})),
    responses(
        (status = 200, description = "The changed item", body = WorkItem),
        (status = 409, description = "The dependencies of an item in flight cannot change", body = ErrorBody),
        (status = 422, description = "An unknown dependency, or one that would make a cycle", body = ErrorBody),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(patch): Json<ItemPatch>,
) -> Result<HttpResponse, ApiError> {
    let item = state
        .queue
        .send(UpdateItem {
            id: id.into_inner(),
            patch: patch.validate()?,
        })
        .await??;
    Ok(HttpResponse::Ok().json(item))
}

#[utoipa::path(
    delete, path = "/api/items/{id}", tag = "items", operation_id = "deleteItem",
    summary = "Delete a work item", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The item is in flight", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post, path = "/api/items/{id}/move", tag = "items", operation_id = "moveItem",
    summary = "Move an item to another status (a rejection is a move from review back to ready)",
    params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    request_body(content = MoveRequest, example = json!({"status": "ready", "reason": "the tests do not cover --json"})),
    responses(
        (status = 200, description = "The moved item", body = WorkItem),
        (status = 409, description = "The state machine forbids this move; the message lists the allowed ones", body = ErrorBody),
    )
)]
pub async fn move_item(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(req): Json<MoveRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = req.validate()?;
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
            reason: req.reason,
        })
        .await??;
    Ok(HttpResponse::Ok().json(item))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    /// Who claims: an agent or worker id.
    #[schema(value_type = crate::model::schema::Name)]
    agent_id: String,
    /// The session of that agent, recorded on the item.
    #[schema(value_type = crate::model::schema::Name)]
    session_key: String,
}

/// A claimed item and the AGENTS.md text an agent would get for it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Claimed {
    item: WorkItem,
    context: String,
}

/// The seed's Dequeue, for remote workers: 200 with the item and its AGENTS.md text, or 204.
#[utoipa::path(
    post, path = "/api/claim", tag = "items", operation_id = "claimItem",
    summary = "Claim the next ready item, for a remote worker",
    request_body(content = ClaimRequest, example = json!({"agentId": "worker-7", "sessionKey": "worker-7/run-1"})),
    responses(
        (status = 200, description = "The claimed item (now in flight) and its scoped AGENTS.md", body = Claimed),
        (status = 204, description = "Nothing is claimable"),
    )
)]
pub async fn claim(
    state: web::Data<AppState>,
    Json(req): Json<ClaimRequest>,
) -> Result<HttpResponse, ApiError> {
    let agent_id = req.agent_id.trim_matches(crate::model::is_blank_char);
    let session_key = req.session_key.trim_matches(crate::model::is_blank_char);
    for (field, value) in [("agentId", agent_id), ("sessionKey", session_key)] {
        let n = value.chars().count();
        if n == 0 || n > 200 {
            return Err(ValidationError::new(field, "must be 1 to 200 characters").into());
        }
    }
    let claimed = state
        .queue
        .send(Claim {
            agent_id: agent_id.to_string(),
            session_key: session_key.to_string(),
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

#[utoipa::path(
    post, path = "/api/items/{id}/complete", tag = "items", operation_id = "completeItem",
    summary = "Complete an item in flight, with its acceptance report", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    request_body(content = CompleteRequest, example = json!({
        "acceptance": [{"criterion": "export --json prints valid JSON", "met": true, "evidence": "tests/export.rs passes"}],
        "artifacts": [{"type": "url", "path": "https://example.com/pr/12", "description": "the pull request"}]
    })),
    responses(
        (status = 200, description = "Accepted (to review or done), or a failed attempt with the unmet rules", body = CompleteOutcome),
        (status = 409, description = "The item is not in flight", body = ErrorBody),
        (status = 422, description = "A file artifact's path is outside the data dir", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    post, path = "/api/items/{id}/artifacts", tag = "items", operation_id = "addArtifact",
    summary = "Attach an artifact to an item", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    request_body(content = ArtifactInput, example = json!({"type": "pr", "path": "12", "description": "the pull request"})),
    responses(
        (status = 201, description = "The artifact, with its id", body = Artifact),
        (status = 422, description = "A file path outside the data dir", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get, path = "/api/items/{id}/artifacts/{artifact}", tag = "items", operation_id = "downloadArtifact",
    summary = "Download a file artifact",
    params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)"), ("artifact" = String, Path, description = "Artifact id")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 409, description = "Not a file artifact", body = ErrorBody),
        (status = 410, description = "The file is gone", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get, path = "/api/items/{id}/history", tag = "items", operation_id = "getItemHistory",
    summary = "An item's status changes, oldest first", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    responses((status = 200, description = "Every status change, with who made it and why", body = [StatusChange]))
)]
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
#[utoipa::path(
    get, path = "/api/items/{id}/log", tag = "items", operation_id = "getItemLog",
    summary = "The agents' output for an item", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    responses((status = 200, description = "Every attempt's output, oldest first", content_type = "text/plain", body = String))
)]
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
