//! The client failure contract (docs/client-contract.md) as a table
//! (testdata/client-contract.json), run against the Rust client and the C
//! library over the development socket and, built with the `fake-apple`
//! feature, over the fake XPC of crates/fake-apple.
//!
//! Every case sets up a server (nothing, a fake broker that misbehaves in
//! one way, or the real broker), then starts a probe process that makes the
//! case's requests with one client API and prints what each returned:
//!
//! - `rust-client`: `Client::connect_socket`, then requests on it;
//! - `rust-acquire`: `acquire_network`, the process-wide client;
//! - `c-client`: `vmnet_broker_client_connect_socket` (crates/ffi/tests/c/
//!   contract.c, built by scripts/test-c, which names it in
//!   `VMNET_BROKER_CONTRACT_C_PROBE`);
//! - `c-acquire`: `vmnet_broker_acquire`, the process-wide client;
//! - with `fake-apple`, over XPC: `rust-xpc-client`
//!   (`Client::connect_xpc_service`) and `c-xpc-acquire-network` (the
//!   original's `vmnet_broker_acquire_network`, called through the C ABI),
//!   against the broker served on the fake Mach service or the fake
//!   broker `vmnet-broker-contract-xpc-server` (build it with
//!   `cargo build -p vmnet-broker-testkit --features fake-xpc`);
//! - over XPC too, from scripts/test-fake-clients: `swift-c-acquire-network`
//!   (the Swift package's C target, with the probe crates/ffi/tests/c/
//!   contract_upstream.c, named in `VMNET_BROKER_CONTRACT_SWIFT_C_PROBE`)
//!   and `go-xpc-connect`, `go-xpc-acquire-network` (the Go package's cgo
//!   code: its test binary built with the `vmnet_broker_fake_xpc` tag,
//!   named in `VMNET_BROKER_CONTRACT_GO_XPC_PROBE`).
//!
//! This binary is its own Rust probe (`--probe`). A probe runs with the
//! case's environment only, so `VMNET_BROKER_TIMEOUT` is tested as a user
//! sets it. `VMNET_BROKER_CONTRACT_APIS` (comma-separated) picks the APIs;
//! `VMNET_BROKER_CONTRACT_WRAPPER` runs every probe under a command (CI:
//! valgrind, for the C and the fake-XPC runs); `VMNET_BROKER_CONTRACT_SKIP`
//! (comma-separated case ids) leaves cases out. Cases run in parallel; the
//! slowest waits the 30 s default.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use vmnet_broker_client::{Client, Error, Network};

const TABLE: &str = include_str!("../../../testdata/client-contract.json");

/// The table, parsed once (`run` reports a table that is not JSON).
static TABLE_JSON: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| serde_json::from_str(TABLE).unwrap_or(Value::Null));

/// The uid a squatter runs as (nobody).
const OTHER_UID: u32 = 65534;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--probe") {
        return probe(&args[1..]);
    }
    // `cargo test` may pass harness flags (--nocapture, a filter): the
    // table always runs whole.
    run()
}

// ----- The Rust probe -----

/// `--probe client|acquire STEPS SOCKET`: the protocol of
/// crates/ffi/tests/c/contract.c, with the Rust client.
fn probe(args: &[String]) -> ExitCode {
    let [api, steps, socket] = args else {
        eprintln!(
            "usage: contract --probe client|acquire|xpc-client|xpc-upstream STEPS SOCKET|SERVICE"
        );
        return ExitCode::from(2);
    };
    #[cfg(feature = "fake-apple")]
    if api == "xpc-upstream" {
        return xpc::probe_upstream(steps);
    }
    let process_wide = api == "acquire";
    let mut client: Option<Client> = None;
    let mut holds: Vec<Network> = Vec::new();
    for step in steps.split(',') {
        if step == "wait" {
            if !wait_for_go() {
                break;
            }
            continue;
        }
        let started = Instant::now();
        let result = (|| -> Result<(), Error> {
            if process_wide {
                holds.push(vmnet_broker_client::acquire_network("shared")?);
                return Ok(());
            }
            let c = match &client {
                Some(c) => c.clone(),
                None => client.insert(connect(api, socket)?).clone(),
            };
            if step == "acquire" {
                holds.push(c.acquire("shared")?);
            } else {
                c.status()?;
            }
            Ok(())
        })();
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => println!("result 0 {seconds:.3} -"),
            Err(e) => println!("result {} {seconds:.3} {e}", e.status().code()),
        }
        let _ = std::io::stdout().flush();
    }
    drop(holds);
    ExitCode::SUCCESS
}

