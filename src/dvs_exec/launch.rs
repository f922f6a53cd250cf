//! One run: a DC with its servers, the program in it, the wait, teardown.

use super::node::Node;
use super::resolve;
use anyhow::{bail, Context, Result};
use dvk::{DcParams, Dvk, DvsInfo, Endpoint, Ipc};
use mol_servers::abi::{self, Call};
use mol_servers::fs::{ConsoleFds, Publish};
use mol_servers::mol::{self, MolConfig};
use mol_servers::server::Starting;
use mol_servers::spawn::{ExecArgs, Held, SignalState};
use nix::sys::signal::{SigSet, Signal};
use std::ffi::{CString, OsString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tracer::net::{self, NetChild};

/// The launcher's endpoint (a system process: privileged).
const LAUNCHER: Endpoint = Endpoint(5);
/// The signal forwarder's endpoint.
const SIGNALS: Endpoint = Endpoint(6);
/// Signals the terminal (or a supervisor) sends that go to the DC.
const FORWARDED: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGTSTP,
];

fn call(ipc: &Ipc, to: Endpoint, c: Call, args: &[u64]) -> Result<dvk::Message> {
    let mut m = abi::request(c, args);
    ipc.sendrec(to, &mut m)
        .with_context(|| format!("{} failed", c.name()))?;
    Ok(m)
}

fn value(ipc: &Ipc, to: Endpoint, c: Call, args: &[u64]) -> Result<i64> {
    let m = call(ipc, to, c, args)?;
    abi::result(&m)
        .map_err(|e| anyhow::anyhow!("{}: {}", c.name(), std::io::Error::from_raw_os_error(e)))
}

/// Picks a free DC id and creates the DC, on this node and `remote`.
fn create_dc(
    dvk: &Dvk,
    name: &str,
    remote: Option<i32>,
    embedded: bool,
) -> Result<(DcParams, DvsInfo)> {
    let info = dvk
        .getdvsinfo()
        .context("the node daemon is not initialised")?;
    // The DC may span every node of the cluster: a program of the DC
    // may exec on another node (`DVS_NODE`). An embedded node has no
    // cluster.
    let mut nodes = 1u64 << info.node;
    if !embedded {
        if let Ok(st) = dvk.status() {
            for n in st.nodes.iter().filter(|n| (0..64).contains(&n.id)) {
                nodes |= 1 << n.id;
            }
        }
    }
    if let Some(n) = remote {
        if !(0..64).contains(&n) || n >= info.params.nr_nodes {
            bail!(
                "there is no node {n} (nodes are 0..{})",
                info.params.nr_nodes.min(64) - 1
            );
        }
        nodes |= 1 << n;
    }
    // The first free id: the daemon refuses a taken id (DcExist) and a
    // taken name (Exist), so one call per id does.
    for id in 0..info.params.nr_dcs {
        let mut p = DcParams::new(id, name, &info.params);
        p.nodes = nodes;
        p.warn2proc = abi::PM;
        match dvk.dc_init(&p) {
            Ok(_) => return Ok((p, info)),
            Err(dvk::DvkError::DcExist) => continue,
            Err(dvk::DvkError::Exist) => bail!(
                "a DC named {name:?} already exists; dvs-exec runs each program in a DC of its own"
            ),
            Err(e) => return Err(e).context("cannot create the DC"),
        }
    }
    bail!(
        "no free DC id on this node (all {} in use)",
        info.params.nr_dcs
    )
}

fn dup_console(others: Vec<(i32, OwnedFd)>) -> Result<ConsoleFds> {
    let d = |fd: i32| -> Result<OwnedFd> {
        let f = nix::unistd::dup(unsafe_borrow(fd))
            .with_context(|| format!("cannot use descriptor {fd}"))?;
        nix::fcntl::fcntl(
            &f,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        Ok(f)
    };
    let closed = CLOSED_AT_START.load(Ordering::Relaxed);
    Ok(ConsoleFds {
        input: d(0)?,
        output: d(1)?,
        error: d(2)?,
        others,
        closed: [0, 1, 2].map(|n| closed & (1 << n) != 0),
    })
}

/// Which of descriptors 0, 1 and 2 dvs-exec was started without (bit
/// `n`), as in `dvs-exec prog <&-`: recorded by [`record_closed_stdio`]
/// before Rust's runtime opens `/dev/null` on them, so that the program
/// too finds them closed.
static CLOSED_AT_START: AtomicU8 = AtomicU8::new(0);

extern "C" fn record_closed_stdio() {
    for n in 0..3 {
        // SAFETY: fcntl on a descriptor number; a closed one gives EBADF.
        if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
            CLOSED_AT_START.fetch_or(1 << n, Ordering::Relaxed);
        }
    }
}

