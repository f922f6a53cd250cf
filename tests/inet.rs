//! INET sockets inside a DC, with real programs: the same Python socket
//! program natively and in a DC, `python3 -m http.server` in the DC
//! fetched by the host's curl and by a DC curl, curl and wget in the DC
//! against a host server, an asyncio echo server under a connection storm
//! and a reset peer; interface and address lists (`AF_NETLINK` route
//! sockets). A DC process never holds a host INET socket: FS does.

mod common;
use common::{dvs_exec_cmd, run_cmd, Guard, Run};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PY: &str = "/usr/bin/python3";

fn native(cwd: &Path, args: &[&str]) -> Run {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    run_cmd(c, cwd)
}

fn in_dc(cwd: &Path, args: &[&str]) -> Run {
    let mut c = dvs_exec_cmd();
    c.arg("--").args(args);
    run_cmd(c, cwd)
}

/// A command whose first output line is a port, running in the
/// background (killed with its DC when dropped).
struct Server {
    guard: Guard,
    port: u16,
}

impl Server {
    fn start(mut cmd: Command, cwd: &Path) -> Server {
        cmd.current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut guard = Guard(cmd.spawn().expect("spawn"));
        let out = guard.0.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut l = String::new();
            let _ = r.read_line(&mut l);
            let _ = tx.send(l);
            // Keep draining so the server never blocks on its stdout.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server did not print its port");
        // `python3 -m http.server` says "Serving HTTP on ADDR port N ...".
        let port = line
            .split_whitespace()
            .filter_map(|w| w.parse::<u16>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server { guard, port }
    }

    fn pid(&self) -> u32 {
        self.guard.0.id()
    }
}

/// Host processes whose command line contains `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(marker) {
            v.push(pid);
        }
    }
    v
}

/// Socket inodes of process `pid`'s descriptors.
fn socket_inodes(pid: u32) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(l) = std::fs::read_link(e.path()) {
                let l = l.to_string_lossy().to_string();
                if let Some(i) = l.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    v.push(i.to_string());
                }
            }
        }
    }
    v
}

/// Inodes of this network namespace's INET sockets.
fn inet_inodes() -> Vec<String> {
    let mut v = Vec::new();
    for f in ["tcp", "tcp6", "udp", "udp6"] {
        let t = std::fs::read_to_string(format!("/proc/net/{f}")).unwrap_or_default();
        for l in t.lines().skip(1) {
            if let Some(i) = l.split_whitespace().nth(9) {
                v.push(i.to_string());
            }
        }
    }
    v
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).expect("response");
    r
}

