//! `PUT /api/budgets`: a person raises (or lowers) the pool's daily token budget without a
//! restart, say after dispatch paused because the day's tokens were spent. It holds until the
//! next edit of `budgets.daily_tokens` in the config file or the next start.

use super::{ApiError, AppState, ErrorBody, Json};
use crate::dispatch::{PoolInfo, SetDailyBudget};
use crate::model::{ValidationError, MAX_TOKENS_MAX};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetsRequest {
    /// Tokens the pool may use per UTC day; 0 = no budget.
    #[schema(value_type = u64, minimum = 0, maximum = 1_000_000_000_000_u64)]
    daily_tokens: serde_json::Number,
}

#[utoipa::path(put, path = "/api/budgets", tag = "agents", request_body = BudgetsRequest, responses((status = 200, description = "The pool, with the new daily budget and today's tokens", body = PoolInfo), (status = 400, description = "Bad input: the field is named", body = ErrorBody), (status = 401, description = "Missing or wrong API token", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Body is not JSON", body = ErrorBody), (status = 503, description = "Store unavailable", body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    Json(req): Json<BudgetsRequest>,
) -> Result<HttpResponse, ApiError> {
    // JSON Schema's integers include 42.0; anything else is refused with the field named.
    let tokens = req
        .daily_tokens
        .as_u64()
        .or_else(|| {
            req.daily_tokens
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_TOKENS_MAX as f64)
                .map(|f| f as u64)
        })
        .filter(|n| *n <= MAX_TOKENS_MAX)
        .ok_or_else(|| {
            ValidationError::new(
                "dailyTokens",
                format!("must be a whole number from 0 (no budget) to {MAX_TOKENS_MAX}"),
            )
        })?;
    let info = state.dispatcher.send(SetDailyBudget { tokens }).await?;
    Ok(HttpResponse::Ok().json(info))
}
