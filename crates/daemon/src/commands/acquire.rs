//! `vmnet-broker acquire NAME... [--hold]`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::mpsc;

use serde_json::{Value, json};
use signal_hook::consts::{SIGINT, SIGTERM};
use vmnet_broker_client::{Network, Status};

use super::{connect, exit_code_for, report};
use crate::cli::AcquireArgs;
use crate::{EXIT_FAILURE, logging};

/// Acquires every network named, prints each, and holds them if asked.
pub(crate) fn run(args: AcquireArgs) -> ExitCode {
    logging::init_client();
    // Signals are caught before anything is acquired, so that a SIGTERM
    // during the hold ends it cleanly.
    let (tx, rx) = mpsc::channel::<End>();
    if args.hold {
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            Ok(mut signals) => {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        let _ =
                            tx.send(End::Asked(if sig == SIGINT { "SIGINT" } else { "SIGTERM" }));
                    }
                });
            }
            Err(e) => {
                eprintln!("vmnet-broker: cannot catch signals: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    let client = match connect(
        args.socket.as_deref(),
        args.mach_service.as_deref(),
        args.timeout,
    ) {
        Ok(c) => c,
        Err(e) => return report("cannot connect to the broker", &e),
    };
    let mut held: Vec<Network> = Vec::new();
    let stdout = std::io::stdout();
    for name in &args.names {
        match client.acquire(name) {
            Ok(network) => {
                let line = describe(&network);
                let mut out = stdout.lock();
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return ExitCode::from(EXIT_FAILURE);
                }
                held.push(network);
            }
            Err(e) => return report(&format!("cannot acquire {name:?}"), &e),
        }
    }
    if args.hold {
        let input = tx.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = input.send(End::Asked("end of input"));
        });
        // The holds live as long as the connection: when the broker goes
        // away, so do they, and holding on would be a lie.
        let watcher = client.clone();
        std::thread::spawn(move || {
            let why = watcher.wait_closed();
            let _ = tx.send(End::Lost(why));
        });
        match rx.recv() {
            Ok(End::Asked(why)) => {
                eprintln!("vmnet-broker: {why}: releasing {} network(s)", held.len());
            }
            Ok(End::Lost(why)) => {
                eprintln!(
                    "vmnet-broker: lost the connection to the broker ({why}); the network(s) are no longer held"
                );
                drop(held);
                drop(client);
                return exit_code_for(Status::XPC_FAILURE);
            }
            Err(_) => {}
        }
    }
    drop(held);
    drop(client);
    ExitCode::SUCCESS
}

/// Why a hold ends.
enum End {
    /// A signal or the end of standard input: release and exit 0.
    Asked(&'static str),
    /// The connection to the broker was lost: the holds are gone already.
    Lost(vmnet_broker_client::Error),
}

/// One output line: the network's name and addresses.
fn describe(network: &Network) -> Value {
    match network.info() {
        Some(info) => json!({
            "name": network.name(),
            "mode": info.mode,
            "subnet": info.subnet.to_string(),
            "mask": info.mask.to_string(),
            "ipv6_prefix": info.ipv6_prefix.to_string(),
            "ipv6_prefix_length": info.ipv6_prefix_length,
        }),
        // An upstream broker sends no addresses.
        None => json!({
            "name": network.name(),
            "mode": null, "subnet": null, "mask": null,
            "ipv6_prefix": null, "ipv6_prefix_length": null,
        }),
    }
}
