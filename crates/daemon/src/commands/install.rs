//! `vmnet-broker install` / `uninstall`: the launchd job on macOS.
//!
//! The plan is computed from what exists (files, service account, whether
//! the job is loaded, how many clients the running broker has), so both
//! commands are idempotent, and both refuse to replace or remove a broker
//! that has clients unless `--force`. `--dry-run` prints every command
//! instead of running it. On other systems only `--dry-run` works: it shows
//! the plan for a Mac where nothing is installed yet.

use std::process::ExitCode;

#[cfg(target_os = "macos")]
use vmnet_broker_launchd::BrokerClients;
use vmnet_broker_launchd::{
    InstallOptions, InstallState, JobOptions, JobSpec, SourceBinary, UninstallOptions, execute,
    plan_install, plan_uninstall,
};

use crate::EXIT_FAILURE;
use crate::cli::{InstallArgs, UninstallArgs};
use vmnet_broker_proto::text::escape_path;

fn spec(user: bool, label: &str) -> Result<JobSpec, String> {
    let spec = if user {
        JobSpec::current_user(label)
    } else {
        JobSpec::system(label)
    };
    spec.map_err(|e| format!("invalid job: {e}"))
}

/// What is installed now. On macOS, probed; elsewhere, for `--dry-run`
/// only, a Mac with nothing installed.
fn observe(spec: &JobSpec, dry_run: bool) -> Result<InstallState, String> {
    #[cfg(target_os = "macos")]
    {
        let _ = dry_run;
        let mut ask = || ask_broker_clients(spec.label());
        vmnet_broker_launchd::probe(spec, &mut vmnet_broker_launchd::SystemRunner, &mut ask)
            .map_err(|e| format!("cannot inspect the current installation: {e}"))
    }
    #[cfg(not(target_os = "macos"))]
    {
        let _ = spec;
        if dry_run {
            eprintln!(
                "vmnet-broker: not on macOS: showing the plan for a Mac where nothing is installed yet"
            );
            Ok(InstallState::empty())
        } else {
            Err("install and uninstall work only on macOS; use --dry-run to see the plan".into())
        }
    }
}

/// Clients of the broker serving `service` (the job being installed or
/// removed, not necessarily the default one), not counting this process.
/// The original broker has no `status` and answers 4: that is how it is
/// recognised. The connection is closed before returning, so the installer
/// itself never keeps the broker from stopping.
#[cfg(target_os = "macos")]
fn ask_broker_clients(service: &str) -> BrokerClients {
    let client = match vmnet_broker_client::Client::connect_xpc_service(service) {
        Ok(c) => c,
        Err(e) => return BrokerClients::Unknown(e.to_string()),
    };
    let answer = client.status();
    drop(client);
    match answer {
        Ok(report) => BrokerClients::Count(vmnet_broker_launchd::clients_in_status(
            &report,
            std::process::id(),
        )),
        Err(e) if e.status() == vmnet_broker_client::Status::INVALID_REQUEST => {
            BrokerClients::Original
        }
        Err(e) => BrokerClients::Unknown(e.to_string()),
    }
}

/// The daemon options given to `install`, checked, as job arguments.
fn given_options(args: &InstallArgs) -> Result<JobOptions, String> {
    let config_dir = match &args.config_dir {
        Some(dir) if !dir.is_absolute() => {
            return Err(format!(
                "--config-dir {} is not an absolute path; launchd starts the job in /, so give \
                 the full path",
                escape_path(dir)
            ));
        }
        Some(dir) => {
            let text = dir
                .to_str()
                .ok_or_else(|| format!("--config-dir {} is not valid UTF-8", escape_path(dir)))?;
            // The path goes into the job file and the --dry-run script:
            // refused rather than carried there with control characters.
            if text.chars().any(char::is_control) {
                return Err(format!(
                    "--config-dir {} contains control characters",
                    escape_path(dir)
                ));
            }
            Some(text.to_owned())
        }
        None => None,
    };
    if let Some(level) = &args.log_level
        && (level.is_empty() || level.starts_with('-') || level.chars().any(char::is_control))
    {
        return Err(format!(
            "--log-level {level:?} is not a log level (error, warn, info, debug, trace)"
        ));
    }
    Ok(JobOptions {
        network_idle_timeout: args.network_idle_timeout.map(|v| v.to_string()),
        exit_idle_timeout: args.exit_idle_timeout.map(|v| v.to_string()),
        config_dir,
        log_level: args.log_level.clone(),
    })
}

