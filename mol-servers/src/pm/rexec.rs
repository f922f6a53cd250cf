//! Remote exec: a process execs a program on another node of the DC and
//! moves there, keeping its PID, its descriptors (FS keys them by
//! endpoint) and its place in the process tree.
//!
//! 1. `PmRexec [node, spec]` from the process: PM has the node join the DC
//!    if it has not yet, and its SYSTASK fork the program, held before
//!    its `execve` (`SysSpawn`). PM answers, and the caller exits at once.
//! 2. Its task's end reaches PM as usual (the DVK's `Exit`), but the
//!    process is moving: PM binds the process's endpoint to the new task
//!    through the node's SYSTASK (registered here first as a remote one
//!    when the node is another), records where the process runs, and lets
//!    the new task exec (`SysGo`). Its preload attaches to the endpoint and
//!    sends `PmExec`, which closes the `O_CLOEXEC` descriptors as any exec.
//!    Signals sent to the process in between are held and sent to the
//!    new task then, as if sent right after the exec.
//! 3. The task the parent forked is a zombie of the parent from then on;
//!    the parent's `wait` reaps that one (`Proc::first`), and a task
//!    started by a move is reaped by its node's SYSTASK when it ends.

use super::Pm;
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};

pub(super) const CALLS: &[(Call, Handler<Pm>)] = &[(Call::PmRexec, Pm::rexec)];

/// Largest `SpawnSpec` accepted.
const SPEC_MAX: usize = 1 << 20;

impl Pm {
    /// `PmRexec [node, spec, len]`.
    fn rexec(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        let r = (|| {
            let pid = self.caller_pid(req.caller)?;
            let p = self.table.get(pid).ok_or(libc::ESRCH)?;
            // The process's own endpoint (not one of its threads').
            if p.ep != req.caller {
                return Err(libc::EINVAL);
            }
            let node = req.i32(0);
            if node == p.node || node < 0 {
                return Err(libc::EINVAL);
            }
            let len = req.args[2] as usize;
            if len > SPEC_MAX {
                return Err(libc::E2BIG);
            }
            let spec = ctx.copy_in(req.sender, req.args[1], len)?;
            self.join(ctx, node)?;
            let m = ctx.call(
                abi::systask(node),
                Call::SysSpawn,
                &[spec.as_ptr() as u64, spec.len() as u64],
            )?;
            let task = abi::result(&m)? as i32;
            self.moving.insert(req.caller, (node, task));
            tracing::debug!(pid, node, task, "process moving");
            Ok(0)
        })();
        Outcome::from(r)
    }

    /// Makes `node` take part in the DC (its SYSTASK starts there).
    fn join(&mut self, ctx: &Ctx, node: i32) -> Result<(), i32> {
        if self.joined.contains(&node) {
            return Ok(());
        }
        ctx.ipc.dvk().dc_join(ctx.ipc.dcid(), node).map_err(|e| {
            tracing::warn!(node, %e, "the node cannot join the DC");
            libc::EHOSTUNREACH
        })?;
        self.joined.insert(node);
        Ok(())
    }

    /// The old task of moving process `pid` is gone: the new one, `task`
    /// on `node`, takes its endpoint and runs.
    pub(super) fn complete_move(&mut self, ctx: &Ctx, pid: i32, node: i32, task: i32) {
        let Some(p) = self.table.get(pid).cloned() else {
            return;
        };
        let started = self.bind_task(ctx, node, task, p.ep).and_then(|()| {
            let m = ctx.call(abi::systask(node), Call::SysGo, &[task as u64])?;
            abi::result(&m).map(|_| ())
        });
        if let Err(e) = started {
            tracing::warn!(pid, node, e, "the process cannot run on its new node");
            let _ = ctx.call(
                abi::systask(node),
                Call::SysKill,
                &[task as u64, libc::SIGKILL as u64],
            );
            let _ = ctx.call(abi::systask(node), Call::SysReap, &[task as u64]);
            self.held_signals.remove(&pid);
            self.finish(ctx, pid, libc::SIGKILL);
            return;
        }
        // The task the parent forked stays the one it reaps; a task that a
        // previous move started is reaped by its SYSTASK now.
        let first = match p.first {
            Some(f) => {
                let _ = ctx.call(abi::systask(p.node), Call::SysReap, &[p.host_pid as u64]);
                f
            }
            None => (p.node, p.host_pid),
        };
        if let Some(q) = self.table.get_mut(pid) {
            q.node = node;
            q.host_pid = task;
            q.first = Some(first);
        }
        tracing::debug!(pid, node, task, "process moved");
        self.release_signals(ctx, pid);
    }
}
