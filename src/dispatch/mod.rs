//! Running agents: the Dispatcher keeps the pool full, each AgentSession runs one agent as a
//! child process in its own workspace, and the parsers read what agents print.

mod artifacts;
mod cgroup;
pub mod demo_agent;
mod dispatcher;
pub mod launcher;
pub mod parsers;
pub mod presets;
pub mod process;
mod reaper;
mod session;
pub mod session_files;
mod workspace;

pub use dispatcher::{
    CancelItem, CancelSession, DispatchNow, Dispatcher, GetPool, PoolInfo, Resize, ShutdownPool,
};
pub use session::AgentSettings;