/// Runs before `main` (glibc calls `.init_array` entries first).
#[used]
#[link_section = ".init_array"]
static RECORD_CLOSED_STDIO: extern "C" fn() = record_closed_stdio;

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: descriptors 0, 1, 2 stay open for the whole run.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// The program's `execve` arguments: path, `argv`, and the environment
/// with the preload and the node's socket.
struct ProgramArgs {
    prog: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl ProgramArgs {
    fn new(
        prog: &std::path::Path,
        command: &[OsString],
        preload: &std::path::Path,
        socket: &std::path::Path,
    ) -> Result<ProgramArgs> {
        let cstr = |b: &[u8]| CString::new(b).context("arguments must not contain NUL bytes");
        let argv = command
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<Result<_>>()?;
        let mut envp: Vec<CString> = Vec::new();
        // The preload first, then the user's own (which the program sees
        // as its `LD_PRELOAD`: the preload takes itself out).
        let mut preloads = preload.as_os_str().as_bytes().to_vec();
        for (k, v) in std::env::vars_os() {
            if k == "LD_PRELOAD" && !v.is_empty() {
                preloads.push(b':');
                preloads.extend_from_slice(v.as_bytes());
            }
            if k == "LD_PRELOAD" || k == "DVS_SOCKET" || k == "DVS_EXEC_PATH" {
                continue;
            }
            envp.push(cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
        }
        envp.push(cstr(&[b"LD_PRELOAD=", preloads.as_slice()].concat())?);
        envp.push(cstr(
            &[b"DVS_SOCKET=", socket.as_os_str().as_bytes()].concat(),
        )?);
        Ok(ProgramArgs {
            prog: cstr(prog.as_os_str().as_bytes())?,
            argv,
            envp,
        })
    }
}

/// The program forked on this node, held before its `execve` (or already
/// let go, [`LocalStart::go`]), and the socket its seccomp net's listener
/// comes back on.
struct LocalStart {
    pid: i32,
    held: Option<Held>,
    net: Option<NetChild>,
}

impl LocalStart {
    /// Host fork of the program, held until it is let go (see
    /// [`mol_servers::spawn`]). With the tracer, a static program installs
    /// the tracer's seccomp filter after its release, when the tracer has
    /// seized it, right before its `execve`; a dynamic one installs the
    /// seccomp net and sends its listener back.
    fn fork(
        args: &ProgramArgs,
        signals: SignalState,
        traced: bool,
        is_static: bool,
    ) -> Result<LocalStart> {
        let filter = match (traced, is_static) {
            (true, true) => Some(tracer::Filter::trace()?),
            _ => None,
        };
        let net = match (traced, is_static) {
            (true, false) => Some(NetChild::new()?),
            _ => None,
        };
        let exec = |a: &ExecArgs| -> i32 {
            if let Some(f) = &filter {
                if f.install_raw() != 0 {
                    return 0;
                }
            }
            match &net {
                Some(n) => {
                    if n.install() != 0 {
                        return 0;
                    }
                    // SAFETY: `fork_held` passes NUL-terminated arrays of
                    // NUL-terminated strings that outlive the call.
                    unsafe { NetChild::exec(a.prog(), a.argv(), a.envp()) }
                }
                None => mol_servers::spawn::execve(a),
            }
        };
        let held =
            mol_servers::spawn::fork_held(&args.prog, &args.argv, &args.envp, None, signals, &exec)
                .context("fork")?;
        Ok(LocalStart {
            pid: held.pid,
            held: Some(held),
            net,
        })
    }

    /// Lets the program exec now: the exec and the dynamic loading go on
    /// while the DC is made, and its preload waits for the program's
    /// binding, which PM makes once FS knows it.
    fn go(mut self) -> Result<LocalStart> {
        if let Some(h) = self.held.take() {
            h.release().context("cannot start the program")?;
        }
        Ok(self)
    }

    /// Hands the seccomp net's listener of a program let go to the tracer,
    /// which answers its loader's calls at once. The program sent it just
    /// before its exec; its loader's first call waits until then.
    fn hand_over_net(mut self, tracer: Option<&mut tracer::Tracer>) -> Result<LocalStart> {
        if self.held.is_none() {
            if let (Some(n), Some(t)) = (self.net.take(), tracer) {
                n.receive()
                    .and_then(|l| t.listen(l))
                    .context("cannot start the seccomp net")?;
            }
        }
        Ok(self)
    }

    /// The program as the rest of the start sees it.
    fn into_started(mut self) -> (Started, Option<NetChild>) {
        let net = self.net.take();
        let started = match self.held.take() {
            Some(h) => Started::Here(h),
            None => Started::Running(self.pid),
        };
        // Handed on: not killed on drop.
        self.pid = 0;
        (started, net)
    }
}

impl Drop for LocalStart {
    fn drop(&mut self) {
        // A program let go that the start failed for must not run on
        // unserved (one still held exits when its pipe closes).
        if self.held.is_none() && self.pid > 0 {
            // SAFETY: killing our own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// The program, started and held before its `execve`: here, or by the
/// SYSTASK of another node.
enum Started {
    Here(Held),
    /// Forked here and already let go ([`LocalStart::go`]).
    Running(i32),
    On {
        node: i32,
        pid: i32,
    },
}

impl Started {
    fn host_pid(&self) -> i32 {
        match self {
            Started::Here(h) => h.pid,
            Started::Running(pid) | Started::On { pid, .. } => *pid,
        }
    }

    /// Lets it run.
    fn release(self, me: &Ipc) -> Result<()> {
        match self {
            Started::Here(h) => h.release().context("cannot start the program"),
            Started::Running(_) => Ok(()),
            Started::On { node, pid } => value(me, abi::systask(node), Call::SysGo, &[pid as u64])
                .map(|_| ())
                .with_context(|| format!("cannot start the program on node {node}")),
        }
    }

    /// Kills it before it ran.
    fn abandon(self, me: &Ipc) {
        match self {
            // Dropped, it exits without running.
            Started::Here(_) => {}
            // SAFETY: killing our own child.
            Started::Running(pid) => unsafe {
                libc::kill(pid, libc::SIGKILL);
            },
            Started::On { node, pid } => {
                let _ = value(
                    me,
                    abi::systask(node),
                    Call::SysKill,
                    &[pid as u64, libc::SIGKILL as u64],
                );
                let _ = value(me, abi::systask(node), Call::SysReap, &[pid as u64]);
            }
        }
    }
}

/// Has the SYSTASK of `node` start the program there.
fn spawn_on(
    me: &Ipc,
    node: i32,
    prog: &CString,
    argv: &[CString],
    envp: &[CString],
    signals: SignalState,
) -> Result<Started> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let spec = abi::SpawnSpec {
        prog: prog.as_bytes().to_vec(),
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        envp: envp.iter().map(|e| e.as_bytes().to_vec()).collect(),
        cwd: cwd.as_os_str().as_bytes().to_vec(),
        signals,
    };
    let spec = bincode::serialize(&spec).context("cannot encode the program's start")?;
    let pid = value(
        me,
        abi::systask(node),
        Call::SysSpawn,
        &[spec.as_ptr() as u64, spec.len() as u64],
    )
    .with_context(|| format!("node {node} cannot start the program"))?;
    Ok(Started::On {
        node,
        pid: pid as i32,
    })
}

/// How the DC of a run is made.
pub struct DcOptions {
    /// Its name (default `exec-<pid>`).
    pub name: Option<String>,
    /// Its root directory (default `/`).
    pub root: Option<PathBuf>,
    /// The node daemon's control socket (default: find or embed one).
    pub socket: Option<PathBuf>,
    /// Published ports.
    pub publish: Vec<Publish>,
    /// The node the program runs on (default: this one).
    pub node: Option<i32>,
    /// Descriptors above 2 that dvs-exec inherited ([`take_inherited`]).
    pub inherited: Vec<(i32, OwnedFd)>,
    /// How SLOTS joins the DC's group in a cluster (see
    /// [`mol_servers::mol::MolConfig`]).
    pub group: Option<dvk::membership::JoinGroup>,
}

/// Takes the descriptors above 2 that dvs-exec inherited open across
/// `exec` (as in `dvs-exec prog 3<file`): the program gets them at the
/// same numbers, served by FS like its standard ones. Each moves to a
/// close-on-exec descriptor here, so that no host process of the DC
/// holds it (a pipe's writer kept by the program's host process would
/// keep its reader from the end of the stream).
pub fn take_inherited() -> Vec<(i32, OwnedFd)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let numbers: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&n| n > 2)
        .collect();
    let mut taken = Vec::new();
    for n in numbers {
        // SAFETY: fcntl on a descriptor number; a closed one (the
        // listing's own) gives EBADF.
        let fl = unsafe { libc::fcntl(n, libc::F_GETFD) };
        if fl < 0 || fl & libc::FD_CLOEXEC != 0 {
            continue;
        }
        // SAFETY: `n` is open and nothing in this process owns it (it came
        // from the parent): it is duplicated, then closed.
        let dup = unsafe { libc::fcntl(n, libc::F_DUPFD_CLOEXEC, 3) };
        if dup < 0 {
            continue;
        }
        // SAFETY: as above; `dup` is a new descriptor owned from here on.
        let fd = unsafe {
            libc::close(n);
            OwnedFd::from_raw_fd(dup)
        };
        taken.push((n, fd));
    }
    taken
}

/// Checks that every host port to publish is free now (and each named
/// once), so that a conflict is an error before the program starts.
fn check_publish(list: &[Publish]) -> Result<()> {
    for (i, p) in list.iter().enumerate() {
        if list[..i].iter().any(|q| q.host == p.host || q.dc == p.dc) {
            bail!("--publish {}:{}: a port is published twice", p.host, p.dc);
        }
        std::net::TcpListener::bind(("0.0.0.0", p.host))
            .with_context(|| format!("cannot publish host port {}", p.host))?;
    }
    Ok(())
}

/// Runs `command` in a fresh DC; returns the exit status for the shell.
pub fn run(command: &[OsString], opts: DcOptions) -> Result<i32> {
    let DcOptions {
        name: dc_name,
        root,
        socket,
        publish,
        node: on_node,
        inherited,
        group,
    } = opts;
    check_publish(&publish)?;
    let root = match root {
        Some(r) => r
            .canonicalize()
            .with_context(|| format!("--root {}", r.display()))?,
        None => PathBuf::from("/"),
    };
    let prog = resolve::program(&command[0], &root)?;
    let preload = resolve::preload()?;
    // A static program has no dynamic loader for the preload: it runs
    // under the tracer (see the tracer crate).
    let is_static = matches!(tracer::elf::kind(&prog), Ok(tracer::elf::Kind::Static));
    // With --node, the node daemon of a cluster must be running: which
    // node this is decides whether the program runs here (learning it
    // starts no thread, unlike an embedded daemon).
    let early = match on_node {
        Some(n) => {
            let node = Node::running(socket.clone())?.ok_or_else(|| {
                anyhow::anyhow!(
                    "--node {n} needs the running node daemon of a cluster (`dvs node start --config FILE --node ID`)"
                )
            })?;
            let local = Dvk::connect(&node.socket)
                .and_then(|d| d.getdvsinfo())
                .context("the node daemon is not initialised")?
                .node;
            Some((node, local))
        }
        None => None,
    };
    let remote = early
        .as_ref()
        .and_then(|&(_, local)| on_node.filter(|&n| n != local));
    // A program on another node is not this run's: the tracer there is its
    // node's (for static programs), and it runs without the seccomp net.
    if remote.is_some() && !publish.is_empty() {
        bail!("--publish cannot be combined with --node yet");
    }
    // The program starts with the signals ignored and blocked here, as
    // an exec would keep them (taken before the forwarded ones are blocked).
    let signals = SignalState::current();
    // Signals for the DC are handled by a forwarding thread: block them
    // before any thread starts (an embedded node daemon's too), so every
    // thread inherits the mask.
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block().context("cannot block signals")?;
    // A dynamic program runs under the seccomp net, whose supervisor is
    // the tracer process too.
    let mut tracer = if remote.is_none() && (is_static || net::enabled()) {
        // SAFETY: no thread has been started yet (the node daemon and the
        // servers come later).
        Some(unsafe { tracer::Tracer::start() }.context("cannot start the tracer")?)
    } else {
        None
    };
    let mut node = match early {
        Some((node, _)) => node,
        None => Node::get(socket)?,
    };
    let command_c = ProgramArgs::new(&prog, command, &preload, &node.socket)?;
    // A program of this node is forked now, while this process has no
    // thread (a fork copies every thread's stack mappings: 0.2-0.4 ms
    // later on); it waits before its exec until PM and FS know it.
    let local = match remote {
        None => Some(LocalStart::fork(
            &command_c,
            signals,
            tracer.is_some(),
            is_static,
        )?),
        Some(_) => None,
    };
    // A dynamic program goes ahead at once; a static one is traced from
    // its exec on, which waits for the tracer's adoption (after PmSpawn).
    let local = match local {
        Some(l) if !is_static => Some(l.go()?),
        other => other,
    };
    node.serve()?;
    let dvk = Dvk::connect(&node.socket).context("cannot reach the node daemon")?;

    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let name = dc_name.unwrap_or_else(|| format!("exec-{}", std::process::id()));
    let (dc, info) = create_dc(&dvk, &name, remote, node.is_embedded())?;
    let dcid = dc.dcid;
    // By now the program has long sent its listener.
    let local = match local {
        Some(l) => Some(l.hand_over_net(tracer.as_mut())?),
        None => None,
    };
    let result = run_in_dc(
        &node,
        &dvk,
        &dc,
        &info,
        &root,
        &prog,
        &command_c,
        local,
        set,
        signals,
        tracer.as_mut(),
        is_static,
        publish,
        remote,
        inherited,
        group,
    );
    drop(tracer);
    let _ = dvk.dc_end(dcid);
    drop(node);
    result
}

#[allow(clippy::too_many_arguments)]
fn run_in_dc(
    node: &Node,
    dvk: &Dvk,
    dc: &DcParams,
    info: &DvsInfo,
    root: &std::path::Path,
    prog: &std::path::Path,
    command: &ProgramArgs,
    local: Option<LocalStart>,
    forwarded: SigSet,
    signals: SignalState,
    mut tracer: Option<&mut tracer::Tracer>,
    is_static: bool,
    publish: Vec<Publish>,
    remote: Option<i32>,
    inherited: Vec<(i32, OwnedFd)>,
    group: Option<dvk::membership::JoinGroup>,
) -> Result<i32> {
    // The servers, the signal forwarder and the launcher bind at once.
    let dcid = dc.dcid;
    let servers = mol::spawn(
        &node.socket,
        dc,
        MolConfig {
            node: info.node,
            root: root.to_path_buf(),
            console: Some(dup_console(inherited)?),
            publish,
            group,
        },
    )
    .context("cannot start the MoL servers")?;
    let forwarder = spawn_signal_forwarder(&node.socket, dcid, forwarded)
        .context("cannot start the signal forwarder")?;
    let me = Dvk::tbind_at(&node.socket, dcid, LAUNCHER).context("cannot bind the launcher")?;
    servers.ready().context("cannot start the MoL servers")?;
    forwarder
        .ready()
        .context("cannot start the signal forwarder")?;
    if let Some(n) = remote {
        match dvk.dc_join(dcid, n) {
            Ok(()) => {}
            Err(dvk::DvkError::NoProxy) => bail!(
                "node {n} is not connected to this node (is it in this node's cluster, and running?)"
            ),
            Err(e) => return Err(e).with_context(|| format!("node {n} cannot join the DC")),
        }
    }
    if let Some(t) = tracer.as_deref_mut() {
        t.configure(&node.socket, dcid)
            .context("cannot configure the tracer")?;
    }
    let (started, net) = match (remote, local) {
        (Some(n), _) => (
            spawn_on(&me, n, &command.prog, &command.argv, &command.envp, signals)?,
            None,
        ),
        (None, Some(l)) => l.into_started(),
        (None, None) => bail!("the program was not started"),
    };
    let host_pid = started.host_pid();
    let here = info.node;
    let name = prog.file_name().map_or(&[][..], |n| n.as_bytes());
    let start = (|| -> Result<i32> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let cwd = if root == std::path::Path::new("/") {
            cwd
        } else {
            PathBuf::from("/")
        };
        let cwd = cwd.as_os_str().as_bytes();
        let m = call(
            &me,
            abi::PM,
            Call::PmSpawn,
            &[
                host_pid as u64,
                abi::INIT_PID as u64,
                remote.unwrap_or(here) as u64,
                name.as_ptr() as u64,
                name.len() as u64,
                cwd.as_ptr() as u64,
                cwd.len() as u64,
            ],
        )?;
        let pid = abi::result(&m).map_err(|e| {
            anyhow::anyhow!(
                "PM refused the program: {}",
                std::io::Error::from_raw_os_error(e)
            )
        })? as i32;
        let ep = m.words()[1];
        if let (Some(t), true) = (tracer.as_deref_mut(), is_static) {
            t.adopt(host_pid, Endpoint(ep as i32), true)
                .context("cannot trace the static program")?;
        }
        Ok(pid)
    })();
    let pid = match start {
        Ok(p) => p,
        Err(e) => {
            started.abandon(&me);
            return Err(e);
        }
    };
    started.release(&me)?;
    if let (Some(n), Some(t)) = (net, tracer.as_deref_mut()) {
        let handed = n
            .receive()
            .and_then(|l| t.listen(l))
            .context("cannot start the seccomp net");
        if let Err(e) = handed {
            // SAFETY: killing our own child, which must not run unserved.
            unsafe { libc::kill(host_pid, libc::SIGKILL) };
            return Err(e);
        }
    }

    let status = value(&me, abi::PM, Call::PmWaitExit, &[pid as u64])? as i32;
    teardown(&me);
    let code = if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    };
    if node.is_embedded() {
        // The DC's processes are gone, and all else of an embedded node
        // (its tables, memory, servers) lives in this process: exit now
        // rather than stop every thread in order (~1.5 ms).
        if let Some(t) = tracer {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(t.pid(), libc::SIGKILL) };
        }
        node.exit_now(code);
    }
    Ok(code)
}