/// The client of `--probe client` (a socket path) or `--probe
/// xpc-client` (a Mach service name).
fn connect(api: &str, target: &str) -> Result<Client, Error> {
    #[cfg(feature = "fake-apple")]
    if api == "xpc-client" {
        return Client::connect_xpc_service(target);
    }
    let _ = api;
    Client::connect_socket(target)
}

/// Waits for a line on standard input; false at its end.
fn wait_for_go() -> bool {
    println!("waiting");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap_or(0) != 0
}

/// The fake-XPC side: the original's C entry point as a probe.
#[cfg(feature = "fake-apple")]
mod xpc {
    use std::ffi::{CStr, c_void};
    use std::process::ExitCode;
    use std::time::Instant;

    use vmnet_broker::{vmnet_broker_acquire_network, vmnet_broker_last_error};

    unsafe extern "C" {
        /// `xpc_release` of `<xpc/xpc.h>` (the fakes').
        fn xpc_release(object: *mut c_void);
    }

    /// `--probe xpc-upstream STEPS`: every request is
    /// `vmnet_broker_acquire_network("shared")`, as the original's users
    /// make it.
    pub(super) fn probe_upstream(steps: &str) -> ExitCode {
        let mut held = Vec::new();
        for step in steps.split(',') {
            if step == "wait" {
                if !super::wait_for_go() {
                    break;
                }
                continue;
            }
            let started = Instant::now();
            let mut status = -1;
            // SAFETY: a NUL-terminated name and a writable status.
            let object = unsafe { vmnet_broker_acquire_network(c"shared".as_ptr(), &mut status) };
            let seconds = started.elapsed().as_secs_f64();
            if object.is_null() {
                let message = vmnet_broker_last_error();
                let message = if message.is_null() {
                    "-".to_owned()
                } else {
                    // SAFETY: a C string of the library's, valid until the
                    // next call on this thread.
                    unsafe { CStr::from_ptr(message) }
                        .to_string_lossy()
                        .into_owned()
                };
                println!("result {status} {seconds:.3} {message}");
            } else {
                held.push(object);
                println!("result {status} {seconds:.3} -");
            }
        }
        for object in held {
            // SAFETY: a retained object of vmnet_broker_acquire_network,
            // released once.
            unsafe { xpc_release(object) };
        }
        ExitCode::SUCCESS
    }
}

// ----- The runner -----

/// What one request returned.
#[derive(Debug)]
struct Outcome {
    status: i64,
    seconds: f64,
    message: String,
}

/// A client API, and how to start its probe.
#[derive(Clone, Debug)]
struct Api {
    name: &'static str,
    program: Vec<String>,
    /// `client`, `acquire`, `xpc-client` or `xpc-upstream` (the probe's
    /// first argument).
    mode: &'static str,
    /// `socket` or `xpc`: the cases that list it run with this API.
    transport: &'static str,
    /// The probe is the Go test binary: it takes `MODE:STEPS:TARGET` in
    /// `VMNET_BROKER_CONTRACT_PROBE` instead of three arguments.
    go: bool,
}

