//! The baseline: a minimal JSON-lines server on a Unix socket.
//!
//! It has the same shape as the daemon's transport (one thread, a mio
//! readiness loop, per-connection output queue) but does no work per request:
//! every complete line is answered with the same canned reply. Comparing the
//! daemon's round trip with this one leaves the broker's own cost.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(0);

struct Conn {
    stream: UnixStream,
    out: Vec<u8>,
    written: usize,
    writable_interest: bool,
}

/// Serves `reply` (one line, newline included) for every request line until
/// `limit` has passed.
pub(crate) fn serve(path: &Path, reply: &[u8], limit: Duration) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut listener = UnixListener::bind(path)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next = 1usize;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(200))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let token = Token(next);
                            next += 1;
                            poll.registry()
                                .register(&mut stream, token, Interest::READABLE)?;
                            conns.insert(
                                token,
                                Conn {
                                    stream,
                                    out: Vec::new(),
                                    written: 0,
                                    writable_interest: false,
                                },
                            );
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let token = event.token();
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            let mut alive = true;
            if event.is_readable() {
                loop {
                    match conn.stream.read(&mut buf) {
                        Ok(0) => {
                            alive = false;
                            break;
                        }
                        Ok(n) => {
                            let lines = buf[..n].iter().filter(|&&b| b == b'\n').count();
                            for _ in 0..lines {
                                conn.out.extend_from_slice(reply);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            alive = false;
                            break;
                        }
                    }
                }
            }
            while alive && conn.written < conn.out.len() {
                match conn.stream.write(&conn.out[conn.written..]) {
                    Ok(0) => alive = false,
                    Ok(n) => conn.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => alive = false,
                }
            }
            if !alive {
                if let Some(mut c) = conns.remove(&token) {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                continue;
            }
            if conn.written == conn.out.len() {
                conn.out.clear();
                conn.written = 0;
            }
            let want_write = conn.written < conn.out.len();
            if want_write != conn.writable_interest {
                let interest = if want_write {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                poll.registry()
                    .reregister(&mut conn.stream, token, interest)?;
                conn.writable_interest = want_write;
            }
        }
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// The floor for this transport: a blocking server with a thread per
/// connection that answers each read with one write of one canned reply
/// per complete line it holds. Two system calls per request (read, write);
/// the kernel wakes the thread directly. Serves until `limit` has passed.
pub(crate) fn serve_blocking(path: &Path, reply: &[u8], limit: Duration) -> io::Result<()> {
    use std::os::unix::net::UnixListener as StdListener;
    let _ = std::fs::remove_file(path);
    let listener = StdListener::bind(path)?;
    let deadline = Instant::now() + limit;
    let reply = std::sync::Arc::new(reply.to_vec());
    for stream in listener.incoming() {
        if Instant::now() > deadline {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        let reply = reply.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut out = Vec::new();
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let lines = buf[..n].iter().filter(|&&b| b == b'\n').count();
                out.clear();
                for _ in 0..lines {
                    out.extend_from_slice(&reply);
                }
                if stream.write_all(&out).is_err() {
                    return;
                }
            }
        });
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}
