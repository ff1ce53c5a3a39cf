//! `/api/runners/...`: runners register, claim work under leases, heartbeat, report and finish
//! over HTTP (with a runner token or the admin token); admins list and drain them, and make and
//! revoke runner tokens (`/api/runner-tokens`, admin token only).
//!
//! Every write about an item carries the fence of the runner's lease and is refused 409, in
//! words, once the lease has moved on (see `queue/leases.rs`). Files a runner uploads land in
//! the server's folder of the attempt's session (`agents/{session}/...`), where the item's
//! log, artifacts and downloads already look, within `runners.artifact_max_bytes` each.

use super::auth::Caller;
use super::{ApiError, AppState, ErrorBody, Json, Query};
use crate::dispatch::{session_files, GetPool};
use crate::model::{AcceptanceEntry, AgentSession, ArtifactInput, Labels, WorkItem};
use crate::queue::leases::Lease;
use crate::queue::{
    expires_at, CheckLease, Completion, CreateRunnerToken, DrainRunner, ListRunnerTokens,
    ListRunners, ReadyRequiringLabels, RegisterRunner, Report, ReportBody, RevokeRunnerToken,
    RunnerClaim, RunnerComplete, RunnerFail, RunnerHeartbeat, RunnerReports, Verdict,
};
use crate::runners::tokens::{self, RunnerTokens};
use crate::runners::{
    NewToken, RunnerRecord, RunnerSettings, RunnerView, RunnersOverview, TokenRecord, TokenView,
    Unroutable,
};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Most reports in one batch, and most bytes of log text in one.
const REPORTS_MAX: usize = 1000;
/// Largest diff a runner may upload (the patch is cut at 1 MiB, plus its file list).
const DIFF_MAX_BYTES: usize = 4 << 20;

fn caller(req: &HttpRequest) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Runner(String::new()))
}

fn admin_only(req: &HttpRequest) -> Result<(), ApiError> {
    match caller(req) {
        Caller::Admin => Ok(()),
        Caller::Runner(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "runner_token",
            "a runner token cannot list or drain runners: use the admin token",
        )),
    }
}

/// The lease a runner's write is made under: the runner id checked, then the lease and its
/// fence (409 once the lease has moved on).
async fn lease_for(
    state: &AppState,
    runner_id: String,
    item_id: String,
    fence: u64,
) -> Result<Lease, ApiError> {
    check_runner_id(&runner_id)?;
    Ok(state
        .queue
        .send(CheckLease {
            runner_id,
            item_id,
            fence,
        })
        .await??)
}

/// An upload's bytes, refused with 413 and `too_large` as soon as they pass `max`.
async fn read_capped(
    payload: &mut web::Payload,
    max: u64,
    too_large: impl Fn() -> String,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?;
        if (body.len() + chunk.len()) as u64 > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                too_large(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A runner id: 1 to 64 of a-z, A-Z, 0-9, '-' and '_'.
fn check_runner_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "runner id {id:?} is not allowed: 1 to 64 letters, digits, '-' or '_'"
        ))
        .with_field("id"))
    }
}

// ---- Register, claim, heartbeat ---------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The runner's stable id (kept in its state dir): 1 to 64 letters, digits, '-' or '_'.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    id: String,
    /// What people call it.
    name: crate::model::Name,
    #[serde(default)]
    labels: Labels,
    /// How many items it runs at once (1 to 256).
    #[schema(minimum = 1, maximum = 256)]
    slots: u32,
    /// Its flightdeck version.
    version: crate::model::Name,
}

/// What a runner is told when it registers.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub runner: RunnerRecord,
    /// How long a lease lasts without a heartbeat.
    pub lease_secs: u64,
    /// How often to heartbeat (a third of the lease).
    pub heartbeat_secs: u64,
}