fn apis() -> Result<Vec<Api>, String> {
    let wrapper: Vec<String> = std::env::var("VMNET_BROKER_CONTRACT_WRAPPER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let me = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .to_string_lossy()
        .into_owned();
    let rust = [wrapper.clone(), vec![me, "--probe".into()]].concat();
    let mut all = vec![
        Api {
            name: "rust-client",
            program: rust.clone(),
            mode: "client",
            transport: "socket",
            go: false,
        },
        Api {
            name: "rust-acquire",
            program: rust.clone(),
            mode: "acquire",
            transport: "socket",
            go: false,
        },
    ];
    if let Some(c_probe) = std::env::var_os("VMNET_BROKER_CONTRACT_C_PROBE") {
        let mut program = wrapper.clone();
        program.push(c_probe.to_string_lossy().into_owned());
        for (name, mode) in [("c-client", "client"), ("c-acquire", "acquire")] {
            all.push(Api {
                name,
                program: program.clone(),
                mode,
                transport: "socket",
                go: false,
            });
        }
    }
    // The Swift package's C target over the fake XPC (scripts/
    // test-fake-clients builds crates/ffi/tests/c/contract_upstream.c with
    // it against crates/fake-apple-c).
    if let Some(probe) = std::env::var_os("VMNET_BROKER_CONTRACT_SWIFT_C_PROBE") {
        let mut program = wrapper.clone();
        program.push(probe.to_string_lossy().into_owned());
        all.push(Api {
            name: "swift-c-acquire-network",
            program,
            mode: "xpc-upstream",
            transport: "xpc",
            go: false,
        });
    }
    // The Go package's cgo XPC code over the fake XPC: its test binary,
    // built by scripts/test-fake-clients with the vmnet_broker_fake_xpc tag
    // (TestContractProbe). Not under the wrapper: valgrind does not follow
    // the Go runtime; the fakes' own checks and leak report apply.
    if let Some(probe) = std::env::var_os("VMNET_BROKER_CONTRACT_GO_XPC_PROBE") {
        let program = vec![
            probe.to_string_lossy().into_owned(),
            "-test.run=^TestContractProbe$".into(),
            "-test.count=1".into(),
        ];
        for (name, mode) in [
            ("go-xpc-connect", "xpc-client"),
            ("go-xpc-acquire-network", "xpc-upstream"),
        ] {
            all.push(Api {
                name,
                program: program.clone(),
                mode,
                transport: "xpc",
                go: true,
            });
        }
    }
    if cfg!(feature = "fake-apple") {
        for (name, mode) in [
            ("rust-xpc-client", "xpc-client"),
            ("c-xpc-acquire-network", "xpc-upstream"),
        ] {
            all.push(Api {
                name,
                program: rust.clone(),
                mode,
                transport: "xpc",
                go: false,
            });
        }
    }
    match std::env::var("VMNET_BROKER_CONTRACT_APIS") {
        Ok(list) if !list.is_empty() => {
            let wanted: Vec<&str> = list.split(',').collect();
            for w in &wanted {
                if !all.iter().any(|a| a.name == *w) {
                    return Err(format!(
                        "VMNET_BROKER_CONTRACT_APIS names {w:?}, which is not available \
                         (the C APIs need VMNET_BROKER_CONTRACT_C_PROBE, the Swift C target \
                         VMNET_BROKER_CONTRACT_SWIFT_C_PROBE, the Go XPC APIs \
                         VMNET_BROKER_CONTRACT_GO_XPC_PROBE)"
                    ));
                }
            }
            all.retain(|a| wanted.contains(&a.name));
            Ok(all)
        }
        _ => Ok(all),
    }
}

/// A server a case runs against, kept until the case ends.
struct Server {
    dir: tempfile::TempDir,
    /// The socket path, or for XPC the Mach service's name.
    target: PathBuf,
    /// The fake XPC's directory (`VMNET_BROKER_FAKE_XPC_DIR`), for XPC.
    xpc_dir: Option<PathBuf>,
    child: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Mach service of the XPC cases (each case has a fake XPC directory
/// of its own, so they do not meet).
const SERVICE: &str = "com.github.nirs.vmnet-broker";

/// Starts the real broker on `socket`, or with `xpc_dir` on the fake
/// Mach service [`SERVICE`] (the broker must be built with `fake-apple`).
fn start_broker(socket: &Path, dir: &Path, xpc_dir: Option<&Path>) -> Result<Child, String> {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(vmnet_broker_testkit::broker_bin());
    cmd.arg("serve");
    match xpc_dir {
        Some(xpc_dir) => {
            cmd.args(["--backend", "vmnet", "--mach-service", SERVICE])
                .env("VMNET_BROKER_FAKE_XPC_DIR", xpc_dir);
        }
        None => {
            cmd.arg("--socket")
                .arg(socket)
                .args(["--backend", "simulated"]);
        }
    }
    cmd.arg("--config-dir")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--no-idle-exit")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    vmnet_broker_testkit::spawn_serving(&mut cmd).map_err(|e| e.to_string())
}

/// Starts the fake XPC broker (`vmnet-broker-contract-xpc-server`) on
/// [`SERVICE`] in `xpc_dir`, as `uid` if given, and waits until it
/// listens.
fn start_fake_xpc(
    xpc_dir: &Path,
    kind: &str,
    reply: Option<&str>,
    uid: Option<u32>,
) -> Result<Child, String> {
    let bin = match std::env::var_os("VMNET_BROKER_CONTRACT_XPC_SERVER") {
        Some(bin) => PathBuf::from(bin),
        None => vmnet_broker_testkit::contract_server_bin()?
            .with_file_name("vmnet-broker-contract-xpc-server"),
    };
    if !bin.is_file() {
        return Err(format!(
            "{} is not built: run `cargo build -p vmnet-broker-testkit --features fake-xpc`",
            bin.display()
        ));
    }
    let mut cmd = Command::new(bin);
    cmd.args(["--service", SERVICE, "--server", kind])
        .env("VMNET_BROKER_FAKE_XPC_DIR", xpc_dir);
    let served = || {
        // The service's socket appears just after the `ready` line.
        let deadline = Instant::now() + vmnet_broker_testkit::PATIENCE;
        while !xpc_dir.join(SERVICE).exists() && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        xpc_dir.join(SERVICE).exists()
    };
    spawn_fake(cmd, "fake XPC broker", kind, reply, uid, served)
}

/// Starts the fake broker and waits for its `ready` line.
fn start_fake(
    socket: &Path,
    kind: &str,
    reply: Option<&str>,
    uid: Option<u32>,
) -> Result<Child, String> {
    let mut cmd = Command::new(vmnet_broker_testkit::contract_server_bin()?);
    cmd.arg("--socket").arg(socket).arg("--server").arg(kind);
    spawn_fake(cmd, "fake broker", kind, reply, uid, || true)
}

/// Starts a fake broker of `kind` (`cmd`, with its transport's arguments),
/// as `uid` if given, and waits for its `ready` line and then `served`.
fn spawn_fake(
    mut cmd: Command,
    what: &str,
    kind: &str,
    reply: Option<&str>,
    uid: Option<u32>,
    served: impl Fn() -> bool,
) -> Result<Child, String> {
    if let Some(reply) = reply {
        cmd.arg("--reply").arg(reply);
    }
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the {what}: {e}"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.trim() != "ready" || !served() {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the {what} ({kind}) did not start"));
    }
    Ok(child)
}

