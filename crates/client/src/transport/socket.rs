//! The development transport: JSON lines over a Unix stream socket.

use std::io::{BufRead, BufReader};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use socket2::{Domain, SockAddr, Socket, Type};
use vmnet_broker_proto::json::to_line;
use vmnet_broker_proto::text::escape;
use vmnet_broker_proto::{Request, StatusReport, commands};

use crate::decode::{self, Acquired};
use crate::{Error, sys};

/// Longest reply line the client accepts. Replies are small (a status
/// report with many peers is the largest); the limit only stops a broken
/// peer from making the client buffer without end.
const MAX_REPLY: u64 = 16 * 1024 * 1024;

/// A connection to the broker's development socket.
///
/// After a failure the connection is dropped (a half-read reply cannot be
/// resynchronised); the next request opens a new one, as an XPC connection
/// does after an interruption. The broker dropped the old connection's
/// holds when it went away, and [`SocketTransport::epoch`] tells the client
/// so.
#[derive(Debug)]
pub(crate) struct SocketTransport {
    path: PathBuf,
    conn: Option<BufReader<Socket>>,
    /// Whether `conn` has answered a request: only then can finding it
    /// closed mean the broker went away since (a connection closed before
    /// its first reply was refused, and is reported as such).
    answered: bool,
    /// Bound on connecting, and on each request from send to reply.
    timeout: Duration,
    /// Bumped each time a connection is lost.
    epoch: u64,
}

impl SocketTransport {
    /// Connects to the socket at `path`, waiting at most `timeout`, and
    /// checks who serves it.
    pub(crate) fn connect(path: &Path, timeout: Duration) -> Result<Self, Error> {
        let conn = open(path, timeout)?;
        Ok(Self {
            path: path.to_owned(),
            conn: Some(conn),
            answered: false,
            timeout,
            epoch: 0,
        })
    }

    /// Changes the connect and reply timeout.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        if let Some(conn) = &self.conn {
            arm(conn.get_ref(), timeout);
        }
    }

    /// A second descriptor for the connection, to watch it without taking
    /// the client's lock; `None` if there is no connection.
    pub(crate) fn watch(&self) -> Option<Socket> {
        self.conn.as_ref()?.get_ref().try_clone().ok()
    }

    /// Forgets the connection after it was seen closed.
    pub(crate) fn mark_lost(&mut self) {
        if self.conn.take().is_some() {
            self.epoch += 1;
        }
    }

    /// The socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A number that changes whenever a connection is lost: holds made in
    /// an earlier epoch no longer exist.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn acquire(&mut self, network: &str) -> Result<Acquired<Value>, Error> {
        let reply = self.round_trip(
            commands::ACQUIRE,
            &request(commands::ACQUIRE, Some(network)),
        )?;
        decode::acquire(&reply, network)
    }

    pub(crate) fn release(&mut self, network: &str) -> Result<(), Error> {
        let reply = self.round_trip(
            commands::RELEASE,
            &request(commands::RELEASE, Some(network)),
        )?;
        decode::release(&reply, network)
    }

    pub(crate) fn status(&mut self) -> Result<StatusReport, Error> {
        let reply = self.round_trip(commands::STATUS, &Value::Object(Request::Status.to_json()))?;
        decode::status(&reply)
    }

    /// Sends one request line and reads one reply line.
    fn round_trip(&mut self, command: &'static str, request: &Value) -> Result<Value, Error> {
        if self.answered && self.conn.as_ref().is_some_and(|c| !is_open(c)) {
            // The broker closed the connection while nothing was asked:
            // it exited or was restarted, and every hold is gone. Say so
            // once; the next request connects again.
            self.conn = None;
            self.epoch += 1;
            return Err(Error::Lost);
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                self.answered = false;
                self.conn.insert(open(&self.path, self.timeout)?)
            }
        };
        let result = exchange(conn, command, &to_line(request), self.timeout);
        self.answered |= result.is_ok();
        if matches!(
            result,
            Err(Error::Io { .. }
                | Error::Closed
                | Error::InvalidReply { .. }
                | Error::Timeout { .. })
        ) {
            // The stream is in an unknown state; start afresh next time.
            self.conn = None;
            self.epoch += 1;
        }
        result
    }
}

/// `{"command": command, "network_name": network}`. The name is sent as
/// given: the broker judges it, so that a broker with other naming rules
/// works too.
fn request(command: &str, network: Option<&str>) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(vmnet_broker_proto::keys::COMMAND.into(), command.into());
    if let Some(network) = network {
        map.insert(
            vmnet_broker_proto::keys::NETWORK_NAME.into(),
            network.into(),
        );
    }
    Value::Object(map)
}

/// Sets both of the socket's timeouts to `timeout`, where each request
/// starts.
fn arm(socket: &Socket, timeout: Duration) {
    let _ = socket.set_write_timeout(Some(timeout));
    let _ = socket.set_read_timeout(Some(timeout));
}

