//! One WebSocket session per browser (or tool) on `/ws`: reads the Monitor's journal from the
//! `since` it was opened with and writes every event as a JSON text frame.
//!
//! It writes no further ahead of its client than [`WINDOW`] bytes. How far the client has
//! read comes back on WebSocket ping/pong: a ping goes out after every [`PING_EVERY_BYTES`]
//! written (and every few seconds), carrying the count written so far, and a client answers a
//! ping only after reading everything before it. So a client that stops reading holds at most
//! a window of the server's memory, and one that falls so far behind that the journal no
//! longer has its next event is dropped, as is one that answers nothing for
//! `server.websocket_silence_secs`. The Monitor may also drop it when all clients together leave too much
//! unread (see `hub.rs`). A dropped client is told why in the close reason.

use super::hub::{Dropped, Monitor, SharedJournal, Tap, Unwatch, Wake, Watch};
use super::journal::REPLAY_BYTES;
use actix::prelude::*;
use actix_web_actors::ws;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Most bytes written to a client and not yet acknowledged by it.
pub const WINDOW: u64 = 256 << 10;
pub const PING_EVERY_BYTES: u64 = WINDOW / 4;
/// Largest frame a client may send.
pub const MAX_FRAME: usize = 64 << 10;
/// After the server closes, how long the client has to read up to the close frame and answer
/// it before the connection goes regardless.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why a client that answered no ping for `server.websocket_silence_secs` is dropped.
const SILENT: &str = "no answer to pings for too long; reconnect with ?since=";
/// Why a client that fell out of the journal is dropped (a WebSocket close reason: short).
const FELL_BEHIND: &str =
    "too slow: fell behind the server's replay window; reconnect with ?since=";

pub struct WsSession {
    monitor: Addr<Monitor>,
    since: Option<u64>,
    tap: Arc<Tap>,
    /// The subscription, once the Monitor has answered.
    watch: Option<(u64, SharedJournal)>,
    /// The `seq` of the last event written.
    position: u64,
    last_heard: Instant,
    /// How long the client may answer no ping (`server.websocket_silence_secs`).
    silence: Duration,
    /// Bytes of events written so far, and so far at the last ping sent and the last ping
    /// answered.
    written: u64,
    written_at_ping: u64,
    acknowledged: u64,
    /// The server sent its close frame: nothing more is written.
    closing: bool,
}

impl WsSession {
    pub fn new(monitor: Addr<Monitor>, since: Option<u64>, silence: Duration) -> Self {
        WsSession {
            monitor,
            since,
            silence,
            tap: Arc::new(Tap::default()),
            watch: None,
            position: 0,
            last_heard: Instant::now(),
            written: 0,
            written_at_ping: 0,
            acknowledged: 0,
            closing: false,
        }
    }

    fn ping(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.written_at_ping = self.written;
        ctx.ping(self.written.to_string().as_bytes());
    }

    /// Writes what the journal has after `position`, up to the window.
    fn pump(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some((_, journal)) = self.watch.clone().filter(|_| !self.closing) else {
            return;
        };
        loop {
            let unacknowledged = self.written - self.acknowledged;
            if unacknowledged >= WINDOW {
                return;
            }
            let (read, newest) = {
                let journal = journal.read().unwrap_or_else(|e| e.into_inner());
                let room = (WINDOW - unacknowledged) as usize;
                (
                    journal.read_after(self.position, room, unacknowledged == 0),
                    journal.last_seq(),
                )
            };
            let Ok(events) = read else {
                log::info!(
                    "a WebSocket client fell more than {} MiB behind; dropping it",
                    REPLAY_BYTES >> 20
                );
                self.drop_client(ctx, FELL_BEHIND);
                return;
            };
            if events.is_empty() {
                if newest > self.position {
                    // The next event does not fit in the window: a pong will make room.
                    return;
                }
                // Wait for a Wake; but an event may have come since the read.
                self.tap.waiting.store(true, Ordering::SeqCst);
                let newest = journal.read().unwrap_or_else(|e| e.into_inner()).last_seq();
                if newest <= self.position || !self.tap.waiting.swap(false, Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            for shared in &events {
                self.written += shared.json.len() as u64;
                self.position = shared.event.seq;
                ctx.text(shared.json.clone());
            }
            self.tap
                .unacknowledged
                .store(self.written - self.acknowledged, Ordering::Release);
            self.tap.position.store(self.position, Ordering::Release);
            if self.written - self.written_at_ping >= PING_EVERY_BYTES {
                self.ping(ctx);
            }
        }
    }

    /// Closes with `why` as the reason. The client gets [`CLOSE_GRACE`] to read what was
    /// written before it and answer, so the reason reaches it rather than a reset connection.
    fn drop_client(&mut self, ctx: &mut ws::WebsocketContext<Self>, why: &'static str) {
        if self.closing {
            return;
        }
        self.closing = true;
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some(why.into()),
        }));
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if act.last_heard.elapsed() > act.silence {
                log::info!("WebSocket client silent for {:?}; closing", act.silence);
                act.drop_client(ctx, SILENT);
                return;
            }
            act.ping(ctx);
        });
        let addr = ctx.address();
        self.monitor
            .send(Watch {
                since: self.since,
                tap: self.tap.clone(),
                wake: addr.clone().recipient(),
                drop: addr.recipient(),
            })
            .into_actor(self)
            .then(|watching, act, ctx| {
                match watching {
                    Ok(w) => {
                        if w.gap {
                            let notice =
                                serde_json::json!({"type": "monitor:gap", "seq": null}).to_string();
                            ctx.text(notice);
                        }
                        act.position = w.after;
                        act.watch = Some((w.id, w.journal));
                        act.pump(ctx);
                    }
                    Err(_) => ctx.stop(),
                }
                fut::ready(())
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some((id, _)) = self.watch {
            self.monitor.do_send(Unwatch(id));
        }
    }
}

impl Handler<Wake> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.pump(ctx);
    }
}

impl Handler<Dropped> for WsSession {
    type Result = ();

    fn handle(&mut self, Dropped(why): Dropped, ctx: &mut Self::Context) {
        self.drop_client(ctx, why);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(payload)) => {
                if let Some(n) = std::str::from_utf8(&payload)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    self.acknowledged = self.acknowledged.max(n.min(self.written));
                    self.tap
                        .unacknowledged
                        .store(self.written - self.acknowledged, Ordering::Release);
                    self.pump(ctx);
                }
            }
            Ok(ws::Message::Close(reason)) => {
                if !self.closing {
                    ctx.close(reason);
                }
                ctx.stop();
            }
            Ok(_) => {}
            Err(e) => {
                log::info!("WebSocket protocol error: {e}");
                ctx.stop();
            }
        }
    }
}
