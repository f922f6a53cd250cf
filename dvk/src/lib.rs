//! # dvk — the Distributed Virtualization Kernel, in user space
//!
//! This crate is the client library of M3-IPC and the node daemon `dvkd`.
//!
//! * [`Dvk`] is a control connection to the local daemon: the management
//!   API (`dvs_init`, `dc_init`, `bind`, `lclbind`, `wait4bind`,
//!   `setpriv`, `migr_*`, status...).
//! * [`Ipc`] is a bound endpoint: `send`, `receive`, `sendrec`, `rcvrqst`,
//!   `reply`, `notify` and `vcopy`, with timed `_t` variants. Messages go
//!   directly between processes through shared memory; the daemon is not
//!   on the data path.
//! * [`daemon`] is `dvkd` itself.
//!
//! See `docs/ARCHITECTURE.md` for the design.

#![warn(missing_docs)]

pub mod client;
pub mod cluster;
mod conn;
pub mod daemon;
pub mod endpoint;
pub mod error;
mod forkwatch;
pub mod ipc;
pub mod layout;
pub mod membership;
pub mod message;
pub mod params;
pub mod proto;
pub mod proxy;
pub mod sys;
mod vcopy;
mod wait;
pub use wait::{
    in_ipc_wait, set_handler_pending, set_handler_runs, set_signal_policy, HandlerRuns,
};

pub use client::{socket_path, Dvk, PendingAttach, DEFAULT_SOCKET};
pub use endpoint::Endpoint;
pub use error::{DvkError, Result};
pub use ipc::Ipc;
pub use message::{Message, NotifyKind};
pub use params::{DcInfo, DcParams, DvsInfo, DvsParams, PrivLevel, PrivRecord, ProcInfo, ProcKind};