#[utoipa::path(
    post, path = "/api/runners/register", tag = "runners", operation_id = "registerRunner",
    summary = "Register a runner (again, after a restart: the same id)",
    request_body(content = RegisterRequest, example = json!({"id": "r-7f3a", "name": "build-host-2", "labels": ["gpu"], "slots": 4, "version": "0.1.0"})),
    responses(
        (status = 200, description = "The runner as recorded, and its lease period", body = Registered),
        (status = 400, description = "A malformed id, label or slot count", body = ErrorBody),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    settings: web::Data<RunnerSettings>,
    req: HttpRequest,
    Json(body): Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    check_runner_id(&body.id)?;
    if !(1..=256).contains(&body.slots) {
        return Err(ApiError::bad_request(format!(
            "slots must be between 1 and 256, got {}",
            body.slots
        ))
        .with_field("slots"));
    }
    let token_id = match caller(&req) {
        Caller::Runner(id) => Some(id),
        Caller::Admin => None,
    };
    let runner = state
        .queue
        .send(RegisterRunner {
            id: body.id,
            name: body.name.into(),
            labels: body.labels,
            slots: body.slots,
            version: body.version.into(),
            token_id,
        })
        .await??;
    log::info!("runner {} ({}) registered", runner.name, runner.id);
    Ok(HttpResponse::Ok().json(Registered {
        runner,
        lease_secs: settings.lease_secs,
        heartbeat_secs: (settings.lease_secs / 3).max(1),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = RunnerClaimRequest)]
pub struct ClaimRequest {
    /// Free slots: at most this many items are claimed.
    #[schema(minimum = 1, maximum = 256)]
    free: u32,
}

/// A lease as a runner holds it.
#[derive(Serialize, Deserialize, utoipa::ToSchema, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct LeaseView {
    pub id: String,
    pub item_id: String,
    /// Send it with every write about the item.
    pub fence: u64,
    pub expires_at: DateTime<Utc>,
    /// The attempt's session id (its folders are named after it, here and on the runner).
    pub session_id: String,
}

impl From<&Lease> for LeaseView {
    fn from(l: &Lease) -> LeaseView {
        LeaseView {
            id: l.id.clone(),
            item_id: l.item_id.clone(),
            fence: l.fence,
            expires_at: expires_at(l),
            session_id: l.session_id.clone(),
        }
    }
}

/// One claimed item.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeasedClaim {
    pub item: WorkItem,
    pub lease: LeaseView,
    pub session_key: String,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct Claims {
    pub claims: Vec<LeasedClaim>,
}

#[utoipa::path(
    post, path = "/api/runners/{id}/claim", tag = "runners", operation_id = "runnerClaim",
    summary = "Claim ready items for a runner's free slots, each under a lease",
    params(("id" = String, Path, description = "Runner id: 1 to 64 letters, digits, '-' or '_'", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body(content = ClaimRequest, example = json!({"free": 2})),
    responses(
        (status = 200, description = "The claimed items (none when nothing the runner's labels cover is ready, or it drains)", body = Claims),
        (status = 400, description = "A malformed runner id or slot count", body = ErrorBody),
        (status = 404, description = "No runner with this id has registered", body = ErrorBody),
    )
)]
pub async fn claim(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(body): Json<ClaimRequest>,
) -> Result<HttpResponse, ApiError> {
    check_runner_id(&id)?;
    if !(1..=256).contains(&body.free) {
        return Err(ApiError::bad_request("free must be between 1 and 256").with_field("free"));
    }
    let claimed = state
        .queue
        .send(RunnerClaim {
            runner_id: id.into_inner(),
            free: body.free,
        })
        .await??;
    let claims = claimed
        .into_iter()
        .map(|c| LeasedClaim {
            lease: LeaseView::from(&c.lease),
            item: c.item,
            session_key: c.session_key,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Claims { claims }))
}

/// What a heartbeat renewed.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAnswer {
    /// The leases the runner still holds, renewed; any item it runs that is not here is lost
    /// (its lease ran out or the item moved on): stop its agent.
    pub leases: Vec<LeaseView>,
    /// Finish what it runs and claim nothing more.
    pub draining: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The items the runner is running now: their leases are renewed, no others.
    #[schema(max_items = 256)]
    running: Vec<String>,
}

