//! Running the host tools the testbed is built with (`ip`, `unshare`,
//! `nsenter`, `mount`), with their errors worded for the user.

use anyhow::{bail, Context};
use std::process::{Command, Stdio};

/// Runs `prog args…`, returns its stdout; a non-zero exit is an error
/// carrying the tool's own message.
pub fn run(prog: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{prog}` (is it installed?)"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            err.trim().lines().last().unwrap_or("no message")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`run`], for clean-up steps: failures are reported, not returned.
pub fn try_run(prog: &str, args: &[&str]) -> bool {
    match run(prog, args) {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!("{e:#}");
            false
        }
    }
}

/// `nsenter` arguments that enter node `i`'s network and mount namespaces.
pub fn enter_args(i: usize) -> Vec<String> {
    vec![
        format!("--net={}", super::layout::netns_file(i).display()),
        format!("--mount={}", super::layout::mount_ns(i).display()),
        "--".into(),
    ]
}

/// A command that runs `prog` inside node `i`.
pub fn in_node(i: usize, prog: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.args(enter_args(i)).arg(prog);
    c
}

/// Whether the process `pid` exists.
pub fn alive(pid: i32) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}
