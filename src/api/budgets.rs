//! `PUT /api/budgets`: a person raises (or lowers) the pool's daily token budget without a
//! restart, say after dispatch paused because the day's tokens were spent. It holds until the
//! next edit of `budgets.daily_tokens` in the config file or the next start.

use super::{ApiError, AppState, Json};
use crate::dispatch::{PoolInfo, SetDailyBudget};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetsRequest {
    /// Tokens the pool may use per UTC day; 0 = no budget.
    #[serde(deserialize_with = "crate::model::token_budget")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_u64)]
    daily_tokens: u64,
}

#[utoipa::path(
    put, path = "/api/budgets", tag = "agents", operation_id = "setBudgets",
    summary = "Set the pool's daily token budget until the config says otherwise",
    request_body(content = BudgetsRequest, example = json!({"dailyTokens": 2_000_000})),
    responses((status = 200, description = "The pool, with the new daily budget and today's tokens", body = PoolInfo))
)]
pub async fn update(
    state: web::Data<AppState>,
    Json(req): Json<BudgetsRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = req.daily_tokens;
    let info = state.dispatcher.send(SetDailyBudget { tokens }).await?;
    Ok(HttpResponse::Ok().json(info))
}
