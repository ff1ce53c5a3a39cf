//! `/api/items` and `/api/claim`: the work queue over HTTP.

use super::{ApiError, AppState, ErrorBody, Json, Query};
use crate::dispatch::approval;
use crate::dispatch::diff::{self, Diff, DiffError};
use crate::dispatch::session_files::{self, ARTIFACT_MAX_BYTES, LOG_SERVED_MAX_BYTES};
use crate::dispatch::CancelItem;
use crate::model::{
    render_agents_md, Artifact, ArtifactInput, ArtifactKind, ClaimRequest, CompleteRequest,
    ItemPatch, MoveRequest, Name, NewWorkItem, Priority, Status, StatusChange, WorkItem,
};
use crate::queue::Completion;
use crate::queue::{
    AddArtifacts, Claim, Complete, CompleteThenClaim, CreateItem, DeleteItem, GetHistory, GetItem,
    ListItems, ListSessions, MoveItem, UpdateItem,
};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;

/// Filters and paging of `GET /api/items`.
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
    /// At most this many items (default 500).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<u64>,
    /// Where the page starts: the `X-Next-Cursor` of the page before (absent: the first page).
    #[param(max_length = 146, pattern = "^([0-9a-f]{2})*$")]
    cursor: Option<String>,
}

/// Items per page when the request names no `limit`, and the most it may name.
pub const LIST_DEFAULT_LIMIT: usize = 500;
pub const LIST_MAX_LIMIT: usize = 5_000;

#[utoipa::path(
    get, path = "/api/items", tag = "items", operation_id = "listItems",
    summary = "List work items, by priority then age, a page at a time", params(ListQuery),
    responses(
        (status = 200, description = "A page of the items that pass every filter", body = [WorkItem],
            headers(
                ("X-Next-Cursor" = String, description = "The `cursor` of the next page; absent on the last page"),
                ("X-Event-Seq" = u64, description = "The seq of the last event this page reflects: open `/ws?since=` with the first page's value to miss no change"),
            )),
        (status = 400, description = "A bad filter, `limit` or `cursor`", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::bad_request("q must be at most 200 characters").with_field("q"));
    }
    let limit = match query.limit {
        None => LIST_DEFAULT_LIMIT,
        Some(n) if (1..=LIST_MAX_LIMIT as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {LIST_MAX_LIMIT}, not {n}"
            ))
            .with_field("limit"))
        }
    };
    let after = query
        .cursor
        .as_deref()
        .map(super::cursor::decode)
        .transpose()
        .map_err(|why| ApiError::bad_request(why).with_field("cursor"))?;
    let page = state
        .reader
        .ask(ListItems {
            status: query.status,
            priority: query.priority,
            query: query.q.filter(|q| !q.is_empty()),
            after,
            limit,
        })
        .await?;
    let mut response = HttpResponse::Ok();
    response.insert_header(("X-Event-Seq", page.last_seq.to_string()));
    if let Some(next) = &page.next {
        response.insert_header(("X-Next-Cursor", super::cursor::encode(next)));
    }
    Ok(response.content_type("application/json").body(page.json))
}

