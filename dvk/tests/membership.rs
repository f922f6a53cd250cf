//! `dvk::membership` against a real Corosync.
//!
//! The test re-executes this binary in three roles (environment variable
//! `DVS_CPGT_ROLE`):
//!
//! * *outer* (no role): checks that it can run (root, `corosync` present),
//!   makes a temporary directory and runs the *inner* role under
//!   `unshare --mount --net --pid --fork --kill-child --mount-proc
//!   --propagation private`, then checks that nothing is left behind.
//! * *inner*: in its own mount, network and pid namespaces, it mounts
//!   private tmpfs on `/run` and `/dev/shm`, binds the temporary directory
//!   on `/var/lib/corosync`, brings `lo` up and starts a single-node
//!   Corosync (knet on 127.0.0.1, node id 7). Then it runs the checks,
//!   with a *peer* process for the two-member ones.
//! * *peer*: a second CPG member, driven through its stdin and stdout.
//!
//! Whatever happens, the namespaces die with the inner process (pid 1 of
//! its pid namespace, killed with `unshare` by `--kill-child`), taking
//! Corosync, the peer and the mounts along; the outer role removes the
//! temporary directory.

use dvk::membership::{MemberEvent, Membership, MembershipError};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const TEST: &str = "cpg_membership_with_real_corosync";
const ROLE: &str = "DVS_CPGT_ROLE";
const DIR: &str = "DVS_CPGT_DIR";
/// The configured Corosync node id (not 1, so that a default cannot pass).
const NODEID: u32 = 7;
const GROUP: &str = "dvs-cpgt";
/// Messages multicast by each of the two members.
const PER_SENDER: usize = 100;
/// Budget for the whole inner run.
const OUTER_TIMEOUT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(10);

#[test]
fn cpg_membership_with_real_corosync() {
    match std::env::var(ROLE).as_deref() {
        Ok("inner") => inner(),
        Ok("peer") => peer(),
        _ => outer(),
    }
}

// ---------------------------------------------------------------- outer

