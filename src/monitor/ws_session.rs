//! One WebSocket session per browser (or tool) on `/ws`: subscribes to the Monitor from the
//! `since` it was opened with and writes every event as a JSON text frame.
//!
//! Liveness and backpressure ride on WebSocket ping/pong: a ping goes out every few seconds,
//! and after every [`PING_EVERY_BYTES`] of events. A pong tells how far the client has read
//! (a ping is answered only after everything before it), so a client that has left more than
//! [`UNREAD_LIMIT`] bytes unread, or that answered nothing for [`CLIENT_TIMEOUT`], is dropped
//! instead of being buffered without bound.

use super::hub::{Deliver, Kick, Monitor, Subscribe, Unsubscribe};
use actix::prelude::*;
use actix_web_actors::ws;
use std::time::{Duration, Instant};

pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
pub const PING_EVERY_BYTES: u64 = 1 << 20;
pub const UNREAD_LIMIT: u64 = 8 << 20;
/// Largest frame a client may send.
pub const MAX_FRAME: usize = 64 << 10;
/// Event batches a session may have waiting before the Monitor calls it too slow.
const MAILBOX: usize = 1024;

pub struct WsSession {
    monitor: Addr<Monitor>,
    since: Option<u64>,
    subscription: Option<u64>,
    last_heard: Instant,
    /// Bytes written so far, and so far at the last ping sent and the last ping answered.
    written: u64,
    written_at_ping: u64,
    acknowledged: u64,
}

impl WsSession {
    pub fn new(monitor: Addr<Monitor>, since: Option<u64>) -> Self {
        WsSession {
            monitor,
            since,
            subscription: None,
            last_heard: Instant::now(),
            written: 0,
            written_at_ping: 0,
            acknowledged: 0,
        }
    }

    fn ping(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.written_at_ping = self.written;
        ctx.ping(self.written.to_string().as_bytes());
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if act.last_heard.elapsed() > CLIENT_TIMEOUT {
                log::info!("WebSocket client silent for {CLIENT_TIMEOUT:?}; closing");
                ctx.stop();
                return;
            }
            act.ping(ctx);
        });
        let addr = ctx.address();
        self.monitor
            .send(Subscribe {
                since: self.since,
                deliver: addr.clone().recipient(),
                kick: Some(addr.recipient()),
            })
            .into_actor(self)
            .then(|id, act, ctx| {
                match id {
                    Ok(id) => act.subscription = Some(id),
                    Err(_) => ctx.stop(),
                }
                fut::ready(())
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(id) = self.subscription {
            self.monitor.do_send(Unsubscribe(id));
        }
    }
}

impl Handler<Deliver> for WsSession {
    type Result = ();

    fn handle(&mut self, m: Deliver, ctx: &mut Self::Context) {
        if m.gap {
            let notice = serde_json::json!({"type": "monitor:gap", "seq": null}).to_string();
            self.written += notice.len() as u64;
            ctx.text(notice);
        }
        for shared in m.events.iter() {
            self.written += shared.json.len() as u64;
            ctx.text(shared.json.clone());
        }
        if self.written - self.acknowledged > UNREAD_LIMIT {
            log::warn!("WebSocket client left {UNREAD_LIMIT} bytes unread; dropping it");
            ctx.close(Some(ws::CloseReason {
                code: ws::CloseCode::Policy,
                description: Some("too slow: reconnect with ?since=".into()),
            }));
            ctx.stop();
        } else if self.written - self.written_at_ping > PING_EVERY_BYTES {
            self.ping(ctx);
        }
    }
}

impl Handler<Kick> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Kick, ctx: &mut Self::Context) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some("too slow: reconnect with ?since=".into()),
        }));
        ctx.stop();
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
                }
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
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
