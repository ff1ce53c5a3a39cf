//! `Json<T>` for request bodies, with errors a client can act on: 415 for a content type that
//! is not JSON, 413 past [`MAX_BODY`], 400 naming the field for malformed JSON, unknown fields,
//! unknown enum values and wrong types (via `serde_path_to_error`).

use super::ApiError;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let is_json =
            matches!(&content_type, Some(ct) if ct == "application/json" || ct.ends_with("+json"));
        let declared_len = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                        "the body must be JSON (Content-Type: application/json), got {}",
                        content_type.as_deref().unwrap_or("no Content-Type")
                    ),
                ));
            }
            if declared_len.is_some_and(|n| n > MAX_BODY) {
                return Err(too_large());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(Json)
        })
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than the limit of {MAX_BODY} bytes (1 MiB)"),
    )
}

/// Parses JSON into `T`, naming the field at fault.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let field = if path == "." {
            unknown_field_name(&message)
        } else {
            Some(path.clone())
        };
        let message = match &field {
            Some(f) if inner.is_data() => format!("{f}: {message}"),
            _ if inner.is_syntax() || inner.is_eof() => format!("malformed JSON: {message}"),
            _ => message,
        };
        let code = if inner.is_data() {
            "invalid"
        } else {
            "malformed_json"
        };
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, code, message);
        err.field = field;
        err
    })
}

/// serde reports a missing or unknown top-level field with path "."; the name is in the message.
fn unknown_field_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}