/// Why a case is not run here, or its server.
enum Setup {
    Skip(String),
    Ready(Server),
}

fn set_up(case: &Value, transport: &str) -> Result<Setup, String> {
    let dir = tempfile::Builder::new()
        .prefix("contract")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let socket = dir.path().join("broker.sock");
    let kind = case["server"].as_str().ok_or("case without server")?;
    let reply = case["reply"].as_str();
    if transport == "xpc" {
        let xpc_dir = dir.path().join("xpc");
        std::fs::create_dir(&xpc_dir).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&xpc_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        let child = match kind {
            "none" => None,
            "broker" => Some(start_broker(&socket, dir.path(), Some(&xpc_dir))?),
            "hang" | "close" | "reply" => Some(start_fake_xpc(&xpc_dir, kind, reply, None)?),
            "broker-other-user" => {
                if vmnet_broker_client::effective_uid() != 0 {
                    return Ok(Setup::Skip(
                        "needs root, to serve the service as another user".into(),
                    ));
                }
                // The other user serves the name from a fake XPC directory
                // of its own; the client's directory names that socket
                // (the fake requires each process's directory to be its
                // own), as if the user had registered the service.
                let theirs = dir.path().join("xpc-other");
                std::fs::create_dir(&theirs).map_err(|e| e.to_string())?;
                std::os::unix::fs::chown(&theirs, Some(OTHER_UID), Some(OTHER_UID))
                    .map_err(|e| e.to_string())?;
                std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| e.to_string())?;
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
                    .map_err(|e| e.to_string())?;
                let child = start_fake_xpc(&theirs, "reply", reply, Some(OTHER_UID))?;
                std::os::unix::fs::symlink(theirs.join(SERVICE), xpc_dir.join(SERVICE))
                    .map_err(|e| e.to_string())?;
                Some(child)
            }
            other => return Err(format!("no XPC server of kind {other:?}")),
        };
        return Ok(Setup::Ready(Server {
            dir,
            target: SERVICE.into(),
            xpc_dir: Some(xpc_dir),
            child,
        }));
    }
    let child = match kind {
        "none" => None,
        "broker" => Some(start_broker(&socket, dir.path(), None)?),
        "broker-other-user" => {
            if vmnet_broker_client::effective_uid() != 0 {
                return Ok(Setup::Skip(
                    "needs root, to serve the socket as another user".into(),
                ));
            }
            // The other user creates the socket in the case's directory.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .map_err(|e| e.to_string())?;
            Some(start_fake(&socket, "reply", reply, Some(OTHER_UID))?)
        }
        other => Some(start_fake(&socket, other, reply, None)?),
    };
    Ok(Setup::Ready(Server {
        dir,
        target: socket,
        xpc_dir: None,
        child,
    }))
}

