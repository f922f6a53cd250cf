//! `dvs`: the command-line tool of the Distributed Virtualization System.
//!
//! This file parses the command line and dispatches; each command lives in
//! its own module: [`node`] (daemon life cycle, with [`daemonize`] and
//! [`signals`]), [`dc`] (Distributed Containers) and [`status`] (rendering
//! the node status with [`table`]). [`client`] connects to the daemon and
//! words its errors.

mod client;
mod daemonize;
mod dc;
mod kill;
mod node;
mod probe;
mod ps;
mod signals;
mod status;
mod supervise;
mod table;
mod testbed;

/// dvs-exec's code, which runs here when dvs-exec hands a run in a
/// cluster over (see `dvs_exec::cli::NAME`).
#[path = "dvs_exec"]
mod dvs_exec {
    pub mod cli;
    pub mod launch;
    pub mod node;
    pub mod resolve;
}

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line tool of the Distributed Virtualization System (DVS).
///
/// `dvs` starts and stops the node daemon (dvkd), creates and removes
/// Distributed Containers (DCs) and shows the state of the node.
#[derive(Parser, Debug)]
#[command(name = "dvs", version, propagate_version = true, max_term_width = 100)]
#[command(
    after_help = "Errors are reported on stderr as `dvs: <message>` with exit status 1; \
                  usage errors exit with status 2."
)]
#[command(after_long_help = EXAMPLES)]
struct Cli {
    /// Control socket of the node daemon [default: $DVS_SOCKET, else /run/dvs/dvkd.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  dvs node start                    start the node daemon (node 0) in the background
  dvs dc init web --nr-procs 64     create DC `web` with the lowest free id
  dvs status --dc web               show the DVS and DC `web`
  dvs dc end web                    remove it
  dvs node stop                     stop the node daemon

Errors are reported on stderr as `dvs: <message>` with exit status 1; usage errors exit
with status 2.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Start or stop the node daemon (dvkd).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Create, remove and list Distributed Containers (DCs).
    #[command(subcommand)]
    Dc(DcCommand),
    /// Show the DVS, nodes, proxies and DCs of this node.
    #[command(long_about = STATUS_ABOUT)]
    Status(StatusArgs),
    /// List the processes of the DCs on this node, with their DC PIDs.
    ///
    /// Columns: PID, PPID, PGID (DC-global ids), STAT (host state letter, Z
    /// for zombies), NODE, ENDPOINT, TIME (CPU time), CMD. PID 1 is the
    /// DC's init (answered by PM). Without --socket, a running default
    /// node daemon is used, else every daemon under /run/dvs (dvs-exec runs
    /// an embedded one per run there).
    Ps(PsArgs),
    /// Send a signal to DC processes, like kill(1): dvs kill [-s SIG|-SIG]
    /// [--dc NAME] PID|-PGID... (use `--` before negative process groups).
    ///
    /// PIDs are DC PIDs as `dvs ps` shows them. The default signal is TERM.
    #[command(disable_help_flag = false)]
    Kill(KillCliArgs),
    /// Build, use and remove an N-node test cluster on this machine
    /// (network namespaces, one Corosync and one dvkd per node).
    #[command(subcommand)]
    Testbed(TestbedCommand),
}

