//! Live events: the Monitor actor fans every committed event out to its subscribers (the
//! board's WebSocket sessions, and the Dispatcher), and keeps a window of recent events so a
//! subscriber can start from any `seq` it saw last.

mod hub;
mod ws_session;

pub use hub::{
    Deliver, GetMonitorStats, Kick, Monitor, MonitorStats, Publish, Subscribe, Unsubscribe,
    REPLAY_WINDOW,
};
pub use ws_session::{WsSession, MAX_FRAME};
