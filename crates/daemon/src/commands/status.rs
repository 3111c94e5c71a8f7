//! `vmnet-broker status [--json]`.

use std::fmt::Write as _;
use std::process::ExitCode;

use vmnet_broker_client::StatusReport;

use super::{connect, report};
use crate::cli::StatusArgs;
use crate::{EXIT_FAILURE, logging};
use vmnet_broker_proto::text::escape;

/// Asks the broker for its status and prints it.
pub(crate) fn run(args: StatusArgs) -> ExitCode {
    logging::init_client();
    let client = match connect(
        args.socket.as_deref(),
        args.mach_service.as_deref(),
        args.timeout,
    ) {
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

/// The human-readable table. Names come from the broker and are escaped:
/// a control character in one cannot reach the terminal.
pub(crate) fn render(s: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "vmnet-broker {} (pid {}, {} backend), up {}; {} client(s) connected",
        escape(&s.version),
        s.pid,
        escape(&s.backend),
        duration(s.uptime_seconds),
        s.client_count
    );
    let _ = writeln!(out, "{}", delays(s));
    #[cfg(target_os = "macos")]
    if let Some(line) = installed_job_options() {
        let _ = writeln!(out, "{line}");
    }
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
                    escape(&n.name).into_owned(),
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
        for n in &s.networks {
            let mut notes = Vec::new();
            if n.persistent {
                notes.push("persistent".to_owned());
            }
            if let Some(origin) = &n.subnet_origin {
                notes.push(match origin.as_str() {
                    "static" => "subnet configured".to_owned(),
                    "remembered" => "subnet remembered from last time".to_owned(),
                    "changed" => "subnet changed since last time".to_owned(),
                    "chosen" => "subnet chosen by vmnet".to_owned(),
                    other => format!("subnet {other}"),
                });
            }
            if n.configuration_pending {
                notes.push("configuration changed, applies when idle".to_owned());
            }
            if !notes.is_empty() {
                let _ = writeln!(out, "  {}: {}", escape(&n.name), notes.join("; "));
            }
        }
    }
    if !s.waiting_networks.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Persistent networks waiting to be created:");
        let rows: Vec<[String; 4]> = s
            .waiting_networks
            .iter()
            .map(|w| {
                [
                    escape(&w.name).into_owned(),
                    w.failed_attempts.to_string(),
                    duration(w.retry_in_seconds),
                    escape(&w.last_error).into_owned(),
                ]
            })
            .collect();
        table(
            &mut out,
            ["NETWORK", "FAILED ATTEMPTS", "NEXT TRY IN", "LAST ERROR"],
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
                        escape(&p.networks.join(", ")).into_owned()
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

/// The broker's effective settings, as it reports them: idle delays, and
/// the configuration directory and log level where the broker says.
fn delays(s: &StatusReport) -> String {
    let mut line = format!(
        "network idle delay {}; exit idle delay {}",
        duration(s.network_idle_timeout_seconds),
        s.exit_idle_timeout_seconds
            .map_or_else(|| "none (never exits when idle)".to_owned(), duration)
    );
    if let Some(dir) = &s.config_dir {
        line.push_str(&format!("; configuration {}", escape(dir)));
    }
    if let Some(level) = &s.log_level {
        line.push_str(&format!("; log level {}", escape(level)));
    }
    line
}

/// The daemon options kept in the installed job file (system, else user),
/// if there is one.
#[cfg(target_os = "macos")]
fn installed_job_options() -> Option<String> {
    let (path, xml) = super::installed_job_files().into_iter().next()?;
    Some(format!(
        "installed job {}: daemon options {}",
        vmnet_broker_proto::text::escape_path(&path),
        vmnet_broker_launchd::JobOptions::from_job_plist(&xml).summary()
    ))
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
    fn the_effective_delays_are_shown() {
        let report: StatusReport = serde_json::from_value(serde_json::json!({
            "version": "0.1.0", "pid": 10, "backend": "simulated", "uptime_seconds": 1.0,
            "network_idle_timeout_seconds": 300.0, "exit_idle_timeout_seconds": null,
            "networks": [], "peers": [], "peer_count": 0, "hidden_peers": 0,
            "counters": {"connects": 0, "disconnects": 0, "requests": 0, "acquires": 0,
                         "releases": 0, "creations": 0, "removals": 0, "failures": {}}
        }))
        .expect("report");
        let text = render(&report);
        assert!(
            text.contains("network idle delay 5m00s; exit idle delay none (never exits when idle)"),
            "{text}"
        );
    }

    #[test]
    fn waiting_networks_are_listed_with_their_error_escaped() {
        let report: StatusReport = serde_json::from_value(serde_json::json!({
            "version": "0.1.0", "pid": 10, "backend": "simulated", "uptime_seconds": 1.0,
            "network_idle_timeout_seconds": 300.0, "exit_idle_timeout_seconds": null,
            "networks": [], "peers": [], "peer_count": 0, "hidden_peers": 0,
            "waiting_networks": [{"name": "always", "failed_attempts": 3,
                                  "last_error": "vmnet said no\u{1b}[2J", "retry_in_seconds": 3.6}],
            "counters": {"connects": 0, "disconnects": 0, "requests": 0, "acquires": 0,
                         "releases": 0, "creations": 0, "removals": 0, "failures": {}}
        }))
        .expect("report");
        let text = render(&report);
        assert!(
            text.contains("Persistent networks waiting to be created:"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|l| l.starts_with("always"))
            .expect("a row for the waiting network");
        assert!(row.contains(" 3 "), "{row}");
        assert!(row.contains(" 4s "), "{row}");
        assert!(row.contains("vmnet said no"), "{row}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(3.4), "3s");
        assert_eq!(duration(125.0), "2m05s");
        assert_eq!(duration(7322.0), "2h02m");
    }
}
