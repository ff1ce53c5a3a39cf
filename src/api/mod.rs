//! The JSON HTTP API and the routes of the board and the WebSocket, by resource. Handlers
//! parse, ask an actor by message, and answer; they hold no state of their own.
//!
//! The guards are attached to what they guard: the token and the CSRF rule wrap the `/api`
//! scope, the origin and token checks wrap the `/ws` resource, so every request the router
//! hands to one of their handlers has passed them, however its path was spelled.

mod agents;
mod approvals;
mod auth;
mod body;
mod budgets;
mod csrf;
mod cursor;
mod error;
mod events;
pub mod fence;
mod host;
mod items;
mod metrics;
mod openapi;
mod query;
mod runners;
mod status;
mod transcript;
mod webhooks;

pub use auth::{TokenGuard, SOCKET_PROTOCOL};
pub use body::{parse as parse_json, Json, MAX_BODY};
pub use csrf::CLIENT_HEADER;
pub use error::{ApiError, ErrorBody};
pub use host::{check_host, HostPolicy};
pub use metrics::MetricsAccess;
pub use openapi::ApiDoc;
pub use query::Query;
pub use runners::{overview as runners_overview, runner_diff_path};

use crate::dispatch::Dispatcher;
use crate::monitor::Monitor;
use crate::queue::QueueManager;
use actix::Addr;
use actix_web::{middleware, web};
use std::path::PathBuf;
use std::time::Instant;

/// What every handler may reach.
pub struct AppState {
    pub queue: Addr<QueueManager>,
    /// Reads of the queue, answered off the queue-manager thread.
    pub reader: crate::queue::ReadPool,
    pub dispatcher: Addr<Dispatcher>,
    pub monitor: Addr<Monitor>,
    pub data_dir: PathBuf,
    pub started: Instant,
    pub sandbox: &'static str,
    /// What approving does to an item's branch (git worktree mode).
    pub approval: crate::dispatch::approval::Approval,
    /// Permission requests of ACP agents waiting for a person, and the sessions that take
    /// follow-up messages.
    pub desk: crate::dispatch::acp::Desk,
    /// How agents' output is parsed, for the log viewer's parsed view.
    pub preset: crate::config::Preset,
    /// How long a WebSocket client may answer no ping.
    pub websocket_silence: std::time::Duration,
}

/// Registers every route under `/api`, plus `/healthz`, `/readyz`, `/metrics` and `/ws`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request(format!("path: {e}")).into()),
    )
    .service(resource("/healthz", "GET").get(status::healthz))
    .service(resource("/readyz", "GET").get(status::readyz))
    .service(
        resource("/metrics", "GET")
            .wrap(middleware::from_fn(metrics::guard))
            .get(metrics::scrape),
    )
    .service(
        resource("/ws", "GET")
            .wrap(middleware::from_fn(auth::guard_socket))
            .get(events::websocket),
    )
    .configure(crate::static_files::api_docs)
    .service(
        // Before `/api`: a runner token passes this guard, and only this one.
        web::scope("/api/runners")
            .wrap(middleware::from_fn(csrf::require_api_client))
            .wrap(middleware::from_fn(auth::require_runner_or_admin))
            .service(resource("", "GET").get(runners::list))
            .service(resource("/register", "POST").post(runners::register))
            .service(resource("/{id}/claim", "POST").post(runners::claim))
            .service(resource("/{id}/heartbeat", "POST").post(runners::heartbeat))
            .service(resource("/{id}/drain", "POST").post(runners::drain))
            .service(resource("/{id}/items/{item}/reports", "POST").post(runners::reports))
            .service(resource("/{id}/items/{item}/files", "PUT").put(runners::upload_file))
            .service(resource("/{id}/items/{item}/diff", "PUT").put(runners::upload_diff))
            .service(resource("/{id}/items/{item}/complete", "POST").post(runners::complete))
            .service(resource("/{id}/items/{item}/fail", "POST").post(runners::fail))
            .default_service(web::to(not_found)),
    )
    .service(
        web::scope("/api")
            // The last wrap runs first: the token, then the CSRF rule.
            .wrap(middleware::from_fn(csrf::require_api_client))
            .wrap(middleware::from_fn(auth::require_token))
            .service(resource("/status", "GET").get(status::status))
            .service(resource("/openapi.json", "GET").get(openapi::document))
            .service(resource("/events", "GET").get(events::list))
            .service(resource("/claim", "POST").post(items::claim))
            .service(resource("/dispatch", "POST").post(agents::dispatch))
            .service(
                resource("/pool", "GET, PUT")
                    .get(agents::pool)
                    .put(agents::resize),
            )
            .service(resource("/budgets", "PUT").put(budgets::update))
            .service(resource("/agents", "GET").get(agents::list))
            .service(resource("/agents/{id}", "GET").get(agents::get))
            .service(resource("/agents/{id}/cancel", "POST").post(agents::cancel))
            .service(
                resource("/items", "GET, POST")
                    .get(items::list)
                    .post(items::create),
            )
            .service(
                resource("/items/{id}", "GET, PATCH, DELETE")
                    .get(items::get)
                    .patch(items::update)
                    .delete(items::delete),
            )
            .service(resource("/items/{id}/move", "POST").post(items::move_item))
            .service(resource("/items/{id}/complete", "POST").post(items::complete))
            .service(resource("/items/{id}/artifacts", "POST").post(items::add_artifact))
            .service(
                resource("/items/{id}/artifacts/{artifact}", "GET").get(items::download_artifact),
            )
            .service(resource("/items/{id}/history", "GET").get(items::history))
            .service(resource("/items/{id}/messages", "POST").post(approvals::say))
            .service(resource("/approvals", "GET").get(approvals::list))
            .service(resource("/approvals/{id}", "POST").post(approvals::decide))
            .service(resource("/items/{id}/log", "GET").get(items::log))
            .service(resource("/items/{id}/transcript", "GET").get(transcript::window))
            .service(resource("/items/{id}/transcript/search", "GET").get(transcript::search))
            .service(resource("/items/{id}/diff", "GET").get(items::diff))
            .service(
                resource("/runner-tokens", "GET, POST")
                    .get(runners::list_tokens)
                    .post(runners::create_token),
            )
            .service(resource("/runner-tokens/{id}", "DELETE").delete(runners::revoke_token))
            .service(resource("/webhooks/deliveries", "GET").get(webhooks::deliveries))
            .service(
                resource("/webhooks/deliveries/{id}/redeliver", "POST").post(webhooks::redeliver),
            )
            .default_service(web::to(not_found)),
    );
}

/// A route whose other methods are answered 405 with an `Allow` header naming `allow`.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: actix_web::HttpRequest| async move {
        use actix_web::ResponseError;
        let mut response = ApiError::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} is not allowed on {}; use {allow}",
                req.method(),
                req.path()
            ),
        )
        .error_response();
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        response
    }))
}

pub async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::not_found(format!("no route {} {}", req.method(), req.path())).error_response()
}