fn outer() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED: needs root (namespaces, mounts, corosync)");
        return;
    }
    let Some(corosync) = find_binary("corosync") else {
        println!("SKIPPED: the corosync binary is not installed");
        return;
    };
    println!("corosync: {}", corosync.display());
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("dvs-cpgt-")
        .tempdir()
        .expect("temporary directory");
    let exe = std::env::current_exe().expect("path of the test binary");
    let child = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "--",
        ])
        .arg(&exe)
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, "inner")
        .env(DIR, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run unshare (util-linux)");
    let mut child = KillOnDrop(child);
    let out = drain(child.0.stdout.take());
    let err = drain(child.0.stderr.take());
    let deadline = Instant::now() + OUTER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for unshare") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(child); // kills unshare (and so the namespaces) if still running
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    println!("---- inner stdout\n{out}---- inner stderr\n{err}----");

    // Nothing may survive the namespaces: no process or mount refers to
    // the temporary directory (Corosync was started with a path in it).
    std::thread::sleep(Duration::from_millis(200));
    let needle = dir.path().to_string_lossy().into_owned();
    let survivors = processes_mentioning(&needle);
    assert!(survivors.is_empty(), "processes left behind: {survivors:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!mounts.contains(&needle), "mounts left behind:\n{mounts}");
    let path = dir.path().to_path_buf();
    dir.close().expect("remove the temporary directory");
    assert!(!path.exists());

    let status = status.unwrap_or_else(|| panic!("the inner run took more than {OUTER_TIMEOUT:?}"));
    assert!(status.success(), "the inner run failed: {status}");
    assert!(
        out.contains("INNER OK"),
        "the inner run did not finish its checks"
    );
    println!("total time {:?}", started.elapsed());
}

/// Kills and reaps a child process when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        if cmdline.contains(needle) || String::from_utf8_lossy(&environ).contains(needle) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

// ---------------------------------------------------------------- inner

fn inner() {
    let dir = PathBuf::from(std::env::var(DIR).expect("DVS_CPGT_DIR"));
    let t0 = Instant::now();
    setup_namespace(&dir);

    // Without Corosync: the clear error, and name validation.
    match Membership::join(GROUP) {
        Err(e @ MembershipError::NotRunning) => assert_eq!(
            e.to_string(),
            "cannot reach Corosync: is corosync running on this node?"
        ),
        other => panic!("join without Corosync: {other:?}"),
    }
    assert!(matches!(
        Membership::join(&"x".repeat(128)),
        Err(MembershipError::InvalidGroup { .. })
    ));

    let mut corosync = Corosync::start(&dir);
    let (a, a_rx) = corosync.wait_join(GROUP);
    println!("corosync ready and joined after {:?}", t0.elapsed());

    // The view of a lone member.
    assert_eq!(a.local_node(), NODEID);
    assert_eq!(a.members(), vec![NODEID]);
    assert_eq!(a_rx.try_recv(), Ok(MemberEvent::Joined(NODEID)));
    assert!(a_rx.try_recv().is_err(), "one event after the join");

    // A member gets its own messages back; measure that round trip.
    let mut rtt = Vec::new();
    for i in 0..20u32 {
        let data = format!("ping{i}").into_bytes();
        let t = Instant::now();
        a.multicast(&data).expect("multicast");
        let ev = a_rx.recv_timeout(STEP).expect("own message back");
        rtt.push(t.elapsed());
        assert_eq!(ev, MemberEvent::Message { from: NODEID, data });
    }
    rtt.sort();
    println!(
        "multicast -> own delivery: median {:?}, max {:?}",
        rtt[rtt.len() / 2],
        rtt[rtt.len() - 1]
    );

    // One membership per process and group.
    match Membership::join(GROUP) {
        Err(MembershipError::AlreadyJoined(g)) => assert_eq!(g, GROUP),
        other => panic!("second join in the same process: {other:?}"),
    }

    // A second member: another process on the same node.
    let mut peer = Peer::start();
    let line = peer.expect("joined");
    assert_eq!(line, format!("{NODEID} [{NODEID}]"), "the peer's view");
    let pids = cpg_pids(GROUP);
    assert_eq!(
        pids,
        vec![std::process::id(), peer.pid()],
        "CPG lists both processes"
    );
    // Same node: the node-level view does not change, so no event.
    assert_eq!(
        a_rx.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout),
        "a second process of a present node is no event"
    );
    assert_eq!(a.members(), vec![NODEID]);

    // Both multicast PER_SENDER messages at once; both must deliver all
    // of them, in the same order, each sender's in its sending order.
    let t = Instant::now();
    peer.say("go");
    for i in 0..PER_SENDER {
        a.multicast(format!("a{i}").as_bytes()).expect("multicast");
    }
    let mine = collect_messages(&a_rx, 2 * PER_SENDER);
    let theirs: Vec<String> = peer.expect("got").split(',').map(str::to_string).collect();
    let switches = mine.windows(2).filter(|w| w[0][..1] != w[1][..1]).count();
    println!(
        "{} messages from 2 senders delivered to both in {:?} ({switches} sender switches)",
        2 * PER_SENDER,
        t.elapsed()
    );
    check_sender_order(&mine);
    assert_eq!(mine, theirs, "both members deliver the same total order");

    // The peer leaves: CPG reports a Leave of its process, which changes
    // no node-level fact on this node.
    peer.say("leave");
    let ms: u64 = peer.expect("left").parse().expect("drop time");
    println!("the peer's drop took {ms} ms");
    assert!(ms < 1000, "dropping a Membership took {ms} ms");
    peer.wait_success();
    assert_eq!(
        a_rx.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout),
        "the leave of a second process of a present node is no event"
    );
    assert_eq!(a.members(), vec![NODEID]);
    assert_eq!(cpg_pids(GROUP), vec![std::process::id()]);

    // Dropping the last member: leaves, stops the thread within 1 s, and
    // the channel ends with the local node leaving the view.
    let t = Instant::now();
    drop(a);
    let took = t.elapsed();
    println!("drop of the last member took {took:?}");
    assert!(took < Duration::from_secs(1), "drop took {took:?}");
    assert_eq!(cpg_threads(), 0, "the dvkd-cpg thread is gone");
    let rest: Vec<MemberEvent> = a_rx.iter().collect();
    assert_eq!(rest, vec![MemberEvent::Left(NODEID)]);
    assert!(cpg_pids(GROUP).is_empty());

    // The same process can join again at once.
    let (b, b_rx) = Membership::join(GROUP).expect("join again");
    assert_eq!(b_rx.try_recv(), Ok(MemberEvent::Joined(NODEID)));
    assert_eq!(cpg_threads(), 1);

    // Corosync dies: the channel closes, multicast fails, drop is quick.
    let t = Instant::now();
    corosync.kill();
    match b_rx.recv_timeout(STEP) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("after Corosync died: {other:?}"),
    }
    println!("Corosync's death seen after {:?}", t.elapsed());
    assert!(matches!(
        b.multicast(b"late"),
        Err(MembershipError::Disconnected)
    ));
    let t = Instant::now();
    drop(b);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(cpg_threads(), 0);

    drop(corosync);
    println!("INNER OK after {:?}", t0.elapsed());
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

