//! Shared harness of the dvs benchmarks.
//!
//! Every measurement runs between two real processes: the benchmark
//! process and a peer that is the same executable re-started in a *role*
//! (selected by `DVS_BENCH_ROLE`). A node daemon runs as a thread of the
//! benchmark process; it is only the control plane, never on the measured
//! path. Baselines (pipes, UNIX sockets, memcpy) are measured in the same
//! run so that ratios are meaningful on a noisy machine.

use anyhow::{bail, Context, Result};
use dvk::{DcParams, Dvk, DvsParams, Endpoint, Ipc, Message};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Endpoint of the benchmark servers (system process range: privileged).
pub const SERVER: i32 = 1;
/// Endpoints of benchmark clients start here (user range).
pub const CLIENT: i32 = 100;
/// Size of a ping-pong message, as an M3-IPC message.
pub const MSG: usize = 64;
/// Size of a copy.
pub const COPY: usize = 64 * 1024;

/// A node daemon running in a thread of this process, with DC 0.
pub struct Node {
    /// Control socket.
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
    stop: Box<dyn Fn() + Send + Sync>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Starts the daemon and creates DC 0.
    pub fn start() -> Result<Node> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("dvkd.sock");
        let cfg = dvk::daemon::Config {
            socket: socket.clone(),
            init: Some((0, DvsParams::default())),
        };
        let daemon = dvk::daemon::Daemon::bind(&cfg)?;
        let stop = Box::new(daemon.stopper());
        let thread = std::thread::spawn(move || {
            if let Err(e) = daemon.run() {
                eprintln!("dvkd: {e:#}");
            }
        });
        let node = Node {
            socket,
            _dir: dir,
            stop,
            thread: Some(thread),
        };
        node.dvk()?
            .dc_init(&DcParams::new(0, "bench", &DvsParams::default()))
            .context("dc_init")?;
        Ok(node)
    }

    /// A control connection from the calling thread.
    pub fn dvk(&self) -> Result<Dvk> {
        Dvk::connect(&self.socket).context("connect to dvkd")
    }

    /// Starts a peer process in `role`.
    pub fn role(&self, role: &str, args: &[String]) -> Result<Peer> {
        Peer::spawn(Some(&self.socket), role, args, Stdio::null(), Stdio::null())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        (self.stop)();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A peer process, killed on drop.
pub struct Peer {
    child: Child,
}

impl Peer {
    fn spawn(
        socket: Option<&Path>,
        role: &str,
        args: &[String],
        stdin: Stdio,
        stdout: Stdio,
    ) -> Result<Peer> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.env("DVS_BENCH_ROLE", role)
            .env("DVS_BENCH_ARGS", args.join(" "))
            .stdin(stdin)
            .stdout(stdout);
        if let Some(s) = socket {
            cmd.env("DVS_SOCKET", s);
        }
        Ok(Peer {
            child: cmd.spawn().context("spawn benchmark peer")?,
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// If this process was started as a peer, runs the role and exits.
/// Call first thing in `main`.
pub fn run_role_if_asked() {
    let Ok(role) = std::env::var("DVS_BENCH_ROLE") else {
        return;
    };
    let args: Vec<String> = std::env::var("DVS_BENCH_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let r = match role.as_str() {
        "echo_server" => echo_server(&args),
        "buffer_client" => buffer_client(&args),
        "fd_echo" => fd_echo(),
        other => Err(anyhow::anyhow!("unknown role {other}")),
    };
    if let Err(e) = r {
        eprintln!("benchmark peer {role}: {e:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn arg(args: &[String], i: usize) -> Result<i32> {
    args.get(i)
        .context("missing argument")?
        .parse()
        .context("bad argument")
}

/// Role: bind `ep` and answer every request with `reply`.
fn echo_server(args: &[String]) -> Result<()> {
    let ipc = Dvk::open()?.bind(0, Endpoint(arg(args, 0)?))?;
    loop {
        let mut m = ipc.receive(Endpoint::ANY)?;
        m.m1_mut().i1 += 1;
        ipc.reply(m.source(), &m)?;
    }
}

/// Role: bind `ep`, offer a 64 KiB buffer to the server with `sendrec`
/// and stay blocked (the server copies from/to it meanwhile).
fn buffer_client(args: &[String]) -> Result<()> {
    let ipc = Dvk::open()?.bind(0, Endpoint(arg(args, 0)?))?;
    let buf: Vec<u8> = (0..COPY).map(|i| i as u8).collect();
    let mut m = Message::new(1);
    m.m1_mut().p1 = buf.as_ptr() as u64;
    m.m1_mut().i1 = COPY as i32;
    ipc.sendrec(Endpoint(SERVER), &mut m)?;
    std::hint::black_box(&buf);
    Ok(())
}

/// Role: echo 64-byte records on fd 0 (a pipe pair or a socket).
fn fd_echo() -> Result<()> {
    let mut buf = [0u8; MSG];
    let mut input = std::io::stdin().lock();
    // Write straight to fd 0 when it is a socket, else to fd 1.
    let sock = nix::sys::stat::fstat(std::io::stdin())
        .map(|s| (s.st_mode & libc::S_IFMT) == libc::S_IFSOCK)
        .unwrap_or(false);
    let mut out: Box<dyn Write> = if sock {
        Box::new(std::fs::File::from(std::io::stdin().as_fd_dup()?))
    } else {
        Box::new(std::io::stdout().lock())
    };
    loop {
        if input.read_exact(&mut buf).is_err() {
            return Ok(());
        }
        out.write_all(&buf)?;
        out.flush()?;
    }
}

trait DupFd {
    fn as_fd_dup(&self) -> std::io::Result<std::os::fd::OwnedFd>;
}

impl DupFd for std::io::Stdin {
    fn as_fd_dup(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned()
    }
}

/// A client bound in the benchmark DC, with a server to talk to.
pub struct SendrecPair {
    ipc: Ipc,
    server: Endpoint,
    _peer: Peer,
}

impl SendrecPair {
    /// Starts an echo server on `server_ep` and binds the calling thread as `client_ep`.
    pub fn new(node: &Node, server_ep: i32, client_ep: i32) -> Result<SendrecPair> {
        let peer = node.role("echo_server", &[server_ep.to_string()])?;
        let dvk = node.dvk()?;
        dvk.wait4bindep(0, Endpoint(server_ep), Some(Duration::from_secs(10)))?;
        let ipc = dvk.tbind(0, Endpoint(client_ep))?;
        Ok(SendrecPair {
            ipc,
            server: Endpoint(server_ep),
            _peer: peer,
        })
    }

    /// `iters` round trips; returns the elapsed time.
    pub fn run(&self, iters: u64) -> Result<Duration> {
        let mut m = Message::new(7);
        let t = Instant::now();
        for i in 0..iters {
            m.m1_mut().i1 = i as i32;
            self.ipc.sendrec(self.server, &mut m)?;
            if m.m1().i1 != i as i32 + 1 {
                bail!("wrong reply");
            }
        }
        Ok(t.elapsed())
    }
}

/// A ping-pong over a pipe pair or a UNIX socket pair with an echo process.
pub struct FdPair {
    tx: Box<dyn Write>,
    rx: Box<dyn Read>,
    _peer: Peer,
}

impl FdPair {
    /// Ping-pong over two pipes.
    pub fn pipes() -> Result<FdPair> {
        let (p_rx, c_tx) = std::io::pipe()?;
        let (c_rx, p_tx) = std::io::pipe()?;
        let peer = Peer::spawn(None, "fd_echo", &[], Stdio::from(c_rx), Stdio::from(c_tx))?;
        Ok(FdPair {
            tx: Box::new(p_tx),
            rx: Box::new(p_rx),
            _peer: peer,
        })
    }

    /// Ping-pong over a UNIX stream socket pair.
    pub fn unix() -> Result<FdPair> {
        let (mine, theirs) = UnixStream::pair()?;
        let peer = Peer::spawn(
            None,
            "fd_echo",
            &[],
            Stdio::from(std::os::fd::OwnedFd::from(theirs)),
            Stdio::null(),
        )?;
        let rx = mine.try_clone()?;
        Ok(FdPair {
            tx: Box::new(mine),
            rx: Box::new(rx),
            _peer: peer,
        })
    }

    /// `iters` round trips of 64 bytes; returns the elapsed time.
    pub fn run(&mut self, iters: u64) -> Result<Duration> {
        let mut buf = [0u8; MSG];
        let t = Instant::now();
        for i in 0..iters {
            buf[0] = i as u8;
            self.tx.write_all(&buf)?;
            self.rx.read_exact(&mut buf)?;
            if buf[0] != i as u8 {
                bail!("wrong echo");
            }
        }
        Ok(t.elapsed())
    }
}

/// The calling thread as a privileged server holding a blocked client's
/// 64 KiB buffer, for vcopy measurements.
pub struct CopyPair {
    ipc: Ipc,
    client: Endpoint,
    addr: u64,
    buf: Vec<u8>,
    _peer: Peer,
}

impl CopyPair {
    /// Binds the calling thread as [`SERVER`] and waits for the client's request.
    pub fn new(node: &Node, client_ep: i32) -> Result<CopyPair> {
        let ipc = node.dvk()?.tbind(0, Endpoint(SERVER))?;
        let peer = node.role("buffer_client", &[client_ep.to_string()])?;
        let m = ipc.receive_t(Endpoint::ANY, Duration::from_secs(10))?;
        if m.m1().i1 as usize != COPY {
            bail!("unexpected buffer request");
        }
        Ok(CopyPair {
            ipc,
            client: m.source(),
            addr: m.m1().p1,
            buf: vec![0u8; COPY],
            _peer: peer,
        })
    }

    /// `iters` copies of 64 KiB out of the client; returns the elapsed time.
    pub fn run(&mut self, iters: u64) -> Result<Duration> {
        let t = Instant::now();
        for _ in 0..iters {
            self.ipc.copy_from(self.client, self.addr, &mut self.buf)?;
        }
        let d = t.elapsed();
        if self.buf[1000] != (1000 % 256) as u8 {
            bail!("copy produced wrong data");
        }
        Ok(d)
    }
}

/// `iters` in-process copies of 64 KiB; returns the elapsed time.
pub fn memcpy_run(iters: u64) -> Duration {
    let src: Vec<u8> = (0..COPY).map(|i| i as u8).collect();
    let mut dst = vec![0u8; COPY];
    let t = Instant::now();
    for _ in 0..iters {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    t.elapsed()
}

/// Median of a non-empty list.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Operations per second.
pub fn rate(iters: u64, d: Duration) -> f64 {
    iters as f64 / d.as_secs_f64().max(1e-9)
}
