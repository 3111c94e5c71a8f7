//! `vmnet-broker check [--config-dir DIR]`.

use std::process::ExitCode;

use crate::config_dir::{ConfigDir, Severity};

use crate::cli::CheckArgs;
use crate::sys;

/// Validates the configuration directory; exit 1 if anything is wrong.
pub(crate) fn run(args: CheckArgs) -> ExitCode {
    let dir = ConfigDir::new(&args.config_dir)
        .trust_owners([sys::effective_uid()])
        .strict_permissions(!args.insecure_config_permissions);
    let report = dir.check();
    let label = |s: Severity| match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    };
    let general = report.general.iter().map(|f| (report.dir.as_path(), f));
    let per_file = report
        .files
        .iter()
        .flat_map(|file| file.findings.iter().map(move |f| (file.path.as_path(), f)));
    for (path, f) in general.chain(per_file) {
        println!("{}: {}: {}", path.display(), label(f.severity), f.message);
    }
    println!();
    println!("Networks available:");
    for (name, source) in &report.networks {
        println!("  {name:<20} {source}");
    }
    let errors = report.error_count();
    if errors > 0 {
        println!();
        println!(
            "{errors} error(s) in {}; the networks concerned cannot be acquired.",
            report.dir.display()
        );
        ExitCode::from(1)
    } else {
        println!();
        println!("Configuration OK.");
        ExitCode::SUCCESS
    }
}
