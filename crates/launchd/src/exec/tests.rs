//! Runs real plans against a temporary home directory with a scripted
//! `launchctl`/`codesign`. No system command is run.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

use super::*;
use crate::{
    BrokerClients, CommandOutput, DEFAULT_LABEL, InstallOptions, JobSpec, JobStatus, SourceBinary,
    UninstallOptions, job_plist_xml, plan_install, plan_uninstall, probe,
};

/// Pretends to be launchctl and codesign. `codesign` appends a fake
/// signature to the file, as the real one changes the binary.
#[derive(Default)]
struct FakeSystem {
    loaded: bool,
    bootout_polls_before_gone: u32,
    log: Vec<String>,
    /// A broker process is running (`launchctl print` shows its pid).
    running: bool,
    /// It ignores SIGTERM (the original does while VMs are connected).
    ignores_sigterm: bool,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<FakeSystem>>);

impl CommandRunner for Fake {
    fn run(&mut self, argv: &[String]) -> io::Result<CommandOutput> {
        let mut sys = self.0.borrow_mut();
        sys.log.push(join(argv));
        let ok = |success| CommandOutput {
            success,
            code: Some(if success { 0 } else { 113 }),
            stdout: String::new(),
            stderr: if success {
                String::new()
            } else {
                "Could not find service".into()
            },
        };
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["launchctl", "print", _] => {
                if sys.loaded && sys.bootout_polls_before_gone > 0 {
                    sys.bootout_polls_before_gone -= 1;
                    if sys.bootout_polls_before_gone == 0 {
                        sys.loaded = false;
                    }
                    return Ok(ok(true));
                }
                let mut out = ok(sys.loaded);
                if sys.loaded && sys.running {
                    out.stdout = "\tstate = running\n\tpid = 4242\n".into();
                }
                Ok(out)
            }
            ["launchctl", "kill", "SIGTERM", _] => {
                if !sys.ignores_sigterm {
                    sys.running = false;
                }
                Ok(ok(sys.running || sys.loaded))
            }
            ["launchctl", "bootstrap", _, _] => {
                sys.loaded = true;
                Ok(ok(true))
            }
            ["launchctl", "bootout", _] => {
                if sys.bootout_polls_before_gone == 0 {
                    sys.loaded = false;
                }
                sys.running = false;
                Ok(ok(true))
            }
            ["codesign", .., path] => {
                let mut bytes = fs::read(path)?;
                bytes.extend_from_slice(b"\0fake-signature");
                fs::write(path, bytes)?;
                Ok(ok(true))
            }
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "not scripted")),
        }
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    spec: JobSpec,
    source: SourceBinary,
    fake: Fake,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    let bin = dir.path().join("vmnet-broker");
    fs::write(&bin, b"#!/bin/sh\necho pretend broker\n").unwrap();
    let spec = JobSpec::user(DEFAULT_LABEL, 501, &home).unwrap();
    let source = SourceBinary::read(&bin).unwrap();
    Setup {
        _dir: dir,
        spec,
        source,
        fake: Fake::default(),
    }
}

fn no_broker() -> BrokerClients {
    BrokerClients::Count(0)
}

fn install(s: &mut Setup) -> Plan {
    let state = probe(&s.spec, &mut s.fake, &mut no_broker).unwrap();
    let plan = plan_install(&s.spec, &state, &s.source, &InstallOptions::default()).unwrap();
    let fast = ExecOptions {
        poll_interval: Duration::ZERO,
        ..ExecOptions::default()
    };
    execute_with(&plan, &mut s.fake, &mut |_| {}, &fast).unwrap();
    plan
}

#[test]
fn user_install_writes_every_file_and_loads_the_job() {
    let mut s = setup();
    let plan = install(&mut s);
    assert!(!plan.is_empty());
    let paths = s.spec.paths();

    assert_eq!(fs::read(&paths.plist).unwrap(), job_plist_xml(&s.spec));
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&paths.plist), 0o644);
    assert_eq!(mode(&paths.binary), 0o755);
    assert_eq!(mode(&paths.install_dir), 0o755);
    assert!(paths.log_dir.is_dir());
    let installed = fs::read(&paths.binary).unwrap();
    assert!(
        installed.ends_with(b"\0fake-signature"),
        "binary was signed"
    );
    assert!(
        fs::read_to_string(&paths.entitlements)
            .unwrap()
            .contains("com.apple.security.virtualization")
    );
    let log = s.fake.0.borrow().log.clone();
    let codesign = format!(
        "codesign --force --sign - --identifier {DEFAULT_LABEL} --entitlements {} {}",
        shell_path(&paths.entitlements),
        shell_path(&paths.binary)
    );
    assert!(log.contains(&codesign), "{log:#?}");
    assert_eq!(
        log.last().unwrap(),
        &format!("launchctl bootstrap gui/501 {}", shell_path(&paths.plist))
    );
    assert!(s.fake.0.borrow().loaded);
    // No leftovers from atomic replacement.
    for entry in fs::read_dir(&paths.install_dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().ends_with("-tmp"), "{name:?}");
    }
}

