//! M3-IPC on one node with real processes: a real `dvkd` per test, and
//! peer processes that are this binary re-executed in a role.

mod support;

use dvk::message::NOTIFY_BASE;
use dvk::{DcParams, Dvk, DvkError, DvsParams, Endpoint, Ipc, Message, NotifyKind, PrivLevel};
use libtest_mimic::{Arguments, Failed, Trial};
use std::time::{Duration, Instant};
use support::{ep, timed, TestDaemon};

const DC0: i32 = 0;
/// A user (unprivileged) endpoint range starts at nr_sysprocs = 64.
const USER: i32 = 100;
/// A system (privileged) endpoint.
const SYS: i32 = 5;

type TestFn = fn() -> Result<(), Failed>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--role") {
        let code = roles::run(&args[i + 1], &args[i + 2..]);
        std::process::exit(code);
    }
    let tests: Vec<(&str, TestFn)> = vec![
        ("send_blocks_until_receive", send_blocks_until_receive),
        ("receive_blocks_until_send", receive_blocks_until_send),
        ("timeouts_withdraw_messages", timeouts_withdraw_messages),
        ("sendrec_reply_round_trips", sendrec_reply_round_trips),
        ("rcvrqst_only_takes_sendrec", rcvrqst_only_takes_sendrec),
        ("reply_never_blocks", reply_never_blocks),
        ("notify_semantics", notify_semantics),
        ("source_cannot_be_forged", source_cannot_be_forged),
        ("fifo_order_of_senders", fifo_order_of_senders),
        ("bad_endpoints_and_deadlock", bad_endpoints_and_deadlock),
        ("fork_then_lclbind_wait4bind", fork_then_lclbind_wait4bind),
        ("attach_maps_first_peers", attach_maps_first_peers),
        (
            "rebinding_continues_sequences",
            rebinding_continues_sequences,
        ),
        ("threads_have_own_endpoints", threads_have_own_endpoints),
        (
            "parked_thread_endpoint_is_reused",
            parked_thread_endpoint_is_reused,
        ),
        ("confinement_matrix", confinement_matrix),
        ("privilege_checks", privilege_checks),
        ("peer_death_while_blocked", peer_death_while_blocked),
        ("daemon_death_while_blocked", daemon_death_while_blocked),
        ("migration_freeze_commit", migration_freeze_commit),
        ("migration_freeze_rollback", migration_freeze_rollback),
        ("exactly_once_under_timeouts", exactly_once_under_timeouts),
        ("vcopy_sizes_and_requesters", vcopy_sizes_and_requesters),
        ("vcopy_bad_addresses", vcopy_bad_addresses),
        ("management_calls", management_calls),
        ("daemon_survives_garbage", daemon_survives_garbage),
    ];
    support::watchdog(Duration::from_secs(300));
    let trials = tests.into_iter().map(|(n, f)| Trial::test(n, f)).collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}

macro_rules! check {
    ($c:expr) => {
        if !$c {
            return Err(format!("{}:{}: check failed: {}", file!(), line!(), stringify!($c)).into());
        }
    };
    ($c:expr, $($t:tt)*) => {
        if !$c {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($t)*)).into());
        }
    };
}

fn err<T: std::fmt::Debug>(r: dvk::Result<T>) -> DvkError {
    match r {
        Err(e) => e,
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
    }
}

/// Binds the test thread (tbind) in `dc` as `ep`.
fn me(d: &TestDaemon, dc: i32, ep: i32) -> Ipc {
    d.dvk().tbind(dc, Endpoint(ep)).expect("tbind")
}

fn msg(t: i32, i1: i32) -> Message {
    let mut m = Message::new(t);
    m.m1_mut().i1 = i1;
    m
}

// ------------------------------------------------------------------ tests

fn send_blocks_until_receive() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let a = me(&d, DC0, USER);
    let mut r = d.role("recv_once", &["0", "101", "300", "ANY", "0", "0"]);
    r.expect("READY");
    let (res, dt) = timed(|| a.send(Endpoint(101), &msg(7, 77)));
    res?;
    check!(
        dt >= Duration::from_millis(250),
        "send returned after {dt:?}, before the receive"
    );
    let got = r.expect("GOT");
    check!(got == format!("{} 7 77", USER), "receiver got {got}");
    check!(r.wait() == 0);
    Ok(())
}

fn receive_blocks_until_send() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let a = me(&d, DC0, USER);
    let mut s = d.role("send_once", &["0", "101", &USER.to_string(), "9", "300"]);
    s.expect("READY");
    let (m, dt) = timed(|| a.receive(Endpoint::ANY));
    let m = m?;
    check!(
        dt >= Duration::from_millis(250),
        "receive returned after {dt:?}"
    );
    check!(m.source() == Endpoint(101) && m.m_type == 9);
    check!(s.expect("SENT") == "0");
    check!(s.wait() == 0);
    Ok(())
}

fn timeouts_withdraw_messages() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let a = me(&d, DC0, USER);
    // receive_T with nobody sending.
    let (r, dt) = timed(|| a.receive_t(Endpoint::ANY, Duration::from_millis(100)));
    check!(err(r) == DvkError::TimedOut);
    check!(
        dt >= Duration::from_millis(95) && dt < Duration::from_secs(2),
        "{dt:?}"
    );
    // send_T to a peer that does not receive in time: withdrawn, never delivered.
    let mut r = d.role("recv_once", &["0", "101", "400", "ANY", "200", "0"]);
    r.expect("READY");
    let res = a.send_t(Endpoint(101), &msg(1, 1), Duration::from_millis(100));
    check!(err(res) == DvkError::TimedOut);
    check!(
        r.expect("ERR") == format!("{}", DvkError::TimedOut.code()),
        "withdrawn message was delivered"
    );
    check!(r.wait() == 0);
    // sendrec_T to a server that takes the request but never replies.
    let mut s = d.role("recv_once", &["0", "102", "0", "ANY", "0", "30000"]);
    s.expect("READY");
    let mut m = msg(3, 3);
    let (res, dt) = timed(|| a.sendrec_t(Endpoint(102), &mut m, Duration::from_millis(200)));
    check!(err(res) == DvkError::TimedOut);
    check!(dt >= Duration::from_millis(190), "{dt:?}");
    check!(s.expect("GOT") == format!("{USER} 3 3"));
    Ok(())
}

