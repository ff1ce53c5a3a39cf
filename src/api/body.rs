//! `Json<T>` for request bodies, with errors a client can act on: 415 for a content type that
//! is not JSON, 413 past [`MAX_BODY`], 400 for malformed JSON (text after the value
//! included), and 400 naming the field for unknown fields, unknown enum values and wrong
//! types (via `serde_path_to_error`), with the allowed values of an enum field.

use super::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;
use std::future::Future;
use std::pin::Pin;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (is_json, content_type) = json_content_type(req.headers());
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

/// Whether the headers declare a JSON body, and the declared media type (lowercase, without
/// parameters) for messages.
pub fn json_content_type(headers: &HeaderMap) -> (bool, Option<String>) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
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
    (is_json, content_type)
}

/// Parses a body holding exactly one JSON value into `T`, naming the field at fault.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = match serde_path_to_error::deserialize(&mut *de) {
        Ok(value) => value,
        Err(e) => {
            return match as_whole_numbers::<T>(body, &e) {
                Some(value) => Ok(value),
                None => Err(explain::<T>(body, e)),
            }
        }
    };
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: the body must be one JSON value with nothing after it, but more text follows ({e})"),
        )
    })?;
    Ok(value)
}

/// A count written as `25.0` is the whole number 25, as JSON Schema's `integer` says: when a
/// body failed only because a whole number came with a fraction part, it is read again with
/// every such number made an integer. Bodies that parse at once never take this path.
fn as_whole_numbers<T: DeserializeOwned>(
    body: &[u8],
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> Option<T> {
    if !e.inner().to_string().contains("floating point") {
        return None;
    }
    let mut tree = serde_json::from_slice::<Value>(body).ok()?;
    make_whole(&mut tree);
    serde_path_to_error::deserialize::<_, T>(tree).ok()
}

fn make_whole(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                if (0.0..=u64::MAX as f64).contains(&f) {
                    *value = Value::from(f as u64);
                } else if (i64::MIN as f64..0.0).contains(&f) {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_whole),
        Value::Object(fields) => fields.values_mut().for_each(make_whole),
        _ => {}
    }
}

/// The 400 for a body that did not deserialize. serde_json reads an enum straight from the
/// text and reports a value of the wrong type there (`"priority": -1`) as a syntax error;
/// when the body is in fact well-formed JSON, it is deserialized again from its parsed form,
/// which reports the field, and the field's allowed values are named.
fn explain<T: DeserializeOwned>(
    body: &[u8],
    e: serde_path_to_error::Error<serde_json::Error>,
) -> ApiError {
    if e.inner().is_syntax() {
        if let Ok(tree) = serde_json::from_slice::<Value>(body) {
            if let Err(e) = serde_path_to_error::deserialize::<_, T>(tree.clone()) {
                if e.inner().is_data() {
                    let hint = allowed_values::<T>(&tree, e.path());
                    let found = wrong_type(&e.inner().to_string());
                    let mut err = to_api_error(e);
                    if let (Some(hint), Some(found), Some(field)) = (hint, found, &err.field) {
                        err.message = format!("{field}: {found} is not allowed here; {hint}");
                    }
                    return err;
                }
            }
        }
    }
    to_api_error(e)
}

/// For a field of an enum type given a value of the wrong type: "expected one of ...", found
/// by offering the field a string no variant has and reading serde's answer.
fn allowed_values<T: DeserializeOwned>(
    tree: &Value,
    path: &serde_path_to_error::Path,
) -> Option<String> {
    let mut probe = tree.clone();
    let mut slot = &mut probe;
    for segment in path.iter() {
        slot = match segment {
            Segment::Map { key } => slot.get_mut(key.as_str())?,
            Segment::Seq { index } => slot.get_mut(*index)?,
            _ => return None,
        };
    }
    *slot = Value::String(String::new());
    let message = serde_path_to_error::deserialize::<_, T>(probe)
        .err()?
        .into_inner()
        .to_string();
    let start = message.find("expected one of")?;
    Some(message[start..].to_string())
}

/// "invalid type: integer `-1`, expected ..." -> "integer `-1`".
fn wrong_type(message: &str) -> Option<String> {
    let rest = message.strip_prefix("invalid type: ")?;
    Some(rest[..rest.find(", expected")?].to_string())
}

fn to_api_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
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
        _ if !inner.is_data() => format!("malformed JSON: {message}"),
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
}

/// serde reports a missing or unknown top-level field with path "."; the name is in the message.
fn unknown_field_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}
