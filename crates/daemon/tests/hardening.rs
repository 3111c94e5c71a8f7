//! End-to-end tests of the hardening against local attackers: another user
//! on the same machine, a directory others can write to, symlinks, FIFOs,
//! a stopped broker, a broker that dies, hostile file names.
//!
//! Each test starts the real binary. Scenarios that need a second user run
//! only as root: they create throwaway users with useradd (removed with
//! userdel when the test ends) and run commands as them with setpriv; when
//! not root they print why they are skipped and pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Broker, bin, write_config};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether `program` can be found on PATH.
fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns true (and says so) when the test needs root, or the tools that
/// make a second user, and does not have them.
fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIPPED {test}: needs root to create a second user (run the tests as root)");
        return true;
    }
    if let Some(missing) = ["useradd", "userdel", "setpriv"]
        .into_iter()
        .find(|p| !have(p))
    {
        eprintln!("SKIPPED {test}: {missing} is not installed");
        return true;
    }
    false
}

static ACCOUNTS: Mutex<()> = Mutex::new(());

/// A throwaway user, deleted on drop.
struct TempUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TempUser {
    /// An ordinary user (a uid in the range for people).
    fn new(tag: &str) -> Self {
        Self::create(tag, &[])
    }

    /// A system account (`useradd --system`: a uid below the range for
    /// people, as a service account has).
    fn system(tag: &str) -> Self {
        Self::create(tag, &["--system"])
    }

    fn create(tag: &str, kind: &[&str]) -> Self {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        // Unique within this run too: tests run in parallel, and a tag
        // may be used by more than one of them.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("vbh{}x{n}{tag}", std::process::id() % 100_000);
        // /etc/passwd may be locked by another useradd for a moment.
        let mut last = String::new();
        for _ in 0..50 {
            let out = Command::new("useradd")
                .args(kind)
                .args(["-M", "-N", "-s", "/usr/sbin/nologin", &name])
                .output()
                .unwrap();
            if out.status.success() {
                let id = |flag: &str| -> u32 {
                    let out = Command::new("id").args([flag, &name]).output().unwrap();
                    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
                };
                let (uid, gid) = (id("-u"), id("-g"));
                return Self { name, uid, gid };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("useradd {name} failed: {last}");
    }

    /// `vmnet-broker ARGS` run as this user (setpriv executes it in place,
    /// so killing the child kills the broker).
    fn command(&self, args: &[&str]) -> Command {
        self.run(bin().to_str().unwrap(), args)
    }

    /// `PROGRAM ARGS` run as this user.
    fn run(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .args(args);
        cmd.stdin(Stdio::null());
        cmd
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..50 {
            let ok = Command::new("userdel")
                .arg(&self.name)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `vmnet-broker serve` on `socket` and returns its output, for
/// brokers expected to refuse to start.
fn serve_refused(socket: &Path, config: &Path) -> Output {
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--socket")
        .arg(socket)
        .arg("--config-dir")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if wait_within(&mut child, Duration::from_secs(20)).is_none() {
        let _ = child.kill();
        panic!("serve on {} did not exit", socket.display());
    }
    child.wait_with_output().unwrap()
}

/// Waits for `child` to exit, at most `within`.
fn wait_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a client command with a bound: a hang fails the test instead of
/// blocking it.
fn run_bounded(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if wait_within(&mut child, Duration::from_secs(30)).is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("command hung: {cmd:?}\n{}", text(&out.stderr));
    }
    child.wait_with_output().unwrap()
}

fn check(config: &Path) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("check")
        .arg("--config-dir")
        .arg(config)
        .stdin(Stdio::null());
    run_bounded(cmd)
}

const RESTRICTED_SHARED: &str = r#"{"mode": "shared", "allowed_users": ["root"]}"#;

// 1. Socket mode and directory rules.

#[test]
fn the_socket_is_world_connectable_without_a_chmod_by_path() {
    let b = Broker::start(&[], &[]);
    let meta = fs::symlink_metadata(&b.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o666, "socket mode");
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
}

#[test]
fn a_directory_others_can_write_is_refused_unless_sticky() {
    let tmp = tempfile::tempdir().unwrap();
    let open = tmp.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let conf = tmp.path().join("conf");
    fs::create_dir(&conf).unwrap();
    let out = serve_refused(&open.join("b.sock"), &conf);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("writable by other users") && err.contains("not sticky"),
        "{err}"
    );
    assert!(!open.join("b.sock").exists() && !open.join("b.sock.lock").exists());

    // Sticky and owned by us (like /tmp): served.
    let sticky = tmp.path().join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let b = Broker::prepare(&[])
        .with_socket(sticky.join("b.sock"))
        .spawn(&[]);
    assert!(b.status()["networks"].is_array());
}

#[test]
fn a_directory_of_another_user_is_refused() {
    if skip_unless_root("a_directory_of_another_user_is_refused") {
        return;
    }
    let user = TempUser::new("d");
    let tmp = tempfile::tempdir().unwrap();
    let theirs = tmp.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(user.uid), None).unwrap();
    let out = serve_refused(&theirs.join("b.sock"), tmp.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("owned by uid {}", user.uid)), "{err}");
}