fn shell_path(p: &Path) -> String {
    crate::shell_quote(&p.to_string_lossy())
}

#[test]
fn second_install_finds_nothing_to_do() {
    let mut s = setup();
    install(&mut s);
    let state = probe(&s.spec, &mut s.fake, &mut no_broker).unwrap();
    assert_eq!(state.job, JobStatus::Loaded);
    assert_eq!(state.clients, BrokerClients::Count(0));
    let plan = plan_install(&s.spec, &state, &s.source, &InstallOptions::default()).unwrap();
    assert!(plan.is_empty(), "{:#?}", plan.describe());
}

#[test]
fn upgrade_waits_for_the_old_job_to_go_and_replaces_only_the_binary() {
    let mut s = setup();
    install(&mut s);
    fs::write(&s.source.path, b"#!/bin/sh\necho newer broker\n").unwrap();
    s.source = SourceBinary::read(&s.source.path).unwrap();
    s.fake.0.borrow_mut().bootout_polls_before_gone = 3;
    s.fake.0.borrow_mut().log.clear();
    let plan = install(&mut s);
    let described = plan.describe();
    assert_eq!(described.len(), 5, "{described:#?}");
    assert!(
        described[0].starts_with("stop and unload"),
        "{described:#?}"
    );
    let log = s.fake.0.borrow().log.clone();
    let polls = log
        .iter()
        .filter(|l| l.starts_with("launchctl print"))
        .count();
    // One probe, then polling until the fake job is gone.
    assert!(polls >= 4, "{log:#?}");
    let installed = fs::read(s.spec.paths().binary).unwrap();
    assert!(installed.starts_with(b"#!/bin/sh\necho newer broker\n"));
}

#[test]
fn broker_with_clients_is_left_alone() {
    let mut s = setup();
    install(&mut s);
    fs::write(&s.source.path, b"newer").unwrap();
    s.source = SourceBinary::read(&s.source.path).unwrap();
    let state = probe(&s.spec, &mut s.fake, &mut || BrokerClients::Count(2)).unwrap();
    let err = plan_install(&s.spec, &state, &s.source, &InstallOptions::default()).unwrap_err();
    assert!(err.to_string().contains("2 connected clients"), "{err}");
}