/// TCP and UDP, IPv4 and IPv6, blocking and not, errors: the same output
/// natively and in the DC.
#[test]
fn python_sockets_same_as_native() {
    let d = tempfile::tempdir().expect("tempdir");
    let script = r#"
import errno, os, select, socket
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(5)
port = srv.getsockname()[1]
print("bound", port > 0, srv.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0)
print("type", srv.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM)
pid = os.fork()
if pid == 0:
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(b"hello " * 100000)
    c.shutdown(socket.SHUT_WR)
    print("child got", c.recv(100))
    os._exit(0)
conn, addr = srv.accept()
print("peer", addr[0], conn.getpeername() == addr, conn.getsockname()[1] == port)
data = b""
while b := conn.recv(65536):
    data += b
print("server got", len(data), data[:12])
conn.sendall(b"bye")
conn.close()
print("child status", os.waitpid(pid, 0)[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.sendto(b"dgram", u.getsockname())
p = select.poll(); p.register(u, select.POLLIN)
print("poll", [ev for _, ev in p.poll(5000)])
d, a = u.recvfrom(100); print("udp", d, a == v.getsockname())
u.setblocking(False)
try: u.recv(10)
except BlockingIOError as e: print("empty", errno.errorcode[e.errno])
six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); six.bind(("::1", 0)); six.listen()
c6 = socket.create_connection(("::1", six.getsockname()[1])); s6, a6 = six.accept()
c6.sendall(b"v6"); print("v6", s6.recv(10), a6[0])
try: socket.create_connection(("127.0.0.1", 1))
except ConnectionRefusedError: print("refused")
try: socket.socketpair(socket.AF_INET)
except OSError as e: print("socketpair", errno.errorcode[e.errno])
nb = socket.socket(); nb.setblocking(False)
try: nb.connect(("127.0.0.1", port))
except BlockingIOError as e: print("connect", errno.errorcode[e.errno])
r, w, _ = select.select([], [nb], [], 5); print("writable", len(w))
print("so_error", nb.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
import array
h = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); h.bind(("::1", 0))
h.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
g = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
g.sendmsg([b"hop"], [(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, array.array("i", [7]))], 0, h.getsockname())
m, anc, fl, _ = h.recvmsg(100, socket.CMSG_SPACE(4))
print("cmsg", m, [(l, t, array.array("i", d)[0]) for l, t, d in anc], fl)
g.sendto(b"x", h.getsockname())
m, anc, fl, _ = h.recvmsg(100, 1)
print("ctrunc", anc, fl & socket.MSG_CTRUNC != 0)
u1, u2 = socket.socketpair()
print("unix ignores other levels", u1.sendmsg([b"x"], [(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, array.array("i", [7]))]))
with open("sf.dat", "wb") as f: f.write(bytes(range(256)) * 4000)
f = open("sf.dat", "rb")
print("sendfile", os.sendfile(u1.fileno(), f.fileno(), 10, 1000), f.tell(), len(u2.recv(5000)))
s = socket.create_server(("127.0.0.1", 0)); c = socket.create_connection(s.getsockname()); d, _ = s.accept()
print("socket.sendfile", c.sendfile(f)); c.close()
got = b""
while x := d.recv(65536): got += x
print(len(got), got == open("sf.dat", "rb").read())
r, w = os.pipe()
f.seek(5); print("no offset", os.sendfile(w, f.fileno(), None, 10), f.tell(), os.read(r, 100)[:3])
i = socket.if_nametoindex("lo")
print("lo", i == socket.if_nameindex()[0][0], socket.if_indextoname(i))
print("scope", socket.getaddrinfo("ff02::1de:c0:face:8d%lo", 1234, socket.AF_INET6)[0][4][3] == i)
try: socket.if_nametoindex("nosuchif0")
except OSError as e: print("no such interface", e)
"#;
    let n = native(d.path(), &[PY, "-c", script]);
    let r = in_dc(d.path(), &[PY, "-c", script]);
    assert_eq!(r.stdout, n.stdout, "DC stderr:\n{}", r.stderr);
    assert_eq!((r.code, n.code), (0, 0), "DC stderr:\n{}", r.stderr);
}

/// `recv` with `MSG_WAITALL` on a stream fills the whole buffer across
/// several arrivals, returns what came when the peer ends the stream or a
/// signal (with a handler) comes after some data, and takes one datagram
/// on UDP, as natively.
#[test]
fn msg_waitall_waits_for_the_whole_buffer() {
    let d = tempfile::tempdir().expect("tempdir");
    let script = r#"
import os, signal, socket, time
s = socket.create_server(("127.0.0.1", 0)); port = s.getsockname()[1]
if os.fork() == 0:
    c = socket.create_connection(("127.0.0.1", port))
    for i in range(5):
        c.sendall(bytes([65 + i]) * 1000); time.sleep(0.05)
    c.sendall(b"z" * 300000); time.sleep(0.05)
    c.sendall(b"tail"); c.close(); os._exit(0)
a, _ = s.accept()
x = a.recv(5000, socket.MSG_WAITALL); print("5 pieces", len(x), x[::1000])
x = a.recv(300000, socket.MSG_WAITALL); print("large", len(x), set(x) == {ord("z")})
x = a.recv(100, socket.MSG_WAITALL); print("ended", x)
print("eof", a.recv(100, socket.MSG_WAITALL)); os.wait()
signal.signal(signal.SIGALRM, lambda *a: print("alarm"))
if os.fork() == 0:
    c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"part")
    time.sleep(1); os._exit(0)
a, _ = s.accept()
signal.setitimer(signal.ITIMER_REAL, 0.3)
print("interrupted", a.recv(100, socket.MSG_WAITALL)); os.wait()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.sendto(b"one", u.getsockname()); v.sendto(b"two", u.getsockname())
print("udp", u.recv(100, socket.MSG_WAITALL), u.recv(100, socket.MSG_WAITALL))
"#;
    let n = native(d.path(), &[PY, "-c", script]);
    assert_eq!(
        n.stdout,
        "5 pieces 5000 b'ABCDE'\nlarge 300000 True\nended b'tail'\neof b''\n\
         alarm\ninterrupted b'part'\nudp b'one' b'two'\n"
    );
    let r = in_dc(d.path(), &[PY, "-c", script]);
    assert_eq!(r.stdout, n.stdout, "DC stderr:\n{}", r.stderr);
    assert_eq!((r.code, n.code), (0, 0), "DC stderr:\n{}", r.stderr);
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO` end blocked `accept`, `recv` (every
/// form, `read` included), `send` and `connect` calls with `EAGAIN` (or
/// what moved, `EINPROGRESS` for an INET `connect`) once they run out, on
/// INET and `AF_UNIX` sockets, as natively.
#[test]
fn socket_timeouts_end_blocked_calls() {
    let d = tempfile::tempdir().expect("tempdir");
    let script = r#"
import errno, os, socket, struct, time
tv = struct.pack("ll", 0, 300000)
s = socket.create_server(("127.0.0.1", 0)); port = s.getsockname()[1]
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
t = time.time()
try: s.accept(); print("accepted?")
except OSError as e: print("accept", errno.errorcode[e.errno], 0.25 < time.time() - t < 2)
c = socket.create_connection(("127.0.0.1", port)); a, _ = s.accept()
a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
for name, fn in [("recv", lambda: a.recv(10)), ("recv flags", lambda: a.recv(10, socket.MSG_WAITALL)),
                 ("read", lambda: os.read(a.fileno(), 10)), ("recvfrom", lambda: a.recvfrom(10)),
                 ("recvmsg", lambda: a.recvmsg(10))]:
    t = time.time()
    try: print(name, "got", fn())
    except OSError as e: print(name, errno.errorcode[e.errno], 0.25 < time.time() - t < 2)
c.sendall(b"abc")
print("waitall partial", a.recv(10, socket.MSG_WAITALL))
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
n = 0
t = time.time()
try:
    while True: n += c.send(b"x" * 65536)
except OSError as e: print("send", errno.errorcode[e.errno], n > 0, 0.25 < time.time() - t < 3)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
cs = []
for i in range(4):
    c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    t = time.time()
    try: c.connect(s.getsockname()); print(i, "connected")
    except OSError as e: print(i, errno.errorcode[e.errno], 0.25 < time.time() - t < 2); break
    cs.append(c)
def timed(name, fn):
    t = time.time()
    try: print(name, "got", fn())
    except OSError as e: print(name, errno.errorcode[e.errno], 0.25 < time.time() - t < 2)
a, b = socket.socketpair()
a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
print("unix rcvtimeo", a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) == tv)
timed("unix recv", lambda: a.recv(10))
timed("unix read", lambda: os.read(a.fileno(), 10))
b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
n = [0]
def fill():
    while True: n[0] += b.send(b"y" * 4096)
timed("unix send", fill)
print("sent some", n[0] > 0)
l = socket.socket(socket.AF_UNIX); l.bind("\0dvs-unixto-%d" % os.getpid()); l.listen()
l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
timed("unix accept", l.accept)"#;
    let n = native(d.path(), &[PY, "-c", script]);
    assert_eq!(
        n.stdout,
        "accept EAGAIN True\nrecv EAGAIN True\nrecv flags EAGAIN True\nread EAGAIN True\n\
         recvfrom EAGAIN True\nrecvmsg EAGAIN True\nwaitall partial b'abc'\n\
         send EAGAIN True True\n0 connected\n1 EINPROGRESS True\nunix rcvtimeo True\n\
         unix recv EAGAIN True\nunix read EAGAIN True\nunix send EAGAIN True\nsent some True\n\
         unix accept EAGAIN True\n"
    );
    let r = in_dc(d.path(), &[PY, "-c", script]);
    assert_eq!(r.stdout, n.stdout, "DC stderr:\n{}", r.stderr);
    assert_eq!((r.code, n.code), (0, 0), "DC stderr:\n{}", r.stderr);
}

/// A signal sent through PM ends a blocked `accept`/`recv` (FS answers
/// the deferred call with `EINTR`; the handler runs), as natively.
#[test]
fn signals_interrupt_blocked_socket_calls() {
    let d = tempfile::tempdir().expect("tempdir");
    let script = r#"
import os, select, signal, socket, time
class Stop(Exception): pass
def h(*a): raise Stop()
signal.signal(signal.SIGUSR1, h)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
ep = select.epoll(); ep.register(u, select.EPOLLIN)
parent = os.getpid()
for what, fn in [("accept", s.accept), ("recv", lambda: u.recv(10)), ("epoll", lambda: ep.poll(30))]:
    if os.fork() == 0:
        time.sleep(0.2); os.kill(parent, signal.SIGUSR1); os._exit(0)
    try: fn(); print(what, "returned")
    except Stop: print(what, "interrupted")
    os.wait()
"#;
    let n = native(d.path(), &[PY, "-c", script]);
    let r = in_dc(d.path(), &[PY, "-c", script]);
    assert_eq!(
        n.stdout,
        "accept interrupted\nrecv interrupted\nepoll interrupted\n"
    );
    assert_eq!(r.stdout, n.stdout, "DC stderr:\n{}", r.stderr);
}

/// `python3 -m http.server` in a DC serves files of the DC's file system
/// (read through FS) to the host's curl and to curl in another DC
/// process, without holding a host socket itself.
#[test]
fn http_server_in_the_dc() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("www")).unwrap();
    std::fs::write(
        root.path().join("www/index.txt"),
        "served from the DC root\n",
    )
    .unwrap();
    let mut c = dvs_exec_cmd();
    c.args([
        "--",
        PY,
        "-u",
        "-m",
        "http.server",
        "0",
        "--bind",
        "127.0.0.1",
    ]);
    c.arg("--directory").arg(root.path().join("www"));
    let srv = Server::start(c, root.path());

    let r = http_get(srv.port, "/index.txt");
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    assert!(r.ends_with("served from the DC root\n"), "{r}");
    assert!(http_get(srv.port, "/missing").starts_with("HTTP/1.0 404"));

    // The host's curl and a curl inside another DC.
    let url = format!("http://127.0.0.1:{}/index.txt", srv.port);
    let host = Command::new("curl")
        .args(["-sS", &url])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&host.stdout),
        "served from the DC root\n"
    );
    let d = tempfile::tempdir().expect("tempdir");
    let dc = in_dc(d.path(), &["curl", "-sS", &url]);
    assert_eq!(dc.stdout, "served from the DC root\n", "{}", dc.stderr);

    // The DC's python holds no INET socket: FS (in dvs-exec) does.
    let inet = inet_inodes();
    let pys: Vec<u32> = pids_with("--directory")
        .into_iter()
        .filter(|&p| p != srv.pid())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.starts_with("python"))
        })
        .collect();
    assert!(!pys.is_empty(), "the DC's python process was not found");
    for p in pys {
        for i in socket_inodes(p) {
            assert!(!inet.contains(&i), "DC process {p} holds INET socket {i}");
        }
    }
    assert!(
        socket_inodes(srv.pid()).iter().any(|i| inet.contains(i)),
        "dvs-exec (FS) should hold the listening socket"
    );
}

/// curl and wget in a DC fetch from a server on the host's loopback.
#[test]
fn curl_and_wget_in_the_dc() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("file.txt"), "from the host\n").unwrap();
    let mut c = Command::new(PY);
    c.args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"]);
    let srv = Server::start(c, d.path());
    let url = format!("http://127.0.0.1:{}/file.txt", srv.port);
    let r = in_dc(d.path(), &["curl", "-sS", "--max-time", "20", &url]);
    assert_eq!(
        (r.stdout.as_str(), r.code),
        ("from the host\n", 0),
        "{}",
        r.stderr
    );
    let r = in_dc(d.path(), &["wget", "-q", "-T", "20", "-O", "-", &url]);
    assert_eq!(
        (r.stdout.as_str(), r.code),
        ("from the host\n", 0),
        "{}",
        r.stderr
    );
    let r = in_dc(
        d.path(),
        &["curl", "-sS", "--max-time", "20", "http://127.0.0.1:1/"],
    );
    assert_eq!(r.code, 7, "curl: connection refused\n{}", r.stderr);
}

/// Large reads of a socket (handed over through the reader's data
/// channel, see ARCHITECTURE "Data channels") deliver every byte in
/// order: `cat` and `dd` (`read`, 128 KiB and odd sizes) and Python
/// (`recv`) in a DC read a host server's stream into files compared with
/// what was sent.
#[test]
fn large_socket_reads_keep_every_byte() {
    let d = tempfile::tempdir().expect("tempdir");
    // 9 MiB and a bit, not a multiple of anything the readers use.
    let payload: Vec<u8> = (0..9 * 1024 * 1024 + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let sent = payload.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(3) {
            let Ok(mut c) = conn else { return };
            // Writes of varying sizes, so reads see partial chunks.
            let mut at = 0;
            for k in 0usize.. {
                if at >= sent.len() {
                    break;
                }
                let n = (1000 + k * 7919 % 300_000).min(sent.len() - at);
                if c.write_all(&sent[at..at + n]).is_err() {
                    break;
                }
                at += n;
            }
        }
    });
    let py = format!(
        "import socket; s = socket.create_connection(('127.0.0.1', {port})); \
         f = open('py.out', 'wb'); [f.write(b) for b in iter(lambda: s.recv(65536), b'')]"
    );
    for (name, reader) in [
        ("cat.out", "cat"),
        ("dd.out", "dd bs=50000 status=none"),
        ("py.out", "python3"),
    ] {
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && {reader} <&3 >{name}");
        let r = if name == "py.out" {
            in_dc(d.path(), &[PY, "-c", &py])
        } else {
            in_dc(d.path(), &["bash", "-c", &script])
        };
        assert_eq!(r.code, 0, "{reader}: {}", r.stderr);
        let got = std::fs::read(d.path().join(name)).expect("output");
        assert_eq!(got.len(), payload.len(), "{reader}: length");
        assert!(got == payload, "{reader}: the bytes differ");
    }
}

fn echo_server(d: &Path) -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo_server.py");
    let mut c = dvs_exec_cmd();
    c.args(["--", PY]).arg(script);
    Server::start(c, d)
}

fn echo(port: u16, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(msg).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("echo");
    v
}

/// An asyncio echo server in the DC: 1,000 connections from the host,
/// then a peer that resets mid-transfer. The server keeps serving, and
/// FS's descriptors and memory stay flat.
#[test]
fn echo_server_storm_and_reset() {
    let d = tempfile::tempdir().expect("tempdir");
    let srv = echo_server(d.path());
    assert_eq!(echo(srv.port, b"warm up"), b"WARM UP");
    let (fds0, rss0) = (fd_count(srv.pid()), rss_kib(srv.pid()));

    // The storm: 1,000 connections, 50 open at a time.
    let t = Instant::now();
    for round in 0..20 {
        let conns: Vec<TcpStream> = (0..50)
            .map(|_| TcpStream::connect(("127.0.0.1", srv.port)).expect("connect"))
            .collect();
        for (i, mut c) in conns.into_iter().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let msg = format!("r{round} c{i}");
            c.write_all(msg.as_bytes()).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut v = String::new();
            c.read_to_string(&mut v).unwrap();
            assert_eq!(v, msg.to_uppercase());
        }
    }
    eprintln!("1000 echo connections in {:?}", t.elapsed());

    // A peer that resets in the middle of a transfer.
    {
        let mut c = TcpStream::connect(("127.0.0.1", srv.port)).expect("connect");
        c.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = c.write_all(&vec![b'x'; 1 << 20]);
        assert!(reset_on_close(&c), "SO_LINGER");
        drop(c);
    }
    assert_eq!(echo(srv.port, b"still here"), b"STILL HERE");

    // Everything the storm opened is closed again (allow a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    while fd_count(srv.pid()) > fds0 + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (fds1, rss1) = (fd_count(srv.pid()), rss_kib(srv.pid()));
    assert!(fds1 <= fds0 + 2, "FS descriptors grew: {fds0} -> {fds1}");
    assert!(
        rss1 < rss0 + 16 * 1024,
        "dvs-exec RSS grew: {rss0} -> {rss1} KiB"
    );
}

/// Sets `SO_LINGER` {on, 0} so that closing `s` sends a reset.
fn reset_on_close(s: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own with a valid linger struct.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    r == 0
}

/// A free host port (bound and released; another process could take it in
/// between, which this test suite does not).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `--publish HOST:DC`: a DC server on port 80 is reached at host port
/// HOST, sees port 80 in its own address and in a DC client's; a host
/// port that is taken is a clear error before the program runs.
#[test]
fn publish_maps_ports_and_reports_conflicts() {
    let d = tempfile::tempdir().expect("tempdir");
    let host = free_port();
    let script = r#"
import socket
s = socket.socket(); s.bind(("0.0.0.0", 80)); s.listen()
c = socket.create_connection(("127.0.0.1", 80)); a, _ = s.accept()
assert c.getpeername()[1] == 80 and a.getsockname()[1] == 80, "DC ports"
a.close(); c.close()
print(s.getsockname()[1], flush=True)
a, _ = s.accept(); a.sendall(b"published\n"); a.close()
"#;
    let mut c = dvs_exec_cmd();
    c.arg("--publish").arg(format!("{host}:80"));
    c.args(["--", PY, "-u", "-c", script]);
    let mut srv = Server::start(c, d.path());
    assert_eq!(srv.port, 80, "the program sees its DC port");
    let mut s = TcpStream::connect(("127.0.0.1", host)).expect("connect to the published port");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "published\n");
    let t = Instant::now();
    while srv.guard.0.try_wait().expect("wait").is_none() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        srv.guard.0.try_wait().expect("wait").and_then(|s| s.code()),
        Some(0)
    );

    let taken = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("bind");
    let port = taken.local_addr().unwrap().port();
    let mut c = dvs_exec_cmd();
    c.arg("--publish").arg(format!("{port}:80")).arg("true");
    let r = run_cmd(c, d.path());
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("cannot publish host port {port}")),
        "{}",
        r.stderr
    );
}

/// An event loop learns of a host signal (a timer's SIGALRM) through its
/// wake-up descriptor, which the C signal handler writes while the loop
/// waits in `epoll_wait` for FS: the write is made right after the wait,
/// which the signal ends. Same output as natively.
#[test]
fn signal_wakeup_reaches_event_loops() {
    let d = tempfile::tempdir().expect("tempdir");
    let script = r#"
import asyncio, select, signal, socket, time
a, b = socket.socketpair(); a.setblocking(False); b.setblocking(False)
signal.set_wakeup_fd(b.fileno())
signal.signal(signal.SIGALRM, lambda *x: None)
ep = select.epoll(); ep.register(a.fileno(), select.EPOLLIN)
t = time.time(); signal.setitimer(signal.ITIMER_REAL, 0.3)
print("epoll woken", ep.poll(10) != [], time.time() - t < 5)
print("wakeup byte", a.recv(10) == bytes([signal.SIGALRM]))
signal.set_wakeup_fd(-1)
async def main():
    loop = asyncio.get_running_loop()
    got = asyncio.Event()
    loop.add_signal_handler(signal.SIGALRM, got.set)
    t = time.time()
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    await asyncio.wait_for(got.wait(), 20)
    print("asyncio saw SIGALRM", time.time() - t < 5)
asyncio.run(main())
"#;
    let n = native(d.path(), &[PY, "-c", script]);
    let r = in_dc(d.path(), &[PY, "-c", script]);
    assert_eq!(
        n.stdout,
        "epoll woken True True\nwakeup byte True\nasyncio saw SIGALRM True\n"
    );
    assert_eq!(r.stdout, n.stdout, "DC stderr:\n{}", r.stderr);
}

/// Interface, address and route lists come from route netlink sockets,
/// which FS holds like INET sockets: `if_nameindex`, `ip` and glibc's
/// address checks give what they give natively. Other netlink families
/// are refused with a clear report.
#[test]
fn netlink_route_lists_same_as_native() {
    let d = tempfile::tempdir().expect("tempdir");
    let names = [PY, "-c", "import socket; print(socket.if_nameindex())"];
    let n = native(d.path(), &names);
    let c = in_dc(d.path(), &names);
    assert_eq!(n.code, 0, "{}", n.stderr);
    assert_eq!(
        (c.code, &c.stdout),
        (n.code, &n.stdout),
        "DC stderr:\n{}",
        c.stderr
    );
    for ip in ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"] {
        if Path::new(ip).exists() {
            for args in [[ip, "-o", "addr", "show"], [ip, "-4", "route", "show"]] {
                let n = native(d.path(), &args);
                let c = in_dc(d.path(), &args);
                assert_eq!(
                    (c.code, &c.stdout),
                    (n.code, &n.stdout),
                    "DC stderr:\n{}",
                    c.stderr
                );
            }
            break;
        }
    }
    let generic = [
        PY,
        "-c",
        "import socket\ntry:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)\n    print('opened')\nexcept OSError as e:\n    print(e.errno)",
    ];
    let c = in_dc(d.path(), &generic);
    assert_eq!(c.stdout.trim(), libc::ENOSYS.to_string(), "{}", c.stderr);
    assert!(c.stderr.contains("dvs: unsupported"), "{}", c.stderr);
}
