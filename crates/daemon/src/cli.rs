//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A shared vmnet network broker for macOS virtual machines.
///
/// The broker creates vmnet networks on demand, hands them to every VM tool
/// that asks by name, and removes them when the last user is gone. On Linux
/// (and on macOS with --socket) it speaks over a Unix socket and simulates
/// vmnet, for development and testing.
///
/// Without a subcommand it runs `serve` with every default, like the
/// original broker's binary, which its launchd job starts with no arguments.
#[derive(Debug, Parser)]
#[command(name = "vmnet-broker", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Serve(ServeArgs),
    Acquire(AcquireArgs),
    Status(StatusArgs),
    Check(CheckArgs),
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// Which backend creates networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendKind {
    /// Simulated vmnet: networks exist only inside the broker (the default
    /// where vmnet does not exist).
    Simulated,
    /// The macOS 26 vmnet framework (the default on macOS).
    Vmnet,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}

/// Run the broker daemon.
///
/// Serves acquire/release/status requests until stopped. SIGTERM or SIGINT
/// while some client holds a network is logged and ignored, so that
/// stopping the service cannot cut off running VMs; otherwise the broker
/// releases every network and exits 0. SIGHUP reads the configuration
/// directory again; every other catchable signal whose default action
/// would end the process (SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM...) is logged
/// and ignored.
/// Without clients for the idle delay it exits by itself (launchd starts it
/// again on demand), unless --no-idle-exit or a persistent network exists.
///
/// Example (Linux development):
///
///   vmnet-broker serve --socket /tmp/vmnet.sock --no-idle-exit
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ServeArgs {
    /// Unix socket to listen on [default: $VMNET_BROKER_SOCKET, else
    /// $XDG_RUNTIME_DIR/vmnet-broker.sock, else /tmp/vmnet-broker-$UID.sock;
    /// on macOS the default is the XPC Mach service].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Directory of NAME.json / NAME.plist network definitions.
    #[arg(long, value_name = "DIR", default_value = crate::config_dir::DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,

    /// Seconds an unused network is kept, and seconds without clients
    /// before the broker exits (fractions allowed).
    #[arg(long, value_name = "SECS", default_value_t = 120.0, value_parser = parse_secs)]
    pub idle_timeout: f64,

    /// Seconds an unused network is kept [default: --idle-timeout].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub network_idle_timeout: Option<f64>,

    /// Seconds without clients before the broker exits [default: --idle-timeout].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub exit_idle_timeout: Option<f64>,

    /// Never exit because no client is connected.
    #[arg(long)]
    pub no_idle_exit: bool,

    /// Network backend [default: vmnet on macOS, simulated elsewhere].
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,

    /// Mach service name to listen on (macOS, without --socket).
    #[arg(long, value_name = "NAME", default_value = vmnet_broker_proto::MACH_SERVICE_NAME)]
    pub mach_service: String,

    /// Largest request line accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = vmnet_broker_proto::json::DEFAULT_MAX_LINE)]
    pub max_request_size: usize,

    /// Longest network name that can name a network (1 to 64); a longer
    /// name is answered "not found" (5), like any unknown name.
    #[arg(long, value_name = "CHARS", default_value_t = 64,
          value_parser = clap::value_parser!(u8).range(1..=64))]
    pub max_name_length: u8,

    /// Distinct networks one client may hold.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_networks_per_client: usize,

    /// Clients connected at once.
    #[arg(long, value_name = "N", default_value_t = 16384)]
    pub max_clients: usize,

    /// Clients of one user connected at once (root's only count against
    /// --max-clients), so that one user cannot take every connection.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_clients_per_user: usize,

    /// Live networks at once.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_networks: usize,

    /// Accept configuration files whatever their owner and mode (for
    /// development; by default files must be owned by root or the broker's
    /// user and not writable by group or others).
    #[arg(long)]
    pub insecure_config_permissions: bool,

    /// Directory of the state file, where the subnet each network last had
    /// is remembered [default: /var/db/vmnet-broker for the macOS system
    /// broker, ~/Library/Application Support/vmnet-broker for a per-user one;
    /// elsewhere beside --socket (broker.sock: broker.state), else
    /// $XDG_STATE_HOME/vmnet-broker, else beside the default socket].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Once serving (the socket listens, or the Mach service is checked
    /// in), write one byte to file descriptor N and close it, so that a
    /// service manager or test can wait for readiness without polling.
    #[arg(long, value_name = "N")]
    pub ready_fd: Option<i32>,

    /// Seed of the simulated backend's random choices (IPv6 prefixes).
    #[arg(long, value_name = "N", help_heading = "Simulation")]
    pub sim_seed: Option<u64>,

    /// Make every creation of this network fail in the simulated backend
    /// (repeatable; for testing failure handling).
    #[arg(long, value_name = "NAME", help_heading = "Simulation")]
    pub sim_fail_create: Vec<String>,
}

