//! The development transport: JSON lines over a Unix stream socket.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;
use socket2::{Domain, SockAddr, Socket, Type};
use vmnet_broker_proto::json::to_line;
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
    /// Bumped each time a connection is lost.
    epoch: u64,
}

impl SocketTransport {
    /// Connects to the socket at `path`.
    pub(crate) fn connect(path: &Path) -> Result<Self, Error> {
        let conn = open(path)?;
        Ok(Self {
            path: path.to_owned(),
            conn: Some(conn),
            epoch: 0,
        })
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
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(open(&self.path)?),
        };
        let result = exchange(conn, command, &to_line(request));
        if matches!(
            result,
            Err(Error::Io { .. } | Error::Closed | Error::InvalidReply { .. })
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

fn open(path: &Path) -> Result<BufReader<Socket>, Error> {
    let connect = || -> std::io::Result<Socket> {
        let addr = SockAddr::unix(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.connect(&addr)?;
        Ok(socket)
    };
    match connect() {
        Ok(socket) => Ok(BufReader::new(socket)),
        Err(source) => Err(Error::Connect {
            path: path.to_owned(),
            source,
        }),
    }
}

fn exchange(
    conn: &mut BufReader<Socket>,
    command: &'static str,
    line: &[u8],
) -> Result<Value, Error> {
    let mut rest = line;
    while !rest.is_empty() {
        match conn.get_ref().send_with_flags(rest, sys::SEND_FLAGS) {
            Ok(0) => return Err(Error::Closed),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Io {
                    what: "sending the request",
                    source,
                });
            }
        }
    }
    let mut reply = Vec::new();
    let read = conn
        .by_ref()
        .take(MAX_REPLY + 1)
        .read_until(b'\n', &mut reply);
    match read {
        Err(source) => Err(Error::Io {
            what: "reading the reply",
            source,
        }),
        Ok(0) => Err(Error::Closed),
        Ok(_) if reply.last() != Some(&b'\n') => {
            if reply.len() as u64 > MAX_REPLY {
                Err(Error::InvalidReply {
                    command,
                    reason: format!("reply is longer than {MAX_REPLY} bytes"),
                })
            } else {
                // The broker went away in the middle of a line.
                Err(Error::Closed)
            }
        }
        Ok(_) => {
            reply.pop();
            // A reply that is JSON but not an object is left to the decoder,
            // which reports it in the command's terms.
            serde_json::from_slice::<Value>(&reply).map_err(|e| Error::InvalidReply {
                command,
                reason: format!("reply is not JSON: {e}"),
            })
        }
    }
}