#[derive(Subcommand, Debug)]
enum TestbedCommand {
    /// Create the nodes (namespace, veth to the bridge `dvs-br0`, address
    /// 10.213.0.<N+1>), start Corosync in each and wait for the ring, then
    /// start each node's dvkd.
    Up {
        /// Number of nodes (1..=32).
        #[arg(long, value_name = "N", default_value_t = 3)]
        nodes: usize,
    },
    /// Run a command inside a node (its network and mount namespaces).
    Exec {
        /// The node: its number (0, 1, …) or name (n0, n1, …).
        node: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 1.., value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Show the nodes, their Corosync membership and their dvkd.
    Status,
    /// Stop every node's processes and remove every testbed object, also
    /// after a crash or a half-finished `up`.
    Down,
}

#[derive(Args, Debug)]
struct PsArgs {
    /// Only this DC (name or id).
    #[arg(long, value_name = "NAME|ID")]
    dc: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct KillCliArgs {
    /// [-s SIG|-SIG] [--dc NAME] PID|-PGID...
    #[arg(allow_hyphen_values = true, trailing_var_arg = true, num_args = 1.., value_name = "ARGS")]
    args: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Start the node daemon and initialise the DVS on this node.
    ///
    /// By default the daemon detaches: it runs in its own session with its
    /// log (stderr) appended to `dvkd.log` next to the socket, and this
    /// command returns once the daemon accepts connections. It fails if a
    /// daemon already runs on the socket. The DVS is initialised with the
    /// default parameters (see `dvs status`). The log level is taken from
    /// $DVS_LOG (tracing filter syntax, default `info`). In both modes
    /// SIGINT and SIGTERM stop the daemon cleanly, like `dvs node stop`.
    Start(StartArgs),
    /// Stop the node daemon: end every DC and the DVS, then exit.
    ///
    /// Waits (at most 5 s) for the daemon to remove its socket. Fails if no
    /// daemon is running on the socket.
    Stop,
}

#[derive(Args, Debug)]
struct StartArgs {
    /// Node id of this node in the DVS.
    #[arg(long, value_name = "ID", default_value_t = 0)]
    node: i32,
    /// Stay in the foreground and log to stderr; SIGINT or SIGTERM stop the daemon cleanly.
    #[arg(long)]
    foreground: bool,
    /// Cluster configuration file (TOML: nodes, DCs, proxy settings); it is
    /// validated before the daemon starts, and the DCs that span this node
    /// are created.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum DcCommand {
    /// Create a DC on this node.
    ///
    /// Limits not given are inherited from the DVS parameters (see `dvs status`).
    Init(DcInitArgs),
    /// End a DC: unbind all its endpoints and remove it.
    End {
        /// The DC, by name or id (a number is an id if such a DC exists, else a name).
        #[arg(value_name = "NAME|ID")]
        dc: String,
    },
    /// List the DCs of this node (id, name, process and task slots, bound endpoints).
    List,
}

#[derive(Args, Debug)]
struct DcInitArgs {
    /// Name of the DC: 1 to 32 letters, digits, '-', '_' or '.'.
    name: String,
    /// DC id [default: the lowest free id].
    #[arg(long, value_name = "N")]
    id: Option<i32>,
    /// Process slots (system + user) [default: the DVS nr_procs].
    #[arg(long, value_name = "N")]
    nr_procs: Option<i32>,
    /// Task slots [default: the DVS nr_tasks].
    #[arg(long, value_name = "N")]
    nr_tasks: Option<i32>,
    /// System process slots, privileged by default [default: the DVS nr_sysprocs, at most
    /// --nr-procs].
    #[arg(long, value_name = "N")]
    nr_sysprocs: Option<i32>,
    /// Largest copy; K, M and G suffixes are powers of 1024 [default: the DVS max_copylen].
    #[arg(long, value_name = "BYTES", value_parser = dc::parse_size)]
    max_copylen: Option<u32>,
    /// Endpoint notified when a process of the DC ends without unbinding (a number or NONE)
    /// [default: NONE].
    #[arg(long, value_name = "EP", value_parser = dc::parse_endpoint)]
    warn: Option<dvk::Endpoint>,
    /// Nodes the DC may span, comma-separated [default: this node].
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    nodes: Vec<i32>,
}

const STATUS_ABOUT: &str = "\
Show the DVS, nodes, proxies and DCs of this node (the seed prototype's /proc/dvs).

Sections: DVS (node, version, daemon pid, socket and the DVS parameters), NODES, PROXIES,
then for each DC an info line, its PROCS table and its STATS table.

PROCS columns:
  DC    DC id
  p_nr  slot number (tasks are negative)
  endp  endpoint
  lpid  host pid (0 for remote endpoints)
  node  node the endpoint runs on
  flag  IPC state: - (running), SEND, RECV, SNDREC, RPLWAIT or RCVRQST
  misc  kind letter: L local, R remote, B backup, P replica; then M if migrating;
        then P if privileged (e.g. LP = local and privileged, RM = remote, migrating)
  getf  endpoint it waits to receive from: - for none, ANY for any
  sndt  endpoint it is sending to: - for none
  wmig  1 if migrating, else 0
  prxy  proxy (always -)
  name  host command name

STATS columns: messages sent to local (lsnt) and remote (rsnt) endpoints, local (lcopy)
and remote (rcopy) copies, summed over the DC's endpoints.";

#[derive(Args, Debug)]
struct StatusArgs {
    /// Print the status snapshot as JSON, and nothing else.
    #[arg(long)]
    json: bool,
    /// Show only this DC (by id or name).
    #[arg(long, value_name = "NAME|ID")]
    dc: Option<String>,
}

/// Writes `text` to stdout; a closed pipe (`dvs status | head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let explicit =
        cli.socket.is_some() || std::env::var_os("DVS_SOCKET").is_some_and(|s| !s.is_empty());
    let socket = client::socket_path(cli.socket);
    match cli.command {
        Command::Node(NodeCommand::Start(a)) => {
            node::start(&socket, a.node, a.foreground, a.config.as_deref())
        }
        Command::Node(NodeCommand::Stop) => node::stop(&socket),
        Command::Ps(a) => ps::ps(&socket, explicit, a.dc.as_deref(), a.json),
        Command::Kill(a) => kill::kill(&socket, explicit, &a.args),
        Command::Dc(DcCommand::Init(a)) => dc::init(
            &socket,
            &dc::InitRequest {
                name: a.name,
                id: a.id,
                nr_procs: a.nr_procs,
                nr_tasks: a.nr_tasks,
                nr_sysprocs: a.nr_sysprocs,
                max_copylen: a.max_copylen,
                warn: a.warn,
                nodes: a.nodes,
            },
        ),
        Command::Dc(DcCommand::End { dc }) => dc::end(&socket, &dc),
        Command::Dc(DcCommand::List) => dc::list(&socket),
        Command::Status(a) => status::run(&socket, a.json, a.dc.as_deref()),
        Command::Testbed(TestbedCommand::Up { nodes }) => testbed::up(nodes),
        Command::Testbed(TestbedCommand::Exec { node, cmd }) => testbed::exec(&node, &cmd),
        Command::Testbed(TestbedCommand::Status) => testbed::status(),
        Command::Testbed(TestbedCommand::Down) => testbed::down(),
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let str_args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("")).collect();
    // A tracer started by a node's SYSTASK (see `supervise`).
    if let [_, arg, fd, parent] = str_args.as_slice() {
        if *arg == supervise::TRACER_ARG {
            if let (Ok(fd), Ok(parent)) = (fd.parse(), parent.parse()) {
                tracer::spawn::serve_inherited(fd, parent);
            }
        }
    }
    // A dvs-exec run in a cluster, handed over by dvs-exec under its name.
    if args.first().is_some_and(|a| dvs_exec::cli::is_named(a)) {
        // The task is named after the file exec'd; it keeps dvs-exec's.
        let name = c"dvs-exec";
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
        let run = dvs_exec::cli::Args::parse_from(args);
        dvs_exec::cli::init_tracing();
        std::process::exit(dvs_exec::cli::run(run, Some(dvk::membership::join_cpg)));
    }
    // No thread may be created before `run`: `dvs node start` forks.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dvs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn socket_is_global() {
        let cli = Cli::try_parse_from(["dvs", "dc", "list", "--socket", "/tmp/x"]).unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/x")));
    }
}
