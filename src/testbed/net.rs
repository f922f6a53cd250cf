//! The testbed's network: one bridge on the host, and per node a network
//! namespace joined to it by a veth pair.

use super::host::{run, try_run};
use super::layout;
use anyhow::bail;

/// Fails if the testbed's subnet is already in use on the host by
/// something other than our bridge.
pub fn check_subnet_free() -> anyhow::Result<()> {
    let out = run("ip", &["-o", "-4", "addr", "show"])?;
    for line in out.lines() {
        let mut words = line.split_whitespace();
        let ifname = words.nth(1).unwrap_or("");
        if ifname == layout::BRIDGE {
            continue;
        }
        let Some(cidr) = line.split_whitespace().skip_while(|w| *w != "inet").nth(1) else {
            continue;
        };
        let addr = cidr.split('/').next().unwrap_or("");
        if let Ok(a) = addr.parse() {
            if layout::in_subnet(a) {
                bail!(
                    "the testbed's subnet {}/24 is already used by interface {ifname} ({cidr})",
                    layout::bridge_address()
                );
            }
        }
    }
    Ok(())
}

/// Creates the bridge with the host's testbed address.
pub fn create_bridge() -> anyhow::Result<()> {
    run("ip", &["link", "add", layout::BRIDGE, "type", "bridge"])?;
    let addr = format!("{}/24", layout::bridge_address());
    run("ip", &["addr", "add", &addr, "dev", layout::BRIDGE])?;
    run("ip", &["link", "set", layout::BRIDGE, "up"])?;
    Ok(())
}

/// Creates node `i`'s namespace, its veth pair (`eth0` inside) and
/// addresses, and brings everything up.
pub fn create_node(i: usize) -> anyhow::Result<()> {
    let ns = layout::netns(i);
    let host_end = layout::veth_host(i);
    let addr = format!("{}/24", layout::address(i));
    run("ip", &["netns", "add", &ns])?;
    run(
        "ip",
        &[
            "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ],
    )?;
    run(
        "ip",
        &["link", "set", &host_end, "master", layout::BRIDGE, "up"],
    )?;
    run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
    run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
    run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Our network namespaces that exist now (whatever state they are in).
pub fn existing_namespaces() -> Vec<String> {
    let out = run("ip", &["netns", "list"]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| layout::node_of_netns(n).is_some())
        .map(str::to_owned)
        .collect()
}

/// Host pids of every process inside network namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<i32> {
    run("ip", &["netns", "pids", ns])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether a link named `name` exists in the host namespace.
pub fn link_exists(name: &str) -> bool {
    try_run("ip", &["link", "show", "dev", name])
}

/// Our host-side veth ends that exist now.
pub fn existing_veths() -> Vec<String> {
    let out = run("ip", &["-o", "link", "show"]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_owned())
        .filter(|n| {
            n.strip_suffix('h')
                .is_some_and(|base| layout::node_of_netns(base).is_some())
        })
        .collect()
}

/// Removes a network namespace (its veth pair goes with it).
pub fn delete_namespace(ns: &str) -> bool {
    try_run("ip", &["netns", "delete", ns])
}

/// Removes a host link.
pub fn delete_link(name: &str) -> bool {
    try_run("ip", &["link", "delete", name])
}
