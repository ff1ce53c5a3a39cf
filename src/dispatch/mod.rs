//! Running agents: the Dispatcher keeps the pool full, each AgentSession runs one agent as a
//! child process in its own workspace, and the parsers read what agents print.

pub mod approval;
mod artifacts;
mod cgroup;
mod deliverable;
pub mod demo_agent;
pub mod diff;
mod dispatcher;
mod git;
pub mod launcher;
pub mod parsers;
pub mod process;
mod reaper;
mod session;
pub mod session_files;
mod workspace;

pub use dispatcher::{
    CancelItem, CancelSession, DispatchNow, Dispatcher, GetPool, PoolInfo, Resize, ShutdownPool,
};
pub use session::AgentSettings;
