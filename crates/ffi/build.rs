//! Gives the macOS shared library a relocatable install name, so that a
//! program linked against an installed copy finds it through its rpath
//! rather than through the path it was built at.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "macos" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libvmnet_broker.dylib");
    }
}
