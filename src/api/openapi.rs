//! The OpenAPI 3 document of the whole HTTP API, served at `/api/openapi.json`. It is
//! generated from the handlers' own annotations and the types they read and write, so it
//! cannot drift from them; CI fuzzes the server against it.

use super::{agents, events, items, status, webhooks, ErrorBody};
use actix_web::HttpResponse;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flightdeck",
        description = "A self-hosted orchestrator for AI coding agents: work queue, agent pool and events."
    ),
    paths(
        status::healthz,
        status::readyz,
        status::status,
        events::list,
        items::list,
        items::create,
        items::get,
        items::update,
        items::delete,
        items::move_item,
        items::claim,
        items::complete,
        items::add_artifact,
        items::download_artifact,
        items::history,
        items::log,
        agents::list,
        agents::get,
        agents::cancel,
        agents::pool,
        agents::resize,
        agents::dispatch,
        webhooks::deliveries,
        webhooks::redeliver,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "items", description = "The work queue"),
        (name = "agents", description = "Agent sessions and the pool"),
        (name = "events", description = "The event log"),
        (name = "status", description = "Health and counts"),
        (name = "webhooks", description = "The webhook delivery log"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer token scheme `server.token` enables.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
