//! Names, addresses and paths of the testbed's objects.
//!
//! Everything the testbed creates is named from these functions, so that
//! `dvs testbed down` can find it again after a crash or a half-finished
//! `up`: network namespaces `dvs-n<i>`, host-side veth ends `dvs-n<i>h`,
//! the bridge `dvs-br0`, and the state directory `/run/dvs-testbed`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Host directory holding the testbed's state (a private bind mount, so
/// that mount-namespace files can live in it).
pub const STATE_DIR: &str = "/run/dvs-testbed";
/// The bridge that links the nodes' veths.
pub const BRIDGE: &str = "dvs-br0";
/// Prefix of the nodes' network namespaces.
pub const NETNS_PREFIX: &str = "dvs-n";
/// Most nodes a testbed can have (the DVS's default `nr_nodes`).
pub const MAX_NODES: usize = 32;
/// The first three octets of the testbed's /24.
const SUBNET: [u8; 3] = [10, 213, 0];

/// Network namespace of node `i`.
pub fn netns(i: usize) -> String {
    format!("{NETNS_PREFIX}{i}")
}

/// Node index of a network namespace name, if it is one of ours.
pub fn node_of_netns(name: &str) -> Option<usize> {
    name.strip_prefix(NETNS_PREFIX)?.parse().ok()
}

/// The bind-mounted network namespace file of node `i`.
pub fn netns_file(i: usize) -> PathBuf {
    PathBuf::from(format!("/run/netns/{}", netns(i)))
}

/// Host-side veth end of node `i` (enslaved to the bridge).
pub fn veth_host(i: usize) -> String {
    format!("{NETNS_PREFIX}{i}h")
}

/// Address of node `i` (`10.213.0.<i+1>`).
pub fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], (i + 1) as u8)
}

/// The bridge's own address (the host side of the testbed).
pub fn bridge_address() -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 254)
}

/// Whether `a` is inside the testbed's /24.
pub fn in_subnet(a: Ipv4Addr) -> bool {
    a.octets()[..3] == SUBNET
}

/// Node `i`'s directory on the host: Corosync's configuration, state and
/// log (bind-mounted over `/var/lib/corosync` inside the node).
pub fn node_dir(i: usize) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("n{i}"))
}

/// Node `i`'s persistent mount namespace (a bind-mounted nsfs file).
pub fn mount_ns(i: usize) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("n{i}.mnt"))
}

/// The file that records how many nodes the testbed was built with.
pub fn nodes_file() -> PathBuf {
    PathBuf::from(STATE_DIR).join("nodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(netns(3), "dvs-n3");
        assert_eq!(node_of_netns("dvs-n3"), Some(3));
        assert_eq!(node_of_netns("dvs-nx"), None);
        assert_eq!(node_of_netns("other"), None);
        assert_eq!(address(0).to_string(), "10.213.0.1");
        assert!(in_subnet(address(31)));
        assert!(!in_subnet(Ipv4Addr::new(10, 0, 0, 1)));
    }
}