/// The probe's steps for a request kind.
fn steps(request: &str) -> Result<&'static str, String> {
    Ok(match request {
        "acquire" => "acquire",
        "status" => "status",
        "acquire-then-kill-then-status" | "acquire-then-relaunch-then-status" => {
            "acquire,wait,status,status"
        }
        other => return Err(format!("unknown request kind {other:?}")),
    })
}

fn parse_outcome(line: &str) -> Option<Outcome> {
    let rest = line.strip_prefix("result ")?;
    let mut parts = rest.splitn(3, ' ');
    Some(Outcome {
        status: parts.next()?.parse().ok()?,
        seconds: parts.next()?.parse().ok()?,
        message: parts.next().unwrap_or("").to_owned(),
    })
}

fn read_outcome(out: &mut BufReader<ChildStdout>) -> Result<Outcome, String> {
    let mut line = String::new();
    out.read_line(&mut line).map_err(|e| e.to_string())?;
    parse_outcome(line.trim_end()).ok_or_else(|| format!("the probe printed {line:?}"))
}

/// Runs one case with one API; `Ok(None)` when skipped, with the reason.
fn run_case(case: &Value, api: &Api) -> Result<Result<String, String>, String> {
    let mut server = match set_up(case, api.transport)? {
        Setup::Skip(why) => return Ok(Ok(format!("skipped: {why}"))),
        Setup::Ready(server) => server,
    };
    let request = case["request"].as_str().ok_or("case without request")?;
    let mut cmd = Command::new(&api.program[0]);
    cmd.args(&api.program[1..]);
    if api.go {
        cmd.env(
            "VMNET_BROKER_CONTRACT_PROBE",
            format!(
                "{}:{}:{}",
                api.mode,
                steps(request)?,
                server.target.to_string_lossy()
            ),
        );
    } else {
        cmd.arg(api.mode).arg(steps(request)?).arg(&server.target);
    }
    cmd.env_remove("VMNET_BROKER_TIMEOUT")
        .env_remove("VMNET_BROKER_SOCKET")
        .env_remove("VMNET_BROKER_FAKE_XPC_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match &server.xpc_dir {
        Some(xpc_dir) => cmd.env("VMNET_BROKER_FAKE_XPC_DIR", xpc_dir),
        None => cmd.env("VMNET_BROKER_SOCKET", &server.target),
    };
    if let Some(env) = case["env"].as_object() {
        for (k, v) in env {
            cmd.env(k, v.as_str().unwrap_or_default());
        }
    }
    let mut probe = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", api.program[0]))?;
    let mut stdin = probe.stdin.take().ok_or("no stdin")?;
    let mut out = BufReader::new(probe.stdout.take().ok_or("no stdout")?);
    let mut checked = Vec::new();
    let first = read_outcome(&mut out)?;
    if request.starts_with("acquire-then-") {
        if first.status != 0 {
            return Ok(Err(format!("the first acquire failed: {first:?}")));
        }
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "waiting" {
            return Ok(Err(format!("the probe printed {line:?}")));
        }
        // The broker goes away while the client holds a network.
        if let Some(mut child) = server.child.take() {
            child.kill().map_err(|e| e.to_string())?;
            child.wait().map_err(|e| e.to_string())?;
        }
        if request.contains("relaunch") {
            server.child = Some(start_broker(
                &server.target,
                server.dir.path(),
                server.xpc_dir.as_deref(),
            )?);
        }
        // The client learns of the loss from its connection (an end of
        // stream, an interruption event); give that a moment to arrive,
        // as an idle client would have.
        std::thread::sleep(std::time::Duration::from_millis(300));
        writeln!(stdin, "go").map_err(|e| e.to_string())?;
        checked.push((read_outcome(&mut out)?, &case["expect"]));
        let then = read_outcome(&mut out)?;
        if !case["expect"]["then"].is_null() {
            checked.push((then, &case["expect"]["then"]));
        }
    } else {
        checked.push((first, &case["expect"]));
    }
    drop(stdin);
    let status = probe.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Ok(Err(format!(
            "the probe exited with {status} (under valgrind, 99 is a memory error)"
        )));
    }
    let mut notes = Vec::new();
    for (outcome, expect) in checked {
        let status_only = !TABLE_JSON["status_only"][api.name].is_null();
        if let Err(problem) = judge(&outcome, expect, &server.target, status_only) {
            return Ok(Err(problem));
        }
        notes.push(format!("{} in {:.2}s", outcome.status, outcome.seconds));
    }
    let mut note = notes.join(", then ");
    if !TABLE_JSON["status_only"][api.name].is_null() {
        note.push_str(" (status and time only: see the table's status_only)");
    }
    Ok(Ok(note))
}

