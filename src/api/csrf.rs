//! Cross-site request forgery. Any web page can make the browser send a "simple" request to
//! this server (a form post: `text/plain`, `application/x-www-form-urlencoded` or
//! `multipart/form-data`, no custom headers) without asking first; the page cannot read the
//! answer, but the change would be made. With the token required such a request fails
//! anyway, but `server.token = "none"` leaves only this rule: every state-changing request
//! (POST, PUT, PATCH, DELETE under `/api`) carries `Content-Type: application/json` or the
//! header `X-Flightdeck: 1`. Browsers send either only after a CORS preflight, which this
//! server never grants to another origin.

use super::{body, ApiError};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;

/// The header that marks a request without a JSON body as sent by a client of this API.
pub const CLIENT_HEADER: &str = "X-Flightdeck";

fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Refuses (415) a state-changing request that a page of another site could have sent.
pub async fn require_api_client(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if changes_state(req.method()) {
        let (is_json, content_type) = body::json_content_type(req.headers());
        let marked = req
            .headers()
            .get(CLIENT_HEADER)
            .is_some_and(|v| v.as_bytes() == b"1");
        if !is_json && !marked {
            let err = ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "{} requests need Content-Type: application/json (or, without a body, the header {CLIENT_HEADER}: 1), so that pages of other web sites cannot send them through a browser; this one had {}",
                    req.method(),
                    content_type.as_deref().unwrap_or("no Content-Type")
                ),
            );
            return Ok(req.error_response(err).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}
