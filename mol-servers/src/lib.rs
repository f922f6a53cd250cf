//! # mol-servers — MoL, the multi-server virtual OS of dvs
//!
//! Each server is a thread bound to a well-known endpoint of a DC:
//!
//! * [`pm`] (endpoint 0): DC-global PIDs, fork/exit/exec/wait, process
//!   groups and sessions, signals.
//! * [`fs`] (endpoint 1): every process's descriptor table, files,
//!   directories, pipes, the console, readiness.
//! * [`systask`] (endpoint `SYSTASK(node)`): acts on the host for the
//!   others (binding new processes, starting programs on its node, host
//!   signals, exit statuses, reaping).
//!
//! Programs reach them through the shim with the protocol in [`abi`].

#![warn(missing_docs)]

pub mod abi;
pub mod fs;
pub mod mol;
pub mod pm;
pub mod server;
pub mod slots;
pub mod slots_group;
pub mod spawn;
pub mod systask;