fn sendrec_reply_round_trips() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let a = me(&d, DC0, USER);
    let mut srv = d.role("echo", &["0", "1"]);
    srv.expect("READY");
    for i in 0..2000 {
        let mut m = msg(10, i);
        m.m1_mut().p1 = 0xabcdef;
        a.sendrec(Endpoint(1), &mut m)?;
        check!(m.source() == Endpoint(1), "reply source {}", m.source());
        check!(m.m_type == 11 && m.m1().i1 == i + 1 && m.m1().p1 == 0xabcdef);
    }
    // A plain `send` as the reply also ends sendrec (server mode 2).
    let mut m = msg(20, 5);
    a.sendrec(Endpoint(1), &mut m)?;
    check!(m.m_type == 21 && m.m1().i1 == 6);
    let mut bye = msg(999, 0);
    a.sendrec(Endpoint(1), &mut bye)?;
    check!(srv.wait() == 0);
    Ok(())
}

fn rcvrqst_only_takes_sendrec() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let srv = me(&d, DC0, 2);
    // A plain sender first, then a sendrec client.
    let mut plain = d.role("send_once", &["0", "101", "2", "50", "0"]);
    plain.expect("READY");
    std::thread::sleep(Duration::from_millis(100));
    let mut client = d.role("sendrec_once", &["0", "102", "2", "60"]);
    client.expect("READY");
    let m = srv.rcvrqst_t(Duration::from_secs(5))?;
    check!(
        m.source() == Endpoint(102) && m.m_type == 60,
        "rcvrqst took {:?}",
        m
    );
    srv.reply(m.source(), &msg(61, 0))?;
    check!(client.expect("REPLY") == "2 61");
    // The plain sender is still blocked; rcvrqst does not take it...
    check!(err(srv.rcvrqst_t(Duration::from_millis(100))) == DvkError::TimedOut);
    // ...but receive does.
    let m = srv.receive(Endpoint::ANY)?;
    check!(m.source() == Endpoint(101) && m.m_type == 50);
    check!(plain.expect("SENT") == "0");
    Ok(())
}

fn reply_never_blocks() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let srv = me(&d, DC0, 3);
    let mut idle = d.role("sleeper", &["0", "101"]);
    idle.expect("READY");
    // 101 is receiving, not waiting in sendrec for us.
    let (r, dt) = timed(|| srv.reply(Endpoint(101), &msg(1, 0)));
    check!(err(r) == DvkError::NotReady);
    check!(dt < Duration::from_millis(100));
    // A real reply returns at once, before the client even runs.
    let mut c = d.role("sendrec_once", &["0", "102", "3", "5"]);
    c.expect("READY");
    let m = srv.receive(Endpoint::ANY)?;
    let (r, dt) = timed(|| srv.reply(m.source(), &msg(6, 0)));
    r?;
    check!(dt < Duration::from_millis(50), "reply took {dt:?}");
    check!(c.expect("REPLY") == "3 6");
    Ok(())
}

fn notify_semantics() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let rx = me(&d, DC0, 4);
    // A plain sender is queued first.
    let mut s = d.role("send_once", &["0", "101", "4", "33", "0"]);
    s.expect("READY");
    std::thread::sleep(Duration::from_millis(50));
    // A privileged notifier notifies three times without blocking.
    let mut n = d.role("notifier", &["0", "7", "4", "3"]);
    n.expect("READY");
    let t = n.expect("NOTIFIED");
    check!(t.parse::<u64>()? < 50_000, "notify blocked for {t} us");
    // Notifications come before queued senders, and coalesce into one.
    let m = rx.receive(Endpoint::ANY)?;
    check!(
        m.source() == Endpoint::HARDWARE,
        "first message from {}",
        m.source()
    );
    check!(m.m_type == NOTIFY_BASE + 7);
    check!(m.as_notification() == Some((Endpoint(7), NotifyKind::Notify)));
    let m = rx.receive(Endpoint::ANY)?;
    check!(m.source() == Endpoint(101) && m.m_type == 33, "got {:?}", m);
    check!(err(rx.receive_t(Endpoint::ANY, Duration::from_millis(50))) == DvkError::TimedOut);
    // An unprivileged endpoint may not notify.
    let mut u = d.role("notifier", &["0", "102", "4", "1"]);
    u.expect("READY");
    check!(u.expect("ERR") == DvkError::Privileges.code().to_string());
    // receive(HARDWARE) takes only notifications.
    let mut n2 = d.role("notifier", &["0", "8", "4", "1"]);
    n2.expect("READY");
    n2.expect("NOTIFIED");
    let m = rx.receive_t(Endpoint::HARDWARE, Duration::from_secs(5))?;
    check!(m.as_notification() == Some((Endpoint(8), NotifyKind::Notify)));
    Ok(())
}

fn source_cannot_be_forged() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let rx = me(&d, DC0, 1);
    // The sender puts PM's endpoint (0) and HARDWARE in m_source.
    let mut s = d.role("forger", &["0", "101", "1"]);
    s.expect("READY");
    for _ in 0..2 {
        let m = rx.receive(Endpoint::ANY)?;
        check!(
            m.source() == Endpoint(101),
            "forged source {} accepted",
            m.source()
        );
        check!(m.as_notification().is_none());
    }
    check!(s.wait() == 0);
    Ok(())
}

fn fifo_order_of_senders() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let rx = me(&d, DC0, 2);
    let mut senders = Vec::new();
    // Higher slots send first: order must follow arrival, not slot number.
    for (i, e) in [120, 110, 105].iter().enumerate() {
        let mut s = d.role(
            "send_once",
            &["0", &e.to_string(), "2", &i.to_string(), "0"],
        );
        s.expect("READY");
        std::thread::sleep(Duration::from_millis(60));
        senders.push(s);
    }
    for (i, e) in [120, 110, 105].iter().enumerate() {
        let m = rx.receive(Endpoint::ANY)?;
        check!(
            m.source() == Endpoint(*e) && m.m_type == i as i32,
            "message {i} was {:?}",
            m
        );
    }
    Ok(())
}

fn bad_endpoints_and_deadlock() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let a = me(&d, DC0, USER);
    check!(err(a.send(Endpoint(150), &msg(1, 1))) == DvkError::NotBind);
    check!(err(a.send(Endpoint::ANY, &msg(1, 1))) == DvkError::BadSrcDst);
    check!(err(a.send(Endpoint(5000), &msg(1, 1))) == DvkError::BadEndpoint);
    check!(err(a.send(Endpoint::SELF, &msg(1, 1))) == DvkError::Locked);
    check!(err(a.receive_t(Endpoint(150), Duration::from_millis(10))) == DvkError::NotBind);
    check!(err(a.vcopy(Endpoint::SELF, 1, Endpoint::SELF, 2, 0)) == DvkError::Inval);
    // A stale generation of a live slot: the old endpoint is dead.
    let mut r = d.role("sleeper", &["0", "101"]);
    r.expect("READY");
    let stale = Endpoint::new(1, 101);
    check!(err(a.send(stale, &msg(1, 1))) == DvkError::DstDied);
    // Deadlock: 102 blocks sending to us; sending to it must fail, not hang.
    let mut s = d.role("send_once", &["0", "102", &USER.to_string(), "4", "0"]);
    s.expect("READY");
    std::thread::sleep(Duration::from_millis(100));
    check!(err(a.send_t(Endpoint(102), &msg(1, 1), Duration::from_secs(5))) == DvkError::Locked);
    let m = a.receive(Endpoint(102))?;
    check!(m.m_type == 4);
    Ok(())
}

