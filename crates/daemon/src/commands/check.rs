//! `vmnet-broker check [--config-dir DIR]`.

use std::process::ExitCode;

use vmnet_broker_core::broker::AccountLookup;
use vmnet_broker_core::config::Principal;
use vmnet_broker_core::hostnet::{Collision, CollisionCheck, HostNetworks, IpNet, RESERVED_RANGES};

use crate::config_dir::{CheckReport, ConfigDir, Finding, Reader, Severity};

use crate::cli::CheckArgs;
use crate::config_owner::OwnerRule;
use crate::hostnet::SystemHostNetworks;
use crate::sys::{self, SystemAccounts};
use vmnet_broker_proto::text::{escape, escape_path};

/// Validates the configuration directory; exit 1 if anything is wrong.
pub(crate) fn run(args: CheckArgs) -> ExitCode {
    let euid = sys::effective_uid();
    let rule = OwnerRule::for_uid(euid);
    let dir = ConfigDir::with_rule(&args.config_dir, rule, !args.insecure_config_permissions);
    let mut report = dir.check(Reader::of(euid, &args.config_dir));
    // No file was read when the directory is closed to this user: the rule
    // (which assumes the broker runs as this user) was not applied.
    if !report.unreadable_here {
        report.general.push(Finding {
            severity: Severity::Note,
            message: if args.insecure_config_permissions {
                "ownership and permissions are not checked (--insecure-config-permissions)".into()
            } else {
                format!("ownership rule: {rule}")
            },
        });
    }
    check_host_collisions(&mut report, &SystemHostNetworks);
    let persistent = report.persistent_names();
    for (job, run_at_load) in installed_jobs() {
        if let Some(message) = job_mismatch(run_at_load, &persistent) {
            report.general.push(Finding {
                severity: Severity::Warning,
                message: format!("{}: {message}", escape_path(&job)),
            });
        }
    }
    warn_unknown_accounts(&mut report, &SystemAccounts);
    let label = |s: Severity| match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    };
    // Every name printed here comes from the file system and is escaped,
    // so that a file name cannot send escape sequences or fake lines of
    // output. The messages and sources were built from escaped names
    // already: escaping them again would double their backslashes.
    let general = report.general.iter().map(|f| (report.dir.as_path(), f));
    let per_file = report
        .files
        .iter()
        .flat_map(|file| file.findings.iter().map(move |f| (file.path.as_path(), f)));
    for (path, f) in general.chain(per_file) {
        println!(
            "{}: {}: {}",
            escape_path(path),
            label(f.severity),
            f.message
        );
    }
    println!();
    println!("Networks available:");
    for (name, source) in &report.networks {
        println!("  {:<20} {source}", escape(name));
    }
    let errors = report.error_count();
    if report.unreadable_here {
        println!();
        println!(
            "{errors} error(s); {} (or files in it) could not be read as this user, so the check \
             is incomplete: run it as root or as the user the broker runs as.",
            escape_path(&report.dir)
        );
        ExitCode::from(1)
    } else if errors > 0 {
        println!();
        println!(
            "{errors} error(s) in {}; the networks concerned cannot be acquired.",
            escape_path(&report.dir)
        );
        ExitCode::from(1)
    } else {
        println!();
        println!("Configuration OK.");
        ExitCode::SUCCESS
    }
}