fn setup_namespace(dir: &Path) {
    run(
        "mount",
        &["-t", "tmpfs", "-o", "mode=0755", "dvs-cpgt-run", "/run"],
    );
    run(
        "mount",
        &["-t", "tmpfs", "-o", "mode=1777", "dvs-cpgt-shm", "/dev/shm"],
    );
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state directory");
    let state = state.to_str().expect("UTF-8 path");
    if Path::new("/var/lib/corosync").is_dir() {
        run("mount", &["--bind", state, "/var/lib/corosync"]);
    }
    run("ip", &["link", "set", "lo", "up"]);
    let conf = format!(
        "totem {{\n  version: 2\n  cluster_name: dvs-cpgt\n  transport: knet\n  \
         crypto_cipher: none\n  crypto_hash: none\n  token: 1000\n}}\n\
         logging {{\n  to_stderr: yes\n  to_syslog: no\n  to_logfile: no\n  timestamp: on\n}}\n\
         system {{\n  state_dir: {state}\n}}\n\
         nodelist {{\n  node {{\n    ring0_addr: 127.0.0.1\n    nodeid: {NODEID}\n    \
         name: cpgt\n  }}\n}}\n"
    );
    std::fs::write(dir.join("corosync.conf"), conf).expect("write corosync.conf");
}

/// The Corosync of the namespace; stopped (and its log shown on failure)
/// when dropped.
struct Corosync {
    child: Option<Child>,
    log: PathBuf,
}

