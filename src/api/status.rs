//! `/healthz` (liveness) and `/readyz` (readiness) for load balancers and supervisors, and
//! `/api/status` for people: counts per status, the pool, uptime, and what a person on call
//! needs: the items waiting on a person (review, blocked), the longest wait of each, and the
//! failed attempts of the last hour.
//!
//! The two probes answer different questions. `/healthz` says the process answers HTTP; it
//! stays 200 while the disk is full, so nothing restarts a server that will recover by itself.
//! `/readyz` says the store takes writes: 503, with the reason in words, while it cannot (a full
//! or read-only disk), and 200 again once it can, without a restart.

use super::{ApiError, AppState, ErrorBody};
use crate::dispatch::{GetPool, PoolInfo};
use crate::model::Status;
use crate::queue::{CountByStatus, LongestWaiting, Readiness};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// The answer of `/healthz`: the process is alive.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    status: Alive,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Alive {
    Ok,
}

/// The answer of `/readyz` when the store takes writes.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    status: ReadyState,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyState {
    Ready,
}

/// The answer of `/api/status`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusReport {
    /// Items per status; every status is present.
    counts: StatusCounts,
    /// All items.
    total: u64,
    pool: PoolInfo,
    /// Seconds since this server started.
    uptime_secs: u64,
    /// `landlock` when agents run in the Landlock sandbox, `none` when they do not.
    #[schema(pattern = "^(landlock|none)$")]
    sandbox: String,
    /// The server's version.
    version: String,
    on_call: OnCall,
}

/// What a person on call looks at first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnCall {
    /// Items waiting on a person: in review or blocked.
    waiting_on_person: u64,
    /// The item longest in review, if any.
    oldest_review: Option<WaitingItem>,
    /// The item longest blocked, if any.
    oldest_blocked: Option<WaitingItem>,
    /// Failed attempts in the last hour (counted since this server started).
    failures_last_hour: u64,
}

/// An item waiting on a person, and since when.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitingItem {
    id: String,
    title: String,
    /// When it entered its status.
    since: DateTime<Utc>,
    /// Seconds it has waited.
    waiting_secs: u64,
    /// Why it is blocked (or the last word on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Estimated cost of its tokens so far, in US dollars.
    cost_usd: f64,
}

impl WaitingItem {
    fn of(item: crate::model::WorkItem) -> WaitingItem {
        let since = item.status_since.unwrap_or(item.updated_at);
        WaitingItem {
            waiting_secs: (Utc::now() - since).num_seconds().max(0) as u64,
            id: item.id,
            title: item.title,
            since,
            reason: item.status_reason,
            cost_usd: item.cost_usd,
        }
    }
}

/// Item counts keyed by status name. Its schema lists every [`Status`], so a status missing
/// from an answer (or one the schema does not know) breaks conformance.
#[derive(Serialize)]
#[serde(transparent)]
pub struct StatusCounts(BTreeMap<Status, u64>);

impl PartialSchema for StatusCounts {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for status in Status::ALL {
            let count = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0));
            object = object
                .property(status.as_str(), count)
                .required(status.as_str());
        }
        object.into()
    }
}

impl ToSchema for StatusCounts {}

#[utoipa::path(
    get, path = "/healthz", tag = "status", operation_id = "healthz", security(()),
    summary = "Liveness: the process answers HTTP",
    responses((status = 200, description = "Alive (says nothing about the store: see /readyz)", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: Alive::Ok })
}

#[utoipa::path(
    get, path = "/readyz", tag = "status", operation_id = "readyz", security(()),
    summary = "Readiness: the store takes writes",
    responses(
        (status = 200, description = "The store takes writes", body = Ready),
        (status = 503, description = "The store cannot write (full or read-only disk); the message says why", body = ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.queue.send(Readiness).await? {
        None => Ok(HttpResponse::Ok().json(Ready {
            status: ReadyState::Ready,
        })),
        Some(reason) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            reason,
        )),
    }
}

#[utoipa::path(
    get, path = "/api/status", tag = "status", operation_id = "getStatus",
    summary = "Counts per status, the pool, uptime, sandbox and version",
    responses((status = 200, description = "The server's state", body = StatusReport))
)]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let counts = state.reader.ask(CountByStatus).await?;
    let pool = state.dispatcher.send(GetPool).await?;
    let oldest_review = state
        .reader
        .ask(LongestWaiting {
            status: Status::Review,
        })
        .await?;
    let oldest_blocked = state
        .reader
        .ask(LongestWaiting {
            status: Status::Blocked,
        })
        .await?;
    let on_call = OnCall {
        waiting_on_person: [Status::Review, Status::Blocked]
            .iter()
            .map(|s| counts.get(s).copied().unwrap_or(0))
            .sum(),
        oldest_review: oldest_review.map(WaitingItem::of),
        oldest_blocked: oldest_blocked.map(WaitingItem::of),
        failures_last_hour: crate::metrics::failures_last_hour(),
    };
    Ok(HttpResponse::Ok().json(StatusReport {
        on_call,
        total: counts.values().sum(),
        counts: StatusCounts(counts),
        pool,
        uptime_secs: state.started.elapsed().as_secs(),
        sandbox: state.sandbox.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }))
}
