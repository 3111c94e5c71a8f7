//! `vmnet-broker status [--json]`.

use std::fmt::Write as _;
use std::process::ExitCode;

use vmnet_broker_client::StatusReport;

use super::{connect, report};
use crate::cli::StatusArgs;
use crate::{EXIT_FAILURE, logging};

/// Asks the broker for its status and prints it.
pub(crate) fn run(args: StatusArgs) -> ExitCode {
    logging::init_client();
    let client = match connect(args.socket.as_deref(), args.mach_service.as_deref()) {
        Ok(c) => c,
        Err(e) => return report("cannot connect to the broker", &e),
    };
    let status = match client.status() {
        Ok(s) => s,
        Err(e) => return report("status request failed", &e),
    };
    if args.json {
        match serde_json::to_string_pretty(&status) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("vmnet-broker: cannot encode the report: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        print!("{}", render(&status));
    }
    ExitCode::SUCCESS
}

/// The human-readable table.
pub(crate) fn render(s: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "vmnet-broker {} (pid {}, {} backend), up {}; {} client(s) connected",
        s.version,
        s.pid,
        s.backend,
        duration(s.uptime_seconds),
        s.client_count
    );
    let _ = writeln!(out);
    if s.networks.is_empty() {
        let _ = writeln!(out, "No live networks.");
    } else {
        let rows: Vec<[String; 6]> = s
            .networks
            .iter()
            .map(|n| {
                let idle = match (n.idle_for_seconds, n.removal_in_seconds) {
                    (Some(idle), Some(left)) => {
                        format!("{} (removal in {})", duration(idle), duration(left))
                    }
                    _ => "-".to_owned(),
                };
                [
                    n.name.clone(),
                    n.info.mode.to_string(),
                    format!("{}/{}", n.info.subnet, n.info.prefix_len()),
                    format!("{}/{}", n.info.ipv6_prefix, n.info.ipv6_prefix_length),
                    n.holders.to_string(),
                    idle,
                ]
            })
            .collect();
        table(
            &mut out,
            [
                "NETWORK",
                "MODE",
                "SUBNET",
                "IPV6 PREFIX",
                "HOLDERS",
                "IDLE FOR",
            ],
            &rows,
        );
    }
    let _ = writeln!(out);
    if s.clients.is_empty() {
        let _ = writeln!(out, "No clients visible to you.");
    } else {
        let rows: Vec<[String; 6]> = s
            .clients
            .iter()
            .map(|p| {
                [
                    p.id.to_string(),
                    p.pid.to_string(),
                    p.uid.to_string(),
                    p.gid.to_string(),
                    duration(p.connected_seconds),
                    if p.networks.is_empty() {
                        "-".to_owned()
                    } else {
                        p.networks.join(", ")
                    },
                ]
            })
            .collect();
        table(
            &mut out,
            ["CLIENT", "PID", "UID", "GID", "CONNECTED", "NETWORKS"],
            &rows,
        );
    }
    if s.hidden_clients > 0 {
        let _ = writeln!(
            out,
            "({} client(s) of other users not shown; root sees all)",
            s.hidden_clients
        );
    }
    out
}

fn table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |out: &mut String, cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(out, header.to_vec());
    for row in rows {
        line(out, row.iter().map(String::as_str).collect());
    }
}

fn duration(secs: f64) -> String {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "negative values are clamped to 0 and `as` saturates at u64::MAX, which prints as a long uptime"
    )]
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(3.4), "3s");
        assert_eq!(duration(125.0), "2m05s");
        assert_eq!(duration(7322.0), "2h02m");
    }
}