/// Connects within `timeout` and checks the server's credentials: only
/// root or this process's own user may answer, so that another user who
/// bound the socket path first cannot pose as the broker.
fn open(path: &Path, timeout: Duration) -> Result<BufReader<Socket>, Error> {
    let connect = || -> std::io::Result<Socket> {
        let addr = SockAddr::unix(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        // A blocking connect(2) to a Unix socket whose backlog is full
        // waits, bounded by the send timeout on Linux.
        socket.set_write_timeout(Some(timeout))?;
        socket.connect(&addr)?;
        socket.set_read_timeout(Some(timeout))?;
        Ok(socket)
    };
    let socket = match connect() {
        Ok(socket) => socket,
        Err(e) if is_timeout(&e) => {
            return Err(Error::Timeout {
                what: "connecting",
                after: timeout,
            });
        }
        Err(source) => {
            return Err(Error::Connect {
                path: path.to_owned(),
                source,
            });
        }
    };
    let uid = sys::peer_uid(socket.as_fd()).map_err(|source| Error::Connect {
        path: path.to_owned(),
        source,
    })?;
    let own = sys::effective_uid();
    if uid != 0 && uid != own {
        return Err(Error::UntrustedServer {
            path: path.to_owned(),
            uid,
            own,
        });
    }
    Ok(BufReader::new(socket))
}

/// Whether an idle connection is still open: nothing to read (a reply
/// cannot be pending between requests), no end of stream, no error.
fn is_open(conn: &BufReader<Socket>) -> bool {
    if !conn.buffer().is_empty() {
        return false;
    }
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    match conn
        .get_ref()
        .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
    {
        Err(e) => is_timeout(&e) || e.kind() == std::io::ErrorKind::Interrupted,
        Ok(_) => false,
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Blocks until the connection `watch` (a duplicate of the client's
/// descriptor) is closed by the broker or fails; returns why. Data that
/// arrives is a reply to a request in flight on another thread, read
/// there: it is left alone.
pub(crate) fn wait_closed(watch: &Socket) -> Error {
    loop {
        if let Err(source) = sys::wait_readable(watch.as_fd()) {
            return Error::Io {
                what: "watching the connection",
                source,
            };
        }
        let mut byte = [MaybeUninit::<u8>::uninit(); 1];
        match watch.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Ok(0) => return Error::Closed,
            // A reply to a request in flight on another thread: it will be
            // read there. Look again once it has been.
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) if is_timeout(&e) || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Error::Io {
                    what: "watching the connection",
                    source,
                };
            }
        }
    }
}

fn exchange(
    conn: &mut BufReader<Socket>,
    command: &'static str,
    line: &[u8],
    timeout: Duration,
) -> Result<Value, Error> {
    // The socket's timeouts are `timeout` already (see `arm`): only a
    // second pass of a loop (a partial send, a partial line) sets what is
    // left, so that a request costs no extra system calls. Any error drops
    // the connection; a success puts back what a second pass changed.
    let deadline = Instant::now() + timeout;
    let mut rearmed = false;
    let timed_out = |what| Error::Timeout {
        what,
        after: timeout,
    };
    let remaining = |what| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(timed_out(what))
        } else {
            Ok(left)
        }
    };
    let mut rest = line;
    let mut first = true;
    while !rest.is_empty() {
        let left = remaining("sending the request")?;
        if !std::mem::take(&mut first) {
            let _ = conn.get_ref().set_write_timeout(Some(left));
            rearmed = true;
        }
        match conn.get_ref().send_with_flags(rest, sys::SEND_FLAGS) {
            Ok(0) => return Err(Error::Closed),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(timed_out("sending the request")),
            Err(source) => {
                return Err(Error::Io {
                    what: "sending the request",
                    source,
                });
            }
        }
    }
    // One reply line, read under one deadline however slowly it trickles.
    let mut reply = Vec::new();
    let mut first = true;
    loop {
        let left = remaining("waiting for the reply")?;
        if !std::mem::take(&mut first) {
            let _ = conn.get_ref().set_read_timeout(Some(left));
            rearmed = true;
        }
        let buf = match conn.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(timed_out("waiting for the reply")),
            Err(source) => {
                return Err(Error::Io {
                    what: "reading the reply",
                    source,
                });
            }
        };
        if buf.is_empty() {
            // The broker went away, possibly in the middle of a line.
            return Err(Error::Closed);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        reply.extend_from_slice(chunk);
        let used = chunk.len() + usize::from(done);
        conn.consume(used);
        if reply.len() as u64 > MAX_REPLY {
            return Err(Error::InvalidReply {
                command,
                reason: format!("reply is longer than {MAX_REPLY} bytes"),
            });
        }
        if done {
            break;
        }
    }
    if rearmed {
        arm(conn.get_ref(), timeout);
    }
    // A reply that is JSON but not an object is left to the decoder, which
    // reports it in the command's terms.
    serde_json::from_slice::<Value>(&reply).map_err(|e| Error::InvalidReply {
        command,
        reason: format!("reply is not JSON: {}", escape(&e.to_string())),
    })
}
