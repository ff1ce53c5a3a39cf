//! The API's one error type and the one place where errors become status codes. Every error
//! body is `{"error":{"code","message","field"}}`.

use crate::dispatch::DispatchError;
use crate::model::ValidationError;
use crate::queue::QueueError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable kind: invalid, malformed_json, not_found, conflict, ...
    code: String,
    /// What went wrong, for people.
    message: String,
    /// The request field at fault, when there is one.
    field: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        })
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.to_string()).with_field(e.field)
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let message = e.to_string();
        match e {
            QueueError::Invalid(v) => v.into(),
            QueueError::NotFound { .. } => ApiError::not_found(message),
            QueueError::Ambiguous(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "ambiguous_id", message)
            }
            QueueError::UnknownReference { field, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_reference",
                message,
            )
            .with_field(field),
            QueueError::Cycle(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "dependency_cycle",
                message,
            )
            .with_field("blockedBy"),
            QueueError::Conflict(_) => ApiError::conflict(message),
            QueueError::Storage(_) => ApiError::unavailable(message),
        }
    }
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        let message = e.to_string();
        match e {
            DispatchError::ShuttingDown => ApiError::unavailable(message),
            DispatchError::NotRunning(_) => ApiError::conflict(message),
            DispatchError::Queue(e) => e.into(),
            DispatchError::QueueGone(e) => e.into(),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::unavailable(format!("flightdeck is shutting down: {e}"))
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::unavailable(format!("flightdeck is shutting down: {e}"))
    }
}
