//! `dvs-exec`: runs an unmodified program inside a Distributed Container.
//!
//! ```text
//! dvs-exec [--dc NAME] [--root DIR] [--socket PATH] [--node N] [--publish HOST:DC]... [--] PROG ARGS...
//! ```
//!
//! If no node daemon is running, an embedded single-node DVS is started
//! for the duration of the run. A fresh DC is created with its MoL servers
//! (SYSTASK, PM, FS, with the terminal as console); the program runs in it
//! with the dvs preload library, and every descendant stays in it. The
//! exit status is the program's: its exit code, or 128+N if it was killed
//! by signal N; 127 if it is not found, 126 if it cannot be executed.

mod cli;
mod launch;
mod node;
mod resolve;

use clap::Parser;
use dvk::Dvk;
use node::Node;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

fn main() {
    let args = cli::Args::parse();
    hand_over_in_cluster(&args);
    cli::init_tracing();
    std::process::exit(cli::run(args, None));
}

/// dvs-exec names no Corosync code, which would load `libcpg` and nine
/// more libraries at every start. A run on a node whose DVS has other
/// nodes needs it (SLOTS joins the DC's group), so dvs-exec hands such a
/// run over to `dvs`, found next to it, which runs the same code with
/// Corosync when its `argv[0]` names dvs-exec ([`cli::NAME`]). The exec
/// keeps the command line, the descriptors, signals and environment the
/// run inherited. Returns when the DVS has no other nodes (or none is
/// running: the run reports that itself); exits if the exec fails.
fn hand_over_in_cluster(args: &cli::Args) {
    if !in_cluster(args) {
        return;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(cli::NAME));
    let dvs = exe.with_file_name("dvs");
    let mut argv: Vec<_> = std::env::args_os().collect();
    match argv.first_mut() {
        Some(a0) if cli::is_named(a0) => {}
        Some(a0) => *a0 = exe.into_os_string(),
        None => argv.push(exe.into_os_string()),
    }
    let c = |s: &[u8]| CString::new(s).ok();
    let argv: Option<Vec<CString>> = argv.iter().map(|a| c(a.as_bytes())).collect();
    let err = match (c(dvs.as_os_str().as_bytes()), argv) {
        // Not std's Command, which would unblock every signal and reset
        // SIGPIPE's disposition.
        (Some(path), Some(argv)) => nix::unistd::execv(&path, &argv).unwrap_err(),
        _ => nix::errno::Errno::EINVAL,
    };
    eprintln!(
        "dvs-exec: this node's DVS has other nodes, and a run in a cluster is made by `dvs` \
         (which links Corosync), installed next to dvs-exec: cannot run {}: {err}",
        dvs.display()
    );
    std::process::exit(cli::DVS_FAILED);
}

/// Whether the node daemon the run would use runs a DVS with other nodes.
fn in_cluster(args: &cli::Args) -> bool {
    let Ok(Some(node)) = Node::running(args.socket.clone()) else {
        return false;
    };
    let Ok(dvk) = Dvk::connect(&node.socket) else {
        return false;
    };
    match (dvk.getdvsinfo(), dvk.status()) {
        (Ok(info), Ok(status)) => status.nodes.iter().any(|n| n.id != info.node),
        _ => false,
    }
}