/// The header the board sends with every request: `X-Flightdeck-Client: board`.
const BOARD_CLIENT_HEADER: &str = "x-flightdeck-client";

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
    req: HttpRequest,
    Json(mut new): Json<NewWorkItem>,
) -> Result<HttpResponse, ApiError> {
    // The board names itself in a header (its body is what a person typed): its items are
    // recorded as made "by board", not "by api".
    if new.created_by.is_none()
        && req
            .headers()
            .get(BOARD_CLIENT_HEADER)
            .is_some_and(|v| v == "board")
    {
        new.created_by = Name::parse("board".into()).ok();
    }
    let item = state.queue.send(CreateItem(new)).await??;
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
        .reader
        .ask(GetItem {
            id: id.into_inner(),
        })
        .await?;
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
            patch,
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

/// Approving in git worktree mode with `workspace.on_approve = "merge"`: the item's branch is
/// merged into the base branch first (off the HTTP workers); a conflict is 409 naming the
/// files, and the item stays in review.
async fn approve_merge(state: &AppState, item: &WorkItem) -> Result<(), ApiError> {
    let approval = state.approval.clone();
    let data_dir = state.data_dir.clone();
    let (id, title) = (item.id.clone(), item.title.clone());
    let merged = web::block(move || approval::merge(&approval, &data_dir, &id, &title))
        .await
        .map_err(|e| ApiError::unavailable(format!("the merge did not run: {e}")))?;
    match merged {
        Ok(what) => {
            log::info!("approved {}: {what}", item.id);
            Ok(())
        }
        // A conflict, or a branch that cannot be merged: the item stays in review either way.
        Err(e) => Err(ApiError::conflict(e.to_string())),
    }
}

/// What the item's attempts changed against its first hand-over: files with line counts and
/// the unified diff (cut at 1 MiB, flagged `truncated`). Computed from git's objects alone,
/// off the HTTP workers.
#[utoipa::path(
    get, path = "/api/items/{id}/diff", tag = "items", operation_id = "getItemDiff",
    summary = "What the item's attempts changed, file by file, with the unified diff",
    params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    responses((status = 200, description = "The changes against the first hand-over", body = Diff))
)]
pub async fn diff(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let item = state
        .reader
        .ask(GetItem {
            id: id.into_inner(),
        })
        .await?;
    let data_dir = state.data_dir.clone();
    let id = item.id.clone();
    let diff = web::block(move || diff::for_item(&data_dir, &id))
        .await
        .map_err(|e| ApiError::unavailable(format!("the diff did not run: {e}")))?;
    match diff {
        Ok(diff) => Ok(HttpResponse::Ok().json(diff)),
        // An item no attempt has finished on has changed nothing yet: an empty diff, unless a
        // runner on another machine uploaded the diff of its attempt.
        Err(DiffError::NothingYet) => {
            let uploaded = super::runner_diff_path(&state.data_dir, &item.id);
            match web::block(move || std::fs::read(uploaded)).await? {
                Ok(json) => Ok(HttpResponse::Ok()
                    .content_type("application/json")
                    .body(json)),
                Err(_) => Ok(HttpResponse::Ok().json(Diff::nothing_yet())),
            }
        }
        Err(e) => {
            log::warn!("diff of {}: {e}", item.id);
            Err(ApiError::unavailable(format!("{:?}: {e}", item.title)))
        }
    }
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
    let item = state
        .reader
        .ask(GetItem {
            id: id.into_inner(),
        })
        .await?;
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
    // Moving an in-flight item stops its agent: a cancel, said as such unless the mover
    // gave a reason.
    let reason = match (item.status, req.reason) {
        (Status::InFlight, None) => Some("cancelled by a person".to_string()),
        (_, reason) => reason.map(String::from),
    };
    if item.status == Status::Review && req.status == Status::Done && state.approval.merges() {
        approve_merge(&state, &item).await?;
    }
    let item = state
        .queue
        .send(MoveItem {
            id: item.id,
            status: req.status,
            reason,
        })
        .await??;
    Ok(HttpResponse::Ok().json(item))
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
    let claimed = state.queue.send(claim_for(req)).await??;
    Ok(match claimed {
        Some(c) => HttpResponse::Ok().json(self::claimed(c.item)),
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
        (status = 200, description = "Accepted (to review or done), or a failed attempt with the unmet rules; with the next item claimed when `claimNext` asked", body = Completed),
        (status = 409, description = "The item is not in flight", body = ErrorBody),
        (status = 422, description = "A file artifact outside the item's own session folders, or not a regular file", body = ErrorBody),
    )
)]
pub async fn complete(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(mut req): Json<CompleteRequest>,
) -> Result<HttpResponse, ApiError> {
    req.validate()?;
    let mut id = id.into_inner();
    if req.artifacts.iter().any(|a| a.kind == ArtifactKind::File) {
        // File artifacts are checked against the item's own session folders, so the item is
        // looked up first; otherwise the write resolves the id itself.
        id = state.reader.ask(GetItem { id }).await?.id;
        let sessions = session_ids(&state, &id).await?;
        for (i, a) in req.artifacts.iter_mut().enumerate() {
            check_artifact_path(&state, &sessions, a)
                .await
                .map_err(|e| e.with_field(format!("artifacts[{i}].path")))?;
        }
    }
    let complete = Complete {
        id,
        work: Completion {
            artifacts: req.artifacts,
            acceptance: req.acceptance,
            ..Completion::default()
        },
    };
    let (outcome, next) = match req.claim_next {
        None => (state.queue.send(complete).await??, None),
        Some(claimer) => {
            let next = claim_for(claimer);
            let (outcome, next) = state
                .queue
                .send(CompleteThenClaim { complete, next })
                .await??;
            (outcome, next.map(|c| claimed(c.item)))
        }
    };
    Ok(HttpResponse::Ok().json(Completed {
        item: outcome.item,
        accepted: outcome.accepted,
        unmet: outcome.unmet,
        next,
    }))
}

