//! The JSON HTTP API and the routes of the board and the WebSocket, by resource. Handlers
//! parse, ask an actor by message, and answer; they hold no state of their own.

mod agents;
mod auth;
mod body;
mod error;
mod events;
mod items;
mod openapi;
mod status;

pub use auth::{guard, TokenGuard};
pub use body::{parse as parse_json, Json, MAX_BODY};
pub use error::{ApiError, ErrorBody};
pub use openapi::ApiDoc;

use crate::dispatch::Dispatcher;
use crate::monitor::Monitor;
use crate::queue::QueueManager;
use actix::Addr;
use actix_web::web;
use std::path::PathBuf;
use std::time::Instant;

/// What every handler may reach.
pub struct AppState {
    pub queue: Addr<QueueManager>,
    pub dispatcher: Addr<Dispatcher>,
    pub monitor: Addr<Monitor>,
    pub data_dir: PathBuf,
    pub started: Instant,
    pub sandbox: &'static str,
}

/// Registers every route under `/api`, plus `/healthz` and `/ws`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::bad_request(format!("query string: {e}")).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request(format!("path: {e}")).into()),
    )
    .route("/healthz", web::get().to(status::healthz))
    .route("/ws", web::get().to(events::websocket))
    .service(
        web::scope("/api")
            .route("/status", web::get().to(status::status))
            .route("/openapi.json", web::get().to(openapi::document))
            .route("/events", web::get().to(events::list))
            .route("/claim", web::post().to(items::claim))
            .route("/dispatch", web::post().to(agents::dispatch))
            .service(web::resource("/pool").get(agents::pool).put(agents::resize))
            .route("/agents", web::get().to(agents::list))
            .route("/agents/{id}", web::get().to(agents::get))
            .route("/agents/{id}/cancel", web::post().to(agents::cancel))
            .service(web::resource("/items").get(items::list).post(items::create))
            .service(
                web::resource("/items/{id}")
                    .get(items::get)
                    .patch(items::update)
                    .delete(items::delete),
            )
            .route("/items/{id}/move", web::post().to(items::move_item))
            .route("/items/{id}/complete", web::post().to(items::complete))
            .route("/items/{id}/artifacts", web::post().to(items::add_artifact))
            .route(
                "/items/{id}/artifacts/{artifact}",
                web::get().to(items::download_artifact),
            )
            .route("/items/{id}/history", web::get().to(items::history))
            .route("/items/{id}/log", web::get().to(items::log))
            .default_service(web::to(not_found)),
    );
}

pub async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::not_found(format!("no route {} {}", req.method(), req.path())).error_response()
}
