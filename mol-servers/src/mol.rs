//! Starting the MoL servers of a DC on this node.

use crate::fs::{self, ConsoleFds, FsConfig, Publish};
use crate::{pm, systask};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// What the servers of a DC need.
pub struct MolConfig {
    /// This node's id.
    pub node: i32,
    /// The DC root: files of the DC come from this host directory.
    pub root: PathBuf,
    /// The console (the terminal of dvs-exec), if any.
    pub console: Option<ConsoleFds>,
    /// Published ports (`dvs-exec --publish`).
    pub publish: Vec<Publish>,
}

/// Starts SYSTASK, PM and FS for DC `dcid` of the node daemon at `socket`.
/// They run until the DC ends.
pub fn start(socket: &Path, dcid: i32, cfg: MolConfig) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut threads = vec![systask::start(socket, dcid, cfg.node)?];
    threads.extend(fs::start(
        socket,
        dcid,
        FsConfig {
            root: cfg.root,
            console: cfg.console,
            publish: cfg.publish,
        },
    )?);
    threads.push(pm::start(socket, dcid, cfg.node)?);
    Ok(threads)
}
