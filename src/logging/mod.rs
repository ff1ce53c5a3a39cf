//! The server's own log lines on stderr, as text for people or one JSON object per line for
//! tools (`log.format`). A line written while an HTTP request is being handled carries that
//! request's id (see `request_id.rs`), so every line about one request can be found by it.
//! `RUST_LOG` sets the level as before (default `info`).

mod request_id;

pub use request_id::{access_log, current_request_id, REQUEST_ID_HEADER};

use crate::config::LogFormat;
use std::io::Write;

/// Installs the logger; call once, before anything logs.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // ureq logs whole URLs at debug level, and a webhook URL's path may hold its token.
    builder.filter_module("ureq", log::LevelFilter::Info);
    match format {
        LogFormat::Text => builder.format(|buf, record| {
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            write!(
                buf,
                "[{ts} {:<5} {}] {}",
                record.level(),
                record.target(),
                record.args()
            )?;
            if let Some(id) = current_request_id() {
                write!(buf, " request_id={id}")?;
            }
            writeln!(buf)
        }),
        LogFormat::Json => builder.format(|buf, record| {
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let mut line = serde_json::json!({
                "ts": ts,
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            if let Some(id) = current_request_id() {
                line["request_id"] = serde_json::Value::String(id.to_string());
            }
            writeln!(buf, "{line}")
        }),
    };
    builder.init();
}