fn fork_then_lclbind_wait4bind() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let mut f = d.role("forker", &["0", "6", "130"]);
    check!(f.expect("CHILD_SAW_STALE") == DvkError::NotBind.code().to_string());
    check!(f.expect("GOT") == "130 42");
    check!(f.expect("CHILD_EXIT") == "0");
    check!(f.wait() == 0);
    Ok(())
}

/// A process attaching at start-up asks for the servers it names in the
/// same round trip; one of them is not bound, so the daemon maps none
/// (best effort: the attach still succeeds, reads the answer off its
/// connection, and the bound server answers the sendrec that follows).
fn attach_maps_first_peers() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let srv = me(&d, DC0, SYS);
    let mut a = d.role("attacher", &[&SYS.to_string(), "9"]);
    d.dvk().lclbind(DC0, a.pid(), Endpoint(130))?;
    let m = srv.receive_t(Endpoint::ANY, Duration::from_secs(10))?;
    check!(m.m_source == 130 && m.m_type == 7, "got {m:?}");
    srv.reply(Endpoint(130), &msg(43, 0))?;
    check!(a.expect("GOT") == "43");
    check!(a.wait() == 0);
    Ok(())
}

/// Waits until endpoint `e` of `dc` is not bound any more (the daemon
/// unbinds a task that ended on its own time).
fn wait_unbound(d: &TestDaemon, dc: i32, e: i32) -> Result<(), Failed> {
    let dvk = d.dvk();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dvk.getprocinfo(dc, Endpoint(e)).is_ok() {
        check!(
            Instant::now() < deadline,
            "endpoint {e} still bound after 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// A new binding of an endpoint number goes on from its predecessor's
/// sequence numbers and notification counts, so the receiver's record of
/// what it took from the predecessor never swallows the new binding's
/// first message or notification.
fn rebinding_continues_sequences() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let rx = me(&d, DC0, 4);
    for round in 0..3 {
        wait_unbound(&d, DC0, 101)?;
        let t = (40 + round).to_string();
        let mut s = d.role("send_once", &["0", "101", "4", &t, "0"]);
        s.expect("READY");
        let m = rx.receive_t(Endpoint::ANY, Duration::from_secs(5));
        check!(
            m.as_ref()
                .is_ok_and(|m| m.source() == Endpoint(101) && m.m_type == 40 + round),
            "round {round}: the message of binding {round} of 101: {m:?}"
        );
        check!(s.expect("SENT") == "0");
        check!(s.wait() == 0);
        wait_unbound(&d, DC0, 7)?;
        let mut n = d.role("notifier", &["0", "7", "4", "1"]);
        n.expect("READY");
        n.expect("NOTIFIED");
        let m = rx.receive_t(Endpoint::ANY, Duration::from_secs(5));
        check!(
            m.as_ref()
                .is_ok_and(|m| m.as_notification() == Some((Endpoint(7), NotifyKind::Notify))),
            "round {round}: the notification of binding {round} of 7: {m:?}"
        );
        n.kill();
    }
    Ok(())
}

fn threads_have_own_endpoints() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    // A privileged server binds its worker threads itself.
    let mut t = d.role("threads", &["0", "20", "6"]);
    for i in 0..6 {
        check!(t.expect("UNBOUND").parse::<i32>()? == 21 + i);
    }
    check!(t.expect("SUM") == "21");
    check!(t.wait() == 0);
    Ok(())
}

fn parked_thread_endpoint_is_reused() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let mut t = d.role("retask", &["0", "30"]);
    // A parked endpoint outlives the thread that parked it.
    check!(t.expect("PARKED") == "0");
    check!(t.expect("TID_PARKED").parse::<i32>()? < 0);
    check!(t.expect("STILL_BOUND") == DvkError::TimedOut.code().to_string());
    // Another thread takes it over and talks as that endpoint.
    check!(t.expect("TAKEN") == "0");
    check!(t.expect("TID_IS_TAKER") == "1");
    check!(t.expect("GOT") == "31 7");
    // Only threads of the same process, alive and without an endpoint.
    check!(t.expect("FOREIGN_TID") == DvkError::BadPid.code().to_string());
    check!(t.expect("BOUND_TID") == DvkError::SlotUsed.code().to_string());
    check!(t.expect("PROCESS_BINDING") == DvkError::NotBind.code().to_string());
    // It ends with the thread that took it.
    check!(t.expect("UNBOUND") == "0");
    check!(t.wait() == 0);
    Ok(())
}

fn confinement_matrix() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(0, "dc0");
    d.dc(1, "dc1");
    // DC1 has 10 (privileged) and 120; DC0's prober is privileged 11.
    let mut victim = d.role("sleeper", &["1", "120"]);
    victim.expect("READY");
    let mut victim_srv = d.role("sleeper", &["1", "10"]);
    victim_srv.expect("READY");
    let mut p = d.role("prober", &["0", "11", "120", "10"]);
    let lines: Vec<String> = (0..7).map(|_| p.line()).collect();
    let not_bound = DvkError::NotBind.code().to_string();
    for l in &lines {
        let (call, code) = l.split_once(' ').ok_or("bad prober line")?;
        check!(code == not_bound, "cross-DC {call} returned {code}");
    }
    check!(p.wait() == 0);
    // Nothing reached DC1's processes.
    let dvk = d.dvk();
    let v = dvk.getprocinfo(1, Endpoint(120))?;
    check!(v.state == "RECV" && v.lcopy == 0 && v.lsnt == 0, "{:?}", v);
    check!(
        dvk.status()?
            .dcs
            .iter()
            .find(|x| x.info.params.dcid == 1)
            .map(|x| x.stats.lsnt)
            == Some(0)
    );
    Ok(())
}

