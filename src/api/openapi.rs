//! The OpenAPI 3.1 document of the whole HTTP API, served at `/api/openapi.json`. It is
//! generated from the handlers' own annotations and the types they read and write, so it
//! cannot drift from them; CI fuzzes the server against it, validates it, and generates and
//! runs Python and TypeScript clients from it (tests/clients/).
//!
//! The error answers every route shares (bad input, no token, unknown id, a body that is not
//! JSON or too big, a store that cannot write) are declared once here, as named responses,
//! and added to each operation by one rule ([`SharedErrors`]); a handler's annotation names
//! only what is particular to it. `info.version` is the crate's version: see
//! docs/API_COMPATIBILITY.md for what a version change promises.

use super::{
    agents, approvals, budgets, events, items, runners, status, transcript, webhooks, ErrorBody,
    MAX_BODY,
};
use crate::model::{AcceptanceEntry, AcceptanceReport, ArtifactInput};
use actix_web::HttpResponse;
use serde_json::json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flightdeck",
        version = env!("CARGO_PKG_VERSION"),
        description = "A self-hosted orchestrator for AI coding agents: work queue, agent pool and events. \
Every /api route needs the server's token as `Authorization: Bearer <token>`; every request that \
changes state needs `Content-Type: application/json` (or `X-Flightdeck: 1`). Errors are \
`{\"error\":{\"code\",\"message\",\"field\"}}`. Clients must ignore fields they do not know: \
see docs/API_COMPATIBILITY.md."
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
        items::diff,
        items::history,
        items::log,
        transcript::window,
        transcript::search,
        agents::list,
        agents::get,
        agents::cancel,
        agents::pool,
        agents::resize,
        agents::dispatch,
        budgets::update,
        webhooks::deliveries,
        webhooks::redeliver,
        runners::register,
        runners::claim,
        runners::heartbeat,
        runners::reports,
        runners::upload_file,
        runners::upload_diff,
        runners::complete,
        runners::fail,
        runners::list,
        runners::drain,
        runners::create_token,
        runners::list_tokens,
        runners::revoke_token,
        approvals::list,
        approvals::decide,
        approvals::say,
    ),
    components(schemas(
        ErrorBody,
        ArtifactInput,
        AcceptanceEntry,
        AcceptanceReport,
        transcript::View
    )),
    modifiers(&BearerAuth, &SharedErrors),
    security(("bearer" = [])),
    tags(
        (name = "items", description = "The work queue"),
        (name = "agents", description = "Agent sessions and the pool"),
        (name = "events", description = "The event log"),
        (name = "status", description = "Health and counts"),
        (name = "webhooks", description = "The webhook delivery log"),
        (name = "runners", description = "Runners on other machines: leases, reports, tokens"),
        (name = "approvals", description = "People in the loop of running ACP agents"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer token scheme (the token in `{data_dir}/token` or `server.token`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "The server's API token: `{data_dir}/token`, or `server.token`",
                        ))
                        .build(),
                ),
            );
        }
    }
}

/// One error answer that many operations share: its status, component name, description and
/// an example body.
struct SharedError {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    code: &'static str,
    message: &'static str,
    field: Option<&'static str>,
}

/// Which operations get a shared error answer.
#[derive(PartialEq)]
enum Applies {
    /// Every `/api` operation.
    Api,
    /// Operations whose path names an item, artifact or session.
    NamedResource,
    /// Operations that change state (every method but GET).
    Write,
    /// Operations that read a request body.
    WithBody,
}

// The 413 answer below names the limit in words; change both together.
const _: () = assert!(MAX_BODY == 1 << 20, "the 413 description names 1 MiB");

