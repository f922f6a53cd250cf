//! Remote M3-IPC against raw TCP between the same two network namespaces,
//! measured in the same run on a 2-node testbed (`dvs testbed up`).
//!
//! Prints exactly two lines on stdout (medians of several runs):
//!
//! ```text
//! remote_sendrec_vs_tcp <remote sendrec round trips/s ÷ TCP ping-pong round trips/s>
//! remote_vcopy1m_vs_tcp <remote vcopy 1 MiB bandwidth ÷ TCP stream bandwidth>
//! ```
//!
//! The TCP baselines run between processes inside the two nodes' network
//! namespaces (64-byte ping-pong, the size of an M3-IPC message; a stream
//! written in 1 MiB chunks). Details, the 64 KiB copies and the aggregate
//! rate of 8 concurrent client/server pairs go to stderr. Needs root and
//! Corosync; builds the `dvs` binary if it is missing.

use anyhow::{bail, Context, Result};
use dvk::{Dvk, Endpoint, Ipc, Message};
use dvs_bench::median;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

const RUNS: usize = 9;
const RT_ITERS: u64 = 2_000;
const COPIES: u64 = 64;
const MIB: usize = 1 << 20;
const PORT: u16 = 7611;
const T: Duration = Duration::from_secs(20);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--role") {
        if let Err(e) = role(&args[2..]) {
            eprintln!("remote-ratio role: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run() {
        eprintln!("remote-ratio: {e:#}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------ TCP roles

/// Roles run inside a node: `tcp-echo SIZE`, `tcp-sink`, `tcp-ping ADDR
/// SIZE ITERS`, `tcp-stream ADDR CHUNK COUNT`. Clients print the elapsed
/// nanoseconds.
fn role(args: &[String]) -> Result<()> {
    let arg = |i: usize| -> Result<&str> {
        args.get(i)
            .map(String::as_str)
            .context("missing role argument")
    };
    match arg(0)? {
        "tcp-echo" => {
            let size: usize = arg(1)?.parse()?;
            let l = TcpListener::bind(("0.0.0.0", PORT))?;
            println!("ready");
            std::io::stdout().flush()?;
            let (mut s, _) = l.accept()?;
            s.set_nodelay(true)?;
            let mut buf = vec![0u8; size];
            while s.read_exact(&mut buf).is_ok() {
                s.write_all(&buf)?;
            }
        }
        "tcp-sink" => {
            let l = TcpListener::bind(("0.0.0.0", PORT))?;
            println!("ready");
            std::io::stdout().flush()?;
            let (mut s, _) = l.accept()?;
            let mut buf = vec![0u8; MIB];
            let mut total = 0u64;
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            s.write_all(&total.to_le_bytes())?;
        }
        "tcp-ping" => {
            let (size, iters): (usize, u64) = (arg(2)?.parse()?, arg(3)?.parse()?);
            let mut s = TcpStream::connect((arg(1)?, PORT))?;
            s.set_nodelay(true)?;
            let mut buf = vec![7u8; size];
            for _ in 0..200 {
                s.write_all(&buf)?;
                s.read_exact(&mut buf)?;
            }
            let start = Instant::now();
            for _ in 0..iters {
                s.write_all(&buf)?;
                s.read_exact(&mut buf)?;
            }
            println!("{}", start.elapsed().as_nanos());
        }
        "tcp-stream" => {
            let (chunk, count): (usize, u64) = (arg(2)?.parse()?, arg(3)?.parse()?);
            let mut s = TcpStream::connect((arg(1)?, PORT))?;
            let buf = vec![3u8; chunk];
            let start = Instant::now();
            for _ in 0..count {
                s.write_all(&buf)?;
            }
            s.shutdown(std::net::Shutdown::Write)?;
            let mut total = [0u8; 8];
            s.read_exact(&mut total)?;
            println!("{}", start.elapsed().as_nanos());
            if u64::from_le_bytes(total) != chunk as u64 * count {
                bail!("the sink got {} bytes", u64::from_le_bytes(total));
            }
        }
        other => bail!("unknown role {other}"),
    }
    Ok(())
}

// --------------------------------------------------------------- driver

struct Testbed {
    dvs: PathBuf,
}

impl Testbed {
    fn exec(&self, node: usize, args: &[&str]) -> Command {
        let mut c = Command::new(&self.dvs);
        c.args(["testbed", "exec", &node.to_string(), "--"])
            .args(args);
        c
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(&self.dvs)
            .args(["testbed", "down"])
            .stdout(Stdio::null())
            .status();
    }
}

/// The `dvs` binary next to this one, built if missing.
fn dvs_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no directory")?;
    let dvs = dir.join("dvs");
    if !dvs.exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let profile = if dir.ends_with("release") {
            vec!["--release"]
        } else {
            vec![]
        };
        eprintln!("building the dvs binary");
        let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args(["build", "-p", "dvs", "--bin", "dvs"])
            .args(profile)
            .status()?
            .success();
        if !ok || !dvs.exists() {
            bail!("cannot build {}", dvs.display());
        }
    }
    Ok(dvs)
}

/// The control socket of node `i`'s daemon, reached through its mount
/// namespace, and the testbed DC's id.
fn node_socket(tb: &Testbed, i: usize) -> Result<(PathBuf, i32)> {
    let start = Instant::now();
    loop {
        let out = tb
            .exec(i, &[&tb.dvs.to_string_lossy(), "status", "--json"])
            .output()?;
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let up = st["nodes"]
            .as_array()
            .map(|n| n.iter().all(|x| x["up"] == true))
            .unwrap_or(false);
        if up {
            let pid = st["info"]["daemon_pid"].as_i64().context("daemon pid")?;
            let socket = PathBuf::from(format!("/proc/{pid}/root/run/dvs/dvkd.sock"));
            let dcid = Dvk::connect(&socket)?.dc_lookup("testbed")?;
            return Ok((socket, dcid));
        }
        if start.elapsed() > T {
            bail!("node {i}: the proxies did not come up");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ep(n: i32) -> Endpoint {
    Endpoint::new(0, n)
}

/// Runs a TCP client role in node 0 against a server role in node 1;
/// returns the client's elapsed time.
fn tcp(tb: &Testbed, server: &[&str], client: &[&str]) -> Result<Duration> {
    let me = std::env::current_exe()?;
    let me = me.to_string_lossy();
    let mut sargs = vec![me.as_ref(), "--role"];
    sargs.extend_from_slice(server);
    let mut srv = tb
        .exec(1, &sargs)
        .stdout(Stdio::piped())
        .spawn()
        .context("TCP server")?;
    let mut line = [0u8; 6];
    srv.stdout
        .as_mut()
        .context("server stdout")?
        .read_exact(&mut line)?;
    let mut cargs = vec![me.as_ref(), "--role"];
    cargs.extend_from_slice(client);
    let out = tb.exec(0, &cargs).output()?;
    let _ = srv.wait();
    if !out.status.success() {
        bail!("TCP client: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ns: u64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(Duration::from_nanos(ns))
}

/// A thread bound as `e` on the daemon at `socket`, running `f`.
fn bound<R: Send + 'static>(
    socket: &Path,
    dcid: i32,
    e: i32,
    f: impl FnOnce(&Ipc) -> Result<R> + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<R>>> {
    let socket = socket.to_path_buf();
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let ipc = match Dvk::connect(&socket).and_then(|d| d.tbind(dcid, ep(e))) {
            Ok(i) => i,
            Err(e) => {
                let _ = tx.send(Err(anyhow::anyhow!("tbind: {e}")));
                return Err(anyhow::anyhow!("not bound"));
            }
        };
        let _ = tx.send(Ok(()));
        f(&ipc)
    });
    rx.recv_timeout(T).context("bind")??;
    Ok(h)
}

fn join<R>(h: std::thread::JoinHandle<Result<R>>) -> Result<R> {
    h.join()
        .map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))?
}

/// `pairs` client/server pairs: clients `10+i` on node 0, servers `200+i`
/// on node 1; every client makes `iters` sendrecs. Returns the elapsed
/// time of the slowest client.
fn sendrec_pairs(
    n0: &(PathBuf, i32),
    n1: &(PathBuf, i32),
    pairs: i32,
    iters: u64,
) -> Result<Duration> {
    let mut servers = Vec::new();
    for i in 0..pairs {
        servers.push(bound(&n1.0, n1.1, 200 + i, move |ipc| {
            for _ in 0..iters {
                let m = ipc.receive_t(Endpoint::ANY, T)?;
                ipc.reply(Endpoint(m.m_source), &m)?;
            }
            Ok(Duration::ZERO)
        })?);
    }
    let go = Arc::new(Barrier::new(pairs as usize));
    let mut clients = Vec::new();
    for i in 0..pairs {
        let go = go.clone();
        clients.push(bound(&n0.0, n0.1, 10 + i, move |ipc| {
            go.wait();
            let start = Instant::now();
            for k in 0..iters {
                let mut m = Message::new(1);
                m.words_mut()[0] = k;
                ipc.sendrec_t(ep(200 + i), &mut m, T)?;
            }
            Ok(start.elapsed())
        })?);
    }
    let mut slowest = Duration::ZERO;
    for c in clients {
        slowest = slowest.max(join(c)?);
    }
    for s in servers {
        join(s)?;
    }
    Ok(slowest)
}

/// 10 on node 0 waits in sendrec while 200 on node 1 copies `count`
/// blocks of `len` bytes from it; returns the copying time.
fn copies(n0: &(PathBuf, i32), n1: &(PathBuf, i32), len: usize, count: u64) -> Result<Duration> {
    let server = bound(&n1.0, n1.1, 200, move |ipc| {
        let m = ipc.receive_t(ep(10), T)?;
        let mut buf = vec![0u8; len];
        let start = Instant::now();
        for _ in 0..count {
            ipc.copy_from(ep(10), m.words()[0], &mut buf)?;
        }
        let took = start.elapsed();
        ipc.reply(ep(10), &m)?;
        Ok(took)
    })?;
    let client = bound(&n0.0, n0.1, 10, move |ipc| {
        let data = vec![5u8; len];
        let mut m = Message::new(2);
        m.words_mut()[0] = data.as_ptr() as u64;
        ipc.sendrec_t(ep(200), &mut m, T)?;
        drop(data);
        Ok(())
    })?;
    join(client)?;
    join(server)
}

fn run() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root (it builds a 2-node testbed with network namespaces)");
    }
    let dvs = dvs_binary()?;
    let up = Command::new(&dvs)
        .args(["testbed", "up", "--nodes", "2"])
        .stdout(Stdio::null())
        .output()?;
    if !up.status.success() {
        bail!(
            "dvs testbed up: {}",
            String::from_utf8_lossy(&up.stderr).trim()
        );
    }
    let tb = Testbed { dvs };
    let n0 = node_socket(&tb, 0)?;
    let n1 = node_socket(&tb, 1)?;
    // Clients 10.. on node 0, servers 200.. on node 1, registered on the
    // other side as remote.
    for i in 0..8 {
        Dvk::connect(&n0.0)?.rmtbind(n0.1, ep(200 + i), 1)?;
        Dvk::connect(&n1.0)?.rmtbind(n1.1, ep(10 + i), 0)?;
    }
    let addr1 = "10.213.0.2";

    let mut rt = Vec::new();
    sendrec_pairs(&n0, &n1, 1, 200)?;
    for run in 0..RUNS {
        let m3 = RT_ITERS as f64 / sendrec_pairs(&n0, &n1, 1, RT_ITERS)?.as_secs_f64();
        let iters = RT_ITERS.to_string();
        let t = tcp(&tb, &["tcp-echo", "64"], &["tcp-ping", addr1, "64", &iters])?;
        let raw = RT_ITERS as f64 / t.as_secs_f64();
        eprintln!("run {run}: remote sendrec {m3:.0} rt/s, TCP ping-pong {raw:.0} rt/s");
        rt.push(m3 / raw);
    }
    let mut bw = Vec::new();
    for run in 0..RUNS {
        let c = copies(&n0, &n1, MIB, COPIES)?;
        let m3 = (MIB as u64 * COPIES) as f64 / c.as_secs_f64();
        let count = COPIES.to_string();
        let chunk = MIB.to_string();
        let t = tcp(&tb, &["tcp-sink"], &["tcp-stream", addr1, &chunk, &count])?;
        let raw = (MIB as u64 * COPIES) as f64 / t.as_secs_f64();
        eprintln!(
            "run {run}: remote vcopy 1 MiB {:.0} MB/s, TCP stream {:.0} MB/s",
            m3 / 1e6,
            raw / 1e6
        );
        bw.push(m3 / raw);
    }
    let c = copies(&n0, &n1, 64 * 1024, COPIES * 4)?;
    eprintln!(
        "remote vcopy 64 KiB: {:.0} MB/s",
        (64 * 1024 * COPIES * 4) as f64 / c.as_secs_f64() / 1e6
    );
    let one = RT_ITERS as f64 / sendrec_pairs(&n0, &n1, 1, RT_ITERS)?.as_secs_f64();
    let eight = 8.0 * RT_ITERS as f64 / sendrec_pairs(&n0, &n1, 8, RT_ITERS)?.as_secs_f64();
    eprintln!(
        "aggregate sendrec rate: 1 pair {one:.0}/s, 8 pairs {eight:.0}/s ({:.2}x)",
        eight / one
    );
    println!("remote_sendrec_vs_tcp {:.3}", median(rt));
    println!("remote_vcopy1m_vs_tcp {:.3}", median(bw));
    Ok(())
}
