//! dispatch2 asks the linker for `-ldispatch` on every system but Apple's,
//! and Debian 12 has no libdispatch. This crate defines the few dispatch
//! symbols the project uses, so an empty `libdispatch.a` is all the linker
//! needs to find; it is written to OUT_DIR and put on the search path.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || std::env::var_os("CARGO_FEATURE_ENABLED").is_none()
    {
        return;
    }
    let Ok(out) = std::env::var("OUT_DIR") else {
        return;
    };
    let dir = std::path::Path::new(&out).join("empty-libdispatch");
    if std::fs::create_dir_all(&dir).is_ok()
        // The global header of an ar archive with no members.
        && std::fs::write(dir.join("libdispatch.a"), b"!<arch>\n").is_ok()
    {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
}