#[utoipa::path(
    post, path = "/api/runners/{id}/heartbeat", tag = "runners", operation_id = "runnerHeartbeat",
    summary = "Renew the leases of the items the runner is running",
    params(("id" = String, Path, description = "Runner id: 1 to 64 letters, digits, '-' or '_'", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body(content = HeartbeatRequest, example = json!({"running": ["5f0c2a9e-7d43-4b8e-9a51-2c6f0e8d1b73"]})),
    responses(
        (status = 200, description = "The leases it still holds, and whether it drains", body = HeartbeatAnswer),
        (status = 400, description = "A malformed runner id", body = ErrorBody),
        (status = 404, description = "No runner with this id has registered", body = ErrorBody),
    )
)]
pub async fn heartbeat(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(body): Json<HeartbeatRequest>,
) -> Result<HttpResponse, ApiError> {
    check_runner_id(&id)?;
    if body.running.len() > 256 {
        return Err(ApiError::bad_request("a runner runs at most 256 items").with_field("running"));
    }
    let beat = state
        .queue
        .send(RunnerHeartbeat {
            runner_id: id.into_inner(),
            running: body.running,
        })
        .await??;
    Ok(HttpResponse::Ok().json(HeartbeatAnswer {
        leases: beat.leases.iter().map(LeaseView::from).collect(),
        draining: beat.draining,
    }))
}

// ---- Writes under a lease ----------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportsRequest {
    pub fence: u64,
    /// In order; numbered per session from 1.
    pub reports: Vec<Report>,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportsAnswer {
    /// The numbers applied now; the others were resends, already applied.
    pub applied: Vec<u64>,
}

/// The session's folder on the server, for its log and files.
fn session_root(data_dir: &Path, session_id: &str) -> PathBuf {
    crate::dispatch::workspace::session_dir(data_dir, session_id)
}