fn privilege_checks() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let mut other = d.role("sleeper", &["0", "121"]);
    other.expect("READY");
    let mut u = d.role("unprivileged", &["0", "120", "121"]);
    let priv_code = DvkError::Privileges.code().to_string();
    for call in [
        "dc_init",
        "dc_end",
        "lclbind",
        "unbind_other",
        "setpriv",
        "migr_start",
        "notify",
        "vcopy3",
    ] {
        let l = u.line();
        check!(l == format!("{call} {priv_code}"), "{call}: {l}");
    }
    check!(u.expect("getprocinfo_own_dc") == "0");
    check!(u.expect("unbind_self") == "0");
    check!(u.wait() == 0);
    // A manager raises 121 to server level: now it may notify.
    let dvk = d.dvk();
    let mut rec = dvk.getpriv(DC0, Endpoint(121))?;
    check!(rec.level == PrivLevel::User);
    rec.level = PrivLevel::Server;
    dvk.setpriv(DC0, Endpoint(121), &rec)?;
    check!(dvk.getpriv(DC0, Endpoint(121))?.level == PrivLevel::Server);
    check!(dvk.getprocinfo(DC0, Endpoint(121))?.privilege.privileged());
    Ok(())
}

fn peer_death_while_blocked() -> Result<(), Failed> {
    let d = TestDaemon::start();
    let mut p = DcParams::new(DC0, "dc0", &DvsParams::default());
    p.warn2proc = Endpoint(0);
    d.dvk().dc_init(&p)?;
    let pm = me(&d, DC0, 0);
    // sendrec to a server that takes the request and is then killed.
    let mut srv = d.role("recv_once", &["0", "101", "0", "ANY", "0", "30000"]);
    srv.expect("READY");
    let sock = d.socket.clone();
    let h = std::thread::spawn(move || {
        let a = Dvk::connect(&sock)
            .and_then(|k| k.tbind(DC0, Endpoint(USER)))
            .expect("tbind");
        let mut m = msg(1, 1);
        let r = timed(|| a.sendrec(Endpoint(101), &mut m));
        (r.0.err(), r.1)
    });
    srv.expect("GOT");
    std::thread::sleep(Duration::from_millis(100));
    srv.kill();
    let (e, dt) = h.join().map_err(|_| "thread")?;
    check!(
        e == Some(DvkError::DstDied),
        "sendrec to a killed server: {e:?}"
    );
    check!(dt < Duration::from_secs(3), "took {dt:?}");
    // PM (the DC's warn endpoint) learns that 101 ended without unbinding.
    let m = pm.receive_t(Endpoint::ANY, Duration::from_secs(5))?;
    check!(
        m.as_notification() == Some((Endpoint(101), NotifyKind::Exit)),
        "{:?}",
        m
    );
    check!(err(d.dvk().getprocinfo(DC0, Endpoint(101))) == DvkError::NotBind);
    // receive(src) from a peer that dies.
    let mut s2 = d.role("sleeper", &["0", "102"]);
    s2.expect("READY");
    let h = std::thread::spawn({
        let sock = d.socket.clone();
        move || {
            let b = Dvk::connect(&sock).and_then(|k| k.tbind(DC0, Endpoint(USER + 1)));
            b.and_then(|b| b.receive(Endpoint(102))).err()
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    s2.kill();
    check!(h.join().map_err(|_| "thread")? == Some(DvkError::SrcDied));
    Ok(())
}

/// A node daemon killed outright cannot unbind or wake anybody: tasks
/// blocked in IPC without a timeout notice on their own that it is gone.
fn daemon_death_while_blocked() -> Result<(), Failed> {
    let mut d = TestDaemon::start();
    d.dvk()
        .dc_init(&DcParams::new(DC0, "dc0", &DvsParams::default()))?;
    let sock = d.socket.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let a = Dvk::connect(&sock)
            .and_then(|k| k.tbind(DC0, Endpoint(USER)))
            .expect("tbind");
        let _ = tx.send(());
        timed(|| a.receive(Endpoint::ANY))
    });
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the receiver did not bind")?;
    std::thread::sleep(Duration::from_millis(300));
    d.kill();
    let (r, dt) = h.join().map_err(|_| "thread")?;
    check!(
        r.as_ref().err() == Some(&DvkError::NoDaemon),
        "receive after the daemon died: {r:?}"
    );
    check!(dt < Duration::from_secs(4), "took {dt:?}");
    Ok(())
}

fn migration_freeze_commit() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let mgr = d.dvk();
    let mut r = d.role("recv_loop", &["0", "101", "3"]);
    r.expect("READY");
    mgr.migr_start(DC0, Endpoint(101))?;
    check!(mgr.getprocinfo(DC0, Endpoint(101))?.migrating);
    // The test thread becomes a (privileged) system endpoint: it keeps its
    // management rights.
    let a = me(&d, DC0, SYS);
    // vcopy with a migrating party is refused.
    let mut buf = [0u8; 8];
    check!(err(a.copy_from(Endpoint(101), 0x1000, &mut buf)) == DvkError::Migrate);
    let sock = d.socket.clone();
    let h = std::thread::spawn(move || {
        let b = Dvk::connect(&sock).and_then(|k| k.tbind(DC0, Endpoint(USER + 2)))?;
        let (r, dt) = timed(|| b.send(Endpoint(101), &msg(5, 55)));
        r.map(|_| dt)
    });
    std::thread::sleep(Duration::from_millis(300));
    // Nothing was delivered during the freeze.
    check!(mgr.getprocinfo(DC0, Endpoint(101))?.state == "RECV");
    mgr.migr_commit(r.pid(), DC0, Endpoint(101), 0)?;
    let dt = h.join().map_err(|_| "thread")??;
    check!(
        dt >= Duration::from_millis(250),
        "send finished during the freeze ({dt:?})"
    );
    check!(r.expect("GOT") == format!("{} 5 55", USER + 2));
    // Traffic flows normally afterwards.
    a.send(Endpoint(101), &msg(6, 66))?;
    check!(r.expect("GOT") == format!("{SYS} 6 66"));
    check!(!mgr.getprocinfo(DC0, Endpoint(101))?.migrating);
    Ok(())
}

fn migration_freeze_rollback() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let mgr = d.dvk();
    let mut r = d.role("recv_loop", &["0", "101", "2"]);
    r.expect("READY");
    mgr.migr_start(DC0, Endpoint(101))?;
    check!(err(mgr.migr_start(DC0, Endpoint(101))) == DvkError::Migrate);
    let sock = d.socket.clone();
    let h = std::thread::spawn(move || {
        let b = Dvk::connect(&sock).and_then(|k| k.tbind(DC0, Endpoint(USER)))?;
        b.send(Endpoint(101), &msg(8, 88))
    });
    std::thread::sleep(Duration::from_millis(200));
    mgr.migr_rollback(DC0, Endpoint(101))?;
    h.join().map_err(|_| "thread")??;
    check!(r.expect("GOT") == format!("{USER} 8 88"));
    check!(err(mgr.migr_commit(r.pid(), DC0, Endpoint(101), 0)) == DvkError::Inval);
    check!(
        err(mgr
            .migr_start(DC0, Endpoint(101))
            .and_then(|_| mgr.migr_commit(1, DC0, Endpoint(101), 5)))
            == DvkError::NoDcNode
    );
    Ok(())
}

