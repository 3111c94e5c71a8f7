//! The client contract's fake broker over the fake XPC of crates/fake-apple
//! (Linux tests only): serves a Mach service in one misbehaving way until
//! killed.
//!
//! ```text
//! VMNET_BROKER_FAKE_XPC_DIR=DIR vmnet-broker-contract-xpc-server --service NAME --server hang|close|reply [--reply JSON]
//! ```
//!
//! `hang` keeps every request unanswered, `close` cancels the client's
//! connection when a request arrives, `reply` answers every request with
//! the dictionary of the JSON object given. Prints `ready` once it
//! listens.

use std::process::ExitCode;

use dispatch2::DispatchQueue;
use vmnet_broker_macos::xpc::{ServiceEvent, XpcListener, from_json};

enum Behaviour {
    Hang,
    Close,
    Reply(serde_json::Map<String, serde_json::Value>),
}

fn main() -> ExitCode {
    let mut service = None;
    let mut server = None;
    let mut reply = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--service", Some(v)) => service = Some(v),
            ("--server", Some(v)) => server = Some(v),
            ("--reply", Some(v)) => reply = Some(v),
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let (Some(service), Some(server)) = (service, server) else {
        return usage("--service and --server are required");
    };
    let behaviour = match (server.as_str(), reply) {
        ("hang", _) => Behaviour::Hang,
        ("close", _) => Behaviour::Close,
        ("reply", Some(json)) => match serde_json::from_str(&json) {
            Ok(serde_json::Value::Object(map)) => Behaviour::Reply(map),
            _ => return usage("--reply must be a JSON object (an XPC reply is a dictionary)"),
        },
        _ => {
            return usage(&format!(
                "unknown --server {server:?} (reply needs --reply JSON)"
            ));
        }
    };
    let queue = DispatchQueue::new("vmnet-broker-contract-xpc-server", None);
    let mut unanswered = Vec::new();
    let listener = XpcListener::start(&service, &queue, move |event| {
        let ServiceEvent::Request { request, .. } = event else {
            return;
        };
        match &behaviour {
            Behaviour::Hang => unanswered.push(request),
            Behaviour::Close => {
                if let Some(connection) = request.connection() {
                    connection.cancel();
                }
            }
            Behaviour::Reply(map) => {
                let Ok(mut reply) = request.create_reply() else {
                    return;
                };
                for (key, value) in map {
                    if let Ok(value) = from_json(value) {
                        let _ = reply.set_value(key, &value);
                    }
                }
                let _ = request.send_reply(&reply);
            }
        }
    });
    let _listener = match listener {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vmnet-broker-contract-xpc-server: cannot serve {service}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ready");
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "vmnet-broker-contract-xpc-server: {problem}\nusage: vmnet-broker-contract-xpc-server --service NAME --server hang|close|reply [--reply JSON]"
    );
    ExitCode::from(2)
}
