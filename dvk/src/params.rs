//! Configuration and information records of the DVS, its DCs and processes.

use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use serde::{Deserialize, Serialize};

/// DVS-wide parameters (`dvs_init`). The defaults are the prototype's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvsParams {
    /// Maximum number of nodes.
    pub nr_nodes: i32,
    /// Maximum number of DCs.
    pub nr_dcs: i32,
    /// Maximum processes (system + user) per DC.
    pub nr_procs: i32,
    /// Maximum tasks per DC.
    pub nr_tasks: i32,
    /// Maximum system processes per DC (a prefix of the process range).
    pub nr_sysprocs: i32,
    /// Largest single chunk of a copy, in bytes.
    pub max_copybuf: u32,
    /// Largest copy, in bytes.
    pub max_copylen: u32,
}

impl Default for DvsParams {
    fn default() -> Self {
        DvsParams {
            nr_nodes: 32,
            nr_dcs: 32,
            nr_procs: 221,
            nr_tasks: 35,
            nr_sysprocs: 64,
            max_copybuf: 64 * 1024,
            max_copylen: 1024 * 1024,
        }
    }
}

impl DvsParams {
    /// Checks the parameters for consistency.
    pub fn validate(&self) -> Result<()> {
        let ok = self.nr_nodes > 0
            && self.nr_nodes <= 1024
            && self.nr_dcs > 0
            && self.nr_dcs <= 1024
            && self.nr_procs > 0
            && self.nr_procs < Endpoint::NONE.0
            && self.nr_tasks >= 2
            && self.nr_tasks < 0x7000
            && self.nr_sysprocs >= 0
            && self.nr_sysprocs <= self.nr_procs
            && self.max_copybuf > 0
            && self.max_copylen >= self.max_copybuf;
        if ok {
            Ok(())
        } else {
            Err(DvkError::BadValue)
        }
    }
}

/// Parameters of one DC (`dc_init`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcParams {
    /// DC id, `0..nr_dcs`.
    pub dcid: i32,
    /// Name, for status and for `--dc NAME` lookups.
    pub name: String,
    /// Processes (system + user) in this DC, at most the DVS limit.
    pub nr_procs: i32,
    /// Tasks in this DC, at most the DVS limit.
    pub nr_tasks: i32,
    /// System processes in this DC.
    pub nr_sysprocs: i32,
    /// Largest copy in this DC, at most the DVS limit.
    pub max_copylen: u32,
    /// Nodes the DC may span (bitmap by node id).
    pub nodes: u64,
    /// Endpoint to notify when any process of the DC ends without unbinding
    /// and has no warn endpoint of its own (`NONE` for nobody).
    pub warn2proc: Endpoint,
}

impl DcParams {
    /// DC parameters inheriting the DVS limits.
    pub fn new(dcid: i32, name: &str, dvs: &DvsParams) -> DcParams {
        DcParams {
            dcid,
            name: name.to_string(),
            nr_procs: dvs.nr_procs,
            nr_tasks: dvs.nr_tasks,
            nr_sysprocs: dvs.nr_sysprocs,
            max_copylen: dvs.max_copylen,
            nodes: 1,
            warn2proc: Endpoint::NONE,
        }
    }

    /// Checks the parameters against the DVS limits.
    pub fn validate(&self, dvs: &DvsParams) -> Result<()> {
        if self.dcid < 0 || self.dcid >= dvs.nr_dcs {
            return Err(DvkError::BadDcId);
        }
        let ok = self.nr_procs > 0
            && self.nr_procs <= dvs.nr_procs
            && self.nr_tasks >= 2
            && self.nr_tasks <= dvs.nr_tasks
            && self.nr_sysprocs >= 0
            && self.nr_sysprocs <= self.nr_procs
            && self.max_copylen > 0
            && self.max_copylen <= dvs.max_copylen
            && !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if ok {
            Ok(())
        } else {
            Err(DvkError::BadValue)
        }
    }

    /// Number of slots (tasks + processes).
    pub fn nr_slots(&self) -> usize {
        (self.nr_tasks + self.nr_procs) as usize
    }

    /// Slot index of `p_nr`, if it is a valid, bindable slot of this DC.
    pub fn slot_of(&self, p_nr: i32) -> Option<usize> {
        if p_nr == Endpoint::HARDWARE.0 || p_nr < -self.nr_tasks || p_nr >= self.nr_procs {
            None
        } else {
            Some((p_nr + self.nr_tasks) as usize)
        }
    }

    /// `p_nr` of a slot index.
    pub fn p_nr_of(&self, slot: usize) -> i32 {
        slot as i32 - self.nr_tasks
    }