#[test]
fn a_symlink_at_the_socket_path_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let sock = tmp.path().join("b.sock");
    std::os::unix::fs::symlink(&victim, &sock).unwrap();
    let out = serve_refused(&sock, tmp.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a socket"));
    let meta = fs::metadata(&victim).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "the target's mode changed");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
}

// 2. and 3. The lock file.

#[test]
fn a_symlinked_lock_file_is_refused_and_nothing_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("created-by-root");
    let sock = tmp.path().join("b.sock");
    std::os::unix::fs::symlink(&target, tmp.path().join("b.sock.lock")).unwrap();
    let out = serve_refused(&sock, tmp.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(
        !target.exists(),
        "the broker created a file through the symlink"
    );
    assert!(!sock.exists());
}

#[test]
fn a_lock_path_planted_in_a_sticky_directory_is_named_and_never_followed() {
    if skip_unless_root("a_lock_path_planted_in_a_sticky_directory_is_named_and_never_followed") {
        return;
    }
    // A sticky, world-writable directory like /tmp, where another user
    // plants a symlink at the lock path. Where the kernel protects symlinks
    // in such directories, opening it fails with EACCES rather than ELOOP.
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let config = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("b.sock");
    let lock = tmp.path().join("b.sock.lock");
    let target = tmp.path().join("created-by-root");
    let attacker = TempUser::new("p");
    let out = run_bounded(attacker.run(
        "ln",
        &["-s", target.to_str().unwrap(), lock.to_str().unwrap()],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = serve_refused(&sock, config.path());
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("it is a symbolic link; remove it"), "{err}");
    assert!(
        !target.exists(),
        "the broker created a file through the symlink"
    );
    // A directory at the lock path is named too.
    fs::remove_file(&lock).unwrap();
    fs::create_dir(&lock).unwrap();
    let out = serve_refused(&sock, config.path());
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("it is a directory, not a regular file; remove it"),
        "{err}"
    );
    assert!(!sock.exists());
}

#[test]
fn another_users_live_broker_is_named_not_called_a_stray_lock() {
    if skip_unless_root("another_users_live_broker_is_named_not_called_a_stray_lock") {
        return;
    }
    // A user's broker serves from a shared sticky directory; root (or any
    // other user) trying the same path must learn that it is served, not
    // be told to remove the running broker's lock file.
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let config = tempfile::tempdir().unwrap();
    fs::set_permissions(config.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let user = TempUser::new("v");
    let sock = tmp.path().join("b.sock");
    let mut serve = user.command(&[
        "serve",
        "--socket",
        sock.to_str().unwrap(),
        "--config-dir",
        config.path().to_str().unwrap(),
        "--no-idle-exit",
    ]);
    serve.stderr(Stdio::null());
    let _broker = KillOnDrop(vmnet_broker_testkit::spawn_serving(&mut serve).unwrap());
    let out = serve_refused(&sock, config.path());
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "another broker (uid {}) is already serving",
            user.uid
        )),
        "{err}"
    );
    assert!(!err.contains("remove it"), "{err}");
    assert!(tmp.path().join("b.sock.lock").exists());
}

#[test]
fn the_lock_file_is_private_names_its_holder_and_goes_on_clean_exit() {
    let mut b = Broker::start(&[], &[]);
    let lock = PathBuf::from(format!("{}.lock", b.socket.display()));
    let meta = fs::symlink_metadata(&lock).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o777, 0o600, "lock mode");
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());

    // A second broker on the same path names the first one.
    let out = serve_refused(&b.socket, &b.config);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("already serving") && err.contains(&format!("pid {}", b.pid())),
        "{err}"
    );
    // ...and did not remove the lock or the socket of the first.
    assert!(lock.exists() && b.socket.exists());

    assert!(b.stop().success());
    assert!(!lock.exists(), "lock file left after a clean exit");
    assert!(!b.socket.exists(), "socket left after a clean exit");
}

#[test]
fn a_lock_file_of_another_user_or_with_other_links_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("b.sock");
    let lock = tmp.path().join("b.sock.lock");
    // A hard link to a file we own (root: could be any root file).
    let other = tmp.path().join("important");
    fs::write(&other, "keep me").unwrap();
    fs::hard_link(&other, &lock).unwrap();
    let out = serve_refused(&sock, tmp.path());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("hard links"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&other).unwrap(), "keep me");
    fs::remove_file(&lock).unwrap();

    if skip_unless_root("a_lock_file_of_another_user_is_refused") {
        return;
    }
    let user = TempUser::new("l");
    fs::write(&lock, "").unwrap();
    std::os::unix::fs::chown(&lock, Some(user.uid), None).unwrap();
    let out = serve_refused(&sock, tmp.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("owned by uid {}", user.uid)), "{err}");
}

