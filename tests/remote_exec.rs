//! MoL across nodes, on a real 3-node testbed: `dvs-exec --node 2` on node
//! 0 runs the program on node 2 (its SYSTASK starts it there) while PM and
//! FS stay on node 0. Output and exit status match a native run; the
//! processes really are in node 2's namespace (static ones under node 2's
//! tracer); `dvs ps` and `dvs kill` on
//! node 0 reach them; their endpoints are process slots their node got
//! through SLOTS; a node that goes away ends them by `SIGKILL`, its slots
//! go to node 0, and it leaves nothing behind. Needs root and Corosync.

mod cluster;
mod common;

use cluster::{in_node, lock, testbed_up, text};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `dvs-exec ARGS` started from node 0.
fn exec_cmd(args: &[&str]) -> Command {
    let preload = common::preload();
    let mut c = Command::new(cluster::DVS);
    c.args(["testbed", "exec", "0", "--", "env"])
        .arg(format!("DVS_PRELOAD={}", preload.display()))
        .arg(common::dvs_exec())
        .args(args)
        .env_remove("DVS_SOCKET");
    c
}

fn exec(args: &[&str]) -> Output {
    exec_cmd(args).output().expect("dvs-exec")
}

/// The DC run of `what` gave the native run's exit status and output.
fn same(what: &str, native: &Output, dc: &Output) {
    assert_eq!(
        dc.status.code(),
        native.status.code(),
        "{what}: {}",
        text(dc)
    );
    assert_eq!(
        String::from_utf8_lossy(&dc.stdout),
        String::from_utf8_lossy(&native.stdout),
        "{what}: {}",
        text(dc)
    );
}

/// A run in the background whose first output line is `ready`.
fn started(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    started_cmd(exec_cmd(args))
}

/// [`started`] for a prepared command.
fn started_cmd(mut cmd: Command) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut c = cmd.stdout(Stdio::piped()).spawn().expect("dvs-exec");
    let mut out = BufReader::new(c.stdout.take().expect("stdout"));
    let mut l = String::new();
    out.read_line(&mut l).expect("read");
    assert_eq!(l.trim(), "ready", "the program did not start");
    (c, out)
}

fn wait_exit(c: &mut Child, limit: Duration) -> Option<i32> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(st) = c.try_wait().expect("try_wait") {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    None
}