/// What a completion came to, and the next item claimed with it when one was asked for.
/// (Named `CompleteOutcome` in the API document, as before `next` was added, so generated
/// clients keep their type; a runner's completion answers the same without `next`.)
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = CompleteOutcome)]
pub struct Completed {
    /// The item after its completion.
    item: WorkItem,
    /// Whether the completion was accepted.
    accepted: bool,
    /// What was not met, when it was not.
    unmet: Vec<String>,
    /// The item claimed in the same write (`claimNext`), or null: none asked for, or nothing
    /// claimable.
    next: Option<Claimed>,
}

/// A worker's claim over the API: it has no labels, so it takes only items that require none.
fn claim_for(worker: ClaimRequest) -> Claim {
    Claim {
        agent_id: worker.agent_id.into(),
        session_key: worker.session_key.into(),
        labels: crate::model::Labels::default(),
    }
}

/// The answer to a claim: the item and its AGENTS.md text.
fn claimed(item: WorkItem) -> Claimed {
    let context = render_agents_md(&item, None);
    Claimed { item, context }
}

/// The ids of the item's sessions: their folders are the only ones its artifacts may name.
async fn session_ids(state: &AppState, item_id: &str) -> Result<Vec<String>, ApiError> {
    let sessions = state
        .reader
        .ask(ListSessions {
            item_id: Some(item_id.to_string()),
        })
        .await?;
    Ok(sessions.into_iter().map(|s| s.id).collect())
}

/// A `file` artifact declared over the API must name a regular file under the artifacts or
/// workspace folder of one of the item's own sessions (given relative to the data dir, and
/// rewritten here in normal form); other kinds are references (URLs, PR numbers) and are kept
/// as given.
async fn check_artifact_path(
    state: &AppState,
    sessions: &[String],
    a: &mut ArtifactInput,
) -> Result<(), ApiError> {
    if a.kind != ArtifactKind::File {
        return Ok(());
    }
    let bad = |e: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_artifact_path", e);
    let rel = session_files::own_session_file(&a.path, sessions).map_err(bad)?;
    let data_dir = state.data_dir.clone();
    let path = rel.clone();
    web::block(move || session_files::open(&data_dir, &path))
        .await?
        .map_err(|e| bad(e.to_string()))?;
    a.path = rel.display().to_string();
    Ok(())
}

#[utoipa::path(
    post, path = "/api/items/{id}/artifacts", tag = "items", operation_id = "addArtifact",
    summary = "Attach an artifact to an item", params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)")),
    request_body(content = ArtifactInput, example = json!({"type": "pr", "path": "12", "description": "the pull request"})),
    responses(
        (status = 201, description = "The artifact, with its id", body = Artifact),
        (status = 422, description = "A file path outside the item's own session folders, or not a regular file", body = ErrorBody),
    )
)]
pub async fn add_artifact(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(mut artifact): Json<ArtifactInput>,
) -> Result<HttpResponse, ApiError> {
    artifact.validate("artifact")?;
    let item = state
        .reader
        .ask(GetItem {
            id: id.into_inner(),
        })
        .await?;
    if artifact.kind == ArtifactKind::File {
        let sessions = session_ids(&state, &item.id).await?;
        check_artifact_path(&state, &sessions, &mut artifact)
            .await
            .map_err(|e| e.with_field("path"))?;
    }
    let mut added = state
        .queue
        .send(AddArtifacts {
            id: item.id,
            artifacts: vec![artifact],
        })
        .await??;
    Ok(HttpResponse::Created().json(added.pop()))
}

