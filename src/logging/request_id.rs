//! Request ids and the access log. Every request gets an id: the caller's `X-Request-Id` when
//! it is a sane one (so a proxy's id follows the request), else a new one. It is returned in
//! the response's `X-Request-Id`, and every log line written while the request is handled
//! (the access line included) carries it: the id lives in a thread-local set around each poll
//! of the request's future, which is where its handler's code runs.
//!
//! The access line shows the request with the value of any query parameter whose name
//! mentions a token replaced: a secret must never reach a log, whoever put it in a URL.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The longest incoming id taken as it is.
const ID_MAX: usize = 128;

thread_local! {
    static CURRENT: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// The id of the request being handled on this thread right now, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// A future that runs with `id` as the current request id.
struct InRequest<F> {
    id: Arc<str>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let before = CURRENT.with(|c| c.replace(Some(this.id.clone())));
        let out = this.inner.as_mut().poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = before);
        out
    }
}

/// The caller's id when it is 1 to 128 letters, digits or `.-_:`; else a new one.
fn request_id(req: &ServiceRequest) -> String {
    let given = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= ID_MAX
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
        });
    match given {
        Some(id) => id.to_string(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// The access log's request line, without token values.
fn request_line_without_secrets(req: &ServiceRequest) -> String {
    let query = req.query_string();
    let query = if query.is_empty() {
        String::new()
    } else {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let name = pair.split('=').next().unwrap_or("");
                let decoded: String = form_urlencoded::parse(name.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                if decoded.to_ascii_lowercase().contains("token") {
                    format!("{name}=[redacted]")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        format!("?{}", pairs.join("&"))
    };
    format!("{} {}{query} {:?}", req.method(), req.path(), req.version())
}

/// Middleware: gives the request its id, logs one access line, returns the id.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id(&req);
    let scope: Arc<str> = Arc::from(id.as_str());
    let line = request_line_without_secrets(&req);
    let started = Instant::now();
    let handled = async move {
        let answered = next.call(req).await;
        let status = match &answered {
            Ok(response) => response.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        log::info!(
            target: "flightdeck::http",
            "{line} {} {:.3}ms",
            status.as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        // An error a middleware returned becomes its response later, without the header.
        let mut response = answered?.map_into_boxed_body();
        if let Ok(value) = HeaderValue::from_str(&id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
        }
        Ok(response)
    };
    InRequest {
        id: scope,
        inner: Box::pin(handled),
    }
    .await
}
