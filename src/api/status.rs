//! `/healthz` for load balancers and `/api/status` for people: counts per status, the pool,
//! uptime.

use super::{ApiError, AppState, ErrorBody};
use crate::dispatch::GetPool;
use crate::queue::CountByStatus;
use actix_web::{web, HttpResponse};
use serde_json::json;

#[utoipa::path(get, path = "/healthz", tag = "status", security(()), responses((status = 200, description = "Alive", body = Object)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/api/status", tag = "status", responses((status = 200, description = "Counts per status, pool, uptime, sandbox", body = Object), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let counts = state.queue.send(CountByStatus).await??;
    let pool = state.dispatcher.send(GetPool).await?;
    let total: u64 = counts.values().sum();
    Ok(HttpResponse::Ok().json(json!({
        "counts": counts,
        "total": total,
        "pool": pool,
        "uptimeSecs": state.started.elapsed().as_secs(),
        "sandbox": state.sandbox,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}
