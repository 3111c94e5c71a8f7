use super::*;
use crate::DEFAULT_LABEL;

const SOURCE_SHA: &str = "aaaa";
const SIGNED_SHA: &str = "bbbb";

fn system() -> JobSpec {
    JobSpec::system(DEFAULT_LABEL).unwrap()
}

fn user() -> JobSpec {
    JobSpec::user(DEFAULT_LABEL, 501, "/Users/ann").unwrap()
}

fn source() -> SourceBinary {
    SourceBinary {
        path: PathBuf::from("/tmp/build/vmnet-broker"),
        sha256: SOURCE_SHA.into(),
    }
}

fn meta(owner: Option<&Owner>, mode: u32) -> FileMeta {
    let (uid, gid) = owner.map_or((501, 20), |o| (o.uid, o.gid));
    FileMeta { uid, gid, mode }
}

/// The state `execute` leaves behind after a complete install of `source`
/// (service account with id 250 for the system scope), job loaded.
fn installed(spec: &JobSpec, source: &SourceBinary) -> InstallState {
    let system = spec.is_system();
    let root = system.then(Owner::root);
    let service = system.then(|| Owner::service(250, 250));
    let entitlements = entitlements_plist_xml();
    let stamp = Stamp {
        source_sha256: source.sha256.clone(),
        entitlements_sha256: sha256_hex(&entitlements),
        identifier: spec.label().into(),
        installed_sha256: SIGNED_SHA.into(),
    };
    let mut accounts = Accounts::default();
    if system {
        accounts.user = Some(UserRecord {
            uid: 250,
            primary_gid: Some(250),
        });
        accounts.group_gid = Some(250);
        accounts.used_uids = [0, 1, 250, 501].into();
        accounts.used_gids = [0, 20, 250].into();
    }
    InstallState {
        binary: Some(ObservedBinary {
            meta: meta(root.as_ref(), 0o755),
            sha256: SIGNED_SHA.into(),
        }),
        stamp: Some(stamp.render()),
        entitlements: Some(ObservedFile {
            meta: meta(root.as_ref(), 0o644),
            contents: entitlements,
        }),
        plist: Some(ObservedFile {
            meta: meta(root.as_ref(), 0o644),
            contents: job_plist_xml(spec),
        }),
        install_dir: Some(meta(root.as_ref(), 0o755)),
        log_dir: Some(meta(service.as_ref(), 0o755)),
        state_dir: system.then(|| meta(service.as_ref(), 0o700)),
        plist_dir: Some(meta(root.as_ref(), 0o755)),
        accounts,
        job: JobStatus::Loaded,
        clients: BrokerClients::Count(0),
        leftovers: Vec::new(),
    }
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::Bootout { .. } => "bootout",
            Action::StopOriginal { .. } => "stop-original",
            Action::CreateGroup { .. } => "create-group",
            Action::CreateUser { .. } => "create-user",
            Action::SetPrimaryGroup { .. } => "set-primary-group",
            Action::EnsureDir { .. } => "mkdir",
            Action::WriteFile { .. } => "write",
            Action::CopyFile { .. } => "copy",
            Action::Codesign { .. } => "codesign",
            Action::WriteStamp { .. } => "stamp",
            Action::Bootstrap { .. } => "bootstrap",
            Action::RemoveFile { .. } => "rm",
            Action::RemoveDir { .. } => "rmdir",
            Action::RemoveTree { .. } => "rm-tree",
            Action::DeleteUser { .. } => "delete-user",
            Action::DeleteGroup { .. } => "delete-group",
        })
        .collect()
}

fn fresh_system_state() -> InstallState {
    let mut state = InstallState::empty();
    state.plist_dir = Some(meta(Some(&Owner::root()), 0o755));
    state.accounts.used_uids = (0..=210).chain([501]).collect();
    state.accounts.used_gids = (0..=205).chain([211, 212]).collect();
    state
}

