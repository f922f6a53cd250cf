//! Starting the MoL servers of a DC on this node.

use crate::fs::{self, ConsoleFds, FsConfig, FsStarting, Publish};
use crate::server::Starting;
use crate::{pm, systask};
use dvk::membership::JoinGroup;
use dvk::DcParams;
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
    /// How SLOTS joins the DC's group when the DVS has other nodes
    /// (`dvk::membership::join_cpg`); `None` in a program that runs on
    /// single-node DVSs only.
    pub group: Option<JoinGroup>,
}

/// SYSTASK, PM and FS of a DC, binding ([`spawn`]).
pub struct MolStarting {
    systask: Starting,
    pm: Starting,
    fs: FsStarting,
}

impl MolStarting {
    /// Waits until every server is bound; returns their threads.
    pub fn ready(self) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut threads = self.fs.ready()?;
        threads.push(self.systask.ready()?);
        threads.push(self.pm.ready()?);
        Ok(threads)
    }
}

/// Starts SYSTASK, PM and FS for the DC of parameters `dc` (as created)
/// of the node daemon at `socket`, binding all at once. They run until
/// the DC ends.
pub fn spawn(socket: &Path, dc: &DcParams, cfg: MolConfig) -> std::io::Result<MolStarting> {
    let dcid = dc.dcid;
    let slots = crate::slots_group::start_founder(socket, dc, cfg.node, cfg.group);
    let systask = systask::spawn(socket, dcid, cfg.node, None, slots.clone())?;
    let pm = pm::spawn(socket, dcid, cfg.node, slots)?;
    let fs = fs::spawn(
        socket,
        dcid,
        FsConfig {
            root: cfg.root,
            console: cfg.console,
            publish: cfg.publish,
        },
    )?;
    Ok(MolStarting { systask, pm, fs })
}
