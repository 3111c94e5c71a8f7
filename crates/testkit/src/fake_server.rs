//! Fake brokers for the client contract (`testdata/client-contract.json`):
//! servers on a Unix socket that misbehave in one chosen way, so that every
//! client library can be run against the same situations.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

/// How a fake server behaves (the table's `server` values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts and reads every request, never answers, keeps the
    /// connection open.
    Hang,
    /// Accepts, reads one request line and closes the connection.
    Close,
    /// Listens but never accepts, with its backlog already full, so that
    /// a client's connect(2) waits.
    Backlog,
    /// Answers every request line with this line.
    Reply(String),
}

impl Behaviour {
    /// Parses the table's name for a behaviour; `reply` takes the line.
    pub fn from_name(name: &str, reply: Option<String>) -> Option<Self> {
        Some(match name {
            "hang" => Self::Hang,
            "close" => Self::Close,
            "backlog" => Self::Backlog,
            "reply" => Self::Reply(reply?),
            _ => return None,
        })
    }
}

/// Binds `path` and serves it as `behaviour` from background threads; it
/// listens when this returns.
///
/// # Errors
///
/// When the socket cannot be bound or (for [`Behaviour::Backlog`]) its
/// backlog cannot be filled.
pub fn serve(path: &Path, behaviour: Behaviour) -> std::io::Result<()> {
    if behaviour == Behaviour::Backlog {
        return serve_backlog(path);
    }
    let listener = UnixListener::bind(path)?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let behaviour = behaviour.clone();
            std::thread::spawn(move || handle(stream, &behaviour));
        }
    });
    Ok(())
}

fn handle(stream: UnixStream, behaviour: &Behaviour) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let reader = BufReader::new(stream);
    for line in reader.split(b'\n') {
        if line.is_err() {
            return;
        }
        match behaviour {
            Behaviour::Hang | Behaviour::Backlog => {}
            // Dropping both halves closes the connection unanswered.
            Behaviour::Close => return,
            Behaviour::Reply(reply) => {
                let mut out = reply.clone().into_bytes();
                out.push(b'\n');
                if writer.write_all(&out).is_err() {
                    return;
                }
            }
        }
    }
    // Hang: the peer closed; nothing more to do.
}

/// A listener with a backlog of zero, filled by connections of its own
/// that are never accepted.
fn serve_backlog(path: &Path) -> std::io::Result<()> {
    let addr = SockAddr::unix(path)?;
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    listener.bind(&addr)?;
    listener.listen(0)?;
    let mut kept: Vec<Socket> = Vec::new();
    loop {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        match socket.connect(&addr) {
            Ok(()) => kept.push(socket),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
        if kept.len() > 1024 {
            return Err(std::io::Error::other("the backlog never filled"));
        }
    }
    // Keep the listener and the queued connections for the life of the
    // process.
    std::mem::forget(listener);
    std::mem::forget(kept);
    Ok(())
}
