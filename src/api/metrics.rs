//! `GET /metrics`: the Prometheus scrape (see `metrics.rs` for what it holds and where each
//! number comes from). It sits beside `/healthz`, outside `/api`, where Prometheus looks by
//! default; it needs the API token like `/api` unless `metrics.public = true`.

use super::{auth, ApiError, AppState};
use crate::dispatch::budget::DailyBudget;
use crate::dispatch::GetPool;
use crate::model::Status;
use crate::monitor::GetMonitorStats;
use crate::queue::{CountByStatus, TokensOn};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

/// The OpenMetrics text format, which Prometheus scrapes natively.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Who may read `/metrics` (`metrics.public`).
pub struct MetricsAccess {
    pub public: bool,
}

/// Guards `/metrics`: the `/api` token rule, unless the config makes the metrics public.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let public = req
        .app_data::<web::Data<MetricsAccess>>()
        .is_some_and(|access| access.public);
    if !public {
        if let Some(err) = auth::bearer_refusal(&req) {
            return Ok(req.error_response(err).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Not in the OpenAPI document: it speaks Prometheus's text format, not the JSON API, and
/// Prometheus (not a generated client) reads it.
pub async fn scrape(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let counts = state.reader.ask(CountByStatus).await?;
    let pool = state.dispatcher.send(GetPool).await?;
    let monitor = state.monitor.send(GetMonitorStats).await?;
    let tokens_today = state
        .reader
        .ask(TokensOn {
            day: DailyBudget::today(),
        })
        .await?;
    let store_bytes = std::fs::metadata(state.data_dir.join("flightdeck.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let items: Vec<(&'static str, u64)> = Status::ALL
        .iter()
        .map(|s| (s.as_str(), counts.get(s).copied().unwrap_or(0)))
        .collect();
    let text = crate::metrics::render(&crate::metrics::Readings {
        items: &items,
        pool_size: pool.size,
        pool_running: pool.running,
        tokens_today,
        daily_token_budget: pool.daily_tokens,
        websocket_clients: monitor.websocket_clients,
        event_seq: monitor.last_seq,
        store_bytes,
    })
    .map_err(|e| ApiError::unavailable(format!("the metrics could not be written out: {e}")))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