#[test]
fn fresh_system_install_creates_everything_in_order() {
    let spec = system();
    let plan = plan_install(
        &spec,
        &fresh_system_state(),
        &source(),
        &InstallOptions::default(),
    )
    .unwrap();
    assert!(plan.requires_root);
    assert_eq!(
        kinds(&plan),
        [
            "create-group",
            "create-user",
            "mkdir",
            "write",
            "copy",
            "codesign",
            "stamp",
            "mkdir",
            "mkdir",
            "write",
            "bootstrap"
        ]
    );
    // 211 and 212 are taken as gids, so the first id free in both is 213.
    assert_eq!(
        plan.actions[0],
        Action::CreateGroup {
            name: "_vmnetbroker".into(),
            gid: 213
        }
    );
    assert_eq!(
        plan.actions[1],
        Action::CreateUser {
            name: "_vmnetbroker".into(),
            uid: 213,
            gid: 213
        }
    );
    let paths = spec.paths();
    assert_eq!(
        plan.actions[2],
        Action::EnsureDir {
            path: paths.install_dir.clone(),
            mode: 0o755,
            owner: Some(Owner::root())
        }
    );
    assert_eq!(
        plan.actions[4],
        Action::CopyFile {
            from: source().path,
            to: paths.binary.clone(),
            mode: 0o755,
            owner: Some(Owner::root())
        }
    );
    assert_eq!(
        plan.actions[5],
        Action::Codesign {
            path: paths.binary.clone(),
            identifier: DEFAULT_LABEL.into(),
            entitlements: paths.entitlements.clone(),
        }
    );
    assert_eq!(
        plan.actions[7],
        Action::EnsureDir {
            path: paths.log_dir.clone(),
            mode: 0o755,
            owner: Some(Owner::service(213, 213))
        }
    );
    // The state directory (remembered subnets): the service account's only.
    assert_eq!(
        plan.actions[8],
        Action::EnsureDir {
            path: PathBuf::from("/var/db/vmnet-broker"),
            mode: 0o700,
            owner: Some(Owner::service(213, 213))
        }
    );
    match &plan.actions[9] {
        Action::WriteFile {
            path,
            contents,
            mode,
            owner,
        } => {
            assert_eq!(path, &paths.plist);
            assert_eq!(contents, &job_plist_xml(&spec));
            assert_eq!(*mode, 0o644);
            assert_eq!(owner, &Some(Owner::root()));
        }
        other => panic!("expected the job file, got {other:?}"),
    }
    assert_eq!(
        plan.actions[10],
        Action::Bootstrap {
            domain: "system".into(),
            plist: paths.plist
        }
    );
}

#[test]
fn reinstalling_the_same_binary_does_nothing() {
    for spec in [system(), user()] {
        let state = installed(&spec, &source());
        let plan = plan_install(&spec, &state, &source(), &InstallOptions::default()).unwrap();
        assert!(plan.is_empty(), "{:?}", plan.describe());
        assert_eq!(plan.shell_script(), "#!/bin/sh\nset -e\n# nothing to do\n");
    }
}

#[test]
fn reinstalling_from_the_installed_binary_itself_does_nothing() {
    let spec = system();
    let state = installed(&spec, &source());
    let itself = SourceBinary {
        path: spec.paths().binary,
        sha256: SIGNED_SHA.into(),
    };
    let plan = plan_install(&spec, &state, &itself, &InstallOptions::default()).unwrap();
    assert!(plan.is_empty(), "{:?}", plan.describe());
}

#[test]
fn a_new_binary_replaces_only_the_binary_and_reloads_the_job() {
    let spec = system();
    let state = installed(&spec, &source());
    let newer = SourceBinary {
        path: "/tmp/new/vmnet-broker".into(),
        sha256: "cccc".into(),
    };
    let plan = plan_install(&spec, &state, &newer, &InstallOptions::default()).unwrap();
    assert_eq!(
        kinds(&plan),
        ["bootout", "copy", "codesign", "stamp", "bootstrap"]
    );
    assert_eq!(
        plan.actions[0],
        Action::Bootout {
            target: "system/com.github.nirs.vmnet-broker".into()
        }
    );
}

#[test]
fn a_binary_changed_behind_our_back_is_reinstalled() {
    let spec = system();
    let mut state = installed(&spec, &source());
    if let Some(binary) = &mut state.binary {
        binary.sha256 = "tampered".into();
    }
    let plan = plan_install(&spec, &state, &source(), &InstallOptions::default()).unwrap();
    assert_eq!(
        kinds(&plan),
        ["bootout", "copy", "codesign", "stamp", "bootstrap"]
    );
}