#[utoipa::path(
    post, path = "/api/runners/{id}/items/{item}/reports", tag = "runners", operation_id = "runnerReports",
    summary = "Report a leased attempt's start, progress, log and changes, in order",
    params(("id" = String, Path, description = "Runner id: 1 to 64 letters, digits, '-' or '_'", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("item" = String, Path, description = "Item id")),
    request_body(content = ReportsRequest, example = json!({"fence": 3, "reports": [{"seq": 1, "kind": "log", "text": "hello\n"}]})),
    responses(
        (status = 200, description = "Applied (resends are acknowledged, not applied twice)", body = ReportsAnswer),
        (status = 400, description = "A malformed runner id, or too many reports", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The lease has moved on: the write is refused", body = ErrorBody),
    )
)]
pub async fn reports(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    Json(body): Json<ReportsRequest>,
) -> Result<HttpResponse, ApiError> {
    let (runner_id, item_id) = path.into_inner();
    check_runner_id(&runner_id)?;
    if body.reports.len() > REPORTS_MAX {
        return Err(ApiError::bad_request(format!(
            "at most {REPORTS_MAX} reports are sent at once"
        )));
    }
    let logs: Vec<(u64, String)> = body
        .reports
        .iter()
        .filter_map(|r| match &r.body {
            ReportBody::Log { text } => Some((r.seq, text.clone())),
            _ => None,
        })
        .collect();
    let fence = body.fence;
    if !logs.is_empty() {
        // The log text first, once per report (see `runners::session_log`): a kill before the
        // reports are applied leaves them unacknowledged, and their resend finds the text.
        let lease = lease_for(&state, runner_id.clone(), item_id.clone(), fence).await?;
        let root = session_root(&state.data_dir, &lease.session_id);
        let unwritable =
            |e: &dyn std::fmt::Display| ApiError::unavailable(format!("cannot write the log: {e}"));
        web::block(move || crate::runners::session_log::append_once(&root, &logs))
            .await
            .map_err(|e| unwritable(&e))?
            .map_err(|e| unwritable(&e))?;
    }
    let applied = state
        .queue
        .send(RunnerReports {
            runner_id,
            item_id,
            fence,
            reports: body.reports,
            data_dir: state.data_dir.clone(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(ReportsAnswer { applied }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// The lease's fence.
    fence: u64,
    /// Where the file goes, relative to the data dir: `agents/{session}/artifacts/...` or
    /// `agents/{session}/workspace/...` of the lease's session.
    #[param(max_length = 4096)]
    path: String,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stored {
    /// Where the file is now, relative to the data dir.
    pub path: String,
    pub bytes: u64,
}

#[utoipa::path(
    put, path = "/api/runners/{id}/items/{item}/files", tag = "runners", operation_id = "runnerUploadFile",
    summary = "Upload a file of a leased attempt (an artifact, or a workspace file an artifact names)",
    params(("id" = String, Path, description = "Runner id: 1 to 64 letters, digits, '-' or '_'", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("item" = String, Path, description = "Item id"), FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored in the session's folder", body = Stored),
        (status = 400, description = "A malformed runner id", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The lease has moved on: the write is refused", body = ErrorBody),
        (status = 413, description = "Larger than runners.artifact_max_bytes", body = ErrorBody),
        (status = 422, description = "A path outside the lease's session folders", body = ErrorBody),
    )
)]
pub async fn upload_file(
    state: web::Data<AppState>,
    settings: web::Data<RunnerSettings>,
    path: web::Path<(String, String)>,
    Query(query): Query<FileQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (runner_id, item_id) = path.into_inner();
    let lease = lease_for(&state, runner_id, item_id, query.fence).await?;
    let rel = session_files::own_session_file(&query.path, std::slice::from_ref(&lease.session_id))
        .map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_artifact_path", e)
                .with_field("path")
        })?;
    let max = settings.artifact_max_bytes;
    let body = read_capped(&mut payload, max, || {
        format!(
            "{} is larger than runners.artifact_max_bytes ({max} bytes)",
            query.path
        )
    })
    .await?;
    let target = state.data_dir.join(&rel);
    let bytes = body.len() as u64;
    web::block(move || store_whole(&target, &body, "file")).await??;
    Ok(HttpResponse::Created().json(Stored {
        path: rel.display().to_string(),
        bytes,
    }))
}

/// Writes an upload into the server's own folders (made here): through a temporary name and a
/// rename, so a half-written upload is never served. `what` names it in the error.
fn store_whole(target: &Path, body: &[u8], what: &str) -> Result<(), ApiError> {
    let fail = |e: std::io::Error| ApiError::unavailable(format!("cannot store the {what}: {e}"));
    let Some(parent) = target.parent() else {
        return Err(ApiError::bad_request("the path names no file"));
    };
    std::fs::create_dir_all(parent).map_err(fail)?;
    let temp = parent.join(format!(".upload-{}", uuid::Uuid::new_v4()));
    std::fs::write(&temp, body).map_err(fail)?;
    std::fs::rename(&temp, target).map_err(fail)
}

/// Where a runner's diff of an item is kept on the server.
pub fn runner_diff_path(data_dir: &Path, item_id: &str) -> PathBuf {
    data_dir
        .join("runners")
        .join("diffs")
        .join(format!("{item_id}.json"))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FenceQuery {
    /// The lease's fence.
    fence: u64,
}

#[utoipa::path(
    put, path = "/api/runners/{id}/items/{item}/diff", tag = "runners", operation_id = "runnerUploadDiff",
    summary = "Upload what a leased attempt changed (the item's diff, as GET /api/items/{id}/diff shows it)",
    params(("id" = String, Path, description = "Runner id: 1 to 64 letters, digits, '-' or '_'", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("item" = String, Path, description = "Item id"), FenceQuery),
    request_body(content = crate::dispatch::diff::Diff),
    responses(
        (status = 204, description = "Stored: the item's diff is this one now"),
        (status = 400, description = "A malformed runner id, or not a diff", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The lease has moved on: the write is refused", body = ErrorBody),
        (status = 413, description = "Larger than 4 MiB", body = ErrorBody),
    )
)]
pub async fn upload_diff(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    Query(query): Query<FenceQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (runner_id, item_id) = path.into_inner();
    let lease = lease_for(&state, runner_id, item_id, query.fence).await?;
    let body = read_capped(&mut payload, DIFF_MAX_BYTES as u64, || {
        format!("a diff is at most {DIFF_MAX_BYTES} bytes")
    })
    .await?;
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct DiffShape {
        base: Option<String>,
        head: Option<String>,
        files: Vec<serde_json::Value>,
        patch: String,
        truncated: bool,
    }
    serde_json::from_slice::<DiffShape>(&body)
        .map_err(|e| ApiError::bad_request(format!("not a diff: {e}")))?;
    let target = runner_diff_path(&state.data_dir, &lease.item_id);
    web::block(move || store_whole(&target, &body, "diff")).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunnerCompleteRequest {
    pub fence: u64,
    #[serde(default)]
    pub artifacts: Vec<ArtifactInput>,
    pub acceptance: Option<Vec<AcceptanceEntry>>,
    /// Rules the runner found broken (a failed verify command).
    #[serde(default)]
    pub unmet: Vec<String>,
    /// The session's record as the runner ended it.
    pub session: Option<AgentSession>,
}

#[utoipa::path(
    post, path = "/api/runners/{id}/items/{item}/complete", tag = "runners", operation_id = "runnerComplete",
    summary = "Complete a leased attempt",
    params(("id" = String, Path, description = "Runner id: 1 to 64 letters, digits, '-' or '_'", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("item" = String, Path, description = "Item id")),
    request_body(content = RunnerCompleteRequest, example = json!({"fence": 3, "artifacts": [], "acceptance": null, "unmet": []})),
    responses(
        (status = 200, description = "Accepted, or a failed attempt with the unmet rules", body = super::items::Completed),
        (status = 400, description = "A malformed runner id or artifact", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The lease has moved on: the completion is refused", body = ErrorBody),
        (status = 422, description = "A file artifact outside the lease's session folders, or not uploaded", body = ErrorBody),
    )
)]
pub async fn complete(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    Json(body): Json<RunnerCompleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let (runner_id, item_id) = path.into_inner();
    check_runner_id(&runner_id)?;
    if body.artifacts.len() > crate::model::ARTIFACTS_MAX {
        return Err(ApiError::bad_request(format!(
            "at most {} artifacts are handed back at once",
            crate::model::ARTIFACTS_MAX
        )));
    }
    for (i, a) in body.artifacts.iter().enumerate() {
        a.validate(&format!("artifacts[{i}]"))?;
    }
    let mut artifacts = body.artifacts;
    if artifacts
        .iter()
        .any(|a| a.kind == crate::model::ArtifactKind::File)
    {
        let lease = lease_for(&state, runner_id.clone(), item_id.clone(), body.fence).await?;
        for (i, a) in artifacts.iter_mut().enumerate() {
            if a.kind != crate::model::ArtifactKind::File {
                continue;
            }
            let bad = |e: String| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_artifact_path", e)
                    .with_field(format!("artifacts[{i}].path"))
            };
            let rel =
                session_files::own_session_file(&a.path, std::slice::from_ref(&lease.session_id))
                    .map_err(bad)?;
            let data_dir = state.data_dir.clone();
            let check = rel.clone();
            web::block(move || session_files::open(&data_dir, &check))
                .await?
                .map_err(|e| bad(format!("{e} (upload it first)")))?;
            a.path = rel.display().to_string();
        }
    }
    let outcome = state
        .queue
        .send(RunnerComplete {
            runner_id: runner_id.clone(),
            item_id,
            fence: body.fence,
            work: Completion {
                artifacts,
                acceptance: body.acceptance,
                unmet: body.unmet,
                session: body.session,
                ..Completion::default()
            },
            data_dir: state.data_dir.clone(),
        })
        .await?
        .map_err(|e| {
            let e = ApiError::from(e);
            if e.status == StatusCode::CONFLICT {
                log::warn!(
                    "a late completion from runner {runner_id} is refused: {}",
                    e.message
                );
            }
            e
        })?;
    Ok(HttpResponse::Ok().json(outcome))
}

/// How a failed attempt is to be dealt with.
#[derive(Deserialize, Serialize, utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailVerdict {
    /// Retried after a backoff while attempts remain.
    Retry,
    /// Blocked at once (bad credentials).
    Block,
    /// Back to ready uncounted (a rate limit), not before `notBefore`.
    Requeue,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunnerFailRequest {
    pub fence: u64,
    pub reason: crate::model::Reason,
    pub verdict: FailVerdict,
    pub not_before: Option<DateTime<Utc>>,
    pub session: Option<AgentSession>,
}

#[utoipa::path(
    post, path = "/api/runners/{id}/items/{item}/fail", tag = "runners", operation_id = "runnerFail",
    summary = "End a leased attempt that did not complete",
    params(("id" = String, Path, description = "Runner id: 1 to 64 letters, digits, '-' or '_'", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("item" = String, Path, description = "Item id")),
    request_body(content = RunnerFailRequest, example = json!({"fence": 3, "reason": "the agent exited with code 1", "verdict": "retry"})),
    responses(
        (status = 200, description = "The item as the failure left it", body = WorkItem),
        (status = 400, description = "A malformed runner id or reason", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The lease has moved on: the failure is refused", body = ErrorBody),
    )
)]
pub async fn fail(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    Json(body): Json<RunnerFailRequest>,
) -> Result<HttpResponse, ApiError> {
    let (runner_id, item_id) = path.into_inner();
    check_runner_id(&runner_id)?;
    let verdict = match body.verdict {
        FailVerdict::Retry => Verdict::Retry,
        FailVerdict::Block => Verdict::Block,
        FailVerdict::Requeue => Verdict::Requeue {
            not_before: body.not_before,
        },
    };
    let reason: String = body.reason.into();
    let reason = if reason.is_empty() {
        "the runner gave no reason".to_string()
    } else {
        reason
    };
    let item = state
        .queue
        .send(RunnerFail {
            runner_id,
            item_id,
            fence: body.fence,
            reason,
            verdict,
            session: body.session,
            data_dir: state.data_dir.clone(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(item))
}

// ---- Admin: list, drain, tokens -----------------------------------------------------------------

/// Runners as people see them, and the ready items none of them can take.
pub async fn overview(
    state: &AppState,
    settings: &RunnerSettings,
) -> Result<RunnersOverview, ApiError> {
    let (records, leases) = state.reader.ask(ListRunners).await?;
    let now = Utc::now();
    let period = chrono::Duration::seconds(settings.lease_secs as i64);
    let runners: Vec<RunnerView> = records
        .into_iter()
        .map(|r| {
            let items: Vec<String> = leases
                .iter()
                .filter(|l| l.runner_id == r.id)
                .map(|l| l.item_id.clone())
                .collect();
            let used = items.len() as u32;
            RunnerView {
                online: now - r.last_heartbeat < period,
                slots_used: used,
                slots_free: r.slots.saturating_sub(used),
                id: r.id,
                name: r.name,
                labels: r.labels,
                slots: r.slots,
                version: r.version,
                last_heartbeat: r.last_heartbeat,
                draining: r.draining,
                items,
            }
        })
        .collect();
    let pool = state.dispatcher.send(GetPool).await?;
    let ready = state.reader.ask(ReadyRequiringLabels).await?;
    let takers: Vec<&[String]> = runners
        .iter()
        .filter(|r| r.online && !r.draining)
        .map(|r| r.labels.as_slice())
        .chain((pool.size > 0).then_some(settings.local_labels.as_slice()))
        .collect();
    let unroutable = ready
        .into_iter()
        .filter(|item| !item.requires.is_empty())
        .filter(|item| {
            !takers
                .iter()
                .any(|labels| item.requires.iter().all(|r| labels.contains(r)))
        })
        .map(|item| Unroutable {
            reason: format!(
                "no online runner has the labels {} that {:?} requires",
                item.requires.join(", "),
                item.title
            ),
            item_id: item.id,
            title: item.title,
            requires: item.requires,
        })
        .collect();
    Ok(RunnersOverview {
        runners,
        local_slots: pool.size,
        local_labels: settings.local_labels.as_slice().to_vec(),
        unroutable,
        lease_secs: settings.lease_secs,
    })
}

#[utoipa::path(
    get, path = "/api/runners", tag = "runners", operation_id = "listRunners",
    summary = "Runners (name, labels, slots, version, last heartbeat, online, draining) and the ready items none can take",
    responses(
        (status = 200, description = "Every runner that registered", body = RunnersOverview),
        (status = 403, description = "A runner token: admins only", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    settings: web::Data<RunnerSettings>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    admin_only(&req)?;
    Ok(HttpResponse::Ok().json(overview(&state, &settings).await?))
}

#[utoipa::path(
    post, path = "/api/runners/{id}/drain", tag = "runners", operation_id = "drainRunner",
    summary = "Let a runner finish its work and give it no more",
    params(("id" = String, Path, description = "Runner id: 1 to 64 letters, digits, '-' or '_'", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The runner, draining", body = RunnerRecord),
        (status = 400, description = "A malformed runner id", body = ErrorBody),
        (status = 403, description = "A runner token: admins only", body = ErrorBody),
        (status = 404, description = "No runner with this id", body = ErrorBody),
    )
)]
pub async fn drain(
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    admin_only(&req)?;
    check_runner_id(&id)?;
    let runner = state
        .queue
        .send(DrainRunner {
            id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(runner))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTokenRequest {
    /// What the token is for (the host it goes to).
    name: crate::model::Name,
}

#[utoipa::path(
    post, path = "/api/runner-tokens", tag = "runners", operation_id = "createRunnerToken",
    summary = "Make a runner token (shown once; stored hashed)",
    request_body(content = NewTokenRequest, example = json!({"name": "build-host-2"})),
    responses((status = 201, description = "The token, the only time it is shown", body = NewToken))
)]
pub async fn create_token(
    state: web::Data<AppState>,
    tokens: web::Data<RunnerTokens>,
    Json(body): Json<NewTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = tokens::generate();
    let record = TokenRecord {
        id: uuid::Uuid::new_v4().to_string()[..8].to_string(),
        name: body.name.into(),
        hash: crate::runners::token_hash(&token),
        created_at: Utc::now(),
    };
    let record = state.queue.send(CreateRunnerToken(record)).await??;
    tokens.add(&record);
    Ok(HttpResponse::Created().json(NewToken {
        id: record.id,
        name: record.name,
        created_at: record.created_at,
        token,
    }))
}

#[utoipa::path(
    get, path = "/api/runner-tokens", tag = "runners", operation_id = "listRunnerTokens",
    summary = "Runner tokens (names and ids, never the tokens)",
    responses((status = 200, description = "Every live runner token", body = [TokenView]))
)]
pub async fn list_tokens(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let records = state.reader.ask(ListRunnerTokens).await?;
    let views: Vec<TokenView> = records.iter().map(TokenView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

#[utoipa::path(
    delete, path = "/api/runner-tokens/{id}", tag = "runners", operation_id = "revokeRunnerToken",
    summary = "Revoke a runner token: runners using it are refused from now on",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No runner token with this id", body = ErrorBody),
    )
)]
pub async fn revoke_token(
    state: web::Data<AppState>,
    tokens: web::Data<RunnerTokens>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = state
        .queue
        .send(RevokeRunnerToken {
            id: id.into_inner(),
        })
        .await??;
    tokens.remove(&record);
    Ok(HttpResponse::NoContent().finish())
}