/// Adds a finding to every file whose static subnet or IPv6 prefix
/// collides with a network of this host or a reserved range. A collision
/// with a `bridge` interface on exactly the same subnet is only a warning:
/// on macOS it is most likely the network itself, live in the broker.
fn check_host_collisions(report: &mut CheckReport, host: &dyn HostNetworks) {
    let list = match host.host_networks() {
        Ok(list) => list,
        Err(e) => {
            report.general.push(Finding {
                severity: Severity::Warning,
                message: format!("{e}; static subnets were not checked against the host"),
            });
            return;
        }
    };
    let check = CollisionCheck {
        host: &list,
        reserved: &RESERVED_RANGES,
        own: &[],
    };
    for file in &mut report.files {
        let Some(config) = &file.config else { continue };
        let Err(found) = check.check(config.ipv4, config.ipv6) else {
            continue;
        };
        let probably_itself = found.collisions.iter().all(|c| match c {
            Collision::Host { requested, host } => {
                host.interface
                    .as_deref()
                    .is_some_and(|i| i.starts_with("bridge"))
                    && match (requested, host.net) {
                        (IpNet::V4(r), IpNet::V4(h)) => *r == h,
                        (IpNet::V6(r), IpNet::V6(h)) => *r == h,
                        _ => false,
                    }
            }
            Collision::Reserved { .. } => false,
        });
        file.findings.push(if probably_itself {
            Finding {
                severity: Severity::Warning,
                message: format!(
                    "{found} (if the broker has this network live, that interface is the network itself)"
                ),
            }
        } else {
            Finding {
                severity: Severity::Error,
                message: format!("collides with the host: {found}"),
            }
        });
    }
}

/// The installed launchd jobs of the default label (system and current
/// user) and whether each has `RunAtLoad`. None where no job file exists
/// (always the case outside macOS).
fn installed_jobs() -> Vec<(std::path::PathBuf, bool)> {
    super::installed_job_files()
        .into_iter()
        .filter_map(|(path, bytes)| {
            let value = plist::Value::from_reader(std::io::Cursor::new(bytes)).ok()?;
            let run_at_load = value
                .as_dictionary()
                .and_then(|d| d.get("RunAtLoad"))
                .and_then(plist::Value::as_boolean)
                .unwrap_or(false);
            Some((path, run_at_load))
        })
        .collect()
}

/// What is wrong when an installed job's `RunAtLoad` and the persistent
/// networks disagree.
fn job_mismatch(run_at_load: bool, persistent: &[String]) -> Option<String> {
    match (run_at_load, persistent.is_empty()) {
        (false, false) => Some(format!(
            "the installed job does not start at boot, but networks are persistent ({}); \
             run `vmnet-broker install` again so that they exist before any VM asks",
            persistent.join(", ")
        )),
        (true, true) => Some(
            "the installed job starts at boot (RunAtLoad), but no network is persistent; \
             run `vmnet-broker install` again to start the broker on demand only"
                .to_owned(),
        ),
        _ => None,
    }
}

/// Adds a warning for every user or group name in an access list that does
/// not resolve: it matches nobody, which is rarely what was meant.
fn warn_unknown_accounts(report: &mut CheckReport, accounts: &impl AccountLookup) {
    for file in &mut report.files {
        let Some(config) = &file.config else { continue };
        let mut found = Vec::new();
        let lists = [
            ("allowed_users", "user", &config.allowed_users),
            ("allowed_groups", "group", &config.allowed_groups),
        ];
        for (key, what, list) in lists {
            for principal in list.iter().flatten() {
                let Principal::Name(name) = principal else {
                    continue;
                };
                let resolved = if what == "user" {
                    accounts.user_id(name)
                } else {
                    accounts.group_id(name)
                };
                if resolved.is_none() {
                    found.push(Finding {
                        severity: Severity::Warning,
                        message: format!(
                            "{key}: no {what} named {name:?} exists here (or the account lookup timed out); it matches nobody"
                        ),
                    });
                }
            }
        }
        file.findings.extend(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_and_persistent_networks_must_agree() {
        let some = vec!["always".to_owned()];
        assert!(job_mismatch(true, &some).is_none());
        assert!(job_mismatch(false, &[]).is_none());
        let m = job_mismatch(false, &some).unwrap_or_default();
        assert!(m.contains("persistent (always)"), "{m}");
        let m = job_mismatch(true, &[]).unwrap_or_default();
        assert!(m.contains("no network is persistent"), "{m}");
    }
}
