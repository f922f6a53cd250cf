//! dvs-exec's command line and run, shared by the `dvs-exec` program and
//! by `dvs`, which makes the runs in a cluster (see [`NAME`]).

use super::launch;
use super::resolve;
use clap::Parser;
use dvk::membership::JoinGroup;
use std::ffi::OsString;
use std::path::PathBuf;

/// Run a program inside a Distributed Container.
#[derive(Parser, Debug)]
#[command(
    name = "dvs-exec",
    version,
    about = "Run an unmodified program inside a dvs Distributed Container",
    long_about = "Runs PROG with its arguments inside a fresh Distributed Container (DC). \
                  Its process and file system calls, and those of all its descendants, are \
                  served by the DC's MoL servers (PM, FS) instead of the host kernel; PIDs are \
                  DC-global (the program is PID 2, its parent is the DC's init, PID 1). \
                  Output goes to this terminal; Ctrl-C interrupts the DC's foreground \
                  process group.\n\n\
                  If no node daemon is running, an embedded single-node DVS is started for \
                  the duration of the run. With a cluster's node daemon, --node N runs the \
                  program on node N, and inside the DC an exec with DVS_NODE=N in its \
                  environment moves its process to node N.\n\n\
                  Exit status: the program's exit code; 128+N if it was killed by signal N; \
                  127 if PROG is not found; 126 if it is not executable; 125 if dvs itself failed.",
    trailing_var_arg = true
)]
pub struct Args {
    /// Name of the DC to create (default `exec-<pid>`).
    #[arg(long, value_name = "NAME")]
    dc: Option<String>,
    /// Host directory that is the DC's root file system (default `/`).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Control socket of the node daemon (default: $DVS_SOCKET, else
    /// /run/dvs/dvkd.sock if a daemon is running there, else an embedded one).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Publish a port: a DC program listening on port DC is reachable on
    /// the host's port HOST (repeatable). Without it, a DC port is the
    /// same port on the host.
    #[arg(long, value_name = "HOST:DC")]
    publish: Vec<mol_servers::fs::Publish>,
    /// Run the program on node N of the cluster (the DC's servers stay on
    /// this node; node N joins the DC and its SYSTASK starts the program).
    #[arg(long, value_name = "N")]
    node: Option<i32>,
    /// The program and its arguments.
    #[arg(required = true, value_name = "PROG ARGS")]
    command: Vec<OsString>,
}

/// Exit status when dvs itself fails.
pub const DVS_FAILED: i32 = 125;

/// The name `dvs` runs as dvs-exec by (as its `argv[0]`, a multi-call
/// program): dvs-exec names no Corosync code, which would load `libcpg`
/// and nine more libraries at every start, and hands a run in a cluster
/// over to `dvs` under its own name, so that the process keeps its
/// command line (`pgrep -f dvs-exec`) and its name.
pub const NAME: &str = "dvs-exec";

/// Whether `argv0` names dvs-exec (see [`NAME`]).
pub fn is_named(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0).file_name() == Some(std::ffi::OsStr::new(NAME))
}

/// The default log filter of a run (`$DVS_LOG` overrides it).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Runs the program of `args` in a fresh DC; `group` joins the DC's SLOTS
/// group in a cluster. Returns the exit status.
pub fn run(args: Args, group: Option<JoinGroup>) -> i32 {
    // Before anything here opens a descriptor of its own.
    let inherited = launch::take_inherited();
    let opts = launch::DcOptions {
        name: args.dc,
        root: args.root,
        socket: args.socket,
        publish: args.publish,
        node: args.node,
        inherited,
        group,
    };
    match launch::run(&args.command, opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dvs-exec: {e:#}");
            e.downcast_ref::<resolve::NotRunnable>()
                .map_or(DVS_FAILED, |n| n.code())
        }
    }
}
