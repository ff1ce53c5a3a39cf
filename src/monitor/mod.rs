//! Live events: the Monitor actor fans every committed event out to its subscribers (the
//! board's WebSocket sessions, and the Dispatcher), and keeps a journal of recent events so a
//! subscriber can start from any `seq` it saw last. The memory this takes is bounded in total:
//! the journal by [`REPLAY_BYTES`], what clients have not read yet by [`SEND_BUDGET`].

mod hub;
mod journal;
mod ws_session;

pub use hub::{Deliver, GetMonitorStats, Monitor, MonitorStats, Publish, Subscribe, SEND_BUDGET};
pub use journal::{REPLAY_BYTES, REPLAY_WINDOW};
pub use ws_session::{WsSession, MAX_FRAME};