fn run_plan(plan: &vmnet_broker_launchd::Plan, dry_run: bool, what: &str) -> ExitCode {
    if plan.is_empty() {
        println!("Nothing to do: {what} is already in the requested state.");
        return ExitCode::SUCCESS;
    }
    if dry_run {
        print!("{}", plan.shell_script());
        return ExitCode::SUCCESS;
    }
    #[cfg(target_os = "macos")]
    {
        let result = execute(plan, &mut vmnet_broker_launchd::SystemRunner, &mut |a| {
            eprintln!("vmnet-broker: {}", a.describe())
        });
        match result {
            Ok(()) => {
                println!("Done: {what}.");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vmnet-broker: {what} failed: {e}");
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
    #[cfg(not(target_os = "macos"))]
    {
        let _ = execute;
        eprintln!("vmnet-broker: {what} works only on macOS");
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `vmnet-broker install`.
pub(crate) fn install(args: InstallArgs) -> ExitCode {
    let result = (|| {
        let given = given_options(&args)?;
        let spec = spec(args.job.user, &args.job.mach_service)?;
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
        let source = SourceBinary::read(&exe).map_err(|e| format!("cannot read {e}"))?;
        let state = observe(&spec, args.job.dry_run)?;
        // An option not given keeps what the installed job has.
        let installed = state
            .plist
            .as_ref()
            .map(|f| JobOptions::from_job_plist(&f.contents))
            .unwrap_or_default();
        let options = given.or(installed);
        eprintln!(
            "vmnet-broker: daemon options in the job: {}",
            options.summary()
        );
        let config_dir = options
            .config_dir
            .clone()
            .unwrap_or_else(|| crate::config_dir::DEFAULT_CONFIG_DIR.to_owned());
        let persistent = persistent_networks(args.job.user, &config_dir);
        if !persistent.is_empty() {
            eprintln!(
                "vmnet-broker: persistent networks are configured ({}): the job starts at load (RunAtLoad)",
                persistent.join(", ")
            );
        }
        let spec = spec
            .with_extra_arguments(options.to_arguments())
            .with_run_at_load(!persistent.is_empty());
        plan_install(
            &spec,
            &state,
            &source,
            &InstallOptions {
                force: args.job.force,
            },
        )
        .map_err(|e| e.to_string())
    })();
    match result {
        Ok(plan) => run_plan(&plan, args.job.dry_run, "installation"),
        Err(e) => {
            eprintln!("vmnet-broker: install: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `vmnet-broker uninstall`.
pub(crate) fn uninstall(args: UninstallArgs) -> ExitCode {
    let result = (|| {
        let spec = spec(args.job.user, &args.job.mach_service)?;
        let state = observe(&spec, args.job.dry_run)?;
        let opts = UninstallOptions {
            force: args.job.force,
            remove_account: args.remove_account,
            remove_logs: args.remove_logs,
        };
        plan_uninstall(&spec, &state, &opts).map_err(|e| e.to_string())
    })();
    match result {
        Ok(plan) => run_plan(&plan, args.job.dry_run, "removal"),
        Err(e) => {
            eprintln!("vmnet-broker: uninstall: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The persistent networks the installed broker will read in its
/// configuration directory, with the ownership rule of the account the job
/// runs as (root only for the system job).
fn persistent_networks(user: bool, config_dir: &str) -> Vec<String> {
    let uid = if user { crate::sys::effective_uid() } else { 0 };
    let rule = crate::config_owner::OwnerRule::for_uid(uid);
    crate::config_dir::ConfigDir::with_rule(config_dir, rule, true).persistent_names()
}
