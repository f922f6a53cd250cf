//! PM's process table: DC-global PIDs, endpoints and family relations.

use crate::abi::{FIRST_USER_SLOT, INIT_PID};
use dvk::Endpoint;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Largest PID; PIDs wrap around below it, never reusing a live or zombie one.
pub const PID_MAX: i32 = 32768;

/// Life state of a DC process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Running (or stopped, on the host).
    Alive,
    /// Ended; keeps its wait status until its parent collects it.
    Zombie(i32),
}

/// One DC process.
#[derive(Debug, Clone)]
pub struct Proc {
    /// DC-global PID.
    pub pid: i32,
    /// Parent PID (1 after its parent ended).
    pub ppid: i32,
    /// Process group.
    pub pgid: i32,
    /// Session.
    pub sid: i32,
    /// Endpoint.
    pub ep: Endpoint,
    /// Host pid on its node.
    pub host_pid: i32,
    /// Node it runs on.
    pub node: i32,
    /// After a move to another node (`PmRexec`): the node and host pid of
    /// the task its parent forked, which ended at the move and which the
    /// parent (or init) reaps.
    pub first: Option<(i32, i32)>,
    /// Command name.
    pub cmd: String,
    /// Alive or zombie.
    pub life: Life,
    /// Whether it has called exec (setpgid by the parent then fails).
    pub execed: bool,
    /// When it started.
    pub started: Instant,
}

/// A `dvs ps` row.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PsRow {
    /// PID.
    pub pid: i32,
    /// Parent PID.
    pub ppid: i32,
    /// Process group.
    pub pgid: i32,
    /// Session.
    pub sid: i32,
    /// State letter (host state for live processes, `Z` for zombies).
    pub stat: String,
    /// Node.
    pub node: i32,
    /// Endpoint.
    pub endpoint: i32,
    /// Host pid.
    pub host_pid: i32,
    /// CPU time in clock ticks (user + system).
    pub ticks: u64,
    /// Command.
    pub cmd: String,
}

/// The table.
pub struct Table {
    procs: BTreeMap<i32, Proc>,
    by_ep: HashMap<Endpoint, i32>,
    next_pid: i32,
    /// Generation of each user slot, indexed by `p_nr - FIRST_USER_SLOT`.
    gens: Vec<i32>,
    free_slots: Vec<i32>,
}

impl Table {
    /// An empty table for a DC with `nr_procs` process slots.
    pub fn new(nr_procs: i32) -> Table {
        let n = (nr_procs - FIRST_USER_SLOT).max(0);
        Table {
            procs: BTreeMap::new(),
            by_ep: HashMap::new(),
            next_pid: INIT_PID + 1,
            gens: vec![0; n as usize],
            free_slots: (FIRST_USER_SLOT..nr_procs).rev().collect(),
        }
    }

    /// A fresh PID and endpoint, or `EAGAIN` when the DC is full.
    pub fn allocate(&mut self) -> Result<(i32, Endpoint), i32> {
        if self.procs.len() as i32 >= PID_MAX - 2 {
            return Err(libc::EAGAIN);
        }
        let slot = self.free_slots.pop().ok_or(libc::EAGAIN)?;
        let g = self.gens[(slot - FIRST_USER_SLOT) as usize];
        let mut pid = self.next_pid;
        while self.procs.contains_key(&pid) || pid <= INIT_PID {
            pid = if pid >= PID_MAX - 1 {
                INIT_PID + 1
            } else {
                pid + 1
            };
        }
        self.next_pid = if pid >= PID_MAX - 1 {
            INIT_PID + 1
        } else {
            pid + 1
        };
        Ok((pid, Endpoint::new(g, slot)))
    }

    /// Gives back the slot of an endpoint that was allocated but not used
    /// or whose process is gone.
    pub fn release_slot(&mut self, ep: Endpoint) {
        let slot = ep.p_nr();
        if let Some(g) = self.gens.get_mut((slot - FIRST_USER_SLOT).max(0) as usize) {
            if slot >= FIRST_USER_SLOT {
                *g = (*g + 1) % (i32::MAX / dvk::endpoint::GEN_SIZE - 1);
                self.free_slots.push(slot);
            }
        }
    }

    /// Adds a process.
    pub fn insert(&mut self, p: Proc) {
        self.by_ep.insert(p.ep, p.pid);
        self.procs.insert(p.pid, p);
    }

    /// Removes a process (reaped).
    pub fn remove(&mut self, pid: i32) -> Option<Proc> {
        let p = self.procs.remove(&pid)?;
        if self.by_ep.get(&p.ep) == Some(&pid) {
            self.by_ep.remove(&p.ep);
        }
        Some(p)
    }

    /// The live process bound as `ep`.
    pub fn pid_of(&self, ep: Endpoint) -> Option<i32> {
        self.by_ep.get(&ep).copied()
    }

    /// Makes `ep` (a thread's endpoint) act as process `pid`.
    pub fn map_thread(&mut self, ep: Endpoint, pid: i32) {
        self.by_ep.insert(ep, pid);
    }

    /// Forgets the endpoint of a process that ended (its slot is reusable).
    pub fn unmap_ep(&mut self, ep: Endpoint) {
        self.by_ep.remove(&ep);
    }

    /// A process.
    pub fn get(&self, pid: i32) -> Option<&Proc> {
        self.procs.get(&pid)
    }

    /// A process, mutably.
    pub fn get_mut(&mut self, pid: i32) -> Option<&mut Proc> {
        self.procs.get_mut(&pid)
    }

    /// All processes.
    pub fn iter(&self) -> impl Iterator<Item = &Proc> {
        self.procs.values()
    }

    /// PIDs of the children of `pid`.
    pub fn children(&self, pid: i32) -> Vec<i32> {
        self.procs
            .values()
            .filter(|p| p.ppid == pid)
            .map(|p| p.pid)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i32, ep: Endpoint) -> Proc {
        Proc {
            pid,
            ppid: 1,
            pgid: pid,
            sid: pid,
            ep,
            host_pid: 1000 + pid,
            node: 0,
            first: None,
            cmd: "x".into(),
            life: Life::Alive,
            execed: false,
            started: Instant::now(),
        }
    }

    #[test]
    fn pids_start_at_2_and_are_not_reused_while_present() {
        let mut t = Table::new(70);
        let (p1, e1) = t.allocate().unwrap();
        assert_eq!(p1, 2);
        t.insert(proc(p1, e1));
        let (p2, e2) = t.allocate().unwrap();
        assert_eq!(p2, 3);
        assert_ne!(e1, e2);
        t.insert(proc(p2, e2));
        t.next_pid = 2; // force a wrap onto used PIDs
        let (p3, _) = t.allocate().unwrap();
        assert_eq!(p3, 4);
    }

    #[test]
    fn slots_run_out_and_come_back_with_a_new_generation() {
        let mut t = Table::new(FIRST_USER_SLOT + 2);
        let (_, a) = t.allocate().unwrap();
        let (_, b) = t.allocate().unwrap();
        assert_eq!(t.allocate(), Err(libc::EAGAIN));
        t.release_slot(a);
        let (_, c) = t.allocate().unwrap();
        assert_eq!(c.p_nr(), a.p_nr());
        assert_ne!(c, a);
        assert_ne!(c, b);
    }
}
