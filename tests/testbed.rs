//! `dvs testbed`: a real 3-node cluster on this machine (network
//! namespaces, veths, one Corosync and one dvkd per node), checked from the
//! outside, then removed. Needs root and Debian's `corosync`.

use std::process::Command;
use std::time::{Duration, Instant};

mod cluster;
use cluster::{dvs, in_node, lock, text, Down, DVS};

fn members_seen_by(node: &str) -> String {
    let o = in_node(node, &["corosync-cmapctl", "-b", "runtime.members"]);
    let mut joined: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.ends_with("= joined"))
        .filter_map(|l| l.split('.').nth(2).map(str::to_owned))
        .collect();
    joined.sort();
    joined.join(",")
}

fn netns_list() -> String {
    let o = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn three_node_testbed_up_use_and_down() {
    let _lock = lock();
    let up = dvs(&["testbed", "up", "--nodes", "3"]);
    let _down = Down(3);
    assert!(up.status.success(), "up failed: {}", text(&up));

    // A second `up` refuses, and touches nothing.
    let again = dvs(&["testbed", "up"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));

    // Every node's Corosync sees the whole ring.
    for node in ["0", "1", "2"] {
        assert_eq!(
            members_seen_by(node),
            "1,2,3",
            "members seen by node {node}"
        );
    }

    // Each node has its own address, and its own dvkd reporting its node id.
    for (i, addr) in ["10.213.0.1", "10.213.0.2", "10.213.0.3"]
        .iter()
        .enumerate()
    {
        let node = i.to_string();
        let o = in_node(&node, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(addr),
            "{}",
            text(&o)
        );
        let o = in_node(&node, &[DVS, "status", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status JSON");
        assert_eq!(json["info"]["node"], i as i64, "node {i}: {json}");
        // The cluster configuration: all three nodes are known, and the
        // `testbed` DC spanning them exists on each.
        let ids: Vec<i64> = json["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["id"].as_i64())
            .collect();
        assert_eq!(ids, vec![0, 1, 2], "node {i}: {json}");
        assert_eq!(
            json["nodes"][i]["name"],
            format!("n{i}"),
            "node {i}: {json}"
        );
        let dcs = json["dcs"].as_array().expect("dcs");
        assert!(
            dcs.iter().any(|d| d["info"]["params"]["name"] == "testbed"),
            "node {i}: {json}"
        );
    }

    // Nodes do not share /run: node 0's files are not node 1's.
    let o = in_node("0", &["sh", "-c", "echo n0 > /run/dvs/mark"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = in_node("1", &["test", "-e", "/run/dvs/mark"]);
    assert_eq!(o.status.code(), Some(1), "node 1 sees node 0's /run");

    // Exit statuses pass through `testbed exec`; bad nodes are refused.
    assert_eq!(
        in_node("n2", &["sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    let o = in_node("9", &["true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no node 9"));

    // A node whose Corosync dies is seen leaving by the others, within
    // the token timeout (1 s) plus consensus.
    let pid = std::fs::read_to_string("/run/dvs-testbed/n2/corosync.pid").expect("pid file");
    let ok = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let start = Instant::now();
    while members_seen_by("0") != "1,2" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "node 0 still sees {}",
            members_seen_by("0")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(members_seen_by("1"), "1,2");

    // Down removes everything.
    let down = dvs(&["testbed", "down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(!netns_list().contains("dvs-n"), "left: {}", netns_list());
    let link = Command::new("ip")
        .args(["link", "show", "dev", "dvs-br0"])
        .output()
        .expect("ip");
    assert!(!link.status.success(), "the bridge is still there");
    assert!(!std::path::Path::new("/run/dvs-testbed").exists());
    let status = dvs(&["testbed", "status"]);
    assert_eq!(status.status.code(), Some(1));
}

#[test]
fn down_cleans_up_a_half_built_testbed() {
    let _lock = lock();
    let ip = |args: &[&str]| {
        let s = Command::new("ip").args(args).status().expect("ip");
        assert!(s.success(), "ip {args:?}");
    };
    ip(&["netns", "add", "dvs-n6"]);
    ip(&["link", "add", "dvs-br0", "type", "bridge"]);
    let _down = Down(3);
    let up = dvs(&["testbed", "up", "--nodes", "2"]);
    assert_eq!(up.status.code(), Some(1), "{}", text(&up));
    let down = dvs(&["testbed", "down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(!netns_list().contains("dvs-n"), "left: {}", netns_list());
}