/// Whether `outcome` is what `expect` says; `status_only` leaves the
/// message unchecked (the table's `status_only` APIs).
fn judge(
    outcome: &Outcome,
    expect: &Value,
    socket: &Path,
    status_only: bool,
) -> Result<(), String> {
    let want = expect["status"].as_i64().ok_or("expect without status")?;
    if outcome.status != want {
        return Err(format!(
            "status {} ({}), expected {want}",
            outcome.status, outcome.message
        ));
    }
    let fragments = if status_only {
        None
    } else {
        expect["message"].as_array()
    };
    for fragment in fragments.into_iter().flatten() {
        let fragment = fragment.as_str().unwrap_or_default();
        let fragment = fragment.replace("SOCKET", &socket.to_string_lossy());
        if !outcome.message.contains(&fragment) {
            return Err(format!("message {:?} lacks {fragment:?}", outcome.message));
        }
    }
    if let Some(min) = expect["min_seconds"].as_f64()
        && outcome.seconds < min
    {
        return Err(format!(
            "answered after {:.3}s, expected at least {min}s",
            outcome.seconds
        ));
    }
    if let Some(max) = expect["max_seconds"].as_f64()
        && outcome.seconds > max
    {
        return Err(format!(
            "answered after {:.3}s, expected at most {max}s",
            outcome.seconds
        ));
    }
    Ok(())
}