/// Ends what is left of the DC (background processes) before the DC goes.
fn teardown(me: &Ipc) {
    let _ = value(
        me,
        abi::PM,
        Call::PmKill,
        &[-1i64 as u64, libc::SIGKILL as u64],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 1 << 16];
    while Instant::now() < deadline {
        let n = value(
            me,
            abi::PM,
            Call::PmPs,
            &[buf.as_mut_ptr() as u64, buf.len() as u64],
        );
        let rows: Vec<serde_json::Value> = match n {
            Ok(n) if (n as usize) <= buf.len() => {
                serde_json::from_slice(&buf[..n as usize]).unwrap_or_default()
            }
            _ => break,
        };
        if rows.len() <= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A thread that turns the signals dvs-exec receives into signals to the
/// DC's foreground process group.
fn spawn_signal_forwarder(
    socket: &std::path::Path,
    dcid: i32,
    set: SigSet,
) -> std::io::Result<Starting> {
    let socket = socket.to_path_buf();
    Starting::spawn(
        "signals",
        move || Dvk::tbind_at(&socket, dcid, SIGNALS).map_err(std::io::Error::other),
        move |ipc| {
            while let Ok(sig) = set.wait() {
                let _ = value(&ipc, abi::PM, Call::PmSignalFg, &[sig as i32 as u64]);
            }
        },
    )
}
