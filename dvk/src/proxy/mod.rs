//! Transport between nodes: the proxies.
//!
//! A proxy pair (sender and receiver) per remote node carries M3-IPC
//! messages and `vcopy` data over TCP. What travels is a stream of
//! [`frame::Frame`]s: a fixed, versioned binary header (DESIGN §3) plus an
//! optional payload.

pub mod frame;