/// Serves a `file` artifact's content: a regular file of the item's own session folders,
/// checked again at each download (see [`session_files`]), at most [`ARTIFACT_MAX_BYTES`].
#[utoipa::path(
    get, path = "/api/items/{id}/artifacts/{artifact}", tag = "items", operation_id = "downloadArtifact",
    summary = "Download a file artifact",
    params(("id" = String, Path, description = "Item id, or a unique prefix of one (4+ characters)"), ("artifact" = String, Path, description = "Artifact id")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 409, description = "Not a file artifact", body = ErrorBody),
        (status = 410, description = "The file is gone, or refused: outside the item's own session folders, a link, a FIFO, a hard link, over 1 GiB", body = ErrorBody),
    )
)]
pub async fn download_artifact(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (id, artifact_id) = path.into_inner();
    let item = state.reader.ask(GetItem { id }).await?;
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
    // Checked again now, not trusted from when it was stored: the rule, and the file itself.
    let gone = |e: String| ApiError::new(StatusCode::GONE, "artifact_unavailable", e);
    let sessions = session_ids(&state, &item.id).await?;
    let rel = session_files::own_session_file(&artifact.path, &sessions).map_err(gone)?;
    let data_dir = state.data_dir.clone();
    let opened = web::block(move || session_files::open(&data_dir, &rel))
        .await?
        .map_err(|e| gone(e.to_string()))?;
    if opened.len > ARTIFACT_MAX_BYTES {
        return Err(gone(format!(
            "{} is refused: it is {} bytes, over the {ARTIFACT_MAX_BYTES} bytes served",
            artifact.path, opened.len
        )));
    }
    let named = actix_files::NamedFile::from_file(opened.file, &artifact.path)
        .map_err(|e| gone(format!("cannot open the artifact: {e}")))?;
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
        .reader
        .ask(GetHistory {
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(history))
}

/// The agents' output for an item: every attempt, oldest first, as plain text. Each attempt's
/// session.log is opened through [`session_files`] (no link followed, no FIFO waited on) and
/// streamed in chunks read off the HTTP workers, at most [`LOG_SERVED_MAX_BYTES`] of it.
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
        .reader
        .ask(GetItem {
            id: id.into_inner(),
        })
        .await?;
    let sessions = state
        .reader
        .ask(ListSessions {
            item_id: Some(item.id.clone()),
        })
        .await?;
    let mut parts = VecDeque::new();
    for session in sessions.iter().rev() {
        parts.push_back(LogPart::Text(format!(
            "=== attempt {} · session {} · started {} ===\n",
            session.attempt,
            session.id,
            session
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
        parts.push_back(LogPart::File(
            ["agents", session.id.as_str(), "session.log"]
                .iter()
                .collect(),
        ));
        if let Some(outcome) = &session.outcome {
            parts.push_back(LogPart::Text(format!("=== {outcome} ===\n")));
        }
    }
    let reader = LogReader {
        data_dir: state.data_dir.clone(),
        parts,
        open: None,
    };
    let body = futures_util::stream::unfold(reader, |mut reader| async move {
        let chunk = reader.next_chunk().await;
        chunk.map(|c| (c, reader))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .streaming(body))
}

/// One piece of an item's log: a header or footer line, or an attempt's session.log.
enum LogPart {
    Text(String),
    File(PathBuf),
}

/// Reads an item's log piece by piece, one bounded chunk at a time.
struct LogReader {
    data_dir: PathBuf,
    parts: VecDeque<LogPart>,
    open: Option<OpenLog>,
}

/// The session.log being read, and how many more of its bytes may be served.
struct OpenLog {
    file: std::fs::File,
    left: u64,
    rel: PathBuf,
}

/// How much of a session.log is read at once.
const LOG_CHUNK: u64 = 64 << 10;

impl LogReader {
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if let Some(log) = self.open.take() {
                let read = web::block(move || {
                    // Once the cap is reached, one byte more says whether anything was cut.
                    let want = log.left.clamp(1, LOG_CHUNK);
                    let mut buf = Vec::new();
                    let n = (&log.file).take(want).read_to_end(&mut buf);
                    (log, buf, n)
                })
                .await;
                let (mut log, buf, n) = match read {
                    Ok(done) => done,
                    Err(e) => return Some(Err(std::io::Error::other(e.to_string()))),
                };
                let note = match n {
                    Ok(0) => continue,
                    Ok(_) if log.left == 0 => format!(
                        "the rest of {} is not shown: only its first {LOG_SERVED_MAX_BYTES} bytes are served",
                        log.rel.display()
                    ),
                    Ok(n) => {
                        log.left = log.left.saturating_sub(n as u64);
                        self.open = Some(log);
                        return Some(Ok(Bytes::from(buf)));
                    }
                    Err(e) => format!("{} could not be read further: {e}", log.rel.display()),
                };
                return Some(Ok(Bytes::from(format!("\n[flightdeck: {note}]\n"))));
            }
            let rel = match self.parts.pop_front()? {
                LogPart::Text(text) => return Some(Ok(Bytes::from(text))),
                LogPart::File(rel) => rel,
            };
            let data_dir = self.data_dir.clone();
            let path = rel.clone();
            let opened = match web::block(move || session_files::open(&data_dir, &path)).await {
                Ok(opened) => opened,
                Err(e) => return Some(Err(std::io::Error::other(e.to_string()))),
            };
            match opened {
                Ok(f) => {
                    self.open = Some(OpenLog {
                        file: f.file,
                        left: LOG_SERVED_MAX_BYTES,
                        rel,
                    })
                }
                Err(session_files::Refused::Missing { .. }) => {
                    return Some(Ok(Bytes::from_static(b"(no output recorded)\n")))
                }
                Err(e) => return Some(Ok(Bytes::from(format!("(not shown: {e})\n")))),
            }
        }
    }
}