fn run() -> ExitCode {
    let table: Value = match serde_json::from_str(TABLE) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("contract: testdata/client-contract.json is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    let apis = match apis() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("contract: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = vmnet_broker_testkit::contract_server_bin() {
        eprintln!("contract: {e}");
        return ExitCode::FAILURE;
    }
    let cases = table["cases"].as_array().cloned().unwrap_or_default();
    let work: VecDeque<(Value, Api)> = cases
        .iter()
        .flat_map(|c| {
            let transports: Vec<&str> = match c["transports"].as_array() {
                Some(list) => list.iter().filter_map(Value::as_str).collect(),
                None => vec!["socket"],
            };
            apis.iter()
                .filter(move |a| transports.contains(&a.transport))
                .map(move |a| (c.clone(), a.clone()))
        })
        .collect();
    let runs = work.len();
    // Cases to leave out (scripts/sanitize leaves out the one that waits
    // the 30 s default timeout; the plain runs keep every case).
    let left_out: Arc<Vec<String>> = Arc::new(
        std::env::var("VMNET_BROKER_CONTRACT_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    );
    if let Some(id) = left_out
        .iter()
        .find(|id| !cases.iter().any(|c| c["id"] == id.as_str()))
    {
        eprintln!(
            "contract: VMNET_BROKER_CONTRACT_SKIP names {id:?}, which is no case of the table"
        );
        return ExitCode::FAILURE;
    }
    let work = Arc::new(Mutex::new(work));
    let results = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let work = Arc::clone(&work);
            let results = Arc::clone(&results);
            let left_out = Arc::clone(&left_out);
            std::thread::spawn(move || {
                loop {
                    let Some((case, api)) = work.lock().unwrap().pop_front() else {
                        return;
                    };
                    let id = case["id"].as_str().unwrap_or("?").to_owned();
                    let result = if left_out.contains(&id) {
                        Ok("skipped: left out by VMNET_BROKER_CONTRACT_SKIP".to_owned())
                    } else {
                        run_case(&case, &api).unwrap_or_else(|e| Err(format!("could not run: {e}")))
                    };
                    results.lock().unwrap().push((id, api.name, result));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut results = Arc::try_unwrap(results).unwrap().into_inner().unwrap();
    results.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut failed = 0;
    let mut skipped = 0;
    for (id, api, result) in &results {
        match result {
            Ok(note) if note.starts_with("skipped") => {
                skipped += 1;
                println!("skip {id} [{api}]: {note}");
            }
            Ok(note) => println!("ok   {id} [{api}]: {note}"),
            Err(problem) => {
                failed += 1;
                println!("FAIL {id} [{api}]: {problem}");
            }
        }
    }
    let names: Vec<&str> = apis.iter().map(|a| a.name).collect();
    println!(
        "contract: {} cases x {} APIs ({}), each on its transports = {runs} runs: {} passed, {failed} failed, {skipped} skipped, in {:.1}s",
        cases.len(),
        apis.len(),
        names.join(", "),
        runs - failed - skipped,
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("VMNET_BROKER_CONTRACT_C_PROBE").is_none() {
        println!("contract: the C library's runs are made by scripts/test-c");
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
