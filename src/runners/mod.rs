//! Runners: `flightdeck runner` processes on other machines that pull work from the server
//! over HTTP under leases (see `queue/leases.rs` for the rules), run it with the same
//! session, workspace, sandbox, presets and verify as the server's own pool, and report back.

mod config;
mod model;
pub mod tokens;
pub mod http;
pub mod reporter;
pub mod agent;

pub use config::{RunnerSettings, RunnersConfig};
pub use model::*;
