//! End-to-end tests of the `dvs` binary: real daemons, real processes.
//!
//! Every test runs its own node daemon on a socket in its own temporary
//! directory; [`Node`] stops it on drop, whatever happens in the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DVS: &str = env!("CARGO_BIN_EXE_dvs");

/// Runs `dvs ARGS --socket SOCKET`.
fn dvs(socket: &Path, args: &[&str]) -> Output {
    Command::new(DVS)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env_remove("DVS_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run dvs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "dvs failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts exit status 1 and returns stderr.
#[track_caller]
fn fails(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1:\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// A daemonized node daemon, stopped on drop (`dvs node stop`, and if
/// that fails, SIGKILL to its pid).
struct Node {
    socket: PathBuf,
    pid: Option<i32>,
    dir: tempfile::TempDir,
}

impl Node {
    /// A socket path in a fresh temporary directory; nothing started.
    fn unstarted() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        Node {
            socket: dir.path().join("dvkd.sock"),
            pid: None,
            dir,
        }
    }

    /// Starts `dvs node start --socket S` and checks its report.
    fn start() -> Node {
        let mut node = Node::unstarted();
        let out = ok(dvs(&node.socket, &["node", "start"]));
        let pid = out
            .strip_prefix("dvkd started (pid ")
            .and_then(|r| r.split(',').next())
            .and_then(|p| p.parse::<i32>().ok());
        node.pid = pid;
        assert!(pid.is_some(), "unexpected output of node start: {out:?}");
        assert!(
            out.contains(&format!("socket {})", node.socket.display())),
            "{out:?}"
        );
        node
    }

    fn dvs(&self, args: &[&str]) -> Output {
        dvs(&self.socket, args)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let stopped = dvs(&self.socket, &["node", "stop"]).status.success();
        if !stopped {
            if let Some(pid) = self.pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = &self.dir;
    }
}

/// The rows of the table that follows the line `title` in `text`, split
/// on whitespace (header first); stops at the first blank line or section.
fn table<'a>(text: &'a str, title: &str) -> Vec<Vec<&'a str>> {
    text.lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.chars().all(|c| c.is_ascii_uppercase()))
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn status_shows_node_and_dvs_parameters() {
    let node = Node::start();
    let out = ok(node.dvs(&["status"]));
    assert!(out.starts_with("DVS\n"), "{out}");
    let field = |name: &str| -> Option<String> {
        out.lines().find_map(|l| {
            l.trim_start()
                .strip_prefix(name)
                .map(|v| v.trim().to_string())
        })
    };
    assert_eq!(field("node ").as_deref(), Some("0"));
    assert_eq!(
        field("daemon pid ").map(|p| p.parse::<i32>().ok()),
        Some(node.pid)
    );
    assert_eq!(field("socket ").as_deref(), node.socket.to_str());
    let dvs = dvk::DvsParams::default();
    assert_eq!(field("nr_nodes "), Some(dvs.nr_nodes.to_string()));
    assert_eq!(field("nr_dcs "), Some(dvs.nr_dcs.to_string()));
    assert_eq!(field("nr_procs "), Some(dvs.nr_procs.to_string()));
    assert_eq!(field("nr_tasks "), Some(dvs.nr_tasks.to_string()));
    assert_eq!(field("nr_sysprocs "), Some(dvs.nr_sysprocs.to_string()));
    assert_eq!(field("max_copybuf "), Some(dvs.max_copybuf.to_string()));
    assert_eq!(field("max_copylen "), Some(dvs.max_copylen.to_string()));

    let nodes = table(&out, "NODES");
    assert_eq!(nodes[0], ["id", "name", "up", "proxy", "dcs"]);
    assert_eq!(nodes.len(), 2, "{out}");
    assert_eq!(nodes[1][0], "0");
    assert_eq!(nodes[1][2], "yes");
    let proxies = table(&out, "PROXIES");
    assert_eq!(
        proxies,
        [vec!["id", "name", "nodes", "connected"], vec!["(none)"]]
    );

    // The log file sits next to the socket.
    assert!(node.socket.with_file_name("dvkd.log").exists());
}

#[test]
fn starting_twice_fails_clearly() {
    let node = Node::start();
    let err = fails(node.dvs(&["node", "start"]));
    assert!(err.starts_with("dvs: "), "{err}");
    assert!(err.contains("already running"), "{err}");
    assert!(err.contains(&node.socket.display().to_string()), "{err}");
    // The first daemon is unharmed.
    ok(node.dvs(&["status"]));
}

#[test]
fn dc_init_list_end_round_trip() {
    let node = Node::start();
    assert_eq!(
        ok(node.dvs(&["dc", "list"])),
        "id  name  procs  tasks  bound\n(none)\n"
    );

    let out = ok(node.dvs(&["dc", "init", "web"]));
    assert_eq!(out, "DC 0 web initialised on node 0\n");
    let out = ok(node.dvs(&[
        "dc",
        "init",
        "db",
        "--nr-procs",
        "50",
        "--max-copylen",
        "64K",
    ]));
    assert_eq!(out, "DC 1 db initialised on node 0\n");
    let out = ok(node.dvs(&["dc", "init", "far", "--id", "7", "--nr-tasks", "10"]));
    assert_eq!(out, "DC 7 far initialised on node 0\n");

    let list = ok(node.dvs(&["dc", "list"]));
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["id", "name", "procs", "tasks", "bound"]);
    assert_eq!(rows[1], ["0", "web", "221", "35", "0"]);
    assert_eq!(rows[2], ["1", "db", "50", "35", "0"]);
    assert_eq!(rows[3], ["7", "far", "221", "10", "0"]);

    let status = ok(node.dvs(&["status", "--dc", "db"]));
    assert!(status.contains("DC 1 db\n"), "{status}");
    assert!(status.contains("max_copylen=65536"), "{status}");
    assert!(!status.contains("DC 0 web"), "{status}");

    // Duplicates and bad values are refused with readable messages.
    let err = fails(node.dvs(&["dc", "init", "web"]));
    assert!(
        err.starts_with("dvs: cannot create DC 2 (web): EDVSEXIST"),
        "{err}"
    );
    let err = fails(node.dvs(&["dc", "init", "x", "--id", "7"]));
    assert!(err.contains("EDVSDCEXIST"), "{err}");
    let err = fails(node.dvs(&["dc", "init", "x", "--nr-tasks", "1"]));
    assert!(err.contains("--nr-tasks"), "{err}");

    // End by name and by id; unknown DCs are an error.
    assert_eq!(ok(node.dvs(&["dc", "end", "web"])), "DC 0 web ended\n");
    assert_eq!(ok(node.dvs(&["dc", "end", "7"])), "DC 7 far ended\n");
    let err = fails(node.dvs(&["dc", "end", "web"]));
    assert!(err.contains("no DC \"web\""), "{err}");
    let list = ok(node.dvs(&["dc", "list"]));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(" db "), "{list}");

    // The lowest free id is reused.
    assert_eq!(
        ok(node.dvs(&["dc", "init", "again"])),
        "DC 0 again initialised on node 0\n"
    );
}

