//! The preload library loaded into processes that are not in a DC.
//!
//! dvs-exec sets `LD_PRELOAD` for a DC's programs only, but the variable is
//! inherited by anything they leave behind, and users set it by hand. The
//! library must then stay out of the way (no `DVS_SOCKET`: native
//! behaviour), or refuse clearly (a `DVS_SOCKET` that leads nowhere: the
//! program does not run on the host by accident).

use std::path::PathBuf;
use std::process::{Command, Output};

/// The library cargo built for this test run: a test build leaves the
/// cdylib in `target/<profile>/deps/`, next to this test executable.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let lib = exe.with_file_name("libdvs_preload.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

fn run(preload: bool, socket: Option<&str>, script: &str) -> Output {
    let mut c = Command::new("sh");
    c.args(["-c", script]).env_remove("DVS_SOCKET");
    if preload {
        c.env("LD_PRELOAD", library());
    }
    if let Some(s) = socket {
        c.env("DVS_SOCKET", s);
    }
    c.output().expect("run sh")
}

#[test]
fn without_a_dc_programs_behave_natively() {
    let script = "echo out; echo err >&2; ls / | sort | head -3; \
                  (exit 7); echo $?; cat /proc/self/status | grep -c ^Pid; exit 3";
    let native = run(false, None, script);
    let preloaded = run(true, None, script);
    assert_eq!(native.stdout, preloaded.stdout);
    assert_eq!(native.stderr, preloaded.stderr);
    assert_eq!(native.status.code(), Some(3));
    assert_eq!(preloaded.status.code(), Some(3));
}

#[test]
fn a_socket_that_leads_nowhere_stops_the_program_before_it_runs() {
    library(); // fails before anything is created if it is missing
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("ran");
    let sock = dir.path().join("no-daemon.sock");
    let out = run(
        true,
        Some(sock.to_str().expect("utf-8 temp path")),
        &format!("touch {}", marker.display()),
    );
    let ran = marker.exists();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "stderr: {stderr}");
    assert!(
        stderr.contains("not registered in its DC"),
        "stderr: {stderr}"
    );
    assert!(!ran, "the program ran on the host outside its DC");
}
