//! `vmnet-broker check [--config-dir DIR]`.

use std::process::ExitCode;

use vmnet_broker_core::broker::AccountLookup;
use vmnet_broker_core::config::Principal;

use crate::config_dir::{CheckReport, ConfigDir, Finding, Severity};

use crate::cli::CheckArgs;
use crate::sys::{self, SystemAccounts};
use crate::text::{escape, escape_path};

/// Validates the configuration directory; exit 1 if anything is wrong.
pub fn run(args: CheckArgs) -> ExitCode {
    let dir = ConfigDir::new(&args.config_dir)
        .trust_owners([sys::effective_uid()])
        .strict_permissions(!args.insecure_config_permissions);
    let mut report = dir.check();
    warn_unknown_accounts(&mut report, &SystemAccounts);
    let label = |s: Severity| match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    };
    // Every name printed here comes from the file system: escaped, so that
    // a file name cannot send escape sequences or fake lines of output.
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
            escape(&f.message)
        );
    }
    println!();
    println!("Networks available:");
    for (name, source) in &report.networks {
        println!("  {:<20} {}", escape(name), escape(source));
    }
    let errors = report.error_count();
    if errors > 0 {
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