#[test]
fn a_changed_job_file_is_rewritten() {
    let spec = system();
    let mut state = installed(&spec, &source());
    if let Some(plist) = &mut state.plist {
        plist.contents = b"<plist>old</plist>".to_vec();
    }
    let plan = plan_install(&spec, &state, &source(), &InstallOptions::default()).unwrap();
    assert_eq!(kinds(&plan), ["bootout", "write", "bootstrap"]);
}

#[test]
fn wrong_permissions_are_repaired() {
    let spec = system();
    let mut state = installed(&spec, &source());
    if let Some(plist) = &mut state.plist {
        plist.meta.mode = 0o666;
    }
    state.log_dir = Some(FileMeta {
        uid: 0,
        gid: 0,
        mode: 0o755,
    });
    let plan = plan_install(&spec, &state, &source(), &InstallOptions::default()).unwrap();
    assert_eq!(kinds(&plan), ["bootout", "mkdir", "write", "bootstrap"]);
}

#[test]
fn installed_but_unloaded_job_is_only_loaded() {
    let spec = system();
    let mut state = installed(&spec, &source());
    state.job = JobStatus::NotLoaded;
    state.clients = BrokerClients::NotAsked;
    let plan = plan_install(&spec, &state, &source(), &InstallOptions::default()).unwrap();
    assert_eq!(kinds(&plan), ["bootstrap"]);
}

#[test]
fn replacing_a_broker_with_clients_is_refused_unless_forced() {
    let spec = system();
    let mut state = installed(&spec, &source());
    state.clients = BrokerClients::Count(3);
    let newer = SourceBinary {
        path: "/tmp/new/vmnet-broker".into(),
        sha256: "cccc".into(),
    };
    let err = plan_install(&spec, &state, &newer, &InstallOptions::default()).unwrap_err();
    assert_eq!(
        err,
        PlanError::BrokerInUse {
            label: DEFAULT_LABEL.into(),
            clients: 3
        }
    );
    let message = err.to_string();
    assert!(message.contains("has 3 connected clients"), "{message}");
    assert!(message.contains("Stop the VMs"), "{message}");
    assert!(message.contains("--force"), "{message}");

    let forced = plan_install(&spec, &state, &newer, &InstallOptions { force: true }).unwrap();
    assert_eq!(kinds(&forced)[0], "bootout");
}

#[test]
fn clients_do_not_matter_when_nothing_changes() {
    let spec = system();
    let mut state = installed(&spec, &source());
    state.clients = BrokerClients::Count(2);
    let plan = plan_install(&spec, &state, &source(), &InstallOptions::default()).unwrap();
    assert!(plan.is_empty());
}

#[test]
fn a_broker_that_cannot_be_asked_is_not_replaced_without_force() {
    let spec = system();
    let mut state = installed(&spec, &source());
    state.clients = BrokerClients::Unknown("connection invalid".into());
    if let Some(plist) = &mut state.plist {
        plist.contents.clear();
    }
    let err = plan_install(&spec, &state, &source(), &InstallOptions::default()).unwrap_err();
    assert!(err.to_string().contains("(connection invalid)"), "{err}");
    assert!(plan_install(&spec, &state, &source(), &InstallOptions { force: true }).is_ok());
}

#[test]
fn one_client_is_singular() {
    let err = PlanError::BrokerInUse {
        label: "x".into(),
        clients: 1,
    };
    assert!(err.to_string().contains("has 1 connected client;"), "{err}");
}

#[test]
fn an_existing_group_lends_its_id_to_the_new_user() {
    let mut acc = Accounts {
        group_gid: Some(260),
        used_gids: [260].into(),
        ..Accounts::default()
    };
    let (actions, uid, gid) = plan_account(&acc).unwrap();
    assert_eq!((uid, gid), (260, 260));
    assert_eq!(
        actions,
        [Action::CreateUser {
            name: "_vmnetbroker".into(),
            uid: 260,
            gid: 260
        }]
    );

    // If that uid is taken, the user gets the first free uid instead.
    acc.used_uids = (200..=260).collect();
    let (_, uid, gid) = plan_account(&acc).unwrap();
    assert_eq!((uid, gid), (261, 260));
}