/// dvs-exec on a running node takes the first free DC id, refuses a DC
/// name that is taken, and leaves the node's other DCs alone.
#[test]
fn dvs_exec_next_to_other_dcs() {
    let node = Node::start();
    ok(node.dvs(&["dc", "init", "web"]));
    ok(node.dvs(&["dc", "init", "db", "--id", "1"]));
    let exec = |args: &[&str]| {
        common::dvs_exec_cmd()
            .arg("--socket")
            .arg(&node.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run dvs-exec")
    };
    let o = exec(&["--dc", "web", "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125), "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).contains("a DC named \"web\" already exists"),
        "stderr: {}",
        stderr(&o)
    );
    // Ids 0 and 1 are taken: the run's DC is 2, ended afterwards.
    let o = exec(&[
        "--dc",
        "job",
        "--",
        "/bin/sh",
        "-c",
        "echo in the DC; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "in the DC\n");
    let list = ok(node.dvs(&["dc", "list"]));
    let names: Vec<&str> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(names, ["web", "db"], "{list}");
}

#[test]
fn status_json_is_the_snapshot() {
    let node = Node::start();
    ok(node.dvs(&["dc", "init", "--id", "3", "json-dc"]));
    let out = ok(node.dvs(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    assert_eq!(v["info"]["node"], 0);
    assert_eq!(v["info"]["daemon_pid"], node.pid.unwrap_or(-1));
    let dcs = v["dcs"].as_array().expect("dcs array");
    assert_eq!(dcs.len(), 1);
    assert_eq!(dcs[0]["info"]["params"]["dcid"], 3);
    assert_eq!(dcs[0]["info"]["params"]["name"], "json-dc");
    // It also deserializes as the library's own type.
    let snap: dvk::proto::StatusSnapshot = serde_json::from_str(&out).expect("StatusSnapshot");
    assert_eq!(snap.dcs[0].info.params.name, "json-dc");
}

#[test]
fn bound_thread_shows_in_procs() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::start();
    ok(node.dvs(&["dc", "init", "--id", "2", "procs"]));
    let ipc = dvk::Dvk::connect(&node.socket)?.tbind(2, dvk::Endpoint(5))?;
    assert_eq!(ipc.endpoint().p_nr(), 5);

    let out = ok(node.dvs(&["status", "--dc", "2"]));
    let procs = table(&out, "PROCS");
    assert_eq!(
        procs[0],
        [
            "DC", "p_nr", "endp", "lpid", "node", "flag", "misc", "getf", "sndt", "wmig", "prxy",
            "name"
        ]
    );
    let row = procs
        .iter()
        .find(|r| r.get(1) == Some(&"5"))
        .unwrap_or_else(|| panic!("no row for p_nr 5:\n{out}"));
    assert_eq!(row[0], "2");
    assert_eq!(row[2], ipc.endpoint().to_string());
    assert_eq!(row[3], std::process::id().to_string());
    assert_eq!(row[4], "0");
    assert_eq!(row[5], "-", "not in an IPC call");
    assert_eq!(row[6], "LP", "local, privileged (system process slot)");
    assert_eq!(&row[7..11], ["-", "-", "0", "-"]);
    assert!(out.contains("bound=1"), "{out}");
    let stats = table(&out, "STATS");
    assert_eq!(stats[0], ["DC", "lsnt", "rsnt", "lcopy", "rcopy"]);
    assert_eq!(stats[1], ["2", "0", "0", "0", "0"]);

    // Column alignment: every cell of the row starts under its header.
    let lines: Vec<&str> = out.lines().collect();
    let h = lines
        .iter()
        .position(|l| l.starts_with("DC  p_nr"))
        .ok_or("no PROCS header")?;
    assert_eq!(lines[h].len(), lines[h].trim_end().len());
    let lpid_end = lines[h].find("lpid").ok_or("no lpid")? + 4;
    let pid = std::process::id().to_string();
    assert_eq!(
        lines[h + 1].find(&pid).map(|i| i + pid.len()),
        Some(lpid_end)
    );

    drop(ipc);
    Ok(())
}

#[test]
fn stop_without_daemon_fails() {
    let node = Node::unstarted();
    let err = fails(node.dvs(&["node", "stop"]));
    assert_eq!(
        err,
        format!(
            "dvs: no node daemon is running on {}\n",
            node.socket.display()
        )
    );
    let err = fails(node.dvs(&["status"]));
    assert_eq!(
        err,
        format!(
            "dvs: no node daemon is running on {} (start one with `dvs node start`)\n",
            node.socket.display()
        )
    );
}

#[test]
fn stop_removes_the_socket() {
    let mut node = Node::start();
    let out = ok(node.dvs(&["node", "stop"]));
    assert_eq!(
        out,
        format!("dvkd stopped (pid {})\n", node.pid.unwrap_or(-1))
    );
    assert!(!node.socket.exists());
    node.pid = None;
    // And it can be started again on the same socket.
    let again = ok(node.dvs(&["node", "start"]));
    assert!(again.starts_with("dvkd started"), "{again}");
    node.pid = again
        .strip_prefix("dvkd started (pid ")
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.parse().ok());
}

#[test]
fn usage_errors_exit_2() {
    let node = Node::unstarted();
    let o = node.dvs(&["dc", "init"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = node.dvs(&["dc", "init", "x", "--max-copylen", "lots"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = node.dvs(&["status", "--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("misc"), "{}", stdout(&o));
}

#[test]
fn foreground_stops_on_sigterm() {
    let node = Node::unstarted();
    let mut child = Command::new(DVS)
        .args(["node", "start", "--foreground", "--socket"])
        .arg(&node.socket)
        .env("DVS_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dvs node start --foreground");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);

    let t0 = Instant::now();
    while dvk::Dvk::connect(&node.socket).is_err() {
        if t0.elapsed() > Duration::from_secs(5) || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!("foreground daemon did not start: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ok(node.dvs(&["status"]));

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("foreground daemon did not exit within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().expect("collect output");
    assert!(status.success(), "exit status {status}: {}", stderr(&out));
    assert!(!node.socket.exists(), "socket left behind");
    assert!(stderr(&out).contains("dvkd listening"), "{}", stderr(&out));
}

#[test]
fn node_start_reads_a_cluster_configuration() {
    let mut node = Node::unstarted();
    let cfg = node.dir.path().join("cluster.toml");
    // The proxies listen on the node's address: a free port on loopback.
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let good = format!(
        "[cluster]\nname = \"lab\"\n\n\
         [[node]]\nid = 0\nname = \"alpha\"\naddress = \"127.0.0.1\"\n\n\
         [[node]]\nid = 1\nname = \"beta\"\naddress = \"127.0.0.2\"\n\n\
         [[dc]]\nname = \"web\"\nnodes = [0, 1]\nroot = \"/\"\n\n\
         [proxy]\nport = {port}\n"
    );
    let good = good.as_str();
    let cfg_arg = cfg.to_str().expect("utf-8 path");

    // Errors name the file, line and column, and start nothing.
    std::fs::write(&cfg, good.replace("nodes = [0, 1]", "nodes = [0, 4]")).expect("write");
    let err = fails(node.dvs(&["node", "start", "--config", cfg_arg]));
    assert!(
        err.contains(&format!("{cfg_arg}:16:")) && err.contains("node 4 is not defined"),
        "{err}"
    );
    std::fs::write(&cfg, good.replace("address", "adress")).expect("write");
    let err = fails(node.dvs(&["node", "start", "--config", cfg_arg]));
    assert!(
        err.contains(&format!("{cfg_arg}:7:")) && err.contains("adress"),
        "{err}"
    );
    std::fs::write(&cfg, good).expect("write");
    let err = fails(node.dvs(&["node", "start", "--config", cfg_arg, "--node", "2"]));
    assert!(err.contains("node 2 is not defined"), "{err}");
    // An address that is not this machine's: the proxies cannot listen.
    std::fs::write(&cfg, good.replace("127.0.0.2", "192.0.2.1")).expect("write");
    let err = fails(node.dvs(&["node", "start", "--config", cfg_arg, "--node", "1"]));
    assert!(
        err.contains("cannot listen for proxies on 192.0.2.1"),
        "{err}"
    );
    std::fs::write(&cfg, good).expect("write");
    assert!(!node.socket.exists(), "a daemon started despite the errors");

    // A good file: node 1 knows both nodes by name and runs DC `web`.
    let out = ok(node.dvs(&["node", "start", "--config", cfg_arg, "--node", "1"]));
    node.pid = out
        .strip_prefix("dvkd started (pid ")
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.parse::<i32>().ok());
    let status = ok(node.dvs(&["status", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(json["info"]["node"], 1);
    let names: Vec<&str> = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    assert_eq!(json["dcs"][0]["info"]["params"]["name"], "web");
    assert_eq!(json["dcs"][0]["info"]["params"]["nodes"], 3);
}
