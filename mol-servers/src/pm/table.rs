//! PM's process table: DC-global PIDs, endpoints and family relations.

use crate::abi::INIT_PID;
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
    /// Node whose slot its endpoint is (where it started; a move keeps
    /// the endpoint).
    pub slot_node: i32,
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
    /// Whether a signal PM delivered stopped it (and none continued it).
    pub stopped: bool,
    /// A stop or continue its parent has not collected yet: the wait
    /// status (`sig << 8 | 0x7f`, or `0xffff`).
    pub job_report: Option<i32>,
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
}

impl Default for Table {
    /// An empty table.
    fn default() -> Table {
        Table {
            procs: BTreeMap::new(),
            by_ep: HashMap::new(),
            next_pid: INIT_PID + 1,
        }
    }
}

impl Table {
    /// A fresh PID, or `EAGAIN` when every PID is taken.
    pub fn allocate(&mut self) -> Result<i32, i32> {
        if self.procs.len() as i32 >= PID_MAX - 2 {
            return Err(libc::EAGAIN);
        }
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
        Ok(pid)
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

    /// Whether a live process or thread is bound to slot `p_nr` (with any
    /// generation).
    pub fn slot_in_use(&self, p_nr: i32) -> bool {
        self.by_ep.keys().any(|e| e.p_nr() == p_nr)
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
            slot_node: 0,
            first: None,
            cmd: "x".into(),
            life: Life::Alive,
            execed: false,
            stopped: false,
            job_report: None,
            started: Instant::now(),
        }
    }

    #[test]
    fn pids_start_at_2_and_are_not_reused_while_present() {
        let mut t = Table::default();
        let p1 = t.allocate().unwrap();
        assert_eq!(p1, 2);
        t.insert(proc(p1, Endpoint::new(0, 64)));
        let p2 = t.allocate().unwrap();
        assert_eq!(p2, 3);
        t.insert(proc(p2, Endpoint::new(0, 65)));
        t.next_pid = 2; // force a wrap onto used PIDs
        assert_eq!(t.allocate().unwrap(), 4);
    }
}
