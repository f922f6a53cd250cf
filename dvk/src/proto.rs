//! The control protocol between client processes and `dvkd`.
//!
//! Frames on a UNIX stream socket: a little-endian `u32` length followed by
//! a bincode-encoded [`Request`] or [`Response`]. File descriptors (shared
//! memory of tables, mailboxes and doorbells) travel as `SCM_RIGHTS` with
//! the frame. This channel is the control plane only: IPC between bound
//! processes never goes through it.

use crate::endpoint::Endpoint;
use crate::params::{DcInfo, DcParams, DvsInfo, DvsParams, PrivRecord, ProcInfo};
use serde::{Deserialize, Serialize};

/// Protocol version; the daemon refuses other versions.
pub const PROTOCOL_VERSION: u32 = 4;

/// Peers one `MapPeers` request may ask for (two descriptors each).
pub const MAX_PEERS_PER_MAP: usize = 4;

/// Largest frame accepted, in bytes.
pub const MAX_FRAME: usize = 16 << 20;

/// Who a bind call binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindTarget {
    /// The calling process (`bind`).
    Process,
    /// The calling thread only (`tbind`).
    Thread,
    /// Another local process, by host pid (`lclbind`).
    Pid(i32),
    /// An endpoint that runs on another node (`rmtbind`): IPC with it goes
    /// through the proxies.
    Remote(i32),
    /// A local process standing by for the primary on another node
    /// (`bkupbind`): IPC goes to the primary until it is bound again as
    /// Local.
    Backup {
        /// Host pid of the backup process.
        pid: i32,
        /// Node of the primary.
        node: i32,
    },
    /// A local replica of an endpoint that also runs on other nodes
    /// (`replbind`): IPC on this node goes to it.
    Replica(i32),
}

/// A request to the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// First frame of every connection: the calling thread and the protocol version.
    Hello {
        /// Host thread id of the caller.
        tid: i32,
        /// [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// `dvs_init`.
    DvsInit {
        /// Local node id.
        node: i32,
        /// Parameters.
        params: DvsParams,
    },
    /// `dvs_end`.
    DvsEnd,
    /// `getdvsinfo`.
    GetDvsInfo,
    /// `dc_init`.
    DcInit(DcParams),
    /// `dc_end`.
    DcEnd {
        /// DC id.
        dcid: i32,
    },
    /// `getdcinfo`.
    GetDcInfo {
        /// DC id.
        dcid: i32,
    },
    /// Finds a DC by name.
    DcLookup {
        /// DC name.
        name: String,
    },
    /// `bind`, `tbind`, `lclbind`.
    Bind {
        /// DC id.
        dcid: i32,
        /// Endpoint requested.
        ep: Endpoint,
        /// Who is bound.
        target: BindTarget,
    },
    /// `unbind`.
    Unbind {
        /// DC id.
        dcid: i32,
        /// Endpoint.
        ep: Endpoint,
    },
    /// `getprocinfo`.
    GetProcInfo {
        /// DC id.
        dcid: i32,
        /// Endpoint (or a bare slot number of generation 0).
        ep: Endpoint,
    },
    /// `wait4bind`: block until the caller is bound, then receive its binding.
    Wait4Bind {
        /// Timeout in milliseconds, `None` for no timeout.
        timeout_ms: Option<u64>,
    },
    /// `wait4bindep`.
    Wait4BindEp {
        /// DC id.
        dcid: i32,
        /// Endpoint awaited.
        ep: Endpoint,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// `wait4unbind`.
    Wait4Unbind {
        /// DC id.
        dcid: i32,
        /// Endpoint awaited.
        ep: Endpoint,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// `setpriv`.
    SetPriv {
        /// DC id.
        dcid: i32,
        /// Endpoint.
        ep: Endpoint,
        /// New record.
        record: PrivRecord,
    },
    /// `getpriv`.
    GetPriv {
        /// DC id.
        dcid: i32,
        /// Endpoint.
        ep: Endpoint,
    },
    /// `migr_start`.
    MigrStart {
        /// DC id.
        dcid: i32,
        /// Endpoint.
        ep: Endpoint,
    },
    /// `migr_rollback`.
    MigrRollback {
        /// DC id.
        dcid: i32,
        /// Endpoint.
        ep: Endpoint,
    },
    /// The thread binding the caller's connection acts as passes to thread
    /// `tid` of the same process; `tid == 0` parks it: it stays bound,
    /// to the process rather than to a thread, until a thread takes it
    /// again. A process reuses the endpoints of its ended threads this way.
    Retask {
        /// Host thread id of the caller's process, or 0.
        tid: i32,
    },
    /// `migr_commit`.
    MigrCommit {
        /// Host pid now running the endpoint (on the new node).
        pid: i32,
        /// DC id.
        dcid: i32,
        /// Endpoint.
        ep: Endpoint,
        /// New node.
        node: i32,
    },
    /// Maps DC peers: returns the read-only mailbox and the doorbell of
    /// each (at most [`MAX_PEERS_PER_MAP`]).
    MapPeers {
        /// DC id (the caller must be bound in it); `None`: the caller's
        /// own, which a task attaching asks for before it knows it.
        dcid: Option<i32>,
        /// Peer endpoints.
        eps: Vec<Endpoint>,
    },
    /// Everything `dvs status` shows.
    Status,
    /// Stops the daemon (after `dvs_end`).
    Shutdown,
    /// The caller, bound as `ep`, was interrupted by a signal while
    /// waiting for a reply: the endpoint it waits for gets a `Signal`
    /// notification.
    Interrupt {
        /// DC id.
        dcid: i32,
        /// The caller's endpoint.
        ep: Endpoint,
    },
    /// A `vcopy` between the caller (one side) and an endpoint of another
    /// node, carried by the proxies.
    RemoteCopy {
        /// DC id.
        dcid: i32,
        /// Source endpoint.
        src: Endpoint,
        /// Address in the source.
        src_addr: u64,
        /// Destination endpoint.
        dst: Endpoint,
        /// Address in the destination.
        dst_addr: u64,
        /// Bytes.
        len: u64,
    },
    /// Makes node `node` take part in DC `dcid` (created here): it creates
    /// the DC, registers this node's endpoints of the DC as remote ones,
    /// starts its own servers of the DC, and its endpoints are registered
    /// here.
    DcJoin {
        /// DC id.
        dcid: i32,
        /// The node that joins.
        node: i32,
    },
}

/// What a successful bind hands to the bound task (with fds: table,
/// mailbox, doorbell).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    /// DC parameters.
    pub dc: DcParams,
    /// The endpoint.
    pub ep: Endpoint,
    /// This node.
    pub node: i32,
}

/// Per-DC statistics (the prototype's `/proc/dvs/<DC>/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcStats {
    /// Local messages sent.
    pub lsnt: u64,
    /// Remote messages sent.
    pub rsnt: u64,
    /// Local copies.
    pub lcopy: u64,
    /// Remote copies.
    pub rcopy: u64,
}

