//! `/api/approvals` and `/api/items/{id}/messages`: a person in the loop of a running ACP
//! agent. Approvals are the permission requests waiting for a person; answering one hands the
//! chosen option to its session. A message becomes the agent's next prompt turn.

use super::{ApiError, AppState, ErrorBody, Json};
use crate::dispatch::acp::{Approval, Decide, Delivery, DeskError, Say};
use crate::queue::GetItem;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

/// Longest follow-up message, in bytes.
const MESSAGE_MAX: usize = 32 * 1024;

impl From<DeskError> for ApiError {
    fn from(e: DeskError) -> Self {
        match e {
            DeskError::NoApproval(_) => ApiError::not_found(e.to_string()),
            DeskError::UnknownOption { .. } => {
                ApiError::bad_request(e.to_string()).with_field("option")
            }
            DeskError::Resolved(_) | DeskError::NotRunning(_) | DeskError::Full(_) => {
                ApiError::conflict(e.to_string())
            }
        }
    }
}

#[utoipa::path(
    get, path = "/api/approvals", tag = "approvals", operation_id = "listApprovals",
    summary = "Permission requests of running agents that wait for a person, oldest first",
    responses((status = 200, description = "The waiting requests", body = [Approval]))
)]
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.desk.list())
}

/// A person's answer to a permission request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// One of the request's options: its `optionId`, or its kind (`allow_once`,
    /// `reject_once`, ...).
    #[schema(max_length = 500)]
    option: String,
}

/// What answering did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DecideAnswer {
    /// What the agent was told, as a sentence.
    message: String,
}

#[utoipa::path(
    post, path = "/api/approvals/{id}", tag = "approvals", operation_id = "answerApproval",
    summary = "Answer a permission request with one of its options",
    params(("id" = String, Path, description = "The approval's id")),
    request_body = DecideRequest,
    responses(
        (status = 200, description = "The agent has the answer", body = DecideAnswer),
        (status = 400, description = "The option is not one the request offers", body = ErrorBody),
        (status = 404, description = "No request with this id waits", body = ErrorBody),
        (status = 409, description = "The request was answered already, or its session ended", body = ErrorBody),
    )
)]
pub async fn decide(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(req): Json<DecideRequest>,
) -> Result<HttpResponse, ApiError> {
    let (session, option_id) = state.desk.route(&id, &req.option)?;
    let message = session
        .send(Decide {
            approval_id: id.into_inner(),
            option_id,
        })
        .await
        .map_err(|_| DeskError::NotRunning("the agent's session has ended".into()))??;
    Ok(HttpResponse::Ok().json(DecideAnswer { message }))
}

/// A follow-up message for a running agent.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// What to tell the agent; it becomes its next prompt turn.
    #[schema(min_length = 1, max_length = 32768, pattern = "\\S")]
    text: String,
}

/// What happened to a message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageAnswer {
    delivery: Delivery,
}

#[utoipa::path(
    post, path = "/api/items/{id}/messages", tag = "approvals", operation_id = "sendMessage",
    summary = "Send a running ACP agent a message: its next prompt turn",
    params(("id" = String, Path, description = "Item id, or a unique prefix (4+ characters)")),
    request_body = MessageRequest,
    responses(
        (status = 200, description = "Sent now, or queued behind the running turn", body = MessageAnswer),
        (status = 400, description = "The text is empty or too long", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The item has no running ACP session", body = ErrorBody),
    )
)]
pub async fn say(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(req): Json<MessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let text = req.text.trim();
    if text.is_empty() {
        return Err(
            ApiError::bad_request("the message is empty: write what the agent should do")
                .with_field("text"),
        );
    }
    if text.len() > MESSAGE_MAX {
        return Err(ApiError::bad_request(format!(
            "the message is {} bytes; at most {MESSAGE_MAX} bytes reach an agent",
            text.len()
        ))
        .with_field("text"));
    }
    let item = state
        .reader
        .ask(GetItem {
            id: id.into_inner(),
        })
        .await?;
    let session = state.desk.session_of(&item.id).ok_or_else(|| {
        DeskError::NotRunning(format!(
            "\"{}\" has no running ACP session (it is {}); messages reach only an agent at work",
            item.title, item.status
        ))
    })?;
    let delivery = session
        .send(Say {
            text: text.to_string(),
        })
        .await
        .map_err(|_| {
            DeskError::NotRunning(format!("the agent on \"{}\" has ended", item.title))
        })??;
    Ok(HttpResponse::Ok().json(MessageAnswer { delivery }))
}
