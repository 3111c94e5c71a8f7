//! The checked-in header `include/vmnet-broker.h` against the library:
//! the functions it declares are exactly the library's exports, its status
//! enum is `Status::ALL`, and its defines are the protocol's keys.
//!
//! The exports are read from the library's sources (every function marked
//! `#[unsafe(no_mangle)]`), so a function added in Rust but not declared in
//! the header, or the other way round, fails here. scripts/test-c checks
//! the built libraries' symbol tables against the header too, and compiles
//! `tests/c/prototypes.c` to check the prototypes themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use vmnet_broker_proto::{MACH_SERVICE_NAME, Status, commands, keys};

const HEADER: &str = include_str!("../include/vmnet-broker.h");

/// What the header declares.
#[derive(Debug, Default)]
struct Header {
    /// Function name -> declared only under `#ifdef __APPLE__`.
    functions: BTreeMap<String, bool>,
    /// `VMNET_BROKER_*` enumerators and their values.
    statuses: BTreeMap<String, i64>,
    /// `#define NAME "value"`.
    strings: BTreeMap<String, String>,
    /// Every other `#define`d name.
    other_defines: BTreeSet<String>,
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("unterminated comment");
        // Keep line structure for the preprocessor pass.
        out.extend(rest[start..start + end].chars().filter(|&c| c == '\n'));
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse(text: &str) -> Header {
    let mut header = Header::default();
    // Stack of conditionals: true where the branch is "Apple only".
    let mut apple: Vec<bool> = Vec::new();
    let mut code = String::new();
    for line in strip_comments(text).lines() {
        let line = line.trim();
        if let Some(directive) = line.strip_prefix('#') {
            let mut words = directive.split_whitespace();
            match words.next() {
                Some("ifdef") => apple.push(words.next() == Some("__APPLE__")),
                // What Apple systems have, and the Linux test build against
                // the fakes of libxpc (VMNET_BROKER_FAKE_XPC) too.
                Some("if")
                    if words.clone().collect::<Vec<_>>().join(" ")
                        == "defined(__APPLE__) || defined(VMNET_BROKER_FAKE_XPC)" =>
                {
                    apple.push(true)
                }
                Some("ifndef" | "if") => apple.push(false),
                Some("else") => {
                    if let Some(top) = apple.last_mut() {
                        // The #else of `#ifdef __APPLE__` is "not Apple".
                        *top = false;
                    }
                }
                Some("endif") => {
                    apple.pop();
                }
                Some("define") => {
                    let name = words.next().expect("define name").to_owned();
                    let value = words.collect::<Vec<_>>().join(" ");
                    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                        Some(s) => {
                            header.strings.insert(name, s.to_owned());
                        }
                        None => {
                            header.other_defines.insert(name);
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        let in_apple = apple.iter().any(|&a| a);
        code.push_str(line);
        code.push('\n');
        // Enumerators: `VMNET_BROKER_NAME = N,`
        if let Some((name, value)) = line.trim_end_matches(',').split_once('=') {
            let name = name.trim();
            if name.starts_with("VMNET_BROKER_") {
                header
                    .statuses
                    .insert(name.to_owned(), value.trim().parse().expect("enum value"));
            }
        }
        // Declarations: an identifier `vmnet_broker_*` directly before `(`.
        let mut search = line;
        while let Some(pos) = search.find("vmnet_broker_") {
            let tail = &search[pos..];
            let ident_len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if tail[ident_len..].starts_with('(') {
                header
                    .functions
                    .insert(tail[..ident_len].to_owned(), in_apple);
            }
            search = &tail[ident_len..];
        }
    }
    assert!(apple.is_empty(), "unbalanced #if/#endif in the header");
    header
}

/// The library's sources, by file name.
const SOURCES: &[(&str, &str)] = &[
    ("apple.rs", include_str!("../src/apple.rs")),
    ("client.rs", include_str!("../src/client.rs")),
    ("lib.rs", include_str!("../src/lib.rs")),
    ("message.rs", include_str!("../src/message.rs")),
    ("network.rs", include_str!("../src/network.rs")),
    ("panic.rs", include_str!("../src/panic.rs")),
    ("status.rs", include_str!("../src/status.rs")),
];

/// The functions the library exports: each `fn` after a
/// `#[unsafe(no_mangle)]`, mapped to whether it is Apple-only (everything in
/// `apple.rs`, a module compiled on macOS only).
fn exports() -> BTreeMap<String, bool> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = SOURCES.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(on_disk, listed, "update SOURCES to the files in src/");

    let mut exports = BTreeMap::new();
    for (file, text) in SOURCES {
        assert!(
            !text.contains("#[no_mangle]") && !text.contains("export_name"),
            "{file}: export with #[unsafe(no_mangle)] only"
        );
        let mut rest = *text;
        while let Some(pos) = rest.find("#[unsafe(no_mangle)]") {
            rest = &rest[pos + 1..];
            let fn_pos = rest.find("fn ").expect("a function follows no_mangle");
            let name: String = rest[fn_pos + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            exports.insert(name, *file == "apple.rs");
        }
    }
    exports
}

#[test]
fn declared_functions_are_the_exported_ones() {
    let header = parse(HEADER);
    assert!(
        header.functions.len() >= 10,
        "parsed too few functions: {:?}",
        header.functions
    );
    assert_eq!(
        header.functions,
        exports(),
        "header declarations (left) and library exports (right) differ \
         (true = Apple only)"
    );
}

#[test]
fn apple_only_functions_are_the_upstream_and_xpc_ones() {
    let header = parse(HEADER);
    let apple_only: Vec<&str> = header
        .functions
        .iter()
        .filter(|&(_, &a)| a)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        apple_only,
        [
            "vmnet_broker_acquire_network",
            "vmnet_broker_network_serialization"
        ]
    );
    // Apple only, except in Linux test builds against the fakes
    // (docs/macos-fakes.md).
    assert!(
        include_str!("../src/lib.rs")
            .contains("#[cfg(any(target_os = \"macos\", feature = \"fake-apple\"))]\nmod apple;")
    );
}

#[test]
fn the_status_enum_is_the_protocols() {
    let header = parse(HEADER);
    let expected: BTreeMap<String, i64> = Status::ALL
        .iter()
        .map(|s| (s.c_name().unwrap().to_owned(), s.code()))
        .collect();
    assert_eq!(header.statuses, expected);
}

#[test]
fn the_defines_are_the_protocol_keys() {
    let header = parse(HEADER);
    let expected: BTreeMap<String, String> = [
        ("MACH_SERVICE_NAME", MACH_SERVICE_NAME),
        ("REQUEST_COMMAND", keys::COMMAND),
        ("REQUEST_NETWORK_NAME", keys::NETWORK_NAME),
        ("COMMAND_ACQUIRE", commands::ACQUIRE),
        ("COMMAND_RELEASE", commands::RELEASE),
        ("COMMAND_STATUS", commands::STATUS),
        ("REPLY_NETWORK", keys::NETWORK),
        ("REPLY_ERROR", keys::ERROR),
        ("REPLY_NETWORK_INFO", keys::NETWORK_INFO),
        ("REPLY_STATUS", keys::STATUS),
        ("VMNET_BROKER_SOCKET_ENV", vmnet_broker_client::SOCKET_ENV),
        ("VMNET_BROKER_TIMEOUT_ENV", vmnet_broker_client::TIMEOUT_ENV),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(header.strings, expected);
    let other: Vec<&str> = header.other_defines.iter().map(String::as_str).collect();
    assert_eq!(
        other,
        [
            "VMNET_BROKER_H",
            "VMNET_BROKER_RETURNS_RETAINED",
            "_Nonnull",
            "_Nullable"
        ]
    );
}

/// On Apple systems the result of `vmnet_broker_acquire_network` is owned by
/// the caller: both copies of the header (this crate's and the Swift
/// package's) must mark it returned retained, or ARC callers leak it.
#[test]
fn acquire_network_is_marked_returns_retained_in_both_headers() {
    let swift = include_str!("../../../swift/Sources/vmnet_broker/include/vmnet-broker.h");
    for (which, text) in [("ffi", HEADER), ("swift", swift)] {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(
                "VMNET_BROKER_RETURNS_RETAINED xpc_object_t _Nullable vmnet_broker_acquire_network("
            ),
            "{which} header"
        );
        assert!(
            flat.contains("#define VMNET_BROKER_RETURNS_RETAINED XPC_RETURNS_RETAINED"),
            "{which} header"
        );
    }
}

#[test]
fn the_parser_sees_conditionals() {
    let h = parse(
        "#ifdef __APPLE__\nint vmnet_broker_a(void);\n#else\nint vmnet_broker_b(void);\n#endif\n\
         /* vmnet_broker_c(void) */\nint vmnet_broker_d(int);\n",
    );
    let got: Vec<(&str, bool)> = h.functions.iter().map(|(n, &a)| (n.as_str(), a)).collect();
    assert_eq!(
        got,
        [
            ("vmnet_broker_a", true),
            ("vmnet_broker_b", false),
            ("vmnet_broker_d", false)
        ]
    );
}
