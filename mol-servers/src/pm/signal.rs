//! Signals between DC processes: `kill` to a PID, a process group, the
//! caller's group, or every process of the DC; and the console's Ctrl-C.

use super::table::Life;
use super::Pm;
use crate::abi::{self, Call, INIT_PID};
use crate::server::{Ctx, Handler, Outcome, Request};

pub(super) const CALLS: &[(Call, Handler<Pm>)] =
    &[(Call::PmKill, Pm::kill), (Call::PmSignalFg, Pm::signal_fg)];

impl Pm {
    /// Ends the deferred `wait` calls of process `pid` with `EINTR`.
    pub(crate) fn interrupt(&mut self, ctx: &Ctx, pid: i32) {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.pid == pid);
        self.waiters = keep;
        for w in gone {
            ctx.reply(w.reply_to, &abi::err(libc::EINTR));
        }
    }

    /// Ends the deferred `wait` of endpoint `ep` (a signal handler ran
    /// while it waited) with `EINTR`.
    pub(crate) fn interrupt_endpoint(&mut self, ctx: &Ctx, ep: dvk::Endpoint) {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.reply_to == ep);
        self.waiters = keep;
        for w in gone {
            ctx.reply(w.reply_to, &abi::err(libc::EINTR));
        }
    }

    /// Sends `sig` to the DC processes `targets` (0 = existence check).
    fn deliver(&mut self, ctx: &Ctx, targets: &[i32], sig: i32) -> Result<i64, i32> {
        if targets.is_empty() {
            return Err(libc::ESRCH);
        }
        if sig == 0 {
            return Ok(0);
        }
        let mut delivered = false;
        let mut interrupted = Vec::new();
        let mut stopped_or_continued = Vec::new();
        for &pid in targets {
            let Some(p) = self.table.get(pid) else {
                continue;
            };
            if let Life::Zombie(_) = p.life {
                delivered = true; // like Linux: succeeds, no effect
                continue;
            }
            if self.moving.contains_key(&p.ep) {
                // Between its old image and its new one: the signal goes to
                // the new one once it runs, as if sent right after the exec.
                self.held_signals.entry(pid).or_default().push(sig);
                delivered = true;
                continue;
            }
            let (ep, node, host_pid) = (p.ep, p.node, p.host_pid);
            let r = ctx.call(
                abi::systask(node),
                Call::SysKill,
                &[host_pid as u64, sig as u64],
            );
            let Ok(m) = r else { continue };
            if abi::result(&m).is_ok() {
                delivered = true;
                if let Some(parent) = self.job_change(pid, sig, m.words()[2]) {
                    stopped_or_continued.push(parent);
                }
                // SYSTASK says whether the process has a handler for it.
                if m.words()[1] != 0 {
                    interrupted.push((pid, ep));
                }
            }
        }
        // Parents waiting for stops or continues.
        stopped_or_continued.dedup();
        for parent in stopped_or_continued {
            self.wake_waiters(ctx, parent);
        }
        // A caught signal interrupts the blocking call the process is in,
        // as on Linux: its deferred calls in PM and FS end with EINTR
        // (the Minix pattern: the servers cancel their deferred replies).
        for (pid, ep) in interrupted {
            self.interrupt(ctx, pid);
            let _ = ctx.call(abi::FS, Call::FsCancel, &[ep.0 as u64]);
        }
        if delivered {
            Ok(0)
        } else {
            Err(libc::ESRCH)
        }
    }

    /// Records what `sig`, just delivered, did to `pid` (`effect`, from
    /// SYSTASK): a stop, or a continue of a stopped process, is reported
    /// to its parent's `wait4` (`WUNTRACED`, `WCONTINUED`). Returns the
    /// parent when there is something to report.
    fn job_change(&mut self, pid: i32, sig: i32, effect: u64) -> Option<i32> {
        let p = self.table.get_mut(pid)?;
        match effect {
            abi::STOPS => {
                p.stopped = true;
                p.job_report = Some((sig << 8) | 0x7f);
            }
            abi::CONTINUES if p.stopped => {
                p.stopped = false;
                p.job_report = Some(0xffff);
            }
            _ => return None,
        }
        Some(p.ppid)
    }

    /// Sends the signals held for process `pid` while it moved.
    pub(crate) fn release_signals(&mut self, ctx: &Ctx, pid: i32) {
        if let Some(sigs) = self.held_signals.remove(&pid) {
            for sig in sigs {
                let _ = self.deliver(ctx, &[pid], sig);
            }
        }
    }

    /// `PmKill [pid, sig]`.
    fn kill(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        let r = (|| {
            let sig = req.i32(1);
            if !(0..=64).contains(&sig) {
                return Err(libc::EINVAL);
            }
            let me = self.caller_pid(req.caller).ok();
            let pid = req.i32(0);
            let targets: Vec<i32> = match pid {
                p if p > 0 => {
                    if p == INIT_PID {
                        // init ignores signals it has no handler for.
                        return Ok(0);
                    }
                    self.table.get(p).map(|q| vec![q.pid]).unwrap_or_default()
                }
                0 => {
                    let g = me
                        .and_then(|m| self.table.get(m))
                        .map(|p| p.pgid)
                        .ok_or(libc::ESRCH)?;
                    self.table
                        .iter()
                        .filter(|p| p.pgid == g)
                        .map(|p| p.pid)
                        .collect()
                }
                -1 => self
                    .table
                    .iter()
                    .filter(|p| Some(p.pid) != me)
                    .map(|p| p.pid)
                    .collect(),
                g => self
                    .table
                    .iter()
                    .filter(|p| p.pgid == -g)
                    .map(|p| p.pid)
                    .collect(),
            };
            if pid == -1 && targets.is_empty() {
                return Ok(0);
            }
            self.deliver(ctx, &targets, sig)
        })();
        Outcome::from(r)
    }

    /// `PmSignalFg [sig]`: the console's interrupt keys.
    fn signal_fg(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !ctx.ipc.is_privileged(req.sender) {
            return Outcome::err(libc::EPERM);
        }
        let g = self.fg_pgrp;
        let targets: Vec<i32> = self
            .table
            .iter()
            .filter(|p| p.pgid == g)
            .map(|p| p.pid)
            .collect();
        Outcome::from(self.deliver(ctx, &targets, req.i32(0)))
    }
}
