//! Which cgroup made the other end of a TCP connection, when that end is on this machine.
//!
//! The kernel records in every socket the cgroup (cgroup2) of the process that made it, and
//! answers a `sock_diag` netlink query for one socket, found by its four addresses, with
//! that cgroup's id (`INET_DIAG_CGROUP_ID`, Linux 5.10 and later). The server asks it of
//! the client end of each connection it accepts (see `api_fence`): a client on another
//! machine is not found, one on this machine is, with its cgroup. No privilege is needed;
//! `ss --cgroup` asks the same.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const INET_DIAG_CGROUP_ID: u16 = 21;
/// `inet_diag_sockid.idiag_cookie` meaning "any socket with these addresses".
const NO_COOKIE: u32 = !0;
/// Bytes of `nlmsghdr`, `inet_diag_req_v2` and `inet_diag_msg`.
const HEADER: usize = 16;
const REQUEST: usize = 56;
const MESSAGE: usize = 72;
/// The kernel answers at once; this only bounds a wait that should never happen.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// The cgroup id of the socket on this machine whose own address is `client` and whose
/// peer is `server` (the client end of a connection the server accepted): `None` when no
/// such socket is here (a client on another machine, or one already closed).
pub fn of_client(client: SocketAddr, server: SocketAddr) -> io::Result<Option<u64>> {
    let request = request(client, server)?;
    // SAFETY: socket(2) with constant arguments; the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just made and nobody else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let wait = libc::timeval {
        tv_sec: ANSWER_WAIT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: setsockopt reads a timeval of the given size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&wait as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    // SAFETY: a zeroed sockaddr_nl with its family set addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: sendto reads `request` and the address, both of the given sizes.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut answer = [0u8; 1024];
    // SAFETY: recv writes at most answer.len() bytes into it.
    let got = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            answer.as_mut_ptr().cast(),
            answer.len(),
            0,
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    parse(&answer[..got as usize])
}

/// The query for one TCP socket, `own` being its own address and `peer` the other end's.
fn request(own: SocketAddr, peer: SocketAddr) -> io::Result<Vec<u8>> {
    // A dual-stack listener sees an IPv4 client as an IPv4-mapped IPv6 address.
    let (own_ip, peer_ip) = (own.ip().to_canonical(), peer.ip().to_canonical());
    let family = match (own_ip, peer_ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the two ends of a connection are of different address families",
            ))
        }
    };
    let mut out = Vec::with_capacity(HEADER + REQUEST);
    out.extend_from_slice(&((HEADER + REQUEST) as u32).to_ne_bytes());
    out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    out.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    out.extend_from_slice(&0u32.to_ne_bytes()); // to the kernel
    out.push(family as u8);
    out.push(libc::IPPROTO_TCP as u8);
    out.push(0); // no extensions: the cgroup id comes without asking
    out.push(0);
    out.extend_from_slice(&u32::MAX.to_ne_bytes()); // any state
    out.extend_from_slice(&own.port().to_be_bytes());
    out.extend_from_slice(&peer.port().to_be_bytes());
    for ip in [own_ip, peer_ip] {
        let mut field = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => field[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => field.copy_from_slice(&v6.octets()),
        }
        out.extend_from_slice(&field);
    }
    out.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    out.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    out.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    debug_assert_eq!(out.len(), HEADER + REQUEST);
    Ok(out)
}

/// The kernel's answer: the socket's cgroup id, none when no such socket is here.
fn parse(answer: &[u8]) -> io::Result<Option<u64>> {
    let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let u16_at = |at: usize| {
        answer
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let len = answer
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| malformed("a sock_diag answer shorter than its header"))?;
    let answer = answer
        .get(..len)
        .ok_or_else(|| malformed("a sock_diag answer cut short"))?;
    match u16_at(4) {
        Some(NLMSG_ERROR) => {
            let code = answer
                .get(HEADER..HEADER + 4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| malformed("a sock_diag error without its code"))?;
            match -code {
                libc::ENOENT => Ok(None),
                errno => Err(io::Error::from_raw_os_error(errno)),
            }
        }
        Some(SOCK_DIAG_BY_FAMILY) => {
            let mut at = HEADER + MESSAGE;
            while let (Some(attr_len), Some(kind)) = (u16_at(at), u16_at(at + 2)) {
                let attr_len = attr_len as usize;
                if attr_len < 4 {
                    break;
                }
                if kind == INET_DIAG_CGROUP_ID {
                    return answer
                        .get(at + 4..at + 12)
                        .and_then(|b| b.try_into().ok())
                        .map(|b| Some(u64::from_ne_bytes(b)))
                        .ok_or_else(|| malformed("a cgroup id attribute cut short"));
                }
                at += (attr_len + 3) & !3;
            }
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel does not say which cgroup made a socket (INET_DIAG_CGROUP_ID, Linux 5.10)",
            ))
        }
        _ => Err(malformed("an unexpected sock_diag answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_local_client_is_found_in_the_cgroup_of_the_process_that_made_it() {
        let (_, dir) = crate::dispatch::cgroup::own_cgroup()
            .expect("a cgroup2 hierarchy is mounted on this machine");
        let own_id = std::fs::metadata(&dir)
            .expect("the own cgroup folder")
            .ino();
        for listen in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = std::net::TcpListener::bind(listen) else {
                continue;
            };
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (_accepted, client_addr) = listener.accept().unwrap();
            assert_eq!(client_addr, client.local_addr().unwrap());
            let found = of_client(client_addr, listener.local_addr().unwrap()).unwrap();
            assert_eq!(found, Some(own_id), "{listen}");
        }
    }

    #[test]
    fn a_dual_stack_listener_finds_an_ipv4_client() {
        let Ok(listener) = std::net::TcpListener::bind("[::]:0") else {
            return; // no IPv6 here
        };
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, client_addr) = listener.accept().unwrap();
        assert!(matches!(client_addr.ip(), IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()));
        let found = of_client(client_addr, accepted.local_addr().unwrap()).unwrap();
        assert!(
            found.is_some(),
            "the IPv4 client is found through its mapped address"
        );
    }

    #[test]
    fn no_socket_with_these_addresses_is_none() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            of_client(nobody, listener.local_addr().unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn an_answer_cut_short_is_an_error_not_a_panic() {
        for len in [0, 3, 16, 20, 88, 92] {
            let mut answer = vec![0u8; len];
            if len >= 6 {
                answer[..4].copy_from_slice(&(len as u32).to_ne_bytes());
                answer[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
            }
            assert!(parse(&answer).is_err(), "{len} bytes");
        }
    }
}
