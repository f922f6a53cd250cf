//! Per-node mount namespaces.
//!
//! Several Corosync instances can share one machine only if each has its
//! own `/run` (pid file), `/dev/shm` (libqb's IPC) and `/var/lib/corosync`
//! (ring state). Each node gets a persistent mount namespace, kept alive
//! by a bind mount of its nsfs file under the state directory, in which:
//! `/var/lib/corosync` is the node's host directory, and `/run` and
//! `/dev/shm` are private tmpfs (so each node's `dvkd` has its own
//! `/run/dvs/dvkd.sock`).

use super::host::{run, try_run};
use super::layout;
use anyhow::Context;
use std::path::Path;

/// Creates the state directory as a private bind mount (nsfs files may
/// only be bind-mounted onto a private mount).
pub fn prepare_state_dir() -> anyhow::Result<()> {
    let dir = layout::STATE_DIR;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir}"))?;
    if !is_mount_point(dir) {
        run("mount", &["--bind", dir, dir])?;
    }
    run("mount", &["--make-private", dir])?;
    Ok(())
}

/// Whether `path` is a mount point (listed in `/proc/self/mountinfo`).
pub fn is_mount_point(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(path)))
        .unwrap_or(false)
}

/// Creates node `i`'s mount namespace and its private mounts.
pub fn create_node(i: usize) -> anyhow::Result<()> {
    let dir = layout::node_dir(i);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ns = layout::mount_ns(i);
    std::fs::write(&ns, b"").with_context(|| format!("cannot create {}", ns.display()))?;
    let ns_arg = format!("--mount={}", ns.display());
    run("unshare", &[&ns_arg, "--propagation", "private", "true"])?;
    let script = format!(
        "set -e; mkdir -p /var/lib/corosync; mount --bind {} /var/lib/corosync; \
         mount -t tmpfs -o mode=0755 dvs-run /run; mkdir -p /run/dvs; \
         mount -t tmpfs -o mode=1777 dvs-shm /dev/shm",
        dir.display()
    );
    run("nsenter", &[&ns_arg, "--", "sh", "-c", &script])?;
    Ok(())
}

/// Releases node `i`'s mount namespace (its mounts go when the last
/// process inside has ended).
pub fn delete_node(i: usize) {
    let ns = layout::mount_ns(i);
    if ns.exists() {
        try_run("umount", &["-l", &ns.to_string_lossy()]);
    }
}

/// Removes the state directory and its bind mount.
pub fn remove_state_dir() -> anyhow::Result<()> {
    let dir = layout::STATE_DIR;
    if is_mount_point(dir) {
        try_run("umount", &["-l", dir]);
    }
    if Path::new(dir).exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {dir}"))?;
    }
    Ok(())
}