impl ServeArgs {
    /// `serve` with no option given: what runs when the binary is started
    /// without a subcommand.
    pub(crate) fn defaults() -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct OnlyServe {
            #[command(flatten)]
            args: ServeArgs,
        }
        OnlyServe::try_parse_from(["vmnet-broker"]).map(|o| o.args)
    }
}

/// Acquire networks and print their addresses.
///
/// Prints one JSON object per network, one per line, with its name, mode,
/// subnet, mask, ipv6_prefix and ipv6_prefix_length. Without --hold the
/// networks are released when the command exits (they then linger for the
/// broker's idle delay). On failure the status is printed to stderr and the
/// exit code is the status number (5 = not found, ...).
///
/// Examples:
///
///   vmnet-broker acquire shared
///   vmnet-broker acquire shared host --hold   # keep them until Ctrl-C
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct AcquireArgs {
    /// Networks to acquire.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,

    /// Unix socket of the broker [default: as for serve].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Talk XPC to the broker on this Mach service (macOS) instead.
    #[arg(long, value_name = "NAME", conflicts_with = "socket")]
    pub mach_service: Option<String>,

    /// Keep the networks until SIGINT, SIGTERM, end of standard input, or
    /// until the connection to the broker is lost (exit status 1).
    #[arg(long)]
    pub hold: bool,

    /// Seconds to wait for the broker to accept the connection and to
    /// answer each request; a broker that is stopped or stuck gives exit
    /// status 1.
    #[arg(long, value_name = "SECS", env = "VMNET_BROKER_TIMEOUT", default_value = "5",
          value_parser = parse_timeout)]
    pub timeout: f64,
}

/// Show the broker's networks and clients.
///
/// A table of live networks (name, mode, subnet, holders, idle time) and of
/// connected clients. You see your own clients; root sees all. With --json,
/// the status report as one JSON document (see docs/protocol.md).
///
/// Examples:
///
///   vmnet-broker status
///   vmnet-broker status --json | jq '.networks[].name'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct StatusArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Unix socket of the broker [default: as for serve].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Talk XPC to the broker on this Mach service (macOS) instead.
    #[arg(long, value_name = "NAME", conflicts_with = "socket")]
    pub mach_service: Option<String>,

    /// Seconds to wait for the broker to accept the connection and to
    /// answer each request; a broker that is stopped or stuck gives exit
    /// status 1.
    #[arg(long, value_name = "SECS", env = "VMNET_BROKER_TIMEOUT", default_value = "5",
          value_parser = parse_timeout)]
    pub timeout: f64,
}

/// Check the configuration directory.
///
/// Reads every file the broker would read and prints each problem with its
/// file: syntax errors, unknown or invalid options, files that define the
/// same network twice, unsafe permissions, and static subnets that overlap
/// between networks, then the networks the broker would serve if it ran as
/// this user. Run it as the broker's user (root for the system service):
/// a directory this user cannot read is reported, and its files are not
/// checked. Exits 1 if anything is wrong or could not be checked.
///
/// Example:
///
///   vmnet-broker check --config-dir /etc/vmnet-broker.d
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct CheckArgs {
    /// Directory of NAME.json / NAME.plist network definitions.
    #[arg(long, value_name = "DIR", default_value = crate::config_dir::DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,

    /// Do not check file ownership and permissions.
    #[arg(long)]
    pub insecure_config_permissions: bool,
}

/// Install the broker as a launchd service (macOS).
///
/// System-wide (the default, needs root): a LaunchDaemon on the Mach
/// service, running as the hidden user _vmnetbroker, files under
/// /Library/Application Support/vmnet-broker/. With --user: a LaunchAgent
/// for the current user only, no root needed (for development). Safe to
/// repeat: only what differs is changed. Refuses to replace a running broker
/// that has clients, unless --force. Elsewhere than macOS, only --dry-run
/// works (the plan for a Mac where nothing is installed).
///
/// Upgrades the original vmnet-broker (C) in place: it is stopped as its own
/// installer does (SIGTERM, up to 5 s; refused while VMs are connected,
/// unless --force), its _vmnetbroker account is reused and its uninstall.sh
/// and LICENSE are removed. The daemon options below are kept in the job;
/// an option not given keeps the installed value.
///
/// Examples:
///
///   sudo vmnet-broker install --dry-run   # print every command
///   sudo vmnet-broker install
///   sudo vmnet-broker install --log-level debug --network-idle-timeout 600
///   vmnet-broker install --user
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct InstallArgs {
    #[command(flatten)]
    pub job: JobArgs,

    /// Seconds an unused network is kept, written into the job
    /// [default: what is installed, else 120].
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = "Daemon options kept in the job")]
    pub network_idle_timeout: Option<f64>,

    /// Seconds without clients before the broker exits, written into the job
    /// [default: what is installed, else 120].
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = "Daemon options kept in the job")]
    pub exit_idle_timeout: Option<f64>,

    /// Configuration directory (absolute), written into the job
    /// [default: what is installed, else /etc/vmnet-broker.d].
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Daemon options kept in the job"
    )]
    pub config_dir: Option<PathBuf>,

    /// Log level, written into the job [default: what is installed, else info].
    #[arg(
        long,
        value_name = "LEVEL",
        help_heading = "Daemon options kept in the job"
    )]
    pub log_level: Option<String>,
}

