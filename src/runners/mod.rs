//! Runners: `flightdeck runner` processes on other machines that pull work from the server
//! over HTTP under leases (see `queue/leases.rs` for the rules), run it with the same
//! session, workspace, sandbox, presets and verify as the server's own pool, and report back.

pub mod agent;
mod config;
pub mod http;
mod model;
pub mod ready;
pub mod reporter;
pub mod session_log;
pub mod tokens;

pub use config::{RunnerSettings, RunnersConfig};
pub use model::*;