/// One DC in a status snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DcStatus {
    /// `getdcinfo`.
    pub info: DcInfo,
    /// Bound endpoints.
    pub procs: Vec<ProcInfo>,
    /// Counters summed over the DC's endpoints.
    pub stats: DcStats,
}

/// One node in a status snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Node id.
    pub id: i32,
    /// Node name.
    pub name: String,
    /// Whether the node is up.
    pub up: bool,
    /// Proxy id serving the node (`None` for the local node).
    pub proxy: Option<i32>,
    /// DCs using the node.
    pub dcs: Vec<i32>,
}

/// One proxy pair in a status snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyStatus {
    /// Proxy id.
    pub id: i32,
    /// Proxy name.
    pub name: String,
    /// Nodes served.
    pub nodes: Vec<i32>,
    /// Whether connected.
    pub connected: bool,
}

/// Everything `dvs status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// `getdvsinfo`.
    pub info: DvsInfo,
    /// Nodes known to this node.
    pub nodes: Vec<NodeStatus>,
    /// Proxies of this node.
    pub proxies: Vec<ProxyStatus>,
    /// DCs on this node.
    pub dcs: Vec<DcStatus>,
}

/// A response from the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    /// Success without data.
    Ok,
    /// A DVK error code.
    Err(i32),
    /// An endpoint (bind results, `wait4bindep`).
    Endpoint(Endpoint),
    /// A DC id (`dc_init`, `DcLookup`).
    Dc(i32),
    /// A node id.
    Node(i32),
    /// `getdvsinfo`.
    DvsInfo(DvsInfo),
    /// `getdcinfo`.
    DcInfo(DcInfo),
    /// `getprocinfo`.
    ProcInfo(ProcInfo),
    /// `getpriv`.
    Priv(PrivRecord),
    /// `wait4bind` (fds: table, mailbox, doorbell).
    Granted(Grant),
    /// `MapPeers` (fds: mailbox read-only and doorbell of each peer, in
    /// the order asked).
    Peers {
        /// DC geometry so the client can check sizes.
        nslots: usize,
        /// Each peer's binding sequence number when it was mapped.
        seqs: Vec<u32>,
    },
    /// `Status`.
    Status(Box<StatusSnapshot>),
}
