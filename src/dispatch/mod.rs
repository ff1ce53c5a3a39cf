//! Running agents: the Dispatcher keeps the pool full, each AgentSession runs one agent as a
//! child process in its own workspace, and the parsers read what agents print.

pub mod acp;
pub mod api_fence;
pub mod approval;
mod artifacts;
pub mod budget;
mod cgroup;
mod deliverable;
pub mod demo_agent;
pub mod diff;
mod dispatcher;
mod error;
mod git;
mod launch_client;
pub mod launch_server;
mod launch_wire;
pub mod launcher;
pub mod log_lines;
pub mod parsers;
mod preparer;
pub mod presets;
pub mod process;
mod reaper;
pub mod recap;
pub mod reporter;
pub mod session;
pub mod session_files;
pub mod settings;
mod snapshot;
mod socket_cgroup;
mod stderr;
mod verdict;
pub mod workspace;

pub use dispatcher::{
    CancelItem, CancelSession, DispatchNow, Dispatcher, GetPool, PoolInfo, PoolPause, Resize,
    SetDailyBudget, ShutdownPool,
};
pub use error::DispatchError;
pub use session::AgentSettings;
