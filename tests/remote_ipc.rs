//! M3-IPC between nodes, on a real 3-node testbed (network namespaces,
//! Corosync, one dvkd per node, TCP proxies between them). The test
//! process binds threads as endpoints on different nodes' daemons (through
//! `/proc/<dvkd>/root`, the daemon's own mount namespace) and checks the
//! seed's IPC semantics cases A–D (thesis §3.2.2, Tables IV–VII), notify,
//! timeouts, three nodes, and a node going down. Needs root and Corosync.

use dvk::{Dvk, DvkError, Endpoint, Ipc, Message};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod cluster;
use cluster::{dvs, lock, text, Down, DVS};

const T: Duration = Duration::from_secs(10);

fn status_of(node: usize) -> serde_json::Value {
    let o = dvs(&[
        "testbed",
        "exec",
        &node.to_string(),
        "--",
        DVS,
        "status",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

/// A node of the testbed as seen from the host.
struct Node {
    id: i32,
    socket: PathBuf,
    dcid: i32,
}

impl Node {
    fn dvk(&self) -> Dvk {
        Dvk::connect(&self.socket).expect("connect to the node daemon")
    }
}

/// Waits until node `i`'s proxies to every other node are up.
fn node(i: usize, n: usize) -> Node {
    let start = Instant::now();
    loop {
        let st = status_of(i);
        let up = st["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|x| x["up"] == true)
            .count();
        if up == n {
            let pid = st["info"]["daemon_pid"].as_i64().expect("daemon pid");
            let socket = PathBuf::from(format!("/proc/{pid}/root/run/dvs/dvkd.sock"));
            let dvk = Dvk::connect(&socket).expect("connect");
            let dcid = dvk.dc_lookup("testbed").expect("the testbed DC");
            return Node {
                id: i as i32,
                socket,
                dcid,
            };
        }
        assert!(start.elapsed() < T, "node {i}: proxies not up: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ep(n: i32) -> Endpoint {
    Endpoint::new(0, n)
}

fn msg(t: i32, word: u64) -> Message {
    let mut m = Message::new(t);
    m.words_mut()[0] = word;
    m
}

/// A thread bound as `ep` on `node`, serving `f`; returns once bound.
fn task(node: &Node, e: i32, f: impl FnOnce(&Ipc) + Send + 'static) -> JoinHandle<()> {
    let socket = node.socket.clone();
    let dcid = node.dcid;
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let ipc = Dvk::connect(&socket)
            .expect("connect")
            .tbind(dcid, ep(e))
            .expect("tbind");
        tx.send(()).expect("bound");
        f(&ipc);
    });
    rx.recv_timeout(T).expect("the task bound");
    h
}

/// An echo server on `node` as `e`: answers `count` requests with
/// `m_type + 1`, the request's word and the sender's endpoint.
fn echo(node: &Node, e: i32, count: usize) -> JoinHandle<()> {
    task(node, e, move |ipc| {
        for _ in 0..count {
            let m = ipc.receive_t(Endpoint::ANY, T).expect("receive");
            eprintln!("echo {} got {m:?}", ipc.endpoint());
            let mut r = msg(m.m_type + 1, m.words()[0]);
            r.words_mut()[1] = m.m_source as u32 as u64;
            ipc.reply(Endpoint(m.m_source), &r).expect("reply");
        }
    })
}

/// `from` (on `node`) sendrecs `to` once: the reply's type, word and the
/// source the server saw.
fn ask(node: &Node, from: i32, to: i32, word: u64) -> Result<(i32, u64, i32), DvkError> {
    let ipc = node.dvk().tbind(node.dcid, ep(from)).expect("tbind");
    let mut m = msg(7, word);
    ipc.sendrec_t(ep(to), &mut m, T)?;
    Ok((m.m_type, m.words()[0], m.words()[1] as u32 as i32))
}

/// Runs `ask` on its own thread (each binding is a thread's).
fn ask_on(node: &Node, from: i32, to: i32, word: u64) -> Result<(i32, u64, i32), DvkError> {
    let (socket, dcid, id) = (node.socket.clone(), node.dcid, node.id);
    std::thread::spawn(move || ask(&Node { id, socket, dcid }, from, to, word))
        .join()
        .expect("ask thread")
}

/// A thread bound as `e` on `node` holding `data` in a buffer: it says
/// where the buffer is, waits in IPC (a receive) so that others may copy
/// into or out of it, and returns what the buffer then holds.
fn holder(node: &Node, e: i32, data: Vec<u8>) -> (JoinHandle<Vec<u8>>, u64) {
    let (socket, dcid) = (node.socket.clone(), node.dcid);
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let ipc = Dvk::connect(&socket)
            .expect("connect")
            .tbind(dcid, ep(e))
            .expect("tbind");
        let mut data = data;
        tx.send(data.as_mut_ptr() as u64).expect("address");
        let m = ipc.receive_t(Endpoint::ANY, T).expect("release");
        assert_eq!(m.m_source, 10);
        data
    });
    let addr = rx.recv_timeout(T).expect("holder bound");
    (h, addr)
}

#[test]
fn remote_ipc_between_testbed_nodes() {
    let _lock = lock();
    let up = dvs(&["testbed", "up", "--nodes", "3"]);
    let _down = Down(3);
    assert!(up.status.success(), "up failed: {}", text(&up));
    let n0 = node(0, 3);
    let n1 = node(1, 3);
    let n2 = node(2, 3);

    // Case A (Table IV): nothing registered across nodes. 100 and 10 on
    // node 0 talk; 200 on node 1 cannot reach 10, nor 10 reach 200: both
    // are refused on the origin node.
    let s10 = echo(&n0, 10, 1);
    assert_eq!(ask_on(&n0, 100, 10, 1), Ok((8, 1, 100)));
    s10.join().expect("server 10");
    let s200 = task(&n1, 200, |ipc| {
        assert_eq!(
            ipc.sendrec_t(ep(10), &mut msg(1, 0), T),
            Err(DvkError::NotBind)
        );
    });
    s200.join().expect("200");
    assert_eq!(ask_on(&n0, 10, 200, 0), Err(DvkError::NotBind));

    // Case B (Table V): 200 registered as remote on node 0, 10 as remote on
    // node 1. 10 and 200 talk both ways; 100 -> 200 leaves node 0 but is
    // refused by node 1 (100 is not registered there); 200 -> 100 is
    // refused on node 1.
    n0.dvk()
        .rmtbind(n0.dcid, ep(200), 1)
        .expect("rmtbind 200 on node 0");
    n1.dvk()
        .rmtbind(n1.dcid, ep(10), 0)
        .expect("rmtbind 10 on node 1");
    let s10 = echo(&n0, 10, 3);
    for i in 0..3u64 {
        assert_eq!(ask_on(&n1, 200, 10, 40 + i), Ok((8, 40 + i, 200)));
    }
    s10.join().expect("server 10");
    let s200 = echo(&n1, 200, 2);
    assert_eq!(ask_on(&n0, 10, 200, 5), Ok((8, 5, 10)));
    assert_eq!(ask_on(&n0, 100, 200, 6), Err(DvkError::NotBind));
    assert_eq!(ask_on(&n1, 150, 100, 6), Err(DvkError::NotBind));
    // Only the registered sender got through.
    assert_eq!(ask_on(&n0, 10, 200, 9), Ok((8, 9, 10)));
    s200.join().expect("server 200");

    // send + receive and notify across nodes: 10 (a system process, so
    // privileged) notifies 200, then sends it a message.
    let s200 = task(&n1, 200, |ipc| {
        let m = ipc.receive_t(Endpoint::ANY, T).expect("notification");
        assert_eq!(m.m_source, Endpoint::HARDWARE.0, "{m:?}");
        assert_eq!(m.m_type, dvk::message::NOTIFY_BASE + 10, "{m:?}");
        let m = ipc.receive_t(ep(10), T).expect("message");
        assert_eq!((m.m_source, m.m_type, m.words()[0]), (10, 3, 33));
    });
    let sender = task(&n0, 10, |ipc| {
        ipc.notify(ep(200)).expect("notify");
        ipc.send_t(ep(200), &msg(3, 33), T).expect("send");
    });
    sender.join().expect("sender");
    s200.join().expect("receiver");

    // vcopy between nodes, both ways: 10 (node 0) sends 200 (node 1) the
    // addresses of a 1 MiB buffer and of an empty one; 200 copies the first
    // in, checks it, copies it back reversed into the second, and replies.
    // Bad addresses fail cleanly; a side that is not in IPC is refused.
    const LEN: usize = 1 << 20;
    let s200 = task(&n1, 200, |ipc| {
        let m = ipc.receive_t(ep(10), T).expect("request");
        let (from, to, len) = (m.words()[0], m.words()[1], m.words()[2] as usize);
        let mut buf = vec![0u8; len];
        ipc.copy_from(ep(10), from, &mut buf)
            .expect("copy from node 0");
        assert!(buf.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        buf.reverse();
        ipc.copy_to(ep(10), to, &buf).expect("copy to node 0");
        assert_eq!(ipc.copy_to(ep(10), 8, &buf[..16]), Err(DvkError::Fault));
        assert_eq!(
            ipc.copy_from(ep(10), 8, &mut buf[..16]),
            Err(DvkError::Fault)
        );
        ipc.reply(ep(10), &msg(0, 0)).expect("reply");
    });
    let client = task(&n0, 10, |ipc| {
        let src: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let mut dst = vec![0u8; LEN];
        let mut m = msg(5, src.as_ptr() as u64);
        m.words_mut()[1] = dst.as_mut_ptr() as u64;
        m.words_mut()[2] = LEN as u64;
        ipc.sendrec_t(ep(200), &mut m, T)
            .expect("sendrec with copies");
        assert!(dst
            .iter()
            .rev()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8));
        // 200 is not in IPC any more: a copy to it is refused.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            ipc.copy_to(ep(200), 4096, &src[..8]),
            Err(DvkError::NotBind)
        );
    });
    client.join().expect("copy client");
    s200.join().expect("copy server");
    let idle = task(&n1, 200, |_ipc| {
        std::thread::sleep(Duration::from_millis(500))
    });
    let t = task(&n0, 10, |ipc| {
        let data = [1u8; 8];
        assert_eq!(ipc.copy_to(ep(200), 4096, &data), Err(DvkError::NotReady));
    });
    t.join().expect("copy to a running endpoint");
    idle.join().expect("idle 200");

    // A send that the receiver does not take in time times out, and is
    // withdrawn on the far node too: the receiver's later receive does
    // not see it.
    let (go, went) = mpsc::channel::<()>();
    let late = task(&n1, 200, move |ipc| {
        went.recv_timeout(T).expect("go");
        std::thread::sleep(Duration::from_millis(200));
        let r = ipc.receive_t(ep(10), Duration::from_millis(300));
        assert_eq!(r.map(|m| m.m_type), Err(DvkError::TimedOut));
    });
    let t = task(&n0, 10, |ipc| {
        let r = ipc.send_t(ep(200), &msg(4, 44), Duration::from_millis(300));
        assert_eq!(r, Err(DvkError::TimedOut));
    });
    t.join().expect("timed-out sender");
    go.send(()).expect("go");
    late.join().expect("receiver after cancel");

    // Three nodes: 150 on node 2 asks 200 on node 1 while 10 on node 0
    // asks 150, all through the proxies.
    n2.dvk()
        .rmtbind(n2.dcid, ep(200), 1)
        .expect("rmtbind 200 on node 2");
    n1.dvk()
        .rmtbind(n1.dcid, ep(150), 2)
        .expect("rmtbind 150 on node 1");
    n0.dvk()
        .rmtbind(n0.dcid, ep(150), 2)
        .expect("rmtbind 150 on node 0");
    n2.dvk()
        .rmtbind(n2.dcid, ep(10), 0)
        .expect("rmtbind 10 on node 2");
    let s200 = echo(&n1, 200, 1);
    let s300 = task(&n2, 150, move |ipc| {
        let m = ipc.receive_t(Endpoint::ANY, T).expect("request from 10");
        assert_eq!(m.m_source, 10);
        let mut q = msg(7, m.words()[0] * 2);
        ipc.sendrec_t(ep(200), &mut q, T).expect("150 -> 200");
        assert_eq!(q.words()[1] as u32 as i32, 150);
        ipc.reply(ep(10), &msg(9, q.words()[0]))
            .expect("reply to 10");
    });
    assert_eq!(ask_on(&n0, 10, 150, 21), Ok((9, 42, 0)));
    s300.join().expect("150");
    s200.join().expect("200");

    // Third-party copies by a privileged requester (10 on node 0): both
    // sides on node 1; from node 1 to node 2; from node 1 to a local
    // endpoint. The copies cross in three pieces, the last one short.
    n0.dvk()
        .rmtbind(n0.dcid, ep(201), 1)
        .expect("rmtbind 201 on node 0");
    const SIZE: usize = 600_000;
    let pattern: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    let (h200, a200) = holder(&n1, 200, pattern.clone());
    let (h201, a201) = holder(&n1, 201, vec![0; SIZE]);
    let (h150, a150) = holder(&n2, 150, vec![0; SIZE]);
    let (h100, a100) = holder(&n0, 100, vec![0; SIZE]);
    let t = task(&n0, 10, move |ipc| {
        std::thread::sleep(Duration::from_millis(100));
        ipc.vcopy(ep(200), a200, ep(201), a201, SIZE)
            .expect("both sides on node 1");
        ipc.vcopy(ep(200), a200, ep(150), a150, SIZE)
            .expect("node 1 to node 2");
        ipc.vcopy(ep(200), a200, ep(100), a100, SIZE)
            .expect("node 1 to a local endpoint");
        for e in [200, 201, 150, 100] {
            ipc.send_t(ep(e), &msg(1, 0), T).expect("release");
        }
    });
    t.join().expect("third-party copier");
    assert_eq!(h200.join().expect("200"), pattern);
    for (name, h) in [("201", h201), ("150", h150), ("100", h100)] {
        assert!(
            h.join().expect("holder") == pattern,
            "{name} got other data"
        );
    }

    // Case C (Table VI): on node 1, 10 is a Backup (a local standby task)
    // of the primary on node 0: 200 still reaches the primary.
    n1.dvk().unbind(n1.dcid, ep(10)).expect("unbind remote 10");
    let mut standby = Command::new("sleep").arg("30").spawn().expect("sleep");
    n1.dvk()
        .bkupbind(n1.dcid, standby.id() as i32, ep(10), 0)
        .expect("bkupbind");
    let s10 = echo(&n0, 10, 1);
    assert_eq!(ask_on(&n1, 200, 10, 77), Ok((8, 77, 200)));
    s10.join().expect("primary 10");
    let info = n1.dvk().getprocinfo(n1.dcid, ep(10)).expect("procinfo");
    assert_eq!(info.kind, dvk::ProcKind::Backup);
    assert_eq!(info.lpid, standby.id() as i32);
    n1.dvk().unbind(n1.dcid, ep(10)).expect("unbind the backup");
    let _ = standby.kill();
    let _ = standby.wait();

    // Case D (Table VII): 10 is a Replica on nodes 0 and 1: each node's
    // tasks talk to their own replica; 200 -> 100 is refused on node 1.
    let replica = |n: &Node, answer: i32| {
        let socket = n.socket.clone();
        let (tx, rx) = mpsc::channel();
        let h = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw()).expect("tid");
            let ipc = Dvk::connect(&socket)
                .expect("connect")
                .wait4bind_t(T)
                .expect("wait4bind");
            let m = ipc.receive_t(Endpoint::ANY, T).expect("receive");
            ipc.reply(Endpoint(m.m_source), &msg(answer, 0))
                .expect("reply");
        });
        let tid = rx.recv_timeout(T).expect("tid");
        n.dvk().replbind(n.dcid, tid, ep(10)).expect("replbind");
        h
    };
    let r0 = replica(&n0, 1000);
    let r1 = replica(&n1, 1001);
    assert_eq!(ask_on(&n0, 100, 10, 0).map(|r| r.0), Ok(1000));
    assert_eq!(ask_on(&n1, 200, 10, 0).map(|r| r.0), Ok(1001));
    r0.join().expect("replica on node 0");
    r1.join().expect("replica on node 1");
    assert_eq!(ask_on(&n1, 200, 100, 0), Err(DvkError::NotBind));

    // Node 2 goes away: node 0 sees it down within the failure detectors'
    // timeouts, its endpoint 150 is unbound there, and a caller blocked on
    // it (150 is bound on node 2 but never receives) fails instead of
    // hanging.
    let _silent = task(&n2, 150, |_ipc| std::thread::sleep(Duration::from_secs(20)));
    let blocked = {
        let (socket, dcid) = (n0.socket.clone(), n0.dcid);
        std::thread::spawn(move || {
            let ipc = Dvk::connect(&socket)
                .expect("connect")
                .tbind(dcid, ep(10))
                .expect("tbind 10");
            let start = Instant::now();
            let r = ipc.sendrec_t(ep(150), &mut msg(1, 0), Duration::from_secs(20));
            (r, start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // Cut node 2 off the network (its host-side veth goes down): no FIN,
    // no RST; Corosync's membership and the proxies' silence timeout see
    // it.
    let cut = Command::new("ip")
        .args(["link", "set", "dvs-n2h", "down"])
        .status()
        .expect("ip");
    assert!(cut.success());
    let (r, took) = blocked.join().expect("blocked caller");
    assert_eq!(r, Err(DvkError::DstDied));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    eprintln!("node 2 cut off: the blocked caller failed after {took:?}");
    let st = status_of(0);
    assert_eq!(st["nodes"][2]["up"], false, "{st}");
    assert_eq!(
        n0.dvk().getprocinfo(n0.dcid, ep(150)).map(|i| i.endpoint),
        Err(DvkError::NotBind)
    );
    // The survivors still talk.
    n1.dvk()
        .rmtbind(n1.dcid, ep(10), 0)
        .expect("rmtbind 10 on node 1 again");
    let s200 = echo(&n1, 200, 1);
    assert_eq!(ask_on(&n0, 10, 200, 3).map(|r| r.1), Ok(3));
    s200.join().expect("200 after node 2 died");

    // Node 2 comes back (the network heals): the proxies reconnect, the
    // nodes see each other up again, and endpoints registered anew talk.
    let heal = Command::new("ip")
        .args(["link", "set", "dvs-n2h", "master", "dvs-br0", "up"])
        .status()
        .expect("ip");
    assert!(heal.success());
    let start = Instant::now();
    while status_of(0)["nodes"][2]["up"] != true || status_of(2)["nodes"][0]["up"] != true {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "node 2 did not rejoin: {}",
            status_of(0)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("node 2 rejoined after {:?}", start.elapsed());
    // (Each side dropped the other's endpoints when it saw it down.)
    n0.dvk()
        .rmtbind(n0.dcid, ep(151), 2)
        .expect("rmtbind 151 on node 0 after the rejoin");
    n2.dvk()
        .rmtbind(n2.dcid, ep(10), 0)
        .expect("rmtbind 10 on node 2 after the rejoin");
    let s151 = echo(&n2, 151, 1);
    assert_eq!(ask_on(&n0, 10, 151, 8), Ok((8, 8, 10)));
    s151.join().expect("151 after the rejoin");
}
