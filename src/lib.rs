//! flightdeck: a self-hosted orchestrator for AI coding agents. People put work items on a
//! queue; a dispatcher hands the highest-priority ready item to a pool of agent sessions, each
//! a real child process in its own workspace; a live kanban board shows it all.
//!
//! [`server::serve`] builds the whole application from a [`config::Config`]; `main` and the
//! integration tests both go through it (the tests by running the binary).

pub mod api;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod doctor;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod queue;
pub mod runners;
pub mod sandbox;
pub mod server;
mod static_files;
pub mod token;
pub mod webhooks;

/// Mailbox size of the long-lived actors: senders that await wait past this; `do_send` and
/// internal notifications are not limited by it.
pub const MAILBOX: usize = 1 << 16;