#[test]
fn an_existing_user_gets_a_group_and_is_moved_into_it() {
    let acc = Accounts {
        user: Some(UserRecord {
            uid: 270,
            primary_gid: Some(20),
        }),
        used_uids: [270].into(),
        used_gids: [20, 270].into(),
        ..Accounts::default()
    };
    let (actions, uid, gid) = plan_account(&acc).unwrap();
    assert_eq!(uid, 270);
    assert_eq!(gid, 200);
    assert_eq!(
        actions,
        [
            Action::CreateGroup {
                name: "_vmnetbroker".into(),
                gid: 200
            },
            Action::SetPrimaryGroup {
                name: "_vmnetbroker".into(),
                gid: 200
            }
        ]
    );
}

#[test]
fn no_free_id_is_an_error_that_says_what_to_do() {
    let mut state = fresh_system_state();
    state.accounts.used_uids = (200..=300).collect();
    state.accounts.used_gids = (301..=400).collect();
    let err = plan_install(&system(), &state, &source(), &InstallOptions::default()).unwrap_err();
    assert_eq!(err, PlanError::NoFreeAccountId);
    assert!(
        err.to_string()
            .contains("create the _vmnetbroker user and group yourself")
    );
}

#[test]
fn user_install_needs_no_root_and_no_account() {
    let spec = user();
    let plan = plan_install(
        &spec,
        &InstallState::empty(),
        &source(),
        &InstallOptions::default(),
    )
    .unwrap();
    assert!(!plan.requires_root);
    assert_eq!(
        kinds(&plan),
        [
            "mkdir",
            "mkdir",
            "write",
            "copy",
            "codesign",
            "stamp",
            "mkdir",
            "write",
            "bootstrap"
        ]
    );
    assert_eq!(
        plan.actions[0],
        Action::EnsureDir {
            path: "/Users/ann/Library/LaunchAgents".into(),
            mode: 0o755,
            owner: None
        }
    );
    for action in &plan.actions {
        for line in action.shell() {
            assert!(!line.contains("chown"), "{line}");
            assert!(!line.contains("dscl"), "{line}");
        }
    }
    assert_eq!(
        plan.actions.last().unwrap().shell(),
        [
            "launchctl bootstrap gui/501 /Users/ann/Library/LaunchAgents/com.github.nirs.vmnet-broker.plist"
        ]
    );
}

#[test]
fn uninstall_removes_job_files_and_directory_but_keeps_logs_and_account() {
    let spec = system();
    let state = installed(&spec, &source());
    let plan = plan_uninstall(&spec, &state, &UninstallOptions::default()).unwrap();
    let paths = spec.paths();
    assert_eq!(
        plan.actions,
        [
            Action::Bootout {
                target: "system/com.github.nirs.vmnet-broker".into()
            },
            Action::RemoveFile {
                path: paths.plist.clone()
            },
            Action::RemoveFile {
                path: paths.binary.clone()
            },
            Action::RemoveFile {
                path: paths.stamp.clone()
            },
            Action::RemoveFile {
                path: paths.entitlements.clone()
            },
            Action::RemoveDir {
                path: paths.install_dir.clone()
            },
        ]
    );
}

#[test]
fn uninstall_can_also_remove_logs_and_account() {
    let spec = system();
    let state = installed(&spec, &source());
    let opts = UninstallOptions {
        remove_account: true,
        remove_logs: true,
        ..UninstallOptions::default()
    };
    let plan = plan_uninstall(&spec, &state, &opts).unwrap();
    assert_eq!(
        &kinds(&plan)[5..],
        ["rmdir", "rm-tree", "rm-tree", "delete-user", "delete-group"]
    );
    // The logs, then the state directory of the account that goes away.
    assert_eq!(
        plan.actions[7],
        Action::RemoveTree {
            path: PathBuf::from("/var/db/vmnet-broker")
        }
    );
    assert_eq!(
        plan.actions[9].shell(),
        ["dscl . -delete /Groups/_vmnetbroker"]
    );
}

#[test]
fn uninstall_with_clients_is_refused_unless_forced() {
    let spec = system();
    let mut state = installed(&spec, &source());
    state.clients = BrokerClients::Count(1);
    let err = plan_uninstall(&spec, &state, &UninstallOptions::default()).unwrap_err();
    assert!(matches!(err, PlanError::BrokerInUse { clients: 1, .. }));
    let opts = UninstallOptions {
        force: true,
        ..UninstallOptions::default()
    };
    assert_eq!(
        kinds(&plan_uninstall(&spec, &state, &opts).unwrap())[0],
        "bootout"
    );
}

