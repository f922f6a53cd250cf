// Each test crate uses a different part of this module.
#![allow(dead_code)]

//! What every test of `dvs-exec` needs: the binary, and the preload
//! library that `cargo test --workspace` just built.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `dvs-exec` binary under test.
pub fn dvs_exec() -> &'static str {
    env!("CARGO_BIN_EXE_dvs-exec")
}

/// The preload library of this build: cargo leaves a test build's cdylib
/// in `deps/`, not next to the executables.
pub fn preload() -> PathBuf {
    let dir = Path::new(dvs_exec()).parent().expect("target directory");
    [
        dir.join("deps/libdvs_preload.so"),
        dir.join("libdvs_preload.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("libdvs_preload.so is not built: run `cargo test --workspace`")
}

/// `dvs-exec` with the freshly built preload library, outside any node
/// named by the environment.
pub fn dvs_exec_cmd() -> Command {
    let mut c = Command::new(dvs_exec());
    c.env("DVS_PRELOAD", preload()).env_remove("DVS_SOCKET");
    c
}
