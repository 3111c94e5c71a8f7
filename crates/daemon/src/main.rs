//! The `vmnet-broker` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    vmnet_broker_daemon::main()
}