#[test]
fn uninstall_of_nothing_does_nothing() {
    let plan = plan_uninstall(
        &system(),
        &InstallState::empty(),
        &UninstallOptions::default(),
    )
    .unwrap();
    assert!(plan.is_empty());
}

#[test]
fn user_uninstall_boots_out_of_the_gui_domain_and_never_touches_accounts() {
    let spec = user();
    let state = installed(&spec, &source());
    let opts = UninstallOptions {
        remove_account: true,
        ..UninstallOptions::default()
    };
    let plan = plan_uninstall(&spec, &state, &opts).unwrap();
    assert_eq!(
        plan.actions[0].shell(),
        ["launchctl bootout gui/501/com.github.nirs.vmnet-broker"]
    );
    assert!(!kinds(&plan).contains(&"delete-user"));
}

#[test]
fn dry_run_shows_the_exact_commands() {
    let spec = system();
    let plan = plan_install(
        &spec,
        &fresh_system_state(),
        &source(),
        &InstallOptions::default(),
    )
    .unwrap();
    let script = plan.shell_script();
    for expected in [
        "dscl . -create /Groups/_vmnetbroker PrimaryGroupID 213\n",
        "dscl . -create /Users/_vmnetbroker UniqueID 213\n",
        "dscl . -create /Users/_vmnetbroker PrimaryGroupID 213\n",
        "dscl . -create /Users/_vmnetbroker UserShell /usr/bin/false\n",
        "dscl . -create /Users/_vmnetbroker NFSHomeDirectory /var/empty\n",
        "dscl . -create /Users/_vmnetbroker RealName 'vmnet-broker daemon'\n",
        "dscl . -create /Users/_vmnetbroker Password '*'\n",
        "dscl . -create /Users/_vmnetbroker IsHidden 1\n",
        "mkdir -p '/Library/Application Support/vmnet-broker'\n\
         chown root:wheel '/Library/Application Support/vmnet-broker'\n\
         chmod 755 '/Library/Application Support/vmnet-broker'\n",
        "install -m 755 -o root -g wheel /tmp/build/vmnet-broker \
         '/Library/Application Support/vmnet-broker/vmnet-broker'\n",
        "codesign --force --sign - --identifier com.github.nirs.vmnet-broker --entitlements \
         '/Library/Application Support/vmnet-broker/entitlements.plist' \
         '/Library/Application Support/vmnet-broker/vmnet-broker'\n",
        "chown _vmnetbroker:_vmnetbroker /Library/Logs/vmnet-broker\n",
        "cat > /Library/LaunchDaemons/com.github.nirs.vmnet-broker.plist <<'VMNET_BROKER_EOF'\n\
         <?xml",
        "</plist>\nVMNET_BROKER_EOF\nchown root:wheel \
         /Library/LaunchDaemons/com.github.nirs.vmnet-broker.plist\nchmod 644 \
         /Library/LaunchDaemons/com.github.nirs.vmnet-broker.plist\n",
        "launchctl bootstrap system /Library/LaunchDaemons/com.github.nirs.vmnet-broker.plist\n",
        "# create hidden user _vmnetbroker (uid 213, gid 213)\n",
    ] {
        assert!(
            script.contains(expected),
            "missing {expected:?} in\n{script}"
        );
    }
}

#[test]
fn stamp_round_trips_and_rejects_incomplete_records() {
    let stamp = Stamp {
        source_sha256: "a".into(),
        entitlements_sha256: "b".into(),
        identifier: "c.d".into(),
        installed_sha256: "e".into(),
    };
    assert_eq!(Stamp::parse(&stamp.render()), Some(stamp));
    assert_eq!(Stamp::parse("source-sha256 a\nidentifier c\n"), None);
    assert_eq!(Stamp::parse(""), None);
}