    /// Whether `p_nr` is privileged by default (tasks and system processes).
    pub fn privileged_by_default(&self, p_nr: i32) -> bool {
        p_nr < self.nr_sysprocs
    }
}

/// How an endpoint is known on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcKind {
    /// Runs on this node.
    Local,
    /// Runs on another node.
    Remote,
    /// Local standby of a primary on another node; behaves as Remote.
    Backup,
    /// Active replica registered on several nodes.
    Replica,
}

impl ProcKind {
    /// Encoding in the shared table's flag word.
    pub(crate) fn bits(self) -> u32 {
        match self {
            ProcKind::Local => 0,
            ProcKind::Remote => 1,
            ProcKind::Backup => 2,
            ProcKind::Replica => 3,
        }
    }

    pub(crate) fn from_bits(b: u32) -> ProcKind {
        match b & 3 {
            0 => ProcKind::Local,
            1 => ProcKind::Remote,
            2 => ProcKind::Backup,
            _ => ProcKind::Replica,
        }
    }
}

/// Privilege levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PrivLevel {
    /// Ordinary process: IPC only.
    User,
    /// System server.
    Server,
    /// Task.
    Task,
    /// Kernel level.
    Kernel,
}

/// Bits of [`PrivRecord::ipc_mask`], one per IPC call.
pub mod ipc_call {
    /// `send`.
    pub const SEND: u32 = 1 << 0;
    /// `receive`.
    pub const RECEIVE: u32 = 1 << 1;
    /// `sendrec`.
    pub const SENDREC: u32 = 1 << 2;
    /// `notify`.
    pub const NOTIFY: u32 = 1 << 3;
    /// `rcvrqst`.
    pub const RCVRQST: u32 = 1 << 4;
    /// `reply`.
    pub const REPLY: u32 = 1 << 5;
    /// `vcopy`.
    pub const VCOPY: u32 = 1 << 6;
    /// Every call.
    pub const ALL: u32 = 0x7f;
}

/// The privilege record of an endpoint (`setpriv`/`getpriv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivRecord {
    /// Endpoint notified when this one ends without unbinding (`NONE` for nobody).
    pub warn: Endpoint,
    /// Privilege level: `User` may only do IPC.
    pub level: PrivLevel,
    /// Allowed IPC calls, see [`ipc_call`].
    pub ipc_mask: u32,
    /// Allowed kernel calls (for the VOS; not interpreted by the DVK).
    pub call_mask: u64,
}

impl PrivRecord {
    /// The default record for an endpoint.
    pub fn default_for(privileged: bool) -> PrivRecord {
        PrivRecord {
            warn: Endpoint::NONE,
            level: if privileged {
                PrivLevel::Server
            } else {
                PrivLevel::User
            },
            ipc_mask: ipc_call::ALL,
            call_mask: if privileged { u64::MAX } else { 0 },
        }
    }

    /// Whether the record grants management calls, notify and third-party vcopy.
    pub fn privileged(&self) -> bool {
        self.level > PrivLevel::User
    }
}

/// `getdvsinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvsInfo {
    /// This node's id.
    pub node: i32,
    /// The parameters.
    pub params: DvsParams,
    /// DVK version string.
    pub version: String,
    /// Daemon host PID.
    pub daemon_pid: i32,
    /// Control socket path.
    pub socket: String,
}

/// `getdcinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcInfo {
    /// The DC parameters.
    pub params: DcParams,
    /// Whether the DC is running.
    pub running: bool,
    /// Number of bound endpoints.
    pub nr_bound: usize,
}

/// `getprocinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcInfo {
    /// DC id.
    pub dcid: i32,
    /// Slot number.
    pub p_nr: i32,
    /// Endpoint.
    pub endpoint: Endpoint,
    /// Host PID (thread group id); 0 for remote endpoints.
    pub lpid: i32,
    /// Host thread id.
    pub tid: i32,
    /// Node the endpoint runs on.
    pub node: i32,
    /// How this node knows the endpoint.
    pub kind: ProcKind,
    /// Privilege record.
    pub privilege: PrivRecord,
    /// Whether traffic to/from it is frozen by `migr_start`.
    pub migrating: bool,
    /// The IPC state: `"-"`, `"SEND"`, `"RECV"`, `"SNDREC"`, ...
    pub state: String,
    /// Endpoint it waits to receive from (`NONE` if not receiving).
    pub getf: Endpoint,
    /// Endpoint it is sending to (`NONE` if not sending).
    pub sndt: Endpoint,
    /// Name (host command name).
    pub name: String,
    /// Messages sent to local endpoints.
    pub lsnt: u64,
    /// Messages sent to remote endpoints.
    pub rsnt: u64,
    /// Copies between local endpoints.
    pub lcopy: u64,
    /// Copies involving remote endpoints.
    pub rcopy: u64,
}