/// Senders give up (timeouts of a few microseconds) while a receiver
/// takes messages at an irregular pace: every message is either reported
/// sent and received exactly once, or reported failed and never received.
fn exactly_once_under_timeouts() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    const N: i32 = 20_000;
    let sock = d.socket.clone();
    let rx = std::thread::spawn(move || -> dvk::Result<Vec<i32>> {
        let r = Dvk::connect(&sock)?.tbind(DC0, Endpoint(2))?;
        let mut got = Vec::new();
        let mut done = 0;
        let mut x: u32 = 12345;
        while done < 2 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if x.is_multiple_of(7) {
                std::thread::sleep(Duration::from_micros((x >> 20) as u64 % 200));
            }
            let m = r.receive(Endpoint::ANY)?;
            if m.m_type == -1 {
                done += 1;
            } else {
                got.push(m.m1().i1);
            }
        }
        Ok(got)
    });
    d.dvk()
        .wait4bindep(DC0, Endpoint(2), Some(Duration::from_secs(5)))?;
    let senders: Vec<_> = (0..2)
        .map(|t| {
            let sock = d.socket.clone();
            std::thread::spawn(move || -> dvk::Result<Vec<i32>> {
                let s = Dvk::connect(&sock)?.tbind(DC0, Endpoint(USER + t))?;
                let mut sent = Vec::new();
                for i in 0..N {
                    let id = t * N + i;
                    let to = Duration::from_micros((id as u64 * 7919) % 150 + 1);
                    match s.send_t(Endpoint(2), &msg(1, id), to) {
                        Ok(()) => sent.push(id),
                        Err(DvkError::TimedOut) => {}
                        Err(e) => return Err(e),
                    }
                }
                s.send(Endpoint(2), &msg(-1, 0))?;
                Ok(sent)
            })
        })
        .collect();
    let mut sent = Vec::new();
    for h in senders {
        sent.extend(h.join().map_err(|_| "sender thread")??);
    }
    let mut got = rx.join().map_err(|_| "receiver thread")??;
    let n_got = got.len();
    got.sort_unstable();
    got.dedup();
    check!(
        got.len() == n_got,
        "{} messages were received twice",
        n_got - got.len()
    );
    sent.sort_unstable();
    let timeouts = 2 * N as usize - sent.len();
    check!(
        timeouts > 0 && !sent.is_empty(),
        "the test must exercise both outcomes ({timeouts} timeouts)"
    );
    check!(
        sent == got,
        "sent {} / received {}: the reported outcome differs from delivery",
        sent.len(),
        got.len()
    );
    Ok(())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn sum(b: &[u8]) -> u64 {
    b.iter().enumerate().fold(0u64, |a, (i, &x)| {
        a.wrapping_mul(131).wrapping_add(x as u64 ^ i as u64)
    })
}

fn vcopy_sizes_and_requesters() -> Result<(), Failed> {
    let d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let srv = me(&d, DC0, 1);
    let max = DvsParams::default().max_copylen as usize;
    for &len in &[1usize, 7, 4096, 65536, 65537, 300_000, max] {
        // Requester is the source: copy into a client's buffer.
        let mut c = d.role("buffer", &["0", "101", "1", &len.to_string(), "0"]);
        c.expect("READY");
        let m = srv.receive(Endpoint::ANY)?;
        check!(m.m1().i1 as usize == len);
        let data = pattern(len, 3);
        srv.copy_to(m.source(), m.m1().p1, &data)?;
        srv.reply(m.source(), &msg(0, 0))?;
        check!(
            c.expect("SUM") == sum(&data).to_string(),
            "copy_to of {len} bytes"
        );
        // Requester is the destination: copy out of a client's buffer.
        let mut c = d.role("buffer", &["0", "102", "1", &len.to_string(), "9"]);
        c.expect("READY");
        let m = srv.receive(Endpoint::ANY)?;
        let mut got = vec![0u8; len];
        srv.copy_from(m.source(), m.m1().p1, &mut got)?;
        srv.reply(m.source(), &msg(0, 0))?;
        check!(got == pattern(len, 9), "copy_from of {len} bytes");
        check!(c.expect("SUM") == sum(&got).to_string());
    }
    // Third party: the server copies between two blocked clients.
    let len = 200_000usize;
    let mut s = d.role("buffer", &["0", "103", "1", &len.to_string(), "5"]);
    s.expect("READY");
    let mut t = d.role("buffer", &["0", "104", "1", &len.to_string(), "0"]);
    t.expect("READY");
    let m1 = srv.receive(Endpoint::ANY)?;
    let m2 = srv.receive(Endpoint::ANY)?;
    let (src, dst) = if m1.source() == Endpoint(103) {
        (m1, m2)
    } else {
        (m2, m1)
    };
    srv.vcopy(src.source(), src.m1().p1, dst.source(), dst.m1().p1, len)?;
    srv.reply(src.source(), &msg(0, 0))?;
    srv.reply(dst.source(), &msg(0, 0))?;
    let expect = sum(&pattern(len, 5)).to_string();
    check!(s.expect("SUM") == expect);
    check!(t.expect("SUM") == expect, "third-party copy");
    // Above max_copylen.
    let big = vec![0u8; max + 1];
    check!(err(srv.copy_to(Endpoint::SELF, big.as_ptr() as u64, &big)) == DvkError::TooBig);
    // A side that is not blocked in IPC.
    let mut idle = d.role("buffer_idle", &["0", "105"]);
    let addr: u64 = idle.expect("READY").parse()?;
    std::thread::sleep(Duration::from_millis(100));
    check!(err(srv.copy_to(Endpoint(105), addr, &[1, 2, 3])) == DvkError::NotReady);
    Ok(())
}