/// A Mac running the original broker (v0.3): its account (uid 250), its
/// binary without our stamp, its job file with `Program`, its uninstall.sh
/// and LICENSE, job loaded.
fn original_system_state() -> InstallState {
    let mut state = installed(&system(), &source());
    let paths = system().paths();
    state.stamp = None;
    state.entitlements = None;
    state.binary = Some(ObservedBinary {
        meta: meta(Some(&Owner::root()), 0o755),
        sha256: "cccc".into(),
    });
    let plist = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
         <key>Label</key><string>{DEFAULT_LABEL}</string>\
         <key>Program</key><string>{}</string>\
         <key>UserName</key><string>_vmnetbroker</string>\
         <key>ExitTimeout</key><integer>60</integer>\
         </dict></plist>\n",
        paths.binary.display()
    );
    state.plist = Some(ObservedFile {
        meta: meta(Some(&Owner::root()), 0o644),
        contents: plist.into_bytes(),
    });
    state.leftovers = vec![
        paths.install_dir.join("uninstall.sh"),
        paths.install_dir.join("LICENSE"),
    ];
    // Asking `status` of the original gives 4; the probe reports it.
    state.clients = BrokerClients::Original;
    state
}

#[test]
fn the_original_is_recognised_by_its_job_file_or_its_status_answer() {
    let state = original_system_state();
    assert!(state.is_original());
    let mut by_plist = state.clone();
    by_plist.clients = BrokerClients::Unknown("no answer".into());
    assert!(by_plist.is_original());
    let mut by_answer = installed(&system(), &source());
    assert!(!by_answer.is_original());
    by_answer.clients = BrokerClients::Original;
    assert!(by_answer.is_original());
}

#[test]
fn upgrading_from_the_original_stops_it_reuses_its_account_and_removes_its_leftovers() {
    let spec = system();
    let plan = plan_install(
        &spec,
        &original_system_state(),
        &source(),
        &InstallOptions::default(),
    )
    .unwrap();
    assert_eq!(
        kinds(&plan),
        [
            "stop-original",
            "bootout",
            "write",
            "copy",
            "codesign",
            "stamp",
            "rm",
            "rm",
            "write",
            "bootstrap"
        ]
    );
    // The account is reused: no dscl at all.
    assert!(!plan.shell_script().contains("dscl"));
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("reusing its _vmnetbroker account (uid 250)")),
        "{:?}",
        plan.notes
    );
    let script = plan.shell_script();
    for expected in [
        "# note: upgrading in place from the original vmnet-broker",
        "# stop the original vmnet-broker system/com.github.nirs.vmnet-broker: SIGTERM, then \
         wait up to 5 s",
        "launchctl kill SIGTERM system/com.github.nirs.vmnet-broker || true\n",
        "i=0; while launchctl print system/com.github.nirs.vmnet-broker 2>/dev/null | grep -q \
         'pid = '; do i=$((i + 1)); if [ \"$i\" -gt 50 ]; then echo 'VMs are still connected",
        "launchctl bootout system/com.github.nirs.vmnet-broker\n",
        "rm -f '/Library/Application Support/vmnet-broker/uninstall.sh'\n",
        "rm -f '/Library/Application Support/vmnet-broker/LICENSE'\n",
    ] {
        assert!(
            script.contains(expected),
            "missing {expected:?} in\n{script}"
        );
    }
    // The client check of our own broker does not apply: the original
    // cannot count its clients, the stop action finds out.
    let forced = plan_install(
        &spec,
        &original_system_state(),
        &source(),
        &InstallOptions { force: true },
    )
    .unwrap();
    assert!(matches!(
        forced.actions[0],
        Action::StopOriginal { force: true, .. }
    ));
    assert!(forced.shell_script().contains("then break; fi"));
}

#[test]
fn an_original_that_is_not_loaded_is_replaced_without_stopping_anything() {
    let mut state = original_system_state();
    state.job = JobStatus::NotLoaded;
    state.clients = BrokerClients::NotAsked;
    let plan = plan_install(&system(), &state, &source(), &InstallOptions::default()).unwrap();
    assert!(!kinds(&plan).contains(&"stop-original"));
    assert!(!kinds(&plan).contains(&"bootout"));
    assert_eq!(kinds(&plan).last(), Some(&"bootstrap"));
}

#[test]
fn our_broker_is_still_asked_for_its_clients() {
    let mut state = installed(&system(), &source());
    state.clients = BrokerClients::Count(3);
    let newer = SourceBinary {
        sha256: "dddd".into(),
        ..source()
    };
    let err = plan_install(&system(), &state, &newer, &InstallOptions::default()).unwrap_err();
    assert!(err.to_string().contains("3 connected clients"), "{err}");
}
