//! Rust client for vmnet-broker
