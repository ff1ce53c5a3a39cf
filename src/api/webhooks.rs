//! The webhook delivery log: `GET /api/webhooks/deliveries` (newest first, paged) and
//! `POST /api/webhooks/deliveries/{id}/redeliver` (send it again, same delivery id).

use super::{ApiError, AppState, Query};
use crate::queue::{Delivery, DeliveryStatus, ListDeliveries, Redeliver};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

/// The most deliveries one page holds.
const PAGE_MAX: i64 = 200;

/// Filters and paging of `GET /api/webhooks/deliveries`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only deliveries in this status.
    status: Option<DeliveryStatus>,
    /// A delivery id: the page of deliveries older than it (the previous page's `next`).
    #[param(max_length = 100, pattern = "^[0-9]{1,19}-.+$")]
    before: Option<String>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// One page of the delivery log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    deliveries: Vec<Delivery>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[utoipa::path(
    get, path = "/api/webhooks/deliveries", tag = "webhooks", operation_id = "listWebhookDeliveries",
    summary = "The webhook delivery log, newest first, a page at a time", params(DeliveriesQuery),
    responses((status = 200, description = "Deliveries, newest first", body = DeliveryPage))
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(
            ApiError::bad_request(format!("limit must be between 1 and {PAGE_MAX}"))
                .with_field("limit"),
        );
    }
    let before = query.before;
    if let Some(id) = &before {
        if id.chars().count() > 100 || crate::queue::parse_delivery_id(id).is_none() {
            return Err(ApiError::bad_request(format!(
                "before must be a delivery id from an earlier page, like \"42-ops\"; got {id:?}"
            ))
            .with_field("before"));
        }
    }
    let deliveries = state
        .queue
        .send(ListDeliveries {
            before,
            status: query.status,
            limit: limit as usize,
        })
        .await??;
    let next = (deliveries.len() == limit as usize)
        .then(|| deliveries.last().map(|d| d.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(DeliveryPage { deliveries, next }))
}

#[utoipa::path(
    post, path = "/api/webhooks/deliveries/{id}/redeliver", tag = "webhooks", operation_id = "redeliverWebhook",
    summary = "Send a delivery again, with the same delivery id",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 202, description = "Queued to be sent again, with the same delivery id", body = Delivery))
)]
pub async fn redeliver(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let delivery = state
        .queue
        .send(Redeliver {
            id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Accepted().json(delivery))
}