fn vcopy_bad_addresses() -> Result<(), Failed> {
    let mut d = TestDaemon::start();
    d.dc(DC0, "dc0");
    let srv = me(&d, DC0, 1);
    let mut c = d.role("buffer", &["0", "101", "1", "4096", "1"]);
    c.expect("READY");
    let m = srv.receive(Endpoint::ANY)?;
    let data = pattern(4096, 1);
    // Unmapped destination address in the peer.
    check!(err(srv.copy_to(m.source(), 0x10, &data)) == DvkError::Fault);
    // Unmapped source address in the peer.
    let mut buf = vec![0u8; 4096];
    check!(err(srv.copy_from(m.source(), 0x10, &mut buf)) == DvkError::Fault);
    // Unmapped local address.
    check!(err(srv.vcopy(Endpoint::SELF, 0x10, m.source(), m.m1().p1, 16)) == DvkError::Fault);
    // A range that runs off the end of the peer's buffer mapping.
    check!(err(srv.copy_to(m.source(), u64::MAX - 8, &data)) == DvkError::Fault);
    // Nobody crashed: the peer still works, the daemon still answers.
    srv.copy_to(m.source(), m.m1().p1, &data)?;
    srv.reply(m.source(), &msg(0, 0))?;
    check!(c.expect("SUM") == sum(&data).to_string());
    check!(c.wait() == 0);
    check!(d.alive());
    d.dvk().getdvsinfo()?;
    Ok(())
}

fn management_calls() -> Result<(), Failed> {
    let d = TestDaemon::start();
    let dvk = d.dvk();
    let info = dvk.getdvsinfo()?;
    check!(info.node == 0 && info.params == DvsParams::default());
    check!(err(dvk.dvs_init(0, &DvsParams::default())) == DvkError::DvsRunning);
    let p = d.dc(3, "web");
    check!(err(dvk.dc_init(&p)) == DvkError::DcExist);
    let mut q = p.clone();
    q.dcid = 4;
    check!(err(dvk.dc_init(&q)) == DvkError::Exist, "duplicate name");
    q.name = "bad name!".into();
    check!(err(dvk.dc_init(&q)) == DvkError::BadValue);
    check!(dvk.dc_lookup("web")? == 3);
    check!(dvk.getdcinfo(3)?.nr_bound == 0);
    // wait4bindep / wait4unbind with timeouts.
    check!(
        err(dvk.wait4bindep(3, Endpoint(101), Some(Duration::from_millis(50))))
            == DvkError::TimedOut
    );
    let mut r = d.role("sleeper", &["3", "101"]);
    check!(dvk.wait4bindep(3, Endpoint(101), Some(Duration::from_secs(5)))? == Endpoint(101));
    r.expect("READY");
    check!(dvk.getdcinfo(3)?.nr_bound == 1);
    let pi = dvk.getprocinfo(3, Endpoint(101))?;
    check!(pi.lpid == r.pid() && pi.p_nr == 101 && !pi.privilege.privileged());
    check!(
        err(dvk.wait4unbind(3, Endpoint(101), Some(Duration::from_millis(50))))
            == DvkError::TimedOut
    );
    dvk.unbind(3, Endpoint(101))?;
    dvk.wait4unbind(3, Endpoint(101), Some(Duration::from_secs(1)))?;
    // The unbound process's blocked receive fails.
    check!(r.expect("ERR") == DvkError::NotBind.code().to_string());
    // wait4bind_T times out for a task nobody binds.
    check!(err(dvk.wait4bind_t(Duration::from_millis(50))) == DvkError::TimedOut);
    // dc_end unbinds everyone: blocked calls fail with EDVSDCNOTRUN.
    let mut r2 = d.role("sleeper", &["3", "102"]);
    r2.expect("READY");
    dvk.dc_end(3)?;
    check!(r2.expect("ERR") == DvkError::DcNotRun.code().to_string());
    check!(err(dvk.getdcinfo(3)) == DvkError::DcNotRun);
    // dvs_end ends everything; dvs_init starts again.
    d.dc(5, "x");
    dvk.dvs_end()?;
    check!(err(dvk.getdvsinfo()) == DvkError::DvsNotRun);
    dvk.dvs_init(2, &DvsParams::default())?;
    check!(dvk.getdvsinfo()?.node == 2);
    Ok(())
}

fn daemon_survives_garbage() -> Result<(), Failed> {
    use std::io::Write;
    let mut d = TestDaemon::start();
    // A frame that is not a request, a huge length, and a torn frame.
    for junk in [
        &b"\x05\x00\x00\x00hello"[..],
        &b"\xff\xff\xff\x7f"[..],
        &b"\x10\x00"[..],
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket)?;
        s.write_all(junk)?;
        drop(s);
    }
    // A wrong protocol version.
    let s = std::os::unix::net::UnixStream::connect(&d.socket)?;
    drop(s);
    std::thread::sleep(Duration::from_millis(100));
    check!(d.alive(), "dvkd died on garbage input");
    d.dvk().getdvsinfo()?;
    Ok(())
}

// ------------------------------------------------------------------ roles

mod roles {
    use super::*;
    use crate::say;

    fn bind(dc: &str, e: &str) -> Ipc {
        let dvk = Dvk::open().expect("connect");
        dvk.bind(dc.parse().expect("dc"), ep(e)).expect("bind")
    }

    fn code<T>(r: dvk::Result<T>) -> i32 {
        match r {
            Ok(_) => 0,
            Err(e) => e.code(),
        }
    }

