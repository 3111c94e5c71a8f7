//! The launchd job file and the entitlements file.
//!
//! Key meanings are from `launchd.plist(5)`; see
//! `docs/macos-sources.md` (section "launchd"). The job is on demand: no
//! `KeepAlive`, and no `RunAtLoad` unless persistent networks are configured
//! (then the broker must create them at boot). launchd starts it when a
//! client looks up the Mach service, and the broker exits by itself when
//! idle (never while a persistent network exists).

use plist::{Dictionary, Value};
use vmnet_broker_proto::text::escape;

use super::{EXIT_TIMEOUT_SECS, JobSpec, SERVICE_ACCOUNT, path_string};

/// The one entitlement the broker needs: it lets an ad-hoc signed process
/// use the macOS 26 vmnet network API without root. (Never add
/// `com.apple.vm.networking`: it is restricted, and an ad-hoc signed
/// process that claims it is killed at launch.)
pub const VIRTUALIZATION_ENTITLEMENT: &str = "com.apple.security.virtualization";

/// The job file as a property-list dictionary.
///
/// | key                  | value |
/// |----------------------|-------|
/// | `Label`              | the label |
/// | `ProgramArguments`   | `[<binary>, serve, --mach-service, <label>, extra...]` |
/// | `MachServices`       | `{<label>: true}` |
/// | `UserName`/`GroupName` | `_vmnetbroker` (system scope only) |
/// | `EnableTransactions` | `true` |
/// | `ExitTimeOut`        | 60 |
/// | `ProcessType`        | `Adaptive` |
/// | `StandardErrorPath`  | the log file |
///
/// The original C implementation uses `Program` (its binary needs no
/// subcommand); ours needs `serve`, hence `ProgramArguments`. It also spells
/// the exit timeout `ExitTimeout`; `launchd.plist(5)` documents
/// `ExitTimeOut`, which is what we write.
pub fn job_plist(spec: &JobSpec) -> Dictionary {
    let paths = spec.paths();
    let mut job = Dictionary::new();
    job.insert("Label".into(), spec.label().into());
    job.insert(
        "ProgramArguments".into(),
        Value::Array(
            spec.program_arguments()
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
    );
    let mut services = Dictionary::new();
    services.insert(spec.label().into(), true.into());
    job.insert("MachServices".into(), Value::Dictionary(services));
    if spec.is_system() {
        job.insert("UserName".into(), SERVICE_ACCOUNT.into());
        job.insert("GroupName".into(), SERVICE_ACCOUNT.into());
    }
    if spec.run_at_load() {
        job.insert("RunAtLoad".into(), true.into());
    }
    job.insert("EnableTransactions".into(), true.into());
    job.insert("ExitTimeOut".into(), EXIT_TIMEOUT_SECS.into());
    job.insert("ProcessType".into(), "Adaptive".into());
    job.insert(
        "StandardErrorPath".into(),
        path_string(&paths.log_file).into(),
    );
    job
}

/// The daemon options `install` persists in the job's `ProgramArguments`
/// (after `serve --mach-service <label>`), each as the `serve` flag of the
/// same name. Re-running `install` without an option keeps the installed
/// value ([`JobOptions::or`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// `--network-idle-timeout SECS`.
    pub network_idle_timeout: Option<String>,
    /// `--exit-idle-timeout SECS`.
    pub exit_idle_timeout: Option<String>,
    /// `--config-dir DIR`.
    pub config_dir: Option<String>,
    /// `--log-level LEVEL`.
    pub log_level: Option<String>,
}

impl JobOptions {
    const FLAGS: [&'static str; 4] = [
        "--network-idle-timeout",
        "--exit-idle-timeout",
        "--config-dir",
        "--log-level",
    ];

    fn slot(&mut self, flag: &str) -> Option<&mut Option<String>> {
        match flag {
            "--network-idle-timeout" => Some(&mut self.network_idle_timeout),
            "--exit-idle-timeout" => Some(&mut self.exit_idle_timeout),
            "--config-dir" => Some(&mut self.config_dir),
            "--log-level" => Some(&mut self.log_level),
            _ => None,
        }
    }

