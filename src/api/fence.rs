//! The HTTP side of `dispatch::api_fence`: each accepted connection is checked once, as it
//! is set up, and every request on a refused one is answered 403 with the reason, before any
//! route, token check or body is looked at. A connection an agent made is also shut down at
//! once, both ways: the agent gets no answer at all (as under Landlock's port rules), and it
//! cannot hold the server's descriptors by opening connections and sending nothing.

use super::ApiError;
use crate::dispatch::api_fence::{ApiFence, Refusal};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use std::any::Any;
use std::os::fd::AsRawFd;

/// The mark of a refused connection, kept with it.
struct Refused(Refusal);

/// Checks a connection just accepted (actix's `on_connect`); marks it when it is refused.
/// A connection that is not plain TCP cannot be checked, so it is refused too.
pub fn on_connect(fence: &ApiFence, conn: &dyn Any, ext: &mut Extensions) {
    let stream = conn.downcast_ref::<actix_web::rt::net::TcpStream>();
    let checked = match stream {
        None => Err(Refusal::Unknown("it is not a TCP connection".into())),
        Some(stream) => match (stream.peer_addr(), stream.local_addr()) {
            (Ok(client), Ok(server)) => fence.check(client, server),
            (Err(e), _) | (_, Err(e)) => Err(Refusal::Unknown(e.to_string())),
        },
    };
    if let Err(refusal) = checked {
        if let (Refusal::Agent(_), Some(stream)) = (&refusal, stream) {
            // SAFETY: shutdown(2) on the connection's own descriptor, which stays open (actix
            // closes it once it reads the end). A request already received may still be read:
            // the mark below answers it.
            unsafe {
                libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR);
            }
        }
        ext.insert(Refused(refusal));
    }
}

/// Answers every request on a refused connection with 403 and the reason.
pub async fn refuse_agents(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(Refused(refusal)) = req.conn_data::<Refused>() {
        let err = ApiError::new(
            StatusCode::FORBIDDEN,
            "agent_connection",
            refusal.sentence(),
        );
        return Ok(req.error_response(err).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
