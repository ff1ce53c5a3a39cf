//! `/healthz` for load balancers and `/api/status` for people: counts per status, the pool,
//! uptime.

use super::{ApiError, AppState};
use crate::dispatch::GetPool;
use crate::queue::CountByStatus;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

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
