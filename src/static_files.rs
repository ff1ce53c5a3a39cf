//! The board's files, built into the binary so `flightdeck serve` needs nothing beside it.

use actix_web::{web, HttpResponse};

const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../static/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../static/style.css"),
    ),
];

async fn serve_file(path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    let name = if name.is_empty() {
        "index.html"
    } else {
        name.as_str()
    };
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => HttpResponse::Ok()
            .content_type(*mime)
            .insert_header(("Cache-Control", "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no such file: /{name}\n")),
    }
}

/// `/` and `/{file}` for the board's files.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/{file:.*}", web::get().to(serve_file));
}