    pub fn run(role: &str, a: &[String]) -> i32 {
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        match role {
            // recv_once DC EP DELAY_MS SRC TIMEOUT_MS LINGER_MS (0 = none)
            "recv_once" => {
                let me = bind(a[0], a[1]);
                say!("READY");
                let num = |i: usize| a.get(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
                std::thread::sleep(Duration::from_millis(num(2)));
                let src = if a[3] == "ANY" {
                    Endpoint::ANY
                } else {
                    ep(a[3])
                };
                let r = match num(4) {
                    0 => me.receive(src),
                    t => me.receive_t(src, Duration::from_millis(t)),
                };
                match r {
                    Ok(m) => say!("GOT {} {} {}", m.m_source, m.m_type, m.m1().i1),
                    Err(e) => say!("ERR {}", e.code()),
                }
                std::thread::sleep(Duration::from_millis(num(5)));
                0
            }
            // recv_loop DC EP N
            "recv_loop" => {
                let me = bind(a[0], a[1]);
                say!("READY");
                for _ in 0..a[2].parse::<usize>().unwrap_or(1) {
                    match me.receive(Endpoint::ANY) {
                        Ok(m) => say!("GOT {} {} {}", m.m_source, m.m_type, m.m1().i1),
                        Err(e) => say!("ERR {}", e.code()),
                    }
                }
                0
            }
            // send_once DC EP DST TYPE DELAY_MS
            "send_once" => {
                let me = bind(a[0], a[1]);
                say!("READY");
                std::thread::sleep(Duration::from_millis(a[4].parse().unwrap_or(0)));
                let r = me.send(ep(a[2]), &msg(a[3].parse().unwrap_or(0), 0));
                say!("SENT {}", code(r));
                0
            }
            // sendrec_once DC EP DST TYPE
            "sendrec_once" => {
                let me = bind(a[0], a[1]);
                say!("READY");
                let mut m = msg(a[3].parse().unwrap_or(0), 0);
                match me.sendrec(ep(a[2]), &mut m) {
                    Ok(()) => say!("REPLY {} {}", m.m_source, m.m_type),
                    Err(e) => say!("ERR {}", e.code()),
                }
                0
            }
            // echo DC EP: replies type+1, i1+1; type 20 answered with send; 999 ends
            "echo" => {
                let me = bind(a[0], a[1]);
                say!("READY");
                loop {
                    let mut m = match me.receive(Endpoint::ANY) {
                        Ok(m) => m,
                        Err(e) => {
                            say!("ERR {}", e.code());
                            return 1;
                        }
                    };
                    let src = m.source();
                    let t = m.m_type;
                    m.m_type += 1;
                    m.m1_mut().i1 += 1;
                    let r = if t == 20 {
                        me.send(src, &m)
                    } else {
                        me.reply(src, &m)
                    };
                    if r.is_err() || t == 999 {
                        return code(r);
                    }
                }
            }
            // sleeper DC EP: receives until an error, which it reports
            "sleeper" => {
                let me = bind(a[0], a[1]);
                say!("READY");
                loop {
                    if let Err(e) = me.receive(Endpoint::ANY) {
                        say!("ERR {}", e.code());
                        std::thread::sleep(Duration::from_secs(30));
                        return 0;
                    }
                }
            }
            // notifier DC EP DST N
            "notifier" => {
                let me = bind(a[0], a[1]);
                say!("READY");
                let t = Instant::now();
                for _ in 0..a[3].parse::<usize>().unwrap_or(1) {
                    if let Err(e) = me.notify(ep(a[2])) {
                        say!("ERR {}", e.code());
                        return 0;
                    }
                }
                say!("NOTIFIED {}", t.elapsed().as_micros());
                std::thread::sleep(Duration::from_secs(30));
                0
            }
            // forger DC EP DST: lies about m_source twice
            "forger" => {
                let me = bind(a[0], a[1]);
                say!("READY");
                let mut m = msg(1, 0);
                m.m_source = 0;
                let r1 = me.send(ep(a[2]), &m);
                let mut n = Message::notification(Endpoint(0), NotifyKind::Notify);
                n.m_source = Endpoint::HARDWARE.0;
                let r2 = me.send(ep(a[2]), &n);
                if r1.is_ok() && r2.is_ok() {
                    0
                } else {
                    1
                }
            }
            // buffer DC EP SERVER LEN SEED: sendrec the buffer address; print its checksum after the reply
            "buffer" => {
                let me = bind(a[0], a[1]);
                let len: usize = a[3].parse().unwrap_or(1);
                let seed: u8 = a[4].parse().unwrap_or(0);
                let buf = if seed == 0 {
                    vec![0u8; len]
                } else {
                    pattern(len, seed)
                };
                say!("READY");
                let mut m = msg(1, len as i32);
                m.m1_mut().p1 = buf.as_ptr() as u64;
                if let Err(e) = me.sendrec(ep(a[2]), &mut m) {
                    say!("ERR {}", e.code());
                    return 1;
                }
                say!("SUM {}", sum(std::hint::black_box(&buf)));
                0
            }
            // buffer_idle DC EP: bound, not in IPC; prints a buffer address
            "buffer_idle" => {
                let _me = bind(a[0], a[1]);
                let buf = [0u8; 64];
                say!("READY {}", std::hint::black_box(&buf).as_ptr() as u64);
                std::thread::sleep(Duration::from_secs(30));
                0
            }
            // forker DC EP CHILD_EP
            "forker" => forker(&a),
            "attacher" => attacher(&a),
            // threads DC BASE N
            "threads" => threads(&a),
            "retask" => retask(&a),
            // prober DC EP VICTIM VICTIM_PRIV: every IPC call towards endpoints of another DC
            "prober" => {
                let me = bind(a[0], a[1]);
                let v = ep(a[2]);
                let vs = ep(a[3]);
                let t = Duration::from_millis(100);
                let mut m = msg(1, 1);
                let buf = [0u8; 16];
                say!("send {}", code(me.send_t(v, &m, t)));
                say!("sendrec {}", code(me.sendrec_t(v, &mut m, t)));
                say!("receive {}", code(me.receive_t(v, t)));
                say!("notify {}", code(me.notify(v)));
                say!("reply {}", code(me.reply(v, &m)));
                say!("vcopy {}", code(me.copy_to(v, 0x1000, &buf)));
                say!("vcopy3 {}", code(me.vcopy(v, 0x1000, vs, 0x2000, 16)));
                0
            }
            // unprivileged DC EP OTHER: management calls from a user endpoint
            "unprivileged" => {
                let me = bind(a[0], a[1]);
                let other = ep(a[2]);
                let dc: i32 = a[0].parse().unwrap_or(0);
                let k = me.dvk();
                say!(
                    "dc_init {}",
                    code(k.dc_init(&DcParams::new(9, "evil", &DvsParams::default())))
                );
                say!("dc_end {}", code(k.dc_end(dc)));
                say!(
                    "lclbind {}",
                    code(k.lclbind(dc, std::process::id() as i32, Endpoint(150)))
                );
                say!("unbind_other {}", code(k.unbind(dc, other)));
                let rec = dvk::PrivRecord::default_for(true);
                say!("setpriv {}", code(k.setpriv(dc, me.endpoint(), &rec)));
                say!("migr_start {}", code(k.migr_start(dc, other)));
                say!("notify {}", code(me.notify(other)));
                say!("vcopy3 {}", code(me.vcopy(other, 0x1000, other, 0x2000, 8)));
                say!("getprocinfo_own_dc {}", code(k.getprocinfo(dc, other)));
                say!("unbind_self {}", code(k.unbind(dc, me.endpoint())));
                0
            }
            other => {
                eprintln!("unknown role {other}");
                2
            }
        }
    }

    fn forker(a: &[&str]) -> i32 {
        let dc: i32 = a[0].parse().unwrap_or(0);
        let me = bind(a[0], a[1]);
        let child_ep = ep(a[2]);
        let parent_ep = me.endpoint();
        // SAFETY: this role process is single-threaded at this point.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // The parent's binding is not inherited.
                let stale = code(me.send(parent_ep, &msg(1, 1)));
                say!("CHILD_SAW_STALE {stale}");
                // Dropping the inherited handle must neither unbind the
                // parent nor unmap memory the child now uses.
                drop(me);
                let ballast: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 * 1024]).collect();
                let r = Dvk::open().and_then(|k| k.wait4bind_t(Duration::from_secs(10)));
                let c = match r {
                    Ok(c) => c,
                    Err(_) => unsafe { libc::_exit(3) },
                };
                let intact = ballast
                    .iter()
                    .enumerate()
                    .all(|(i, v)| v.iter().all(|&b| b == i as u8));
                let ok =
                    intact && c.endpoint() == child_ep && c.send(parent_ep, &msg(42, 0)).is_ok();
                // SAFETY: leaving the forked child without running the
                // parent's atexit handlers.
                unsafe { libc::_exit(if ok { 0 } else { 4 }) }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                std::thread::sleep(Duration::from_millis(50));
                let k = me.dvk();
                if let Err(e) = k.lclbind(dc, child.as_raw(), child_ep) {
                    say!("ERR lclbind {}", e.code());
                    return 1;
                }
                match me.receive_t(Endpoint::ANY, Duration::from_secs(10)) {
                    Ok(m) => say!("GOT {} {}", m.m_source, m.m_type),
                    Err(e) => say!("ERR {}", e.code()),
                }
                match nix::sys::wait::waitpid(child, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => say!("CHILD_EXIT {c}"),
                    other => say!("CHILD_EXIT {other:?}"),
                }
                0
            }
            Err(_) => 1,
        }
    }

    /// attacher SERVER OTHER: attaches mapping both, then asks SERVER.
    fn attacher(a: &[&str]) -> i32 {
        let peers = [ep(a[0]), ep(a[1])];
        let me = match Dvk::attach(&dvk::socket_path(), Duration::from_secs(10), &peers) {
            Ok(m) => m,
            Err(e) => {
                say!("ERR attach {}", e.code());
                return 1;
            }
        };
        let mut m = msg(7, 0);
        match me.sendrec_t(peers[0], &mut m, Duration::from_secs(10)) {
            Ok(()) => say!("GOT {}", m.m_type),
            Err(e) => say!("ERR sendrec {}", e.code()),
        }
        0
    }

    /// A thread endpoint parked by one thread and taken over by another.
    fn retask(a: &[&str]) -> i32 {
        let dc: i32 = a[0].parse().unwrap_or(0);
        let base: i32 = a[1].parse().unwrap_or(30);
        let main = bind(a[0], a[1]);
        let k = main.dvk();
        let mine = Endpoint(base + 1);
        let slot = |ipc: &Ipc| ipc.host_tid(mine);
        // Thread A binds `mine` and parks it; its handle outlives it.
        let parked = std::thread::spawn(move || -> dvk::Result<Ipc> {
            let t = Dvk::open()?.tbind(dc, mine)?;
            t.dvk().retask(0)?;
            Ok(t)
        })
        .join();
        let Ok(Ok(t)) = parked else {
            say!("PARKED -1");
            return 1;
        };
        say!("PARKED 0");
        say!("TID_PARKED {}", slot(&main));
        say!(
            "STILL_BOUND {}",
            code(k.wait4unbind(dc, mine, Some(Duration::from_millis(300))))
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let taker = std::thread::spawn(move || {
            let tid = dvk::sys::gettid();
            let r = t.dvk().retask(tid);
            let _ = tx.send((code(r), tid));
            let mut m = msg(1, 7);
            let r = t.sendrec(Endpoint(base), &mut m);
            // Not dropped (that would unbind it): the daemon unbinds it
            // when this thread ends.
            std::mem::forget(t);
            r.map(|_| m.m1().i1)
        });
        let (r, tid) = rx.recv().unwrap_or((-1, 0));
        say!("TAKEN {r}");
        say!("TID_IS_TAKER {}", i32::from(slot(&main) == tid));
        match main.receive(Endpoint::ANY) {
            Ok(m) => {
                say!("GOT {} {}", m.source().0, m.m1().i1);
                let _ = main.reply(m.source(), &msg(2, m.m1().i1));
            }
            Err(e) => say!("GOT ERR {}", e.code()),
        }
        if !matches!(taker.join(), Ok(Ok(7))) {
            return 1;
        }
        // Misuse, from a second thread endpoint: another process's task,
        // a thread that has an endpoint (itself), a process binding.
        let other = std::thread::spawn(move || -> (i32, i32) {
            let Ok(t) = Dvk::open().and_then(|d| d.tbind(dc, Endpoint(base + 2))) else {
                return (-1, -1);
            };
            let foreign = code(t.dvk().retask(1));
            let bound = code(t.dvk().retask(dvk::sys::gettid()));
            (foreign, bound)
        })
        .join()
        .unwrap_or((-1, -1));
        say!("FOREIGN_TID {}", other.0);
        say!("BOUND_TID {}", other.1);
        say!("PROCESS_BINDING {}", code(k.retask(dvk::sys::gettid())));
        say!(
            "UNBOUND {}",
            code(k.wait4unbind(dc, mine, Some(Duration::from_secs(5))))
        );
        0
    }

    fn threads(a: &[&str]) -> i32 {
        let dc: i32 = a[0].parse().unwrap_or(0);
        let base: i32 = a[1].parse().unwrap_or(140);
        let n: i32 = a[2].parse().unwrap_or(2);
        let main = bind(a[0], a[1]);
        let mut hs = Vec::new();
        for i in 0..n {
            hs.push(std::thread::spawn(move || -> dvk::Result<()> {
                let t = Dvk::open()?.tbind(dc, Endpoint(base + 1 + i))?;
                let mut m = msg(1, i + 1);
                t.sendrec(Endpoint(base), &mut m)?;
                if m.m1().i1 != (i + 1) * 10 {
                    return Err(DvkError::Io);
                }
                Ok(())
            }));
        }
        let mut total = 0;
        for _ in 0..n {
            let m = match main.receive(Endpoint::ANY) {
                Ok(m) => m,
                Err(e) => {
                    say!("ERR {}", e.code());
                    return 1;
                }
            };
            total += m.m1().i1;
            if main.reply(m.source(), &msg(2, m.m1().i1 * 10)).is_err() {
                return 1;
            }
        }
        for h in hs {
            if !matches!(h.join(), Ok(Ok(()))) {
                return 1;
            }
        }
        // Each thread's endpoint ends with its thread.
        let k = main.dvk();
        for i in 0..n {
            match k.wait4unbind(dc, Endpoint(base + 1 + i), Some(Duration::from_secs(5))) {
                Ok(()) => say!("UNBOUND {}", base + 1 + i),
                Err(e) => say!("ERR {}", e.code()),
            }
        }
        say!("SUM {total}");
        0
    }
}
