//! `vmnet-broker install` / `uninstall`: the launchd job on macOS.
//!
//! The plan is computed from what exists (files, service account, whether
//! the job is loaded, how many clients the running broker has), so both
//! commands are idempotent, and both refuse to replace or remove a broker
//! that has clients unless `--force`. `--dry-run` prints every command
//! instead of running it. On other systems only `--dry-run` works: it shows
//! the plan for a Mac where nothing is installed yet.

use std::process::ExitCode;

use vmnet_broker_launchd::{
    InstallOptions, InstallState, JobSpec, SourceBinary, UninstallOptions, execute, plan_install,
    plan_uninstall,
};

use crate::EXIT_FAILURE;
use crate::cli::{InstallArgs, UninstallArgs};

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
        let mut ask = || ask_broker_clients();
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

/// Clients of the running broker, not counting this process. The
/// connection is closed before returning, so the installer itself never
/// keeps the broker from stopping.
#[cfg(target_os = "macos")]
fn ask_broker_clients() -> Result<u64, String> {
    let client = vmnet_broker_client::Client::connect_xpc().map_err(|e| e.to_string())?;
    let report = client.status().map_err(|e| e.to_string())?;
    drop(client);
    Ok(vmnet_broker_launchd::clients_in_status(
        &report,
        std::process::id(),
    ))
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
        let spec = spec(args.job.user, &args.job.mach_service)?;
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
        let source = SourceBinary::read(&exe).map_err(|e| format!("cannot read {e}"))?;
        let state = observe(&spec, args.job.dry_run)?;
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
