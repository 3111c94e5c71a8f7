//! Log set-up: tracing to stderr (human or JSON) and, on macOS, unified
//! logging.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use vmnet_broker_proto::text::escape;

/// Installs the global subscriber: stderr (human or JSON) and, on macOS,
/// unified logging with `subsystem` (the Mach service name) and category
/// `broker`. `level` is a level name or a filter directive (`info`,
/// `vmnet_broker_core=debug`).
pub(crate) fn init(level: &str, format: LogFormat, subsystem: &str) -> Result<(), String> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_new(level).map_err(|e| {
        let e = e.to_string();
        format!("invalid --log-level {}: {}", escape(level), escape(&e))
    })?;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let stderr = match format {
        LogFormat::Human => stderr.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => stderr.json().with_ansi(false).boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(stderr);
    #[cfg(target_os = "macos")]
    let registry = registry.with(tracing_oslog::OsLogger::new(subsystem, "broker"));
    #[cfg(not(target_os = "macos"))]
    let _ = subsystem;
    registry
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

/// Minimal logging for the client commands: warnings only, plain.
pub(crate) fn init_client() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .try_init();
}
