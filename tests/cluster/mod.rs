// Each test crate uses a different part of this module.
#![allow(dead_code)]

//! What every test on a `dvs testbed` needs: running `dvs`, one testbed
//! at a time on the machine, and its removal when the test ends.

use std::process::{Command, Output};

/// The `dvs` binary under test.
pub const DVS: &str = env!("CARGO_BIN_EXE_dvs");

/// Runs `dvs ARGS` (not tied to any node daemon of the caller).
pub fn dvs(args: &[&str]) -> Output {
    Command::new(DVS)
        .args(args)
        .env_remove("DVS_SOCKET")
        .output()
        .expect("run dvs")
}

/// Runs `CMD` on testbed node `node` (`dvs testbed exec`).
pub fn in_node(node: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["testbed", "exec", node, "--"];
    args.extend_from_slice(cmd);
    dvs(&args)
}

/// Status and output of a finished command, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Removes the testbed when the test ends, passed or failed; on failure
/// it shows the node daemons' logs first.
pub struct Down(pub usize);

impl Drop for Down {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.0 {
                let o = in_node(&i.to_string(), &["cat", "/run/dvs/dvkd.log"]);
                eprintln!(
                    "--- node {i} dvkd.log\n{}",
                    String::from_utf8_lossy(&o.stdout)
                );
            }
        }
        let _ = dvs(&["testbed", "down"]);
    }
}

/// Tests that build testbeds must not overlap (there is one per machine).
pub fn lock() -> nix::fcntl::Flock<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("dvs-testbed-tests.lock"))
        .expect("lock file");
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock")
}

/// Ends the test binary if it is still running after `limit` (a test
/// blocked on a program that never answers must fail, not hang CI): the
/// testbed is removed first, which ends every process on it.
pub fn watchdog(limit: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("test still running after {limit:?}: giving up");
        let _ = dvs(&["testbed", "down"]);
        std::process::exit(101);
    });
}

/// Brings up an `n`-node testbed (after removing any left by a crash);
/// the returned guard removes it.
pub fn testbed_up(n: usize) -> Down {
    let _ = dvs(&["testbed", "down"]);
    let up = dvs(&["testbed", "up", "--nodes", &n.to_string()]);
    let guard = Down(n);
    assert!(up.status.success(), "testbed up: {}", text(&up));
    guard
}