#[test]
fn another_user_cannot_hold_the_lock() {
    if skip_unless_root("another_user_cannot_hold_the_lock") {
        return;
    }
    let user = TempUser::new("h");
    let b = Broker::prepare(&[]);
    fs::set_permissions(b.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let b = b.spawn(&[]);
    let lock = format!("{}.lock", b.socket.display());
    // flock(2) works on a descriptor opened for reading only, so being
    // able to open the file at all would be enough to hold the lock.
    let out = user.run("cat", &[&lock]).output().unwrap();
    assert!(
        !out.status.success(),
        "another user could open {lock}, and so could lock it"
    );
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
}

// 4. Access control fails closed.

#[test]
fn a_broken_restricted_override_never_falls_back_to_the_builtin() {
    for (what, make) in [
        (
            "dangling symlink",
            (|conf: &Path| {
                std::os::unix::fs::symlink(conf.join("gone.json"), conf.join("shared.json"))
                    .unwrap()
            }) as fn(&Path),
        ),
        ("symlink loop", |conf: &Path| {
            std::os::unix::fs::symlink(conf.join("shared.json"), conf.join("shared.json")).unwrap()
        }),
        ("symlink to a valid file", |conf: &Path| {
            write_config(conf, "real.data", RESTRICTED_SHARED);
            std::os::unix::fs::symlink(conf.join("real.data"), conf.join("shared.json")).unwrap()
        }),
        ("directory", |conf: &Path| {
            fs::create_dir(conf.join("shared.json")).unwrap()
        }),
    ] {
        let b = Broker::prepare(&[]);
        make(&b.config);
        let b = b.spawn(&[]);
        let out = b.cli(&["acquire", "shared"]);
        assert_eq!(
            out.status.code(),
            Some(5),
            "{what}: acquire shared: {}",
            text(&out.stderr)
        );
        let out = check(&b.config);
        assert_eq!(out.status.code(), Some(1), "{what}: check");
        let stdout = text(&out.stdout);
        let listed = stdout
            .split("Networks available:")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        assert!(
            !listed.contains("shared"),
            "{what}: check lists shared:\n{stdout}"
        );
        assert!(listed.contains("host"), "{what}:\n{stdout}");
    }
}

#[test]
fn check_agrees_with_a_broker_that_cannot_search_its_directory() {
    if skip_unless_root("check_agrees_with_a_broker_that_cannot_search_its_directory") {
        return;
    }
    // The broker runs as an ordinary user and owns its configuration
    // directory, which it may list (r) but not search (no x): no file in
    // it can be looked at, not even to learn that host.json is absent.
    let user = TempUser::new("n");
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let config = tmp.path().join("conf");
    fs::create_dir(&config).unwrap();
    write_config(&config, "shared.json", RESTRICTED_SHARED);
    std::os::unix::fs::chown(config.join("shared.json"), Some(user.uid), None).unwrap();
    std::os::unix::fs::chown(&config, Some(user.uid), None).unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let (_broker, sock, log) = serve_as(&user, tmp.path(), &config);
    let sock_s = sock.to_str().unwrap();
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    for name in ["host", "shared"] {
        let out = run_bounded(user.command(&["acquire", name, "--socket", sock_s]));
        assert_eq!(
            out.status.code(),
            Some(5),
            "acquire {name}:\n{}",
            log_text()
        );
    }

    assert!(
        log_text().contains("host.json: cannot read: Permission denied"),
        "{}",
        log_text()
    );

    // check, run as the broker's user, says the same and why.
    let out = run_bounded(user.command(&["check", "--config-dir", config.to_str().unwrap()]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let (findings, listed) = stdout.split_once("Networks available:").unwrap_or_default();
    assert!(
        !listed.contains("host") && !listed.contains("shared"),
        "check lists networks the broker refuses:\n{stdout}"
    );
    assert!(
        findings.contains("host.json: cannot read: Permission denied")
            && findings.contains("network \"host\" cannot be acquired"),
        "{stdout}"
    );
    assert!(
        findings.contains("shared.json: error: cannot read"),
        "{stdout}"
    );
}

// 5. Clients check who serves the socket.

#[test]
fn clients_refuse_a_broker_run_by_another_user() {
    if skip_unless_root("clients_refuse_a_broker_run_by_another_user") {
        return;
    }
    let user = TempUser::new("f");
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let theirs = tmp.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(user.uid), None).unwrap();
    let sock = theirs.join("fake.sock");
    let sock_s = sock.to_str().unwrap();
    let mut fake = KillOnDrop(
        user.command(&["serve", "--socket", sock_s, "--config-dir", "/nonexistent"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "the other user's broker did not start"
        );
        assert!(fake.0.try_wait().unwrap().is_none(), "fake broker exited");
        std::thread::sleep(Duration::from_millis(25));
    }
    for args in [&["status"][..], &["acquire", "shared"][..]] {
        let mut cmd = Command::new(bin());
        cmd.args(args).args(["--socket", sock_s]);
        let out = run_bounded(cmd);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("runs as uid {}", user.uid)),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed the fake's answer");
    }
    // The other user's own client trusts its own broker.
    let out = run_bounded(user.command(&["status", "--socket", sock_s]));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

// Configuration ownership (issue 12): a broker must not accept files its
// own account could write, unless that account is an ordinary user's.

#[test]
fn a_system_account_broker_takes_only_roots_files_and_a_person_also_their_own() {
    if skip_unless_root(
        "a_system_account_broker_takes_only_roots_files_and_a_person_also_their_own",
    ) {
        return;
    }
    for (user, own_accepted) in [(TempUser::system("s"), false), (TempUser::new("p"), true)] {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        // The configuration directory belongs to root; one file to root,
        // one to the broker's account.
        let config = tmp.path().join("conf");
        fs::create_dir(&config).unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o755)).unwrap();
        write_config(&config, "by-root.json", r#"{"mode": "host"}"#);
        write_config(&config, "by-broker.json", r#"{"mode": "host"}"#);
        std::os::unix::fs::chown(config.join("by-broker.json"), Some(user.uid), None).unwrap();
        let (_broker, sock, log) = serve_as(&user, tmp.path(), &config);
        let sock_s = sock.to_str().unwrap();
        let log_text = || fs::read_to_string(&log).unwrap_or_default();

        // Clients run as the same account (they trust root or themselves).
        let acquire = |name: &str| {
            run_bounded(user.command(&["acquire", name, "--socket", sock_s]))
                .status
                .code()
        };
        assert_eq!(acquire("by-root"), Some(0), "{}", log_text());
        let expected = if own_accepted { 0 } else { 5 };
        assert_eq!(
            acquire("by-broker"),
            Some(expected),
            "uid {}:\n{}",
            user.uid,
            log_text()
        );
        if !own_accepted {
            assert!(
                log_text().contains(&format!("owned by uid {}", user.uid)),
                "{}",
                log_text()
            );
        }
        // `check`, run as the broker's account, states the same rule.
        let out = run_bounded(user.command(&["check", "--config-dir", config.to_str().unwrap()]));
        let stdout = text(&out.stdout);
        let rule = if own_accepted {
            format!("the broker runs as the ordinary user uid {}", user.uid)
        } else {
            format!("the broker runs as the system account uid {}", user.uid)
        };
        assert!(stdout.contains(&rule), "{stdout}");
    }
}

#[test]
fn one_user_cannot_take_every_connection() {
    if skip_unless_root("one_user_cannot_take_every_connection") {
        return;
    }
    let b = Broker::prepare(&[]);
    fs::set_permissions(b.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let b = b.spawn(&["--no-idle-exit", "--max-clients-per-user", "4"]);
    let sock = b.socket.to_str().unwrap().to_owned();
    let hog = TempUser::new("g");
    let other = TempUser::new("t");
    // The hog holds four connections open, its whole share...
    let mut held: Vec<KillOnDrop> = (0..4)
        .map(|_| {
            let mut hold = hog.command(&["acquire", "shared", "--hold", "--socket", &sock]);
            // --hold ends at the end of its input: keep stdin open.
            hold.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut child = hold.spawn().unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                &mut line,
            )
            .unwrap();
            assert!(line.contains("subnet"), "{line}");
            KillOnDrop(child)
        })
        .collect();
    // ...and gets no fifth...
    let out = run_bounded(hog.command(&["status", "--socket", &sock]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        b.log_text().contains("the most one user may have"),
        "{}",
        b.log_text()
    );
    // ...while another user and root are served.
    let out = run_bounded(other.command(&["acquire", "shared", "--socket", &sock]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(b.cli(&["status"]).status.success());
    held.clear();
}

// 8. FIFOs in the configuration directory.

#[test]
fn a_fifo_config_file_blocks_neither_the_broker_nor_check() {
    let b = Broker::prepare(&[]);
    nix::unistd::mkfifo(
        &b.config.join("lab.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let b = b.spawn(&[]);
    // A stalled broker would make the CLI time out (exit 1), not answer 5.
    let out = b.cli(&["acquire", "lab", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(b.log_text().contains("FIFO"), "{}", b.log_text());
    let out = b.cli(&["status"]);
    assert!(out.status.success());
    let out = check(&b.config);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("a FIFO, not a regular file"));
}

#[test]
fn a_socket_in_the_configuration_directory_is_named_as_such() {
    let b = Broker::prepare(&[]);
    let _listener = std::os::unix::net::UnixListener::bind(b.config.join("lab.json")).unwrap();
    let b = b.spawn(&[]);
    let out = b.cli(&["acquire", "lab", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let log = b.log_text();
    assert!(log.contains("it is a socket, not a regular file"), "{log}");
    let out = check(&b.config);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("it is a socket, not a regular file"),
        "{stdout}"
    );
}

/// An LD_PRELOAD library that makes the account database slow for every
/// name that starts with "slow": getpwnam_r and getgrnam_r sleep
/// `VBH_SLOW_MS` milliseconds first, as a directory service that does not
/// answer would.
const SLOW_ACCOUNTS_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void slow(const char *name) {
    const char *ms = getenv("VBH_SLOW_MS");
    if (ms && name && strncmp(name, "slow", 4) == 0)
        usleep((useconds_t)atoi(ms) * 1000);
}

int getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t len, struct passwd **out) {
    int (*real)(const char *, struct passwd *, char *, size_t, struct passwd **) =
        (int (*)(const char *, struct passwd *, char *, size_t, struct passwd **))dlsym(RTLD_NEXT, "getpwnam_r");
    slow(name);
    return real(name, pw, buf, len, out);
}

int getgrnam_r(const char *name, struct group *gr, char *buf, size_t len, struct group **out) {
    int (*real)(const char *, struct group *, char *, size_t, struct group **) =
        (int (*)(const char *, struct group *, char *, size_t, struct group **))dlsym(RTLD_NEXT, "getgrnam_r");
    slow(name);
    return real(name, gr, buf, len, out);
}
"#;

#[test]
fn a_slow_account_database_stalls_other_clients_only_briefly() {
    if skip_unless_root("a_slow_account_database_stalls_other_clients_only_briefly") {
        return;
    }
    if !have("cc") {
        eprintln!(
            "SKIPPED a_slow_account_database_stalls_other_clients_only_briefly: cc is not installed"
        );
        return;
    }
    let shim_dir = tempfile::tempdir().unwrap();
    let source = shim_dir.path().join("slow.c");
    let shim = shim_dir.path().join("slow.so");
    fs::write(&source, SLOW_ACCOUNTS_C).unwrap();
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));

    // An access list of twelve names the directory service takes 3 s each
    // to answer. Waiting 0.5 s per name stalled every client for 4 s.
    let quoted = |prefix: &str, n: usize| -> String {
        (0..n)
            .map(|i| format!("\"slow{prefix}{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let body = format!(
        r#"{{"mode": "host", "allowed_users": [{}], "allowed_groups": [{}]}}"#,
        quoted("user", 8),
        quoted("group", 4)
    );
    let mut b = Broker::prepare(&[("lab.json", &body)]);
    fs::set_permissions(b.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut serve = b.serve_command(&["--no-idle-exit"]);
    serve.env("LD_PRELOAD", &shim).env("VBH_SLOW_MS", "3000");
    b.child = Some(vmnet_broker_testkit::spawn_serving(&mut serve).unwrap());

    let user = TempUser::new("s");
    let sock = b.socket.to_str().unwrap().to_owned();
    let acquire = user
        .command(&["acquire", "lab", "--socket", &sock])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Meanwhile another client asks for the status again and again; the
    // longest answer shows how long the loop stood still.
    let mut watcher = b.connect();
    let mut longest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let asked = Instant::now();
        let reply = watcher.request(&serde_json::json!({"command": "status"}));
        assert!(reply.get("status").is_some(), "{reply}");
        longest = longest.max(asked.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = acquire.wait_with_output().unwrap();
    // No name resolved in time: the list matches nobody (access denied).
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        longest < Duration::from_secs(2),
        "the other client waited {longest:?} for a status reply:\n{}",
        b.log_text()
    );
    assert!(b.stop().success());
}

// 12. Timeouts.

#[test]
fn the_cli_gives_up_on_a_stopped_broker() {
    let b = Broker::start(&[], &[]);
    // Connections to a stopped broker are still accepted by the kernel.
    b.suspend();
    let out = run_bounded({
        let mut c = Command::new(bin());
        c.args(["status", "--timeout", "1", "--socket"])
            .arg(&b.socket);
        c
    });
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did not answer in time"), "{err}");

    let out = run_bounded({
        let mut c = Command::new(bin());
        c.args(["acquire", "shared", "--socket"])
            .arg(&b.socket)
            .env("VMNET_BROKER_TIMEOUT", "0.5");
        c
    });
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    b.resume();
    assert!(b.cli(&["status"]).status.success());
    assert_eq!(b.cli(&["status", "--timeout", "0"]).status.code(), Some(64));
}

// 13. Transient failures are internal errors, never "not found".

#[test]
fn out_of_descriptors_is_an_internal_error_not_not_found() {
    if !have("prlimit") {
        eprintln!("SKIPPED out_of_descriptors_is_an_internal_error_not_not_found: no prlimit");
        return;
    }
    let b = Broker::prepare(&[("lab.json", r#"{"mode": "host"}"#)]);
    let log = fs::File::create(&b.log).unwrap();
    let child = Command::new("prlimit")
        .arg("--nofile=24:24")
        .arg(bin())
        .arg("serve")
        .arg("--socket")
        .arg(&b.socket)
        .arg("--config-dir")
        .arg(&b.config)
        .args(["--no-idle-exit", "--log-level", "debug"])
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&b.socket).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut first = common::Conn::new(std::os::unix::net::UnixStream::connect(&b.socket).unwrap());
    assert!(first.request(&serde_json::json!({"command": "status"}))["status"].is_object());
    // Use up the broker's descriptors with idle connections.
    let mut others = Vec::new();
    for _ in 0..40 {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&b.socket) {
            others.push(s);
        }
    }
    // Wait until the broker has accepted all it can (its status shows them).
    let mut seen = 0;
    for _ in 0..100 {
        let r = first.request(&serde_json::json!({"command": "status"}));
        let now = r["status"]["peer_count"].as_u64().unwrap_or(0);
        if now == seen && now > 1 {
            break;
        }
        seen = now;
        std::thread::sleep(Duration::from_millis(50));
    }
    let reply = first.acquire("lab");
    assert_eq!(reply["error"], 7, "{reply}\n{}", b.log_text());
    assert!(
        b.log_text().contains("cannot read the configuration"),
        "{}",
        b.log_text()
    );
    drop(others);
}

/// Kills and reaps a child process when the test ends, even by a panic.
struct KillOnDrop(Child);

/// A broker run by `user` with the configuration directory `config`, on a
/// socket in a directory of the user's own under `tmp`. Returns the
/// running broker, its socket and its log file.
fn serve_as(user: &TempUser, tmp: &Path, config: &Path) -> (KillOnDrop, PathBuf, PathBuf) {
    let run = tmp.join("run");
    fs::create_dir(&run).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&run, Some(user.uid), None).unwrap();
    let sock = run.join("broker.sock");
    let log = run.join("broker.log");
    let mut serve = user.command(&[
        "serve",
        "--socket",
        sock.to_str().unwrap(),
        "--config-dir",
        config.to_str().unwrap(),
        "--backend",
        "simulated",
        "--no-idle-exit",
    ]);
    serve.stderr(fs::File::create(&log).unwrap());
    let broker = KillOnDrop(vmnet_broker_testkit::spawn_serving(&mut serve).unwrap());
    (broker, sock, log)
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// 14. acquire --hold watches its connection.

#[test]
fn a_hold_ends_with_an_error_when_the_broker_dies() {
    let b = Broker::start(&[], &[]);
    let mut holder = b.hold(&["shared"]);
    let mut broker = b;
    let _ = broker.child.as_mut().unwrap().kill(); // SIGKILL
    let _ = broker.child.as_mut().unwrap().wait();
    let status = wait_within(&mut holder.child, Duration::from_secs(20))
        .expect("acquire --hold kept running after the broker died");
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    use std::io::Read;
    holder
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("lost the connection"), "{err}");
}

// 15. Numeric ids as strings; names that do not resolve.

#[test]
fn digit_strings_in_access_lists_are_ids() {
    if skip_unless_root("digit_strings_in_access_lists_are_ids") {
        return;
    }
    let allowed = TempUser::new("a");
    let other = TempUser::new("o");
    let body = format!(
        r#"{{"mode": "host", "allowed_users": ["{}"]}}"#,
        allowed.uid
    );
    let b = Broker::prepare(&[("lab.json", &body)]);
    fs::set_permissions(b.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let b = b.spawn(&[]);
    let sock = b.socket.to_str().unwrap().to_owned();
    let out = run_bounded(allowed.command(&["acquire", "lab", "--socket", &sock]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run_bounded(other.command(&["acquire", "lab", "--socket", &sock]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

#[test]
fn check_warns_about_names_that_do_not_resolve() {
    let b = Broker::prepare(&[(
        "lab.json",
        r#"{"mode": "host", "allowed_users": ["no-such-user-vbh"], "allowed_groups": ["no-such-group-vbh", "0"]}"#,
    )]);
    let out = check(&b.config);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: allowed_users: no user named \"no-such-user-vbh\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("no group named \"no-such-group-vbh\""),
        "{stdout}"
    );
}

// 16. Names are escaped.

#[test]
fn check_escapes_control_characters_in_file_names() {
    let b = Broker::prepare(&[
        ("evil\x1b[2J.json", r#"{"mode": "host"}"#),
        ("x\nConfiguration OK.\n.json", r#"{"mode": "host"}"#),
    ]);
    let out = check(&b.config);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains('\x1b'), "raw escape printed:\n{stdout:?}");
    assert!(stdout.contains("evil\\x1b[2J.json"), "{stdout}");
    assert!(
        !stdout.lines().any(|l| l == "Configuration OK."),
        "a file name faked a line:\n{stdout}"
    );
    assert!(stdout.contains("x\\nConfiguration OK.\\n.json"), "{stdout}");
}

/// Text that a hostile name tries to put at the start of a line of its own.
const FAKE_LINES: [&str; 2] = ["FAKE.sock", "Configuration OK."];

/// Asserts that `out` carries no raw escape character and that no line of
/// it starts with text a name smuggled in after a newline.
fn assert_nothing_injected(out: &str) {
    assert!(!out.contains('\x1b'), "raw escape printed:\n{out:?}");
    for line in out.lines() {
        assert!(
            !FAKE_LINES.iter().any(|f| line.starts_with(f)),
            "a name faked a line: {line:?}\n{out}"
        );
    }
}

#[test]
fn serve_escapes_the_socket_path_and_configuration_directory_in_its_log() {
    let b = Broker::prepare(&[]);
    let socket = b.dir.path().join("\x1b[31mX\nFAKE.sock");
    let config = b.dir.path().join("cfg\x1b[31mX\nConfiguration OK.");
    fs::create_dir(&config).unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o755)).unwrap();
    // A file the broker refuses: its message names it with the directory.
    std::os::unix::fs::symlink(config.join("missing"), config.join("lab.json")).unwrap();
    let mut b = b.with_socket(socket);
    b.config = config;
    let b = b.spawn(&[]);
    let out = b.cli(&["acquire", "lab"]);
    assert!(!out.status.success(), "{}", text(&out.stderr));
    b.wait_for("the refusal in the log", |b| {
        b.log_text().contains("acquire refused")
    });
    let log = b.log_text();
    assert_nothing_injected(&log);
    assert!(
        log.contains("\\x1b[31mX\\nFAKE.sock"),
        "socket path not shown escaped:\n{log}"
    );
    assert!(
        log.contains("cfg\\x1b[31mX\\nConfiguration OK."),
        "configuration directory not shown escaped:\n{log}"
    );
    assert!(
        log.contains("cfg\\x1b[31mX\\nConfiguration OK./lab.json: cannot read"),
        "refused file not shown escaped:\n{log}"
    );
}

#[test]
fn a_refused_socket_directory_is_named_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let open = tmp.path().join("open\x1b[31mX\nFAKE.sock");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let out = serve_refused(&open.join("b.sock"), tmp.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("refusing to serve on"), "{err}");
    assert_nothing_injected(&err);
    assert!(err.contains("open\\x1b[31mX\\nFAKE.sock"), "{err}");
}

#[test]
fn client_errors_name_the_socket_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("\x1b[31mX\nFAKE.sock");
    let mut status = Command::new(bin());
    status
        .arg("status")
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null());
    let mut acquire = Command::new(bin());
    acquire
        .args(["acquire", "shared"])
        .env("VMNET_BROKER_SOCKET", &socket)
        .stdin(Stdio::null());
    for cmd in [status, acquire] {
        let out = run_bounded(cmd);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("cannot connect to the broker at"), "{err}");
        assert_nothing_injected(&err);
        assert!(err.contains("\\x1b[31mX\\nFAKE.sock"), "{err}");
    }
}

#[test]
fn refused_option_values_are_echoed_escaped() {
    let hostile = "\x1b[31mX\nFAKE.sock";
    let mut flag = Command::new(bin());
    flag.args(["status", "--timeout", hostile])
        .stdin(Stdio::null());
    let mut env = Command::new(bin());
    env.arg("status")
        .env("VMNET_BROKER_TIMEOUT", hostile)
        .stdin(Stdio::null());
    let mut serve = Command::new(bin());
    serve
        .args(["serve", "--idle-timeout", hostile])
        .stdin(Stdio::null());
    for cmd in [flag, env, serve] {
        let out = run_bounded(cmd);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert!(err.contains("invalid value"), "{err}");
        assert_nothing_injected(&err);
        assert!(err.contains("\\x1b[31mX\\nFAKE.sock"), "{err}");
    }
}

// 17. check on a directory it cannot read.

#[test]
fn check_of_an_unreadable_directory_lists_the_builtins() {
    if skip_unless_root("check_of_an_unreadable_directory_lists_the_builtins") {
        return;
    }
    let user = TempUser::new("r");
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let conf = tmp.path().join("conf");
    fs::create_dir(&conf).unwrap();
    write_config(&conf, "lab.json", r#"{"mode": "host"}"#);
    // Searchable but not listable: the built-ins still work for the broker.
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o711)).unwrap();
    let out = run_bounded(user.command(&["check", "--config-dir", conf.to_str().unwrap()]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cannot read"), "{stdout}");
    let listed = stdout
        .split("Networks available:")
        .nth(1)
        .unwrap_or_default();
    assert!(
        listed.contains("host") && listed.contains("shared") && listed.contains("built-in"),
        "{stdout}"
    );
}

#[test]
fn check_of_a_directory_closed_to_the_caller_lists_what_a_root_broker_serves() {
    if skip_unless_root("check_of_a_directory_closed_to_the_caller_lists_what_a_root_broker_serves")
    {
        return;
    }
    let user = TempUser::new("c");
    let b = Broker::prepare(&[("lab.json", r#"{"mode": "host"}"#)]);
    fs::set_permissions(b.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let config_s = b.config.to_str().unwrap().to_owned();
    // Neither listable nor searchable by others (0750: the user is not in
    // root's group).
    for mode in [0o700, 0o750] {
        fs::set_permissions(&b.config, fs::Permissions::from_mode(mode)).unwrap();
        let out = run_bounded(user.command(&["check", "--config-dir", &config_s]));
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "mode {mode:o}:\n{stdout}");
        let (findings, listed) = stdout.split_once("Networks available:").unwrap_or_default();
        assert!(
            findings.contains(&format!("cannot read {config_s} as uid {}", user.uid))
                && findings.contains("were not checked")
                && findings.contains("as root"),
            "mode {mode:o}:\n{stdout}"
        );
        assert!(
            !stdout.contains("cannot be acquired"),
            "mode {mode:o}:\n{stdout}"
        );
        for name in ["host", "shared"] {
            assert!(
                listed
                    .lines()
                    .any(|l| l.trim_start().starts_with(name) && l.contains("built-in")),
                "mode {mode:o}: {name} not listed:\n{stdout}"
            );
        }
        assert!(
            listed.contains("check is incomplete"),
            "mode {mode:o}:\n{stdout}"
        );
    }
    // A broker running as root serves them, and the directory's network.
    let b = b.spawn(&[]);
    for name in ["host", "shared", "lab"] {
        let out = b.cli(&["acquire", name]);
        assert!(
            out.status.success(),
            "acquire {name}: {}",
            text(&out.stderr)
        );
    }
    // check run as root (the broker's user) agrees with it exactly.
    let out = check(&b.config);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let listed = stdout
        .split_once("Networks available:")
        .unwrap_or_default()
        .1;
    for name in ["host", "shared", "lab"] {
        assert!(listed.contains(name), "{stdout}");
    }
}

#[test]
fn check_of_a_file_closed_to_the_caller_says_it_was_not_checked() {
    if skip_unless_root("check_of_a_file_closed_to_the_caller_says_it_was_not_checked") {
        return;
    }
    // A root-owned restricted override only root may read, beside a file
    // everyone may read: the broker (root) serves both.
    let user = TempUser::new("k");
    let b = Broker::prepare(&[
        ("lab.json", r#"{"mode": "host"}"#),
        ("shared.json", RESTRICTED_SHARED),
    ]);
    fs::set_permissions(b.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(
        b.config.join("shared.json"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let config_s = b.config.to_str().unwrap().to_owned();
    let out = run_bounded(user.command(&["check", "--config-dir", &config_s]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let (findings, listed) = stdout.split_once("Networks available:").unwrap_or_default();
    assert!(
        findings.contains(&format!("cannot read it as uid {}", user.uid))
            && findings.contains("was not checked"),
        "{stdout}"
    );
    assert!(!stdout.contains("cannot be acquired"), "{stdout}");
    assert!(
        listed
            .lines()
            .any(|l| l.trim_start().starts_with("shared") && l.contains("not checked")),
        "{stdout}"
    );
    assert!(listed.contains("check is incomplete"), "{stdout}");
    // Root's check and a root broker agree: the override is in force.
    let out = check(&b.config);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let b = b.spawn(&[]);
    assert!(b.cli(&["acquire", "shared"]).status.success());
}

// 18. A socket path too long for sun_path.

#[test]
fn a_socket_path_too_long_fails_cleanly_without_a_lock_file() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join(format!("{}.sock", "s".repeat(200)));
    let out = serve_refused(&sock, tmp.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("too long"), "{err}");
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
