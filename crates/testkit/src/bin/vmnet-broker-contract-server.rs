//! A fake broker for the client contract's table: serves a Unix socket in
//! one misbehaving way until killed, so that the Rust, C and Go runners
//! meet the same servers.
//!
//! ```text
//! vmnet-broker-contract-server --socket PATH --server hang|close|backlog|reply [--reply LINE]
//! ```
//!
//! Prints `ready` on standard output once it listens.

use std::path::PathBuf;
use std::process::ExitCode;

use vmnet_broker_testkit::fake_server::{Behaviour, serve};

fn main() -> ExitCode {
    let mut socket = None;
    let mut server = None;
    let mut reply = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--socket", Some(v)) => socket = Some(PathBuf::from(v)),
            ("--server", Some(v)) => server = Some(v),
            ("--reply", Some(v)) => reply = Some(v),
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let (Some(socket), Some(server)) = (socket, server) else {
        return usage("--socket and --server are required");
    };
    let Some(behaviour) = Behaviour::from_name(&server, reply) else {
        return usage(&format!(
            "unknown --server {server:?} (reply needs --reply LINE)"
        ));
    };
    if let Err(e) = serve(&socket, behaviour) {
        eprintln!(
            "vmnet-broker-contract-server: cannot serve {}: {e}",
            socket.display()
        );
        return ExitCode::FAILURE;
    }
    println!("ready");
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "vmnet-broker-contract-server: {problem}\nusage: vmnet-broker-contract-server --socket PATH --server hang|close|backlog|reply [--reply LINE]"
    );
    ExitCode::from(2)
}
