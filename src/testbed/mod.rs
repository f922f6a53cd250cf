//! `dvs testbed`: an N-node cluster on this machine, for users and tests.
//!
//! Each node is a network namespace joined to a host bridge by a veth pair
//! ([`net`]), with its own mount namespace ([`mounts`]) in which its own
//! Corosync instance ([`corosync`]) and its own `dvkd` run. `down` finds
//! every object by name ([`layout`]), so it also cleans up after a crash or
//! a half-finished `up`.

mod corosync;
mod host;
mod layout;
mod mounts;
mod net;

use crate::table::{Align, Table};
use anyhow::{bail, Context};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long `up` waits for the Corosync ring to form.
const RING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` lets processes end after `SIGTERM`.
const TERM_GRACE: Duration = Duration::from_secs(3);

fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the testbed needs root (network and mount namespaces)");
    }
    Ok(())
}

/// Number of nodes of the testbed that is up, if any.
fn current_nodes() -> Option<usize> {
    std::fs::read_to_string(layout::nodes_file())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether anything of a testbed exists (complete or not).
fn anything_exists() -> bool {
    std::path::Path::new(layout::STATE_DIR).exists()
        || !net::existing_namespaces().is_empty()
        || net::link_exists(layout::BRIDGE)
}

/// `dvs testbed up --nodes N`.
pub fn up(n: usize) -> anyhow::Result<()> {
    require_root()?;
    if n == 0 || n > layout::MAX_NODES {
        bail!("--nodes must be between 1 and {}", layout::MAX_NODES);
    }
    if anything_exists() {
        bail!(
            "a testbed is already up{}; run `dvs testbed down` first",
            current_nodes()
                .map(|k| format!(" ({k} nodes)"))
                .unwrap_or_default()
        );
    }
    for tool in [
        "ip",
        "nsenter",
        "unshare",
        "mount",
        "corosync",
        "corosync-cmapctl",
    ] {
        if which(tool).is_none() {
            bail!("`{tool}` is not installed (Debian: iproute2, util-linux, corosync)");
        }
    }
    net::check_subnet_free()?;
    let started = Instant::now();
    if let Err(e) = build(n) {
        let _ = down_quiet();
        return Err(e.context("testbed up failed; everything it created was removed"));
    }
    let mut t = Table::new(&[
        ("NODE", Align::Right),
        ("NETNS", Align::Left),
        ("ADDRESS", Align::Left),
        ("DVKD", Align::Left),
    ]);
    for i in 0..n {
        t.row(vec![
            i.to_string(),
            layout::netns(i),
            layout::address(i).to_string(),
            "/run/dvs/dvkd.sock".into(),
        ]);
    }
    crate::emit(&format!(
        "testbed up: {n} node(s), Corosync ring formed, in {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        t.render()
    ))
}

fn build(n: usize) -> anyhow::Result<()> {
    mounts::prepare_state_dir()?;
    std::fs::write(layout::nodes_file(), format!("{n}\n")).context("cannot record the nodes")?;
    net::create_bridge()?;
    let mut pids = Vec::new();
    for i in 0..n {
        net::create_node(i).with_context(|| format!("node {i}: network"))?;
        mounts::create_node(i).with_context(|| format!("node {i}: mount namespace"))?;
        pids.push(corosync::start(i, n).with_context(|| format!("node {i}: corosync"))?);
    }
    corosync::wait_for_membership(n, &pids, RING_TIMEOUT)?;
    for i in 0..n {
        start_dvkd(i).with_context(|| format!("node {i}: dvkd"))?;
    }
    Ok(())
}

/// Starts node `i`'s daemon with `dvs node start` inside the node.
fn start_dvkd(i: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the dvs executable")?;
    let out = host::in_node(i, &exe.to_string_lossy())
        .args(["node", "start", "--node", &i.to_string()])
        .env_remove("DVS_SOCKET")
        .stdin(Stdio::null())
        .output()
        .context("cannot run `dvs node start` in the node")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// `dvs testbed down`: removes every testbed object that exists.
pub fn down() -> anyhow::Result<()> {
    require_root()?;
    if !anything_exists() {
        return crate::emit("no testbed to remove\n");
    }
    let (nodes, procs) = down_quiet()?;
    crate::emit(&format!(
        "testbed down: removed {nodes} node(s), ended {procs} process(es)\n"
    ))
}

/// Removes everything; returns (nodes removed, processes ended).
fn down_quiet() -> anyhow::Result<(usize, usize)> {
    let mut nodes: Vec<usize> = net::existing_namespaces()
        .iter()
        .filter_map(|n| layout::node_of_netns(n))
        .collect();
    if let Ok(dir) = std::fs::read_dir(layout::STATE_DIR) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(i) = name.strip_prefix('n').and_then(|s| s.parse().ok()) {
                nodes.push(i);
            }
        }
    }
    nodes.sort_unstable();
    nodes.dedup();
    let procs = end_processes(&nodes);
    for &i in &nodes {
        mounts::delete_node(i);
        if layout::netns_file(i).exists() {
            net::delete_namespace(&layout::netns(i));
        }
    }
    for veth in net::existing_veths() {
        net::delete_link(&veth);
    }
    if net::link_exists(layout::BRIDGE) {
        net::delete_link(layout::BRIDGE);
    }
    mounts::remove_state_dir()?;
    let left = net::existing_namespaces();
    if !left.is_empty() || net::link_exists(layout::BRIDGE) {
        bail!(
            "could not remove everything: namespaces {left:?}, bridge {}",
            if net::link_exists(layout::BRIDGE) {
                "present"
            } else {
                "gone"
            }
        );
    }
    Ok((nodes.len(), procs))
}

/// Ends every process inside the nodes' network namespaces: `SIGTERM`,
/// then `SIGKILL` for those still there after a grace period.
fn end_processes(nodes: &[usize]) -> usize {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let pids = || -> Vec<i32> {
        nodes
            .iter()
            .flat_map(|&i| net::pids_in(&layout::netns(i)))
            .collect()
    };
    let first = pids();
    for &p in &first {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + TERM_GRACE;
    while Instant::now() < deadline && first.iter().any(|&p| host::alive(p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in pids() {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    first.len()
}

/// Parses a node argument: `2` or `n2`.
fn parse_node(s: &str) -> anyhow::Result<usize> {
    s.strip_prefix('n')
        .unwrap_or(s)
        .parse()
        .with_context(|| format!("`{s}` is not a node (use its number, e.g. 0 or n0)"))
}

/// `dvs testbed exec NODE -- CMD…`: runs CMD inside the node (its network
/// and mount namespaces); returns only if it cannot be started.
pub fn exec(node: &str, cmd: &[String]) -> anyhow::Result<()> {
    require_root()?;
    let i = parse_node(node)?;
    let Some(n) = current_nodes() else {
        bail!("no testbed is up (start one with `dvs testbed up`)");
    };
    if i >= n || !layout::mount_ns(i).exists() {
        bail!("the testbed has no node {i} (nodes 0..{})", n - 1);
    }
    let Some((prog, args)) = cmd.split_first() else {
        bail!("no command given (usage: dvs testbed exec NODE -- CMD ARGS…)");
    };
    let err = host::in_node(i, prog)
        .args(args)
        .env_remove("DVS_SOCKET")
        .exec();
    Err(anyhow::anyhow!("cannot run `{prog}` in node {i}: {err}"))
}

/// `dvs testbed status`.
pub fn status() -> anyhow::Result<()> {
    let Some(n) = current_nodes() else {
        bail!("no testbed is up (start one with `dvs testbed up`)");
    };
    let exe = std::env::current_exe().context("cannot find the dvs executable")?;
    let mut t = Table::new(&[
        ("NODE", Align::Right),
        ("NETNS", Align::Left),
        ("ADDRESS", Align::Left),
        ("COROSYNC", Align::Left),
        ("MEMBERS", Align::Left),
        ("DVKD", Align::Left),
    ]);
    for i in 0..n {
        let pid: i32 = std::fs::read_to_string(layout::node_dir(i).join("corosync.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let corosync = if host::alive(pid) {
            format!("up (pid {pid})")
        } else {
            "down".into()
        };
        let members = corosync::members(i)
            .map(|m| {
                m.iter()
                    .map(|id| format!("n{}", id - 1))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_else(|_| "-".into());
        let dvkd = host::in_node(i, &exe.to_string_lossy())
            .args(["status", "--json"])
            .env_remove("DVS_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        t.row(vec![
            i.to_string(),
            layout::netns(i),
            layout::address(i).to_string(),
            corosync,
            members,
            if dvkd { "up" } else { "down" }.into(),
        ]);
    }
    crate::emit(&t.render())
}

/// The full path of `tool` on `$PATH` (plus the sbin directories).
fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| std::path::Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_arguments() {
        assert_eq!(parse_node("2").unwrap(), 2);
        assert_eq!(parse_node("n3").unwrap(), 3);
        assert!(parse_node("x").is_err());
    }
}