const SHARED_ERRORS: &[(Applies, SharedError)] = &[
    (
        Applies::Api,
        SharedError {
            status: "400",
            name: "BadRequest",
            description: "Bad input: the message says what is wrong and `field` names the field or parameter",
            code: "invalid",
            message: "title must be 1 to 200 characters",
            field: Some("title"),
        },
    ),
    (
        Applies::Api,
        SharedError {
            status: "401",
            name: "Unauthorized",
            description: "The API token is missing or wrong",
            code: "unauthorized",
            message: "this server needs its API token: Authorization: Bearer <token>",
            field: None,
        },
    ),
    (
        Applies::NamedResource,
        SharedError {
            status: "404",
            name: "NotFound",
            description: "No such item or session (or no artifact of that id on the item)",
            code: "not_found",
            message: "item 3f2a not found",
            field: None,
        },
    ),
    (
        Applies::WithBody,
        SharedError {
            status: "413",
            name: "PayloadTooLarge",
            description: "The body is over the size limit (1 MiB)",
            code: "payload_too_large",
            message: "the body is over 1048576 bytes",
            field: None,
        },
    ),
    (
        Applies::Write,
        SharedError {
            status: "415",
            name: "UnsupportedMediaType",
            description: "A request that changes state must say `Content-Type: application/json` (or `X-Flightdeck: 1`)",
            code: "unsupported_media_type",
            message: "send the body as JSON: Content-Type: application/json",
            field: None,
        },
    ),
    (
        Applies::Api,
        SharedError {
            status: "503",
            name: "Unavailable",
            description: "The store cannot take writes (a full or read-only disk), or the server is stopping",
            code: "unavailable",
            message: "the store cannot write: No space left on device",
            field: None,
        },
    ),
];

impl SharedError {
    fn response(&self) -> Response {
        ResponseBuilder::new()
            .description(self.description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .example(Some(json!({
                        "error": {"code": self.code, "message": self.message, "field": self.field}
                    })))
                    .build(),
            )
            .build()
    }
}

/// Declares [`SHARED_ERRORS`] under `components.responses` and refers each operation to the
/// ones that apply to it, unless its own annotation already describes that status.
struct SharedErrors;

impl utoipa::Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            for (_, error) in SHARED_ERRORS {
                components
                    .responses
                    .insert(error.name.to_string(), RefOr::T(error.response()));
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let named = path.contains('{');
            let reads = [&mut item.get].into_iter().flatten();
            let writes = [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten();
            for (write, operation) in reads.map(|o| (false, o)).chain(writes.map(|o| (true, o))) {
                let with_body = operation.request_body.is_some();
                for (applies, error) in SHARED_ERRORS {
                    let wanted = match applies {
                        Applies::Api => true,
                        Applies::NamedResource => named,
                        Applies::Write => write,
                        Applies::WithBody => with_body,
                    };
                    if wanted {
                        refer(operation, error);
                    }
                }
            }
        }
    }
}

fn refer(operation: &mut Operation, error: &SharedError) {
    operation
        .responses
        .responses
        .entry(error.status.to_string())
        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(error.name)));
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::ApiDoc;
    use serde_json::Value;
    use utoipa::OpenApi;

    /// Every `$ref` in `value`, with where it was found.
    fn references(value: &Value, at: String, found: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if key == "$ref" {
                        if let Some(target) = inner.as_str() {
                            found.push((at.clone(), target.to_string()));
                        }
                    } else {
                        references(inner, format!("{at}/{key}"), found);
                    }
                }
            }
            Value::Array(list) => {
                for (n, inner) in list.iter().enumerate() {
                    references(inner, format!("{at}/{n}"), found);
                }
            }
            _ => {}
        }
    }

    /// A parameter or body whose type is named but not declared under `components` is skipped
    /// by fuzzers and generated clients alike, so every reference must land on something.
    #[test]
    fn every_reference_in_the_document_resolves() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
        let mut found = Vec::new();
        references(&document, String::new(), &mut found);
        assert!(!found.is_empty(), "the document refers to its components");
        let dangling: Vec<String> = found
            .into_iter()
            .filter(|(_, target)| {
                let pointer = target.strip_prefix('#').unwrap_or(target);
                document.pointer(pointer).is_none()
            })
            .map(|(at, target)| format!("{at} -> {target}"))
            .collect();
        assert!(dangling.is_empty(), "unresolved references: {dangling:?}");
    }
}
