//! Raw declarations of the system libraries we call (macOS only).
//!
//! This is the bottom safety layer: plain `extern "C"` items, no logic.
//! Every declaration names the source its prototype was checked against.
//! The source keys used in the comments:
//!
//! - **SDK**: Apple's own headers as shipped in the macOS SDK and
//!   redistributed by the Zig project (repository `ziglang/zig`, paths
//!   `lib/libc/include/aarch64-macos-gnu/xpc/xpc.h` and `.../xpc/connection.h`,
//!   commit `3e9e793`; Copyright Apple, XPC_API_VERSION 20200610). Read
//!   through the project's code search; each citation gives the header.
//! - **AD**: Apple's developer documentation pages
//!   (`https://developer.apple.com/documentation/<framework>/<symbol>`).
//! - **VC**: crate `vmnet` 0.10.0 (`src/ffi/vmnet.rs`), an independent
//!   binding of the same functions.
//! - **CHV**: Code-Hex/vz (`vmnet/vmnet_darwin.m`, PR #205), which calls them
//!   from Objective-C.
//! - **NB**: the original C broker, nirs/vmnet-broker (`broker/*.c`).
//!
//! `docs/macos-sources.md` lists each fact these declarations rely on with
//! its source.
//!
//! Nothing here is called directly by the daemon; use the wrappers in
//! [`crate::xpc`], [`crate::vmnet`] and [`crate::dispatch`].

#![allow(non_camel_case_types, non_upper_case_globals)]

pub mod vmnet;
pub mod xpc;