impl Corosync {
    fn start(dir: &Path) -> Corosync {
        let log = dir.join("corosync.log");
        let file = std::fs::File::create(&log).expect("corosync.log");
        let child = Command::new("corosync")
            .arg("-f")
            .arg("-c")
            .arg(dir.join("corosync.conf"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("corosync.log"))
            .stderr(file)
            .spawn()
            .expect("start corosync");
        Corosync {
            child: Some(child),
            log,
        }
    }

    /// Retries the join until Corosync answers, for up to 10 s.
    fn wait_join(&mut self, group: &str) -> (Membership, Receiver<MemberEvent>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Membership::join(group) {
                Ok(m) => return m,
                Err(e) if Instant::now() < deadline => {
                    if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                        panic!("corosync exited: {status}");
                    }
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("Corosync not ready after 10 s: {e}"),
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Corosync {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(None) = child.try_wait() {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- corosync.log (last lines)");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// The pids of the members of `group`, sorted, as `corosync-cpgtool`
/// lists them.
fn cpg_pids(group: &str) -> Vec<u32> {
    let out = Command::new("corosync-cpgtool")
        .output()
        .expect("run corosync-cpgtool");
    assert!(out.status.success(), "corosync-cpgtool: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut pids = Vec::new();
    let mut in_group = false;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            in_group = line.trim() == group;
            continue;
        }
        if in_group {
            if let Some(Ok(pid)) = line.split_whitespace().next().map(str::parse) {
                pids.push(pid);
            }
        }
    }
    pids.sort();
    pids
}

/// How many threads of this process are named `dvkd-cpg`.
fn cpg_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "dvkd-cpg")
        })
        .count()
}

/// The payloads of the next `n` events, which must all be messages.
fn collect_messages(rx: &Receiver<MemberEvent>, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match rx.recv_timeout(STEP) {
            Ok(MemberEvent::Message { from, data }) => {
                assert_eq!(from, NODEID);
                String::from_utf8(data).expect("UTF-8 payload")
            }
            other => panic!("expected a message, got {other:?}"),
        })
        .collect()
}

/// Each sender's messages (`a0..`, `b0..`) come in the order they were
/// sent, and all of them are there.
fn check_sender_order(msgs: &[String]) {
    for tag in ["a", "b"] {
        let seq: Vec<usize> = msgs
            .iter()
            .filter_map(|m| m.strip_prefix(tag))
            .map(|n| n.parse().expect("sequence number"))
            .collect();
        assert_eq!(seq, (0..PER_SENDER).collect::<Vec<_>>(), "order of {tag}");
    }
}

/// The peer process, seen from the inner one.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Peer {
    fn start() -> Peer {
        let exe = std::env::current_exe().expect("path of the test binary");
        let mut child = Command::new(exe)
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, "peer")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the peer");
        let stdin = child.stdin.take().expect("peer stdin");
        let stdout = child.stdout.take().expect("peer stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness may have printed "test NAME ... " first.
                if let Some(at) = line.find("PEER ") {
                    if tx.send(line[at + 5..].to_string()).is_err() {
                        break;
                    }
                } else {
                    println!("peer: {line}");
                }
            }
        });
        Peer {
            child,
            stdin,
            lines,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn say(&mut self, word: &str) {
        writeln!(self.stdin, "{word}").expect("write to the peer");
        self.stdin.flush().expect("write to the peer");
    }

    /// The rest of the next line `PEER <word> ...`.
    fn expect(&self, word: &str) -> String {
        let line = self
            .lines
            .recv_timeout(STEP)
            .unwrap_or_else(|e| panic!("no '{word}' from the peer: {e}"));
        match line.split_once(' ') {
            Some((w, rest)) if w == word => rest.to_string(),
            _ => panic!("expected '{word}' from the peer, got {line:?}"),
        }
    }

    fn wait_success(&mut self) {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the peer") {
                assert!(status.success(), "the peer failed: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the peer does not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ----------------------------------------------------------------- peer

fn peer() {
    let stdin = std::io::stdin();
    let mut commands = stdin.lock().lines();
    let mut next = |want: &str| {
        let line = commands
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("peer: no '{want}' command"));
        assert_eq!(line.trim(), want);
    };
    let (m, rx) = Membership::join(GROUP).expect("peer: join");
    assert_eq!(rx.try_recv(), Ok(MemberEvent::Joined(NODEID)));
    println!("PEER joined {} {:?}", m.local_node(), m.members());

    next("go");
    for i in 0..PER_SENDER {
        m.multicast(format!("b{i}").as_bytes())
            .expect("peer: multicast");
    }
    let got = collect_messages(&rx, 2 * PER_SENDER);
    println!("PEER got {}", got.join(","));

    next("leave");
    let t = Instant::now();
    drop(m);
    println!("PEER left {}", t.elapsed().as_millis());
}