/// Options shared by `install` and `uninstall`.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// The per-user LaunchAgent instead of the system LaunchDaemon.
    #[arg(long)]
    pub user: bool,
    /// Print the commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Go ahead even if clients (VMs) use the running broker.
    #[arg(long)]
    pub force: bool,
    /// launchd label and Mach service name.
    #[arg(long, value_name = "NAME", default_value = vmnet_broker_proto::MACH_SERVICE_NAME)]
    pub mach_service: String,
}

/// Remove the launchd service (macOS).
///
/// Stops and removes the job and its files. Refuses while clients (VMs) use
/// the broker, unless --force. The _vmnetbroker account and the logs are
/// kept unless asked for.
///
/// Examples:
///
///   sudo vmnet-broker uninstall --dry-run
///   sudo vmnet-broker uninstall --remove-account --remove-logs
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct UninstallArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Also delete the _vmnetbroker user and group.
    #[arg(long)]
    pub remove_account: bool,
    /// Also delete the log directory.
    #[arg(long)]
    pub remove_logs: bool,
}

/// Print a shell completion script.
///
/// The script completes subcommands and options; load it the way your shell
/// expects. Release tarballs and the Homebrew formula ship it already.
///
/// Examples:
///
///   vmnet-broker completions bash > ~/.local/share/bash-completion/completions/vmnet-broker
///   vmnet-broker completions zsh > ~/.zfunc/_vmnet-broker
///   vmnet-broker completions fish > ~/.config/fish/completions/vmnet-broker.fish
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Write the manual pages.
///
/// Generates vmnet-broker(1) and one page per subcommand
/// (vmnet-broker-serve(1), ...) from this command's own help. Without
/// --out-dir, prints vmnet-broker(1) alone on standard output.
///
/// Examples:
///
///   vmnet-broker man | man -l -
///   mkdir -p man/man1 && vmnet-broker man --out-dir man/man1
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ManArgs {
    /// Existing directory to write one NAME.1 file per page into (files
    /// of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

fn number_of_seconds(s: &str) -> Result<f64, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))
}

/// A delay: 0 to a year, in seconds.
fn parse_secs(s: &str) -> Result<f64, String> {
    let v = number_of_seconds(s)?;
    if !(0.0..=365.0 * 86400.0).contains(&v) {
        return Err(format!("{s} is out of range (0 to one year)"));
    }
    Ok(v)
}

/// A timeout: a number of seconds from a millisecond to a day, by the
/// rule every client library applies to `VMNET_BROKER_TIMEOUT`.
fn parse_timeout(s: &str) -> Result<f64, String> {
    let v = number_of_seconds(s)?;
    match vmnet_broker_client::parse_timeout(s) {
        Some(_) => Ok(v),
        None => Err(format!(
            "{s} is out of range (at least {}, at most {})",
            vmnet_broker_client::MIN_TIMEOUT.as_secs_f64(),
            vmnet_broker_client::MAX_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_with_its_defaults() {
        let cli = Cli::try_parse_from(["vmnet-broker"]).expect("no arguments parse");
        assert!(cli.command.is_none());
        let d = ServeArgs::defaults().expect("defaults");
        let Some(Command::Serve(s)) = Cli::try_parse_from(["vmnet-broker", "serve"])
            .expect("serve parses")
            .command
        else {
            panic!("not serve");
        };
        assert_eq!(format!("{d:?}"), format!("{s:?}"));
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("0.5"), Ok(0.5));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("NaN").is_err());
        assert_eq!(parse_timeout("2.5"), Ok(2.5));
        assert!(parse_timeout("0").is_err());
        assert_eq!(parse_timeout("0.001"), Ok(0.001));
        for bad in ["NaN", "1e20", "86401", "inf", "1e-300", "0.0009"] {
            let e = parse_timeout(bad).unwrap_err();
            assert!(e.contains("at least 0.001, at most 86400"), "{bad}: {e}");
        }
    }
}