/// Host pids of processes whose command line is `marker`.
fn host_pids(marker: &str) -> Vec<String> {
    let o = Command::new("pgrep")
        .args(["-x", "-f", marker])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Node `node`'s SLOTS view of DC `dc` (`dvs status --json` there).
fn slots(node: &str, dc: &str) -> serde_json::Value {
    let o = in_node(node, &[cluster::DVS, "status", "--json", "--dc", dc]);
    assert!(o.status.success(), "node {node}: {}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    st["dcs"][0]["slots"].clone()
}

/// The node and kind of endpoint `ep` in DC `dc` on node `node`.
fn systask_on(node: &str, dc: &str, ep: i64) -> Option<(i64, String)> {
    let o = in_node(node, &[cluster::DVS, "status", "--json", "--dc", dc]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    st["dcs"][0]["procs"]
        .as_array()?
        .iter()
        .find(|p| p["endpoint"].as_i64() == Some(ep))
        .map(|p| {
            (
                p["node"].as_i64().unwrap_or(-1),
                p["kind"].to_string().replace('"', ""),
            )
        })
}

/// How many slots `node` owns in a SLOTS view.
fn owned_by(slots: &serde_json::Value, node: i64) -> usize {
    slots["owner"]
        .as_array()
        .expect("owner")
        .iter()
        .filter(|o| o.as_i64() == Some(node))
        .count()
}

fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// An AF_UNIX server that takes a descriptor from its client.
const UNIX_SERVER: &str = r#"
import os, socket, sys, array
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
open(path + ".ready", "w").close()
c, _ = s.accept()
msg, anc, flags, addr = c.recvmsg(64, socket.CMSG_LEN(4))
fds = array.array("i")
for level, typ, data in anc:
    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
        fds.frombytes(data[:4])
print("server got", msg.decode(), "and", len(fds), "descriptor")
print("through it:", os.fdopen(fds[0]).read().strip())
c.sendall(b"bye")
"#;

/// Its client: sends an open file with `SCM_RIGHTS`.
const UNIX_CLIENT: &str = r#"
import os, socket, sys, array, time
path = sys.argv[1]
while not os.path.exists(path + ".ready"):
    time.sleep(0.05)
with open(path + ".data", "w") as f:
    f.write("secret from the client\n")
fd = os.open(path + ".data", os.O_RDONLY)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendmsg([b"hello"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())])
print("client got", s.recv(16).decode())
"#;

/// Processes, pipes, files, exit statuses and a Python child, without
/// printing anything that differs between runs (host or DC PIDs).
const SCRIPT: &str = r#"
cd "$1" || exit 99
for i in 1 2 3; do (echo child $i; exit $i); echo "status $?"; done
echo abc | tr a-z A-Z | wc -c
printf 'line1\nline2\n' > f.txt; cat f.txt | sort -r; rm f.txt
sleep 0.1 & wait $!; echo "waited $?"
ls /usr | head -3
python3 -c 'import os,sys; print("py", os.getppid() > 0); sys.exit(5)'
echo "py $?"
{ yes; echo "yes $?" > st; } | head -1; cat st; rm st
(trap '' INT; DVS_NODE=1 sh -c 'kill -INT $$; echo survived on node 1')
exit 3
"#;

#[test]
fn programs_run_on_another_node() {
    let _lock = lock();
    cluster::watchdog(Duration::from_secs(240));
    let _down = testbed_up(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");

    // The same script natively and on node 2 of a DC whose servers are on
    // node 0.
    let native = Command::new("sh")
        .args(["-c", SCRIPT, "sh", d])
        .output()
        .expect("sh");
    let dc = exec(&["--node", "2", "sh", "-c", SCRIPT, "sh", d]);
    assert_eq!(native.status.code(), Some(3), "{}", text(&native));
    same("the script on node 2", &native, &dc);

    // A pipeline whose stages run on nodes 2, 1 and 0 (`DVS_NODE` makes an
    // exec move its process): the same bytes as natively.
    let pipeline =
        "seq 1 3000 | DVS_NODE=1 tr 0-9 a-j | DVS_NODE=0 sort | md5sum; echo \"status $?\"";
    let native = Command::new("sh")
        .args(["-c", pipeline])
        .output()
        .expect("sh");
    let dc = exec(&["--node", "2", "sh", "-c", pipeline]);
    assert_eq!(dc.status.code(), Some(0), "{}", text(&dc));
    assert_eq!(
        String::from_utf8_lossy(&dc.stdout),
        String::from_utf8_lossy(&native.stdout)
    );
    // While it runs, each stage is a host process of its node, and PM's
    // table says so.
    let (mut stages, mut out) = started(&[
        "--dc",
        "stages",
        "--node",
        "2",
        "sh",
        "-c",
        "echo ready; sleep 40.5 | DVS_NODE=1 sleep 40.75 | DVS_NODE=0 sleep 40.875; echo \"done $?\"",
    ]);
    for (marker, ns) in [
        ("sleep 40.5", "dvs-n2"),
        ("sleep 40.75", "dvs-n1"),
        ("sleep 40.875", "dvs-n0"),
    ] {
        assert!(
            until(Duration::from_secs(5), || host_pids(marker).len() == 1),
            "{marker} is not running"
        );
        let pid = &host_pids(marker)[0];
        let o = Command::new("ip")
            .args(["netns", "identify", pid])
            .output()
            .expect("ip");
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), ns, "{marker}");
    }
    let ps = in_node("0", &[cluster::DVS, "ps", "--dc", "stages", "--json"]);
    let dcs: Vec<serde_json::Value> = serde_json::from_slice(&ps.stdout).expect("ps --json");
    let mut nodes: Vec<i64> = dcs[0]["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|r| r["cmd"] == "sleep")
        .map(|r| r["node"].as_i64().unwrap_or(-1))
        .collect();
    nodes.sort();
    assert_eq!(nodes, [0, 1, 2], "{dcs:?}");
    // Ending the last stage ends the pipeline; the others end by SIGPIPE
    // or when the shell is done, and nothing is left.
    let kill = in_node(
        "0",
        &[cluster::DVS, "kill", "--dc", "stages", "-s", "KILL", "-2"],
    );
    assert!(kill.status.success(), "{}", text(&kill));
    assert!(wait_exit(&mut stages, Duration::from_secs(10)).is_some());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    for marker in ["sleep 40.5", "sleep 40.75", "sleep 40.875"] {
        assert!(
            until(Duration::from_secs(5), || host_pids(marker).is_empty()),
            "{marker} left behind"
        );
    }

    // A signal sent while its target moves to another node is not lost.
    let moving = "DVS_NODE=1 sleep 33.5 & kill -TERM $!; wait $!; echo \"status $?\"";
    let native = Command::new("sh")
        .args(["-c", moving])
        .output()
        .expect("sh");
    let t0 = Instant::now();
    let dc = exec(&["--node", "2", "sh", "-c", moving]);
    assert_eq!(
        String::from_utf8_lossy(&dc.stdout),
        String::from_utf8_lossy(&native.stdout),
        "{}",
        text(&dc)
    );
    assert!(t0.elapsed() < Duration::from_secs(20));

    // Ctrl-C at dvs-exec's terminal reaches the program on node 2, whose
    // handler runs. The program starts with dvs-exec's signal state, not
    // with the node daemon's (which may ignore SIGINT).
    let mut cmd = exec_cmd(&[
        "--dc",
        "ctrlc",
        "--node",
        "2",
        "sh",
        "-c",
        "trap 'echo got INT; exit 5' INT; echo ready; while :; do sleep 0.05; done",
    ]);
    common::as_foreground_job(&mut cmd);
    let (mut cc, mut out) = started_cmd(cmd);
    let launcher = Command::new("pgrep")
        .args(["-f", "dvs-exec --dc ctrlc"])
        .output()
        .expect("pgrep");
    let launcher = String::from_utf8_lossy(&launcher.stdout);
    let launcher = launcher
        .lines()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "dvs-exec")
        })
        .expect("the dvs-exec process");
    let int = Command::new("kill")
        .args(["-INT", launcher])
        .status()
        .expect("kill");
    assert!(int.success());
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "got INT");
    assert_eq!(wait_exit(&mut cc, Duration::from_secs(10)), Some(5));

    // A running program: it is in node 2's network namespace, PM's table
    // on node 0 shows it on node 2, and `dvs kill` on node 0 ends it.
    let (mut far, _out) = started(&[
        "--dc",
        "far",
        "--node",
        "2",
        "sh",
        "-c",
        "echo ready; exec sleep 61.25",
    ]);
    // (`sh` execs `sleep` right after saying ready.)
    assert!(until(Duration::from_secs(5), || host_pids("sleep 61.25")
        .len()
        == 1));
    let pids = host_pids("sleep 61.25");
    let ns = Command::new("ip")
        .args(["netns", "identify", &pids[0]])
        .output()
        .expect("ip");
    assert_eq!(String::from_utf8_lossy(&ns.stdout).trim(), "dvs-n2");
    let ps = in_node("0", &[cluster::DVS, "ps", "--dc", "far", "--json"]);
    assert!(ps.status.success(), "{}", text(&ps));
    let dcs: Vec<serde_json::Value> = serde_json::from_slice(&ps.stdout).expect("ps --json");
    let rows = dcs[0]["processes"].as_array().expect("processes");
    let sleep = rows
        .iter()
        .find(|r| r["cmd"] == "sleep")
        .unwrap_or_else(|| panic!("no sleep in {rows:?}"));
    assert_eq!(sleep["node"], 2, "{sleep}");
    assert_eq!(sleep["host_pid"].to_string(), pids[0], "{sleep}");
    assert_eq!(sleep["stat"], "S", "{sleep}");
    let pid = sleep["pid"].to_string();
    // Its endpoint is a process slot node 2 owns (SLOTS): node 2's SYSTASK
    // got slots from node 0's over Corosync, and both replicas of the
    // ownership table agree on it.
    let s0 = slots("0", "far");
    let s2 = slots("2", "far");
    assert_eq!(s2["synced"], true, "{s2}");
    assert_eq!(s0["members"], serde_json::json!([0, 2]), "{s0}");
    assert_eq!(s0["owner"], s2["owner"], "the replicas differ");
    let slot = sleep["endpoint"].as_i64().expect("endpoint") & 0xffff;
    let first = s2["first_slot"].as_i64().expect("first_slot");
    assert_eq!(s2["owner"][(slot - first) as usize], 2, "{s2}");
    assert!(s2["in_use"].as_i64() >= Some(1), "{s2}");
    assert!(s2["received"].as_i64() >= Some(1), "{s2}");
    assert_eq!(s0["in_use"], 0, "node 0 runs nothing of this DC: {s0}");
    // Forty processes at once on node 2, more than a joiner's first
    // donation: node 2 asks the group again as its reserve runs low, and
    // no fork fails. Each lives 4 s, longer than forking all of them
    // takes on a loaded 2-CPU machine (~2 s), so all are counted.
    let many = "for i in $(seq 40); do sleep 4 & done; echo ready; wait; echo done";
    let (mut crowd, mut crowd_out) = started(&["--dc", "crowd", "--node", "2", "sh", "-c", many]);
    let s2 = slots("2", "crowd");
    assert!(s2["in_use"].as_i64() >= Some(41), "{s2}");
    assert!(s2["requests"].as_i64() >= Some(2), "{s2}");
    assert_eq!(s2["failed"], 0, "{s2}");
    assert_eq!(slots("0", "crowd")["owner"], s2["owner"]);
    let mut line = String::new();
    crowd_out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "done");
    assert_eq!(wait_exit(&mut crowd, Duration::from_secs(10)), Some(0));

    // The same table from node 2, which joined the DC: the tool's probe
    // endpoint there is announced to node 0, where PM answers it.
    let ps2 = in_node("2", &[cluster::DVS, "ps", "--dc", "far", "--json"]);
    assert!(ps2.status.success(), "{}", text(&ps2));
    let dcs2: Vec<serde_json::Value> = serde_json::from_slice(&ps2.stdout).expect("ps --json");
    assert_eq!(dcs2[0]["processes"], dcs[0]["processes"]);
    // `dvs kill` from node 2.
    let kill = in_node("2", &[cluster::DVS, "kill", "-s", "TERM", &pid]);
    assert!(kill.status.success(), "{}", text(&kill));
    assert_eq!(wait_exit(&mut far, Duration::from_secs(10)), Some(143));
    assert!(host_pids("sleep 61.25").is_empty());

    // The C examples of the single-node tests, natively and on node 2
    // (not sigwrites: its 500 µs timer outpaces a remote call; not
    // threadself: FS resolves /proc on its own node; not pidfd: FS holds
    // pidfds of its own node's tasks only; not dnotify: FS signals
    // processes of its own node only; not libcmaps: its semaphore file is
    // in FS's node's /dev/shm; see ARCHITECTURE "Not supported yet").
    let skipped = ["sigwrites", "threadself", "pidfd", "dnotify", "libcmaps"];
    for name in common::C_EXAMPLES.iter().filter(|n| !skipped.contains(*n)) {
        let exe = common::example(name, dir.path());
        let exe = exe.to_str().expect("utf-8 path");
        let run = "cd \"$1\" && exec \"$2\"";
        let native = Command::new("sh")
            .args(["-c", run, "sh", d, exe])
            .output()
            .expect("sh");
        let dc = exec(&["--node", "2", "sh", "-c", run, "sh", d, exe]);
        same(name, &native, &dc);
    }

    // AF_UNIX between nodes: a server on node 1, a client on node 2
    // passing it an open file with SCM_RIGHTS.
    std::fs::write(dir.path().join("server.py"), UNIX_SERVER).expect("write");
    std::fs::write(dir.path().join("client.py"), UNIX_CLIENT).expect("write");
    let pair = "cd \"$1\" && { DVS_NODE=1 python3 server.py sock > server.out & \
                DVS_NODE=2 python3 client.py sock; wait; cat server.out; }";
    let native = Command::new("sh")
        .args(["-c", pair, "sh", d])
        .output()
        .expect("sh");
    for f in ["sock", "sock.ready", "sock.data", "server.out"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let dc = exec(&["sh", "-c", pair, "sh", d]);
    assert!(
        String::from_utf8_lossy(&native.stdout).contains("through it: secret"),
        "{}",
        text(&native)
    );
    same("AF_UNIX between nodes 1 and 2", &native, &dc);

    // A clear error for a node that is not in the cluster.
    let bad = exec(&["--node", "9", "true"]);
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("node 9"),
        "{}",
        text(&bad)
    );
    // A static program (Debian's busybox-static) on node 2: node 2's own
    // tracer serves it; the same script as natively, through a shell that
    // is static too.
    if std::path::Path::new("/bin/busybox").exists() {
        let native = Command::new("/bin/busybox")
            .args(["sh", "-c", SCRIPT, "sh", d])
            .output()
            .expect("busybox");
        let dc = exec(&["--node", "2", "/bin/busybox", "sh", "-c", SCRIPT, "sh", d]);
        assert_eq!(native.status.code(), Some(3), "{}", text(&native));
        same("busybox-static on node 2", &native, &dc);
    }

    // `python3 -m http.server` running on node 1 of a DC whose servers
    // (INET included) are on node 0: the host fetches a file of the DC's
    // file system at node 0's address, and so does curl in the DC on node 2.
    std::fs::write(dir.path().join("page.txt"), "served across nodes\n").expect("write");
    let web = "cd \"$1\" && { DVS_NODE=1 python3 -m http.server --bind 0.0.0.0 8731 \
               > /dev/null 2>&1 & s=$!; echo ready; \
               i=0; until DVS_NODE=2 curl -sf http://127.0.0.1:8731/page.txt; do \
               i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.1; done; \
               read line; kill $s; wait $s; }";
    let (mut srv, mut out) = {
        let mut c = exec_cmd(&["--dc", "web", "sh", "-c", web, "sh", d]);
        c.stdin(Stdio::piped());
        started_cmd(c)
    };
    let mut from_dc = String::new();
    out.read_line(&mut from_dc).expect("read");
    assert_eq!(from_dc.trim(), "served across nodes");
    let host = Command::new("curl")
        .args(["-sf", "--max-time", "10", "http://10.213.0.1:8731/page.txt"])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&host.stdout),
        "served across nodes\n"
    );
    let ps = in_node("0", &[cluster::DVS, "ps", "--dc", "web", "--json"]);
    let dcs: Vec<serde_json::Value> = serde_json::from_slice(&ps.stdout).expect("ps --json");
    assert!(
        dcs[0]["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .any(|r| r["cmd"] == "python3" && r["node"] == 1),
        "{dcs:?}"
    );
    drop(srv.stdin.take());
    assert!(wait_exit(&mut srv, Duration::from_secs(10)).is_some());

    // Node 2 goes away mid-run. The shell on node 0 sees its child on node
    // 2 end by SIGKILL, its child on node 1 survives (and `dvs ps` stops
    // listing node 2's process within the detector's timeout); node 2
    // kills what it ran for the DC and drops the DC when it sees node 0
    // go.
    let (mut cut, mut out) = started(&[
        "--dc",
        "cut",
        "sh",
        "-c",
        "DVS_NODE=2 sleep 62.25 & a=$!; DVS_NODE=1 sleep 62.5 & b=$!; echo ready; \
         wait $a; echo \"on node 2: $?\"; wait $b; echo \"on node 1: $?\"",
    ]);
    assert!(until(Duration::from_secs(5), || {
        host_pids("sleep 62.25").len() == 1 && host_pids("sleep 62.5").len() == 1
    }));
    // Nodes 1 and 2 joined the DC's SLOTS group and asked for slots.
    assert!(
        until(Duration::from_secs(5), || {
            let s = slots("0", "cut");
            owned_by(&s, 1) > 0 && owned_by(&s, 2) > 0
        }),
        "{}",
        slots("0", "cut")
    );
    let before = slots("0", "cut");
    // SLOTS registered node 2's SYSTASK on node 1 (the DVK's dc_join only
    // links each node with node 0).
    assert_eq!(
        systask_on("1", "cut", -4),
        Some((2, "Remote".into())),
        "node 1 does not know node 2's SYSTASK"
    );
    let down = Command::new("ip")
        .args(["link", "set", "dvs-n2h", "down"])
        .status()
        .expect("ip");
    assert!(down.success());
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "on node 2: 137");
    // Node 2's slots went to the primary, node 0; node 1 kept its own,
    // and its replica agrees.
    assert!(
        until(Duration::from_secs(10), || slots("0", "cut")["members"]
            == serde_json::json!([0, 1])),
        "{}",
        slots("0", "cut")
    );
    let after = slots("0", "cut");
    let total = after["owner"].as_array().expect("owner").len();
    assert_eq!(owned_by(&after, 2), 0, "{after}");
    assert!(owned_by(&after, 1) > 0, "{after}");
    assert_eq!(owned_by(&after, 0) + owned_by(&after, 1), total, "{after}");
    assert!(
        owned_by(&after, 0) > owned_by(&before, 0),
        "{before} {after}"
    );
    assert!(
        until(Duration::from_secs(5), || slots("1", "cut")["owner"]
            == after["owner"]),
        "the replicas differ"
    );
    assert!(until(Duration::from_secs(5), || systask_on("1", "cut", -4)
        .is_none()));
    let ps = in_node("0", &[cluster::DVS, "ps", "--dc", "cut", "--json"]);
    let dcs: Vec<serde_json::Value> = serde_json::from_slice(&ps.stdout).expect("ps --json");
    let sleeps: Vec<&serde_json::Value> = dcs[0]["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|r| r["cmd"] == "sleep")
        .collect();
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    assert_eq!(sleeps[0]["node"], 1, "{sleeps:?}");
    assert_eq!(sleeps[0]["stat"], "S", "{sleeps:?}");
    let pid = sleeps[0]["pid"].to_string();
    let kill = in_node("0", &[cluster::DVS, "kill", "--dc", "cut", &pid]);
    assert!(kill.status.success(), "{}", text(&kill));
    line.clear();
    out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "on node 1: 143");
    assert_eq!(wait_exit(&mut cut, Duration::from_secs(10)), Some(0));
    assert!(
        until(Duration::from_secs(10), || host_pids("sleep 62.25")
            .is_empty()),
        "left on node 2: {:?}",
        host_pids("sleep 62.25")
    );
    assert!(
        until(Duration::from_secs(10), || {
            let l = in_node("2", &[cluster::DVS, "dc", "list"]);
            !String::from_utf8_lossy(&l.stdout).contains("cut")
        }),
        "node 2 kept the DC"
    );
    // (Healed only now: a link that comes back while Corosync is still
    // forming the ring without node 2 can make the ring drop node 1 too
    // for a moment.)
    let heal = Command::new("ip")
        .args(["link", "set", "dvs-n2h", "master", "dvs-br0", "up"])
        .status()
        .expect("ip");
    assert!(heal.success());
}
