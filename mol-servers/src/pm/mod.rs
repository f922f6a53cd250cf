//! PM, the process manager (endpoint 0): DC-global PIDs, fork/exec/exit,
//! wait, process groups and sessions, signals, and the process table that
//! `dvs ps` shows. PM answers for the DC's init (PID 1): orphans are
//! reparented to it and it reaps them.
//!
//! PM learns that a process ended from the DVK: the DC's warn endpoint is
//! PM, so the node daemon notifies PM when a bound process ends without
//! unbinding (which is how every process ends). PM then asks SYSTASK for
//! the host wait status, which the process keeps as a zombie until its
//! parent's `wait` is served.

mod ids;
mod lifecycle;
mod ps;
mod rexec;
mod signal;
pub mod table;
mod wait;

use crate::abi::{self, Call};
use crate::server::{self, Ctx, Handler, Service, Starting};
use crate::slots_group::SlotsGroup;
use dvk::{Dvk, Endpoint, NotifyKind};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use table::Table;

/// A `wait4` that is waiting for a child to end (or stop, or continue).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiter {
    /// Where the reply goes.
    pub reply_to: Endpoint,
    /// The waiting process.
    pub pid: i32,
    /// The `pid` argument of `wait4`.
    pub spec: i32,
    /// What it waits for: `WEXITED`, `WUNTRACED`, `WCONTINUED`.
    pub options: i32,
}

/// PM's state.
pub struct Pm {
    pub(crate) table: Table,
    pub(crate) node: i32,
    pub(crate) waiters: Vec<Waiter>,
    /// `PmWaitExit` calls: (reply to, pid).
    pub(crate) exit_waiters: Vec<(Endpoint, i32)>,
    /// Wait statuses of init's children that ended (for `PmWaitExit`).
    pub(crate) init_reaped: HashMap<i32, i32>,
    /// Foreground process group of the console.
    pub(crate) fg_pgrp: i32,
    /// Endpoints of the additional threads of processes, with the node
    /// whose slot each is.
    pub(crate) threads: HashMap<Endpoint, i32>,
    /// Processes moving to another node (`PmRexec`): the node and the
    /// task started there, which runs once the process's old task is gone.
    pub(crate) moving: HashMap<Endpoint, (i32, i32)>,
    /// Signals sent to processes while they moved, by PID.
    pub(crate) held_signals: HashMap<i32, Vec<i32>>,
    /// Nodes that take part in the DC (this one, and those joined).
    pub(crate) joined: std::collections::HashSet<i32>,
    /// This node's process slots (SLOTS): PM gives them to the tasks of
    /// this node; another node's SYSTASK gives its own (`SysSlot`).
    pub(crate) slots: Arc<SlotsGroup>,
}

impl Service for Pm {
    const NAME: &'static str = "pm";

    fn table() -> Vec<(Call, Handler<Self>)> {
        let mut t = Vec::new();
        t.extend_from_slice(lifecycle::CALLS);
        t.extend_from_slice(wait::CALLS);
        t.extend_from_slice(ids::CALLS);
        t.extend_from_slice(signal::CALLS);
        t.extend_from_slice(ps::CALLS);
        t.extend_from_slice(rexec::CALLS);
        t
    }

    fn notified(&mut self, ctx: &Ctx, from: Endpoint, kind: NotifyKind) {
        match kind {
            NotifyKind::Exit => {
                if let Some(node) = self.threads.remove(&from) {
                    self.thread_ended(ctx, from, node);
                } else {
                    self.process_ended(ctx, from);
                }
            }
            NotifyKind::Signal => self.interrupt_endpoint(ctx, from),
            NotifyKind::Notify => {}
        }
    }
}

impl Pm {
    /// The caller's PID, or `ESRCH` for an endpoint that is not a process.
    pub(crate) fn caller_pid(&self, ep: Endpoint) -> Result<i32, i32> {
        self.table.pid_of(ep).ok_or(libc::ESRCH)
    }
}

/// Starts PM for DC `dcid` (node `node`) on a new thread, binding it.
pub fn spawn(
    socket: &Path,
    dcid: i32,
    node: i32,
    slots: Arc<SlotsGroup>,
) -> std::io::Result<Starting> {
    let socket = socket.to_path_buf();
    Starting::spawn(
        "pm",
        move || Dvk::tbind_at(&socket, dcid, abi::PM).map_err(server::dvk_io),
        move |ipc| {
            server::run(
                ipc,
                Pm {
                    table: Table::default(),
                    node,
                    waiters: Vec::new(),
                    exit_waiters: Vec::new(),
                    init_reaped: HashMap::new(),
                    fg_pgrp: 0,
                    threads: Default::default(),
                    moving: HashMap::new(),
                    held_signals: HashMap::new(),
                    joined: [node].into_iter().collect(),
                    slots,
                },
            )
        },
    )
}