    /// The options found in a command line (`--flag value` or
    /// `--flag=value`); anything else is ignored.
    pub fn from_arguments(args: &[String]) -> Self {
        let mut opts = Self::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            if !Self::FLAGS.contains(&flag) {
                continue;
            }
            let value = match inline {
                Some(v) => Some(v),
                None => iter.next().cloned(),
            };
            if let (Some(slot), Some(value)) = (opts.slot(flag), value) {
                *slot = Some(value);
            }
        }
        opts
    }

    /// The options of an installed job file (its `ProgramArguments`); none
    /// if it cannot be read or has none (the original broker's job file).
    pub fn from_job_plist(xml: &[u8]) -> Self {
        let args: Vec<String> = job_dictionary(xml)
            .and_then(|mut d| d.remove("ProgramArguments"))
            .and_then(Value::into_array)
            .map(|a| a.into_iter().filter_map(Value::into_string).collect())
            .unwrap_or_default();
        Self::from_arguments(&args)
    }

    /// These options, with the ones not given taken from `installed`.
    pub fn or(self, installed: Self) -> Self {
        Self {
            network_idle_timeout: self.network_idle_timeout.or(installed.network_idle_timeout),
            exit_idle_timeout: self.exit_idle_timeout.or(installed.exit_idle_timeout),
            config_dir: self.config_dir.or(installed.config_dir),
            log_level: self.log_level.or(installed.log_level),
        }
    }

    /// The options as `serve` arguments, in a fixed order.
    pub fn to_arguments(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, value) in Self::FLAGS.iter().zip([
            &self.network_idle_timeout,
            &self.exit_idle_timeout,
            &self.config_dir,
            &self.log_level,
        ]) {
            if let Some(v) = value {
                out.push((*flag).to_owned());
                out.push(v.clone());
            }
        }
        out
    }

    /// One line for people: `--log-level debug, --config-dir /x`, or
    /// `defaults` when none is set.
    pub fn summary(&self) -> String {
        let args = self.to_arguments();
        if args.is_empty() {
            return "defaults".to_owned();
        }
        args.chunks(2)
            .map(|p| escape(&p.join(" ")).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The job file as XML bytes, exactly as the installer writes it.
pub fn job_plist_xml(spec: &JobSpec) -> Vec<u8> {
    to_xml(Value::Dictionary(job_plist(spec)))
}

/// The entitlements as a dictionary: only
/// [`VIRTUALIZATION_ENTITLEMENT`] = true.
pub fn entitlements_plist() -> Dictionary {
    let mut ent = Dictionary::new();
    ent.insert(VIRTUALIZATION_ENTITLEMENT.into(), true.into());
    ent
}

/// The entitlements file as XML bytes. `macos/entitlements.plist` in the
/// repository holds exactly these bytes (a test checks it), and the
/// installer writes them next to the installed binary for `codesign`.
pub fn entitlements_plist_xml() -> Vec<u8> {
    to_xml(Value::Dictionary(entitlements_plist()))
}

fn to_xml(value: Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing a tree of strings, booleans and integers into a Vec cannot
    // fail; should the plist crate ever report an error, the partial output
    // would fail the content comparison of the next install and be rewritten.
    if let Err(error) = value.to_writer_xml(&mut out) {
        tracing::error!(%error, "could not serialise a property list");
    }
    out.push(b'\n');
    out
}

/// The top dictionary of a job file; `None` if it is not a property list
/// holding one.
pub(crate) fn job_dictionary(xml: &[u8]) -> Option<plist::Dictionary> {
    plist::from_bytes::<Value>(xml)
        .ok()
        .and_then(Value::into_dictionary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_LABEL;

    fn parse(xml: &[u8]) -> Dictionary {
        let value: Value = plist::from_bytes(xml).unwrap();
        value.into_dictionary().unwrap()
    }

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_string().unwrap())
            .collect()
    }

    #[test]
    fn system_job_has_every_key_with_its_value() {
        let spec = JobSpec::system(DEFAULT_LABEL).unwrap();
        let job = parse(&job_plist_xml(&spec));
        let mut keys: Vec<&str> = job.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "EnableTransactions",
                "ExitTimeOut",
                "GroupName",
                "Label",
                "MachServices",
                "ProcessType",
                "ProgramArguments",
                "StandardErrorPath",
                "UserName",
            ]
        );
        assert_eq!(job["Label"].as_string(), Some(DEFAULT_LABEL));
        assert_eq!(
            strings(&job["ProgramArguments"]),
            [
                "/Library/Application Support/vmnet-broker/vmnet-broker",
                "serve",
                "--mach-service",
                DEFAULT_LABEL,
            ]
        );
        let services = job["MachServices"].as_dictionary().unwrap();
        assert_eq!(services.len(), 1);
        assert_eq!(services[DEFAULT_LABEL].as_boolean(), Some(true));
        assert_eq!(job["UserName"].as_string(), Some("_vmnetbroker"));
        assert_eq!(job["GroupName"].as_string(), Some("_vmnetbroker"));
        assert_eq!(job["EnableTransactions"].as_boolean(), Some(true));
        assert_eq!(job["ExitTimeOut"].as_signed_integer(), Some(60));
        assert_eq!(job["ProcessType"].as_string(), Some("Adaptive"));
        assert_eq!(
            job["StandardErrorPath"].as_string(),
            Some("/Library/Logs/vmnet-broker/vmnet-broker.log")
        );
    }

    #[test]
    fn job_never_starts_by_itself() {
        let job = parse(&job_plist_xml(&JobSpec::system(DEFAULT_LABEL).unwrap()));
        for key in ["RunAtLoad", "KeepAlive", "ExitTimeout", "Program"] {
            assert!(!job.contains_key(key), "unexpected key {key}");
        }
    }

    #[test]
    fn persistent_networks_make_the_job_start_at_load() {
        let spec = JobSpec::system(DEFAULT_LABEL)
            .unwrap()
            .with_run_at_load(true);
        let job = parse(&job_plist_xml(&spec));
        assert_eq!(job["RunAtLoad"].as_boolean(), Some(true));
        assert!(!job.contains_key("KeepAlive"));
    }

    #[test]
    fn user_job_runs_as_the_user_and_logs_under_home() {
        let spec = JobSpec::user(DEFAULT_LABEL, 501, "/Users/ann").unwrap();
        let job = parse(&job_plist_xml(&spec));
        assert!(!job.contains_key("UserName"));
        assert!(!job.contains_key("GroupName"));
        assert_eq!(
            job["StandardErrorPath"].as_string(),
            Some("/Users/ann/Library/Logs/vmnet-broker/vmnet-broker.log")
        );
        assert_eq!(
            strings(&job["ProgramArguments"])[0],
            "/Users/ann/Library/Application Support/vmnet-broker/vmnet-broker"
        );
        assert_eq!(
            job["MachServices"].as_dictionary().unwrap()[DEFAULT_LABEL].as_boolean(),
            Some(true)
        );
    }

    #[test]
    fn a_custom_label_names_the_job_and_the_service() {
        let spec = JobSpec::system("org.example.test-broker").unwrap();
        let job = parse(&job_plist_xml(&spec));
        assert_eq!(job["Label"].as_string(), Some("org.example.test-broker"));
        let services = job["MachServices"].as_dictionary().unwrap();
        assert!(services.contains_key("org.example.test-broker"));
        assert_eq!(
            strings(&job["ProgramArguments"])[3],
            "org.example.test-broker"
        );
    }

    #[test]
    fn job_options_round_trip_through_the_job_file() {
        let opts = JobOptions {
            network_idle_timeout: Some("300".into()),
            exit_idle_timeout: None,
            config_dir: Some("/etc/my broker.d".into()),
            log_level: Some("debug".into()),
        };
        let spec = JobSpec::system(DEFAULT_LABEL)
            .unwrap()
            .with_extra_arguments(opts.to_arguments());
        let xml = job_plist_xml(&spec);
        assert_eq!(JobOptions::from_job_plist(&xml), opts);
        assert_eq!(
            opts.summary(),
            "--network-idle-timeout 300, --config-dir /etc/my broker.d, --log-level debug"
        );
        assert_eq!(JobOptions::default().summary(), "defaults");
    }

    #[test]
    fn given_options_win_and_missing_ones_are_kept() {
        let installed = JobOptions::from_arguments(&[
            "x".into(),
            "serve".into(),
            "--log-level=debug".into(),
            "--exit-idle-timeout".into(),
            "60".into(),
            "--unrelated".into(),
            "v".into(),
        ]);
        assert_eq!(installed.log_level.as_deref(), Some("debug"));
        assert_eq!(installed.exit_idle_timeout.as_deref(), Some("60"));
        let given = JobOptions {
            log_level: Some("warn".into()),
            ..JobOptions::default()
        };
        let merged = given.or(installed);
        assert_eq!(merged.log_level.as_deref(), Some("warn"));
        assert_eq!(merged.exit_idle_timeout.as_deref(), Some("60"));
        assert_eq!(merged.config_dir, None);
        // The original's job file has no arguments: nothing to keep.
        let original = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>\
            <key>Program</key><string>/Library/Application Support/vmnet-broker/vmnet-broker</string>\
            </dict></plist>";
        assert_eq!(JobOptions::from_job_plist(original), JobOptions::default());
        assert_eq!(
            JobOptions::from_job_plist(b"not a plist"),
            JobOptions::default()
        );
    }

    #[test]
    fn generated_xml_is_stable() {
        let spec = JobSpec::system(DEFAULT_LABEL).unwrap();
        assert_eq!(job_plist_xml(&spec), job_plist_xml(&spec));
        let text = String::from_utf8(job_plist_xml(&spec)).unwrap();
        assert!(text.starts_with("<?xml"), "{text}");
        assert!(text.ends_with("</plist>\n"), "{text}");
    }

    #[test]
    fn shipped_entitlements_file_holds_only_the_virtualization_entitlement() {
        let shipped = include_bytes!("../../../macos/entitlements.plist");
        let ent = parse(shipped);
        assert_eq!(ent.len(), 1, "{ent:?}");
        assert_eq!(
            ent["com.apple.security.virtualization"].as_boolean(),
            Some(true)
        );
        assert!(!ent.contains_key("com.apple.vm.networking"));
        // The installer writes the same bytes next to the installed binary.
        assert_eq!(
            String::from_utf8_lossy(shipped),
            String::from_utf8_lossy(&entitlements_plist_xml())
        );
    }
}
