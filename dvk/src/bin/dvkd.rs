//! `dvkd`: the DVK node daemon. Usually started by `dvs node start`.

use clap::Parser;
use std::path::PathBuf;

/// The DVK node daemon (control plane of M3-IPC on this node).
#[derive(Parser, Debug)]
#[command(name = "dvkd", version)]
struct Args {
    /// Control socket.
    #[arg(long, env = "DVS_SOCKET", default_value = dvk::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Node id; the DVS is initialised at start with the default parameters.
    #[arg(long, default_value_t = 0)]
    node: i32,
    /// Start uninitialised (a manager calls dvs_init later).
    #[arg(long)]
    no_init: bool,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = dvk::daemon::Config {
        socket: args.socket,
        init: (!args.no_init).then_some((args.node, dvk::DvsParams::default())),
    };
    if let Err(e) = dvk::daemon::run(&cfg) {
        eprintln!("dvkd: {e:#}");
        std::process::exit(1);
    }
}
