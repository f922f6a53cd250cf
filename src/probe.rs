//! Talking to a DC's servers from the command line: the tool binds a
//! spare system-process endpoint of the DC for the duration of a request.

use crate::client::{connect, DvkContext};
use dvk::{Dvk, DvkError, Endpoint, Ipc};
use mol_servers::abi::{self, Call};
use std::path::{Path, PathBuf};

/// First and last slot tried for the probe endpoint.
const PROBE_SLOTS: std::ops::Range<i32> = 40..64;

/// Node daemons to look at: the given socket, or every daemon in the
/// user's directory of embedded nodes (`/run/dvs` for root, see
/// [`dvk::client::embedded_dir`]) when the default one is not running
/// (dvs-exec runs an embedded daemon per run there).
pub fn sockets(socket: &Path, explicit: bool) -> Vec<PathBuf> {
    if explicit || Dvk::connect(socket).is_ok() {
        return vec![socket.to_path_buf()];
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dvk::client::embedded_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .filter(|p| Dvk::connect(p).is_ok())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    if found.is_empty() {
        vec![socket.to_path_buf()]
    } else {
        found
    }
}

/// DCs of a daemon that run MoL (PM is bound): `(id, name)`.
pub fn mol_dcs(dvk: &Dvk) -> anyhow::Result<Vec<(i32, String)>> {
    let st = dvk.status().doing("cannot read the node status")?;
    Ok(st
        .dcs
        .iter()
        .filter(|d| d.procs.iter().any(|p| p.endpoint == abi::PM))
        .map(|d| (d.info.params.dcid, d.info.params.name.clone()))
        .collect())
}

/// A temporary privileged endpoint in a DC.
pub struct Probe {
    ipc: Ipc,
}

impl Probe {
    /// Binds the calling thread to a free spare endpoint of DC `dcid`.
    pub fn join(socket: &Path, dcid: i32) -> anyhow::Result<Probe> {
        let dvk = connect(socket)?;
        for p in PROBE_SLOTS {
            match dvk.tbind(dcid, Endpoint(p)) {
                Ok(ipc) => return Ok(Probe { ipc }),
                Err(DvkError::SlotUsed) => continue,
                Err(e) => return Err(e).doing(format_args!("cannot join DC {dcid}")),
            }
        }
        anyhow::bail!("DC {dcid} has no spare endpoint for the command-line tool")
    }

    /// A request to a server; the reply's value or the errno.
    pub fn call(&self, to: Endpoint, c: Call, args: &[u64]) -> anyhow::Result<Result<i64, i32>> {
        let mut m = abi::request(c, args);
        self.ipc.sendrec(to, &mut m).doing(format_args!(
            "{} did not answer",
            if to == abi::PM { "PM" } else { "the server" }
        ))?;
        Ok(abi::result(&m))
    }

    /// PM's process table.
    pub fn ps(&self) -> anyhow::Result<Vec<mol_servers::pm::table::PsRow>> {
        self.json(abi::PM, Call::PmPs, "PM")
    }

    /// The SLOTS view of node `node`'s SYSTASK.
    pub fn slots(&self, node: i32) -> anyhow::Result<mol_servers::slots_group::SlotsStatus> {
        self.json(abi::systask(node), Call::SysSlots, "SYSTASK")
    }

    /// A `[buf, len]` call answered with JSON of any length.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        to: Endpoint,
        call: Call,
        who: &str,
    ) -> anyhow::Result<T> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match self.call(to, call, &[buf.as_mut_ptr() as u64, buf.len() as u64])? {
                Ok(n) => n as usize,
                Err(e) => anyhow::bail!("{who}: {}", std::io::Error::from_raw_os_error(e)),
            };
            if n <= buf.len() {
                return Ok(serde_json::from_slice(&buf[..n])?);
            }
            buf.resize(n, 0);
        }
    }
}
