//! `ffi-check`: compares the libxpc and dispatch functions, statics and
//! constants that `crates/macos/src/sys/` declares by hand with what bindgen
//! generates from Apple's own headers (as redistributed with zig), for
//! arm64 and x86_64 macOS. Fails when a name is missing from the headers,
//! or a parameter, return or static type differs.
//!
//! Usage: ffi-check --headers DIR [--src DIR] [--target TRIPLE]... [--resource-dir DIR]
//!
//!   --headers       zig's `lib/libc/include/any-darwin-any` directory
//!   --src           the directory of hand-written declarations
//!                   (default: crates/macos/src/sys)
//!   --target        clang target triple; repeatable (default: the two below)
//!   --resource-dir  libclang's resource directory, the one whose `include/`
//!                   holds the compiler's own headers (`stdbool.h`,
//!                   `stddef.h`, ...). Default: the newest
//!                   `$LIBCLANG_PATH/clang/N` that has them.
//!
//! Apple's headers need the compiler's builtin headers, and the sysroot is
//! replaced (`-nostdlibinc`), so they must come from libclang itself.
//! libclang guesses its resource directory from the path it was loaded
//! from, which is wrong for Debian's `/usr/lib/x86_64-linux-gnu/libclang-N.so`
//! (the headers are in `/usr/lib/llvm-N/lib/clang/N/include`, from
//! `libclang-common-N-dev`, a dependency of `libclang-N-dev`); bindgen only
//! makes up for that when a `clang` binary is installed. Passing
//! `-resource-dir` makes the check depend on `libclang-N-dev` alone.
//!
//! vmnet is not among zig's headers: `sys/vmnet.rs` is listed and skipped,
//! and the tool fails if `vmnet/vmnet.h` ever shows up there, so that the
//! check is extended then.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod compare;

use compare::{Decls, compare};

const DEFAULT_TARGETS: [&str; 2] = ["arm64-apple-macos26", "x86_64-apple-macos26"];

/// Hand-written files whose declarations are not in zig's headers.
const NOT_IN_HEADERS: [(&str, &str); 1] = [("vmnet.rs", "vmnet/vmnet.h")];

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ffi-check: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, String> {
    let mut headers: Option<PathBuf> = None;
    let mut src = PathBuf::from("crates/macos/src/sys");
    let mut targets: Vec<String> = Vec::new();
    let mut resource_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--headers" => headers = Some(value("--headers")?.into()),
            "--src" => src = value("--src")?.into(),
            "--target" => targets.push(value("--target")?),
            "--resource-dir" => resource_dir = Some(value("--resource-dir")?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: ffi-check --headers DIR [--src DIR] [--target TRIPLE]... [--resource-dir DIR]"
                );
                return Ok(true);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let headers = headers.ok_or("--headers DIR is required")?;
    if !headers.join("xpc/xpc.h").is_file() {
        return Err(format!("{}: no xpc/xpc.h there", headers.display()));
    }
    let resource_dir = match resource_dir {
        Some(dir) => dir,
        None => default_resource_dir()?,
    };
    if !resource_dir.join("include/stdbool.h").is_file() {
        return Err(format!(
            "{}: no include/stdbool.h there (not a clang resource directory)",
            resource_dir.display()
        ));
    }
    println!("clang resource directory: {}", resource_dir.display());
    if targets.is_empty() {
        targets = DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect();
    }

    // The hand-written side: every extern block under `src`.
    let mut hand = Decls::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut ok = true;
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let decls = Decls::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        if let Some((_, header)) = NOT_IN_HEADERS.iter().find(|(f, _)| *f == name) {
            println!(
                "skip {name}: {} functions declared by hand from {header}, which zig's headers do not carry",
                decls.functions.len()
            );
            if headers.join(header).exists() {
                println!(
                    "FAIL {header} is now in {}: extend this check to it",
                    headers.display()
                );
                ok = false;
            }
            // Its type aliases can still be used by other files.
            hand.aliases.extend(decls.aliases);
            continue;
        }
        hand.merge(decls);
    }
    if hand.functions.is_empty() && hand.statics.is_empty() {
        return Err(format!(
            "no extern declarations found under {}",
            src.display()
        ));
    }

    for target in &targets {
        println!("== {target}");
        let generated = generate(&headers, &resource_dir, target, &hand)?;
        let theirs = Decls::parse(&generated).map_err(|e| format!("bindgen output: {e}"))?;
        let report = compare(&hand, &theirs);
        for line in &report.lines {
            println!("{line}");
        }
        println!(
            "{target}: {} declarations compared, {} mismatches",
            report.compared, report.mismatches
        );
        ok &= report.mismatches == 0;
    }
    Ok(ok)
}

/// Runs bindgen over the xpc and dispatch headers for one target, keeping
/// only the items declared by hand.
fn generate(
    headers: &Path,
    resource_dir: &Path,
    target: &str,
    hand: &Decls,
) -> Result<String, String> {
    let exact = |names: Vec<&String>| -> String {
        let names: Vec<String> = names.into_iter().map(|n| regex_quote(n)).collect();
        format!("^({})$", names.join("|"))
    };
    let mut builder = bindgen::Builder::default()
        .header_contents(
            "ffi-check.h",
            "#include <xpc/xpc.h>\n#include <xpc/connection.h>\n#include <dispatch/dispatch.h>\n",
        )
        .clang_args([
            "-target",
            target,
            "-fblocks",
            "-nostdlibinc",
            "-resource-dir",
        ])
        .clang_arg(resource_dir.display().to_string())
        .clang_arg("-isystem")
        .clang_arg(headers.display().to_string())
        .generate_block(true)
        .layout_tests(false)
        .generate_comments(false);
    if !hand.functions.is_empty() {
        builder = builder.allowlist_function(exact(hand.functions.keys().collect()));
    }
    let vars: Vec<&String> = hand.statics.keys().chain(hand.constants.keys()).collect();
    if !vars.is_empty() {
        builder = builder.allowlist_var(exact(vars));
    }
    let bindings = builder
        .generate()
        .map_err(|e| format!("bindgen for {target}: {e}"))?;
    Ok(bindings.to_string())
}

/// The newest `$LIBCLANG_PATH/clang/N` whose `include/` has the compiler's
/// builtin headers.
fn default_resource_dir() -> Result<PathBuf, String> {
    let lib = std::env::var_os("LIBCLANG_PATH").ok_or(
        "LIBCLANG_PATH is not set: set it to the directory of libclang.so \
         (Debian: /usr/lib/llvm-19/lib), or pass --resource-dir",
    )?;
    let clang = Path::new(&lib).join("clang");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(&clang)
        .map_err(|e| format!("{}: {e}", clang.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("include/stdbool.h").is_file())
        .filter_map(|p| {
            let major = p.file_name()?.to_str()?.split('.').next()?.parse().ok()?;
            Some((major, p))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or(format!(
        "no clang builtin headers (include/stdbool.h) under {}/N: \
         install libclang-common-N-dev, or pass --resource-dir",
        clang.display()
    ))
}

fn regex_quote(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}
