//! The board's files and the API's interactive docs, built into the binary so
//! `flightdeck serve` needs nothing beside it.
//!
//! Both are served without the token: they are code only (HTML, scripts, styles) and hold no
//! data. Everything they show comes from `/api`, which needs the token: the board and the docs
//! page send the one kept in the browser's localStorage.

use actix_web::{web, HttpResponse};

/// A file: its name in the URL, its media type, its content.
type File = (&'static str, &'static str, &'static str);

/// Everything under static/ but the API docs (index.html, style.css, the ES modules under
/// js/), listed by build.rs.
const BOARD: &[File] = include!(concat!(env!("OUT_DIR"), "/board_files.rs"));

/// Swagger UI (vendored from npm's swagger-ui-dist: see static/api-docs/README.md) on
/// `/api/openapi.json`.
const API_DOCS: &[File] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../static/api-docs/index.html"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/api-docs/init.js"),
    ),
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/api-docs/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_str!("../static/api-docs/swagger-ui.css"),
    ),
];

/// `name` from `files` (`index.html` for the empty name), or a plain 404.
fn answer(files: &[File], name: &str, prefix: &str) -> HttpResponse {
    let name = if name.is_empty() { "index.html" } else { name };
    match files.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => HttpResponse::Ok()
            .content_type(*mime)
            .insert_header(("Cache-Control", "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no such file: {prefix}{name}\n")),
    }
}

async fn board_file(path: web::Path<String>) -> HttpResponse {
    answer(BOARD, &path.into_inner(), "/")
}

async fn docs_file(path: web::Path<String>) -> HttpResponse {
    answer(API_DOCS, &path.into_inner(), "/api/docs/")
}

async fn docs_page() -> HttpResponse {
    answer(API_DOCS, "", "/api/docs/")
}

/// `/` and `/{file}` for the board's files.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/{file:.*}", web::get().to(board_file));
}

/// `/api/docs` and its assets. Registered before the `/api` scope, so the scope's token
/// check never sees them.
pub fn api_docs(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/docs", web::get().to(docs_page))
        .route("/api/docs/", web::get().to(docs_page))
        .route("/api/docs/{file}", web::get().to(docs_file));
}