#[test]
fn uninstall_removes_what_install_made_and_keeps_logs() {
    let mut s = setup();
    install(&mut s);
    let paths = s.spec.paths();
    fs::write(&paths.log_file, b"old log\n").unwrap();
    let state = probe(&s.spec, &mut s.fake, &mut no_broker).unwrap();
    let plan = plan_uninstall(&s.spec, &state, &UninstallOptions::default()).unwrap();
    execute(&plan, &mut s.fake, &mut |_| {}).unwrap();
    assert!(!paths.plist.exists());
    assert!(!paths.binary.exists());
    assert!(!paths.install_dir.exists());
    assert!(paths.log_file.exists());
    assert!(!s.fake.0.borrow().loaded);

    // And again: nothing left to do.
    let state = probe(&s.spec, &mut s.fake, &mut no_broker).unwrap();
    assert!(
        plan_uninstall(&s.spec, &state, &UninstallOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_failing_command_stops_the_plan_and_names_the_command() {
    let mut s = setup();
    let state = probe(&s.spec, &mut s.fake, &mut no_broker).unwrap();
    let plan = plan_install(&s.spec, &state, &s.source, &InstallOptions::default()).unwrap();
    struct Broken;
    impl CommandRunner for Broken {
        fn run(&mut self, _: &[String]) -> io::Result<CommandOutput> {
            Ok(CommandOutput {
                success: false,
                code: Some(1),
                stdout: String::new(),
                stderr: "codesign: no identity\n".into(),
            })
        }
    }
    let err = execute(&plan, &mut Broken, &mut |_| {}).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("could not sign "), "{message}");
    assert!(
        message.contains("exited with status 1: codesign: no identity"),
        "{message}"
    );
    assert!(
        !s.spec.paths().plist.exists(),
        "stopped before the job file"
    );
}

/// What the original broker's installer leaves: its binary, its job file
/// (with `Program`), uninstall.sh and LICENSE; the job loaded and running.
fn original_install(s: &Setup) {
    let paths = s.spec.paths();
    fs::create_dir_all(&paths.install_dir).unwrap();
    fs::create_dir_all(&paths.plist_dir).unwrap();
    fs::write(&paths.binary, b"original broker").unwrap();
    fs::write(paths.install_dir.join("uninstall.sh"), b"#!/bin/sh\n").unwrap();
    fs::write(paths.install_dir.join("LICENSE"), b"license\n").unwrap();
    let plist = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
         <key>Label</key><string>{DEFAULT_LABEL}</string>\
         <key>Program</key><string>{}</string>\
         <key>MachServices</key><dict><key>{DEFAULT_LABEL}</key><true/></dict>\
         </dict></plist>\n",
        paths.binary.display()
    );
    fs::write(&paths.plist, plist).unwrap();
    let mut sys = s.fake.0.borrow_mut();
    sys.loaded = true;
    sys.running = true;
}

fn fast() -> ExecOptions {
    ExecOptions {
        poll_interval: Duration::ZERO,
        ..ExecOptions::default()
    }
}

/// The plan with the original's stop wait cut to `secs` (the real one is
/// 5 s; the fake answers at once).
fn with_stop_wait(mut plan: Plan, secs: u64) -> Plan {
    for a in &mut plan.actions {
        if let Action::StopOriginal { wait_secs, .. } = a {
            *wait_secs = secs;
        }
    }
    plan
}

#[test]
fn upgrading_from_the_original_stops_it_with_sigterm_and_removes_its_leftovers() {
    let mut s = setup();
    original_install(&s);
    // The original answers `status` with 4.
    let state = probe(&s.spec, &mut s.fake, &mut || BrokerClients::Original).unwrap();
    assert!(state.is_original());
    assert_eq!(state.leftovers.len(), 2);
    let plan = plan_install(&s.spec, &state, &s.source, &InstallOptions::default()).unwrap();
    assert!(matches!(
        plan.actions[0],
        Action::StopOriginal {
            wait_secs: 5,
            force: false,
            ..
        }
    ));
    assert!(matches!(plan.actions[1], Action::Bootout { .. }));
    let plan = with_stop_wait(plan, 0);
    execute_with(&plan, &mut s.fake, &mut |_| {}, &fast()).unwrap();

    let paths = s.spec.paths();
    assert_eq!(fs::read(&paths.plist).unwrap(), job_plist_xml(&s.spec));
    assert!(!paths.install_dir.join("uninstall.sh").exists());
    assert!(!paths.install_dir.join("LICENSE").exists());
    assert!(
        fs::read(&paths.binary)
            .unwrap()
            .ends_with(b"\0fake-signature")
    );
    let log = s.fake.0.borrow().log.join("\n");
    let kill = log.find("launchctl kill SIGTERM").expect("SIGTERM sent");
    let bootout = log.find("launchctl bootout").expect("booted out");
    assert!(kill < bootout, "{log}");
    assert!(s.fake.0.borrow().loaded, "our job is loaded");

    // Installed now: the next install has nothing to do.
    let state = probe(&s.spec, &mut s.fake, &mut no_broker).unwrap();
    assert!(!state.is_original());
    let again = plan_install(&s.spec, &state, &s.source, &InstallOptions::default()).unwrap();
    assert!(again.is_empty(), "{:?}", again.describe());
}

#[test]
fn the_original_with_vms_connected_is_left_alone_unless_forced() {
    let mut s = setup();
    original_install(&s);
    s.fake.0.borrow_mut().ignores_sigterm = true;
    let state = probe(&s.spec, &mut s.fake, &mut || BrokerClients::Original).unwrap();
    let plan = plan_install(&s.spec, &state, &s.source, &InstallOptions::default()).unwrap();
    let err =
        execute_with(&with_stop_wait(plan, 0), &mut s.fake, &mut |_| {}, &fast()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("VMs are still connected"), "{message}");
    assert!(message.contains("--force"), "{message}");
    // Nothing changed.
    let paths = s.spec.paths();
    assert_eq!(fs::read(&paths.binary).unwrap(), b"original broker");
    assert!(paths.install_dir.join("LICENSE").exists());
    assert!(!s.fake.0.borrow().log.iter().any(|l| l.contains("bootout")));

    let forced = InstallOptions { force: true };
    let plan = plan_install(&s.spec, &state, &s.source, &forced).unwrap();
    execute_with(&with_stop_wait(plan, 0), &mut s.fake, &mut |_| {}, &fast()).unwrap();
    assert_eq!(fs::read(&paths.plist).unwrap(), job_plist_xml(&s.spec));
}

#[test]
fn uninstalling_the_original_removes_its_leftovers_too() {
    let mut s = setup();
    original_install(&s);
    let state = probe(&s.spec, &mut s.fake, &mut || BrokerClients::Original).unwrap();
    let plan = plan_uninstall(&s.spec, &state, &UninstallOptions::default()).unwrap();
    assert!(matches!(plan.actions[0], Action::StopOriginal { .. }));
    execute_with(&with_stop_wait(plan, 0), &mut s.fake, &mut |_| {}, &fast()).unwrap();
    let paths = s.spec.paths();
    assert!(!paths.install_dir.exists(), "install directory left behind");
    assert!(!paths.plist.exists());
}
