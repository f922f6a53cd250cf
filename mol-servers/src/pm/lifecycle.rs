//! Process creation and end: spawn (first process of a run), fork, exec,
//! and the end of a process.

use super::table::{Life, Proc};
use super::Pm;
use crate::abi::{self, Call, INIT_PID};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::Endpoint;
use std::time::{Duration, Instant};

/// How long PM waits for a slot of its own node when it has none free
/// (it asked the other nodes for some).
const LOCAL_SLOT_WAIT: Duration = Duration::from_millis(300);

pub(super) const CALLS: &[(Call, Handler<Pm>)] = &[
    (Call::PmSpawn, Pm::spawn),
    (Call::PmFork, Pm::fork),
    (Call::PmExec, Pm::exec),
    (Call::PmThread, Pm::thread),
];

impl Pm {
    /// Allocates a PID and endpoint for host task `host_pid`, has FS set up
    /// its descriptors (`fs_call`), then binds it (a `forked` task through
    /// [`Pm::bind_forked`], others through SYSTASK). FS goes first so that
    /// the process finds its descriptors as soon as it runs.
    fn create(
        &mut self,
        ctx: &Ctx,
        host_pid: i32,
        template: Proc,
        forked: bool,
        fs_call: impl FnOnce(Endpoint, i32) -> Result<(), i32>,
    ) -> Result<i32, i32> {
        let pid = self.table.allocate()?;
        let node = template.node;
        let ep = self.new_endpoint(ctx, node)?;
        if let Err(e) = fs_call(ep, pid) {
            self.free_endpoint(ctx, node, ep);
            return Err(e);
        }
        let bound = if forked {
            self.bind_forked(ctx, node, host_pid, ep)
        } else {
            self.bind_task(ctx, node, host_pid, ep)
        };
        if let Err(e) = bound {
            let _ = ctx.call(abi::FS, Call::FsExitProc, &[ep.0 as u64]);
            self.free_endpoint(ctx, node, ep);
            return Err(e);
        }
        self.table.insert(Proc {
            pid,
            ep,
            host_pid,
            slot_node: node,
            started: Instant::now(),
            life: Life::Alive,
            execed: false,
            stopped: false,
            job_report: None,
            ..template
        });
        Ok(pid)
    }

    /// An endpoint for a new task of `node`: a free process slot that node
    /// owns (SLOTS), with the slot's next generation. This node's slots
    /// are PM's to give; another node's SYSTASK gives its own.
    fn new_endpoint(&self, ctx: &Ctx, node: i32) -> Result<Endpoint, i32> {
        if node == self.node {
            loop {
                let ep = self.slots.alloc(LOCAL_SLOT_WAIT)?;
                // A slot this node took over from a failed node may still
                // be the endpoint of a process that had moved elsewhere:
                // it stays taken until that process ends.
                if !self.table.slot_in_use(ep.p_nr()) {
                    return Ok(ep);
                }
            }
        }
        let m = ctx.call(abi::systask(node), Call::SysSlot, &[])?;
        abi::result(&m).map(|e| Endpoint(e as i32))
    }

    /// The task bound as `ep`, a slot of `node`, is gone (or was never
    /// bound): the slot goes back to its owner, `node`, or this node if
    /// it took over the slots of `node`, which failed.
    pub(super) fn free_endpoint(&self, ctx: &Ctx, node: i32, ep: Endpoint) {
        if node == self.node {
            self.slots.release(ep);
        } else if self.slots.owns(ep.p_nr()) {
            self.slots.release_slot(ep.p_nr());
        } else if let Err(e) = ctx.call(abi::systask(node), Call::SysRelease, &[ep.0 as u64]) {
            // A node that is gone took its slots with it.
            tracing::debug!(node, %ep, e, "cannot give a slot back");
        }
    }

    /// Has the SYSTASK of `node` bind host task `tid` as `ep`. A task of
    /// another node is registered here first, so that its first messages
    /// to the servers are accepted; the registration goes when the task
    /// ends (the DVK unbinds it).
    pub(super) fn bind_task(
        &self,
        ctx: &Ctx,
        node: i32,
        tid: i32,
        ep: Endpoint,
    ) -> Result<(), i32> {
        let remote = node != self.node;
        if remote {
            ctx.ipc
                .dvk()
                .rmtbind(ctx.ipc.dcid(), ep, node)
                .map_err(|e| {
                    tracing::warn!(%ep, node, %e, "cannot register a remote process");
                    libc::EAGAIN
                })?;
        }
        let r = ctx
            .call(
                abi::systask(node),
                Call::SysBind,
                &[tid as u64, ep.0 as u64],
            )
            .and_then(|m| abi::result(&m));
        if r.is_err() && remote {
            let _ = ctx.ipc.dvk().unbind(ctx.ipc.dcid(), ep);
        }
        r.map(|_| ())
    }

    /// Binds host task `tid`, forked (or started as a thread) by a DC
    /// process, as `ep`. On this node PM asks the node daemon itself: such
    /// a task is nobody SYSTASK prepared or must reap, and every fork and
    /// thread saves two messages. Elsewhere that node's SYSTASK binds it.
    pub(super) fn bind_forked(
        &self,
        ctx: &Ctx,
        node: i32,
        tid: i32,
        ep: Endpoint,
    ) -> Result<(), i32> {
        if node != self.node {
            return self.bind_task(ctx, node, tid, ep);
        }
        ctx.ipc
            .dvk()
            .lclbind(ctx.ipc.dcid(), tid, ep)
            .map(|_| ())
            .map_err(|e| {
                tracing::warn!(tid, %ep, %e, "lclbind failed");
                libc::ESRCH
            })
    }

    /// `PmSpawn [host_pid, parent_pid, node, name, len, cwd, len]`: the
    /// first process of a run, named `name`, a child of init in its own
    /// session, on the console and in directory `cwd` (FS sets up its
    /// descriptors before it is bound, so that the program may already
    /// be running: it waits for its binding). Privileged callers only.
    fn spawn(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !ctx.ipc.is_privileged(req.sender) {
            return Outcome::err(libc::EPERM);
        }
        let host_pid = req.i32(0);
        let node = req.i32(2);
        let (name, cwd) = match (
            ctx.path(req.sender, req.args[3], req.args[4]),
            ctx.path(req.sender, req.args[5], req.args[6]),
        ) {
            (Ok(n), Ok(c)) => (n, c),
            (Err(e), _) | (_, Err(e)) => return Outcome::err(e),
        };
        // The spawner made that node join the DC.
        self.joined.insert(node);
        let template = Proc {
            pid: 0,
            ppid: INIT_PID,
            pgid: 0,
            sid: 0,
            ep: Endpoint::NONE,
            host_pid,
            node,
            slot_node: node,
            first: None,
            // The spawner names it: the program may or may not have
            // exec'd yet.
            cmd: String::from_utf8_lossy(&name).into_owned(),
            life: Life::Alive,
            execed: false,
            stopped: false,
            job_report: None,
            started: Instant::now(),
        };
        let fs_call = |ep: Endpoint, pid: i32| {
            let m = ctx.call(
                abi::FS,
                Call::FsNewProc,
                &[
                    ep.0 as u64,
                    1,
                    cwd.as_ptr() as u64,
                    cwd.len() as u64,
                    pid as u64,
                ],
            )?;
            abi::result(&m).map(|_| ())
        };
        match self.create(ctx, host_pid, template, false, fs_call) {
            Ok(pid) => {
                if let Some(p) = self.table.get_mut(pid) {
                    p.pgid = pid;
                    p.sid = pid;
                }
                if self.fg_pgrp == 0 {
                    self.fg_pgrp = pid;
                }
                let mut r = abi::ok(pid as i64);
                r.words_mut()[1] = self.table.get(pid).map_or(0, |p| p.ep.0 as u64);
                Outcome::Reply(r)
            }
            Err(e) => Outcome::err(e),
        }
    }

    /// `PmFork [child_host_pid, flags]`: the caller forked on the host.
    fn fork(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        let Ok(ppid) = self.caller_pid(req.caller) else {
            return Outcome::err(libc::ESRCH);
        };
        let Some(parent) = self.table.get(ppid).cloned() else {
            return Outcome::err(libc::ESRCH);
        };
        let host_pid = req.i32(0);
        let share = req.args[1] & 1;
        let template = Proc {
            ppid,
            execed: false,
            stopped: false,
            job_report: None,
            ..parent.clone()
        };
        let r = self.create(ctx, host_pid, template, true, |child, pid| {
            let m = ctx.call(
                abi::FS,
                Call::FsForkProc,
                &[parent.ep.0 as u64, child.0 as u64, share, pid as u64],
            )?;
            abi::result(&m).map(|_| ())
        });
        match r {
            Ok(pid) => {
                // The child's endpoint, for a supervisor that serves the
                // child's calls on its behalf (the tracer).
                let mut m = abi::ok(pid as i64);
                m.words_mut()[1] = self.table.get(pid).map_or(0, |p| p.ep.0 as u64);
                Outcome::Reply(m)
            }
            Err(e) => Outcome::err(e),
        }
    }

    /// `PmThread [host_tid]`: an endpoint for a new thread of the caller's
    /// process. It shares the process's PID and descriptor table; it ends
    /// with its thread.
    fn thread(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        let Ok(pid) = self.caller_pid(req.caller) else {
            return Outcome::err(libc::ESRCH);
        };
        let tid = req.i32(0);
        let node = self.table.get(pid).map_or(self.node, |p| p.node);
        let r = (|| {
            let ep = self.new_endpoint(ctx, node)?;
            let undo = |pm: &mut Pm, e: i32| {
                pm.free_endpoint(ctx, node, ep);
                e
            };
            let m = ctx
                .call(
                    abi::FS,
                    Call::FsForkProc,
                    &[req.caller.0 as u64, ep.0 as u64, 1],
                )
                .map_err(|e| undo(self, e))?;
            abi::result(&m).map_err(|e| undo(self, e))?;
            if let Err(e) = self.bind_forked(ctx, node, tid, ep) {
                let _ = ctx.call(abi::FS, Call::FsExitProc, &[ep.0 as u64]);
                return Err(undo(self, e));
            }
            self.table.map_thread(ep, pid);
            self.threads.insert(ep, node);
            Ok(ep.0 as i64)
        })();
        Outcome::from(r)
    }

    /// A thread's endpoint, a slot of `node`, ended with its thread.
    pub(crate) fn thread_ended(&mut self, ctx: &Ctx, ep: Endpoint, node: i32) {
        let _ = ctx.call(abi::FS, Call::FsExitProc, &[ep.0 as u64]);
        self.table.unmap_ep(ep);
        self.free_endpoint(ctx, node, ep);
    }

    /// `PmExec [path, len]`: the caller exec'd; FS closes its `O_CLOEXEC`
    /// descriptors and the table shows the new command.
    fn exec(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        let Ok(pid) = self.caller_pid(req.caller) else {
            return Outcome::err(libc::ESRCH);
        };
        let path = ctx
            .path(req.sender, req.args[0], req.args[1])
            .unwrap_or_default();
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
        let cmd = String::from_utf8_lossy(name).into_owned();
        let ep = req.caller;
        if let Some(p) = self.table.get_mut(pid) {
            if !cmd.is_empty() {
                p.cmd = cmd;
            }
            p.execed = true;
        }
        // FS's word 1 (whether descriptor 1 is a terminal) goes on to
        // the new image.
        match ctx.call(abi::FS, Call::FsExecProc, &[ep.0 as u64]) {
            Ok(m) if abi::result(&m).is_ok() => {
                let mut r = abi::ok(0);
                r.words_mut()[1] = m.words()[1];
                Outcome::Reply(r)
            }
            Ok(m) => Outcome::from(abi::result(&m)),
            Err(e) => Outcome::err(e),
        }
    }

    /// The DVK reported that the task bound as `ep` ended.
    pub(crate) fn process_ended(&mut self, ctx: &Ctx, ep: Endpoint) {
        let Some(pid) = self.table.pid_of(ep) else {
            return;
        };
        if let Some((node, task)) = self.moving.remove(&ep) {
            // The task that asked to move is gone: the move goes on.
            self.complete_move(ctx, pid, node, task);
            return;
        }
        let Some(p) = self.table.get(pid) else {
            return;
        };
        // A task of this node is looked at here (as `dvs ps` does), one
        // round trip to SYSTASK fewer on every exit.
        let status = if p.node == self.node {
            crate::systask::exit_status_of(p.host_pid)
        } else {
            ctx.call(
                abi::systask(p.node),
                Call::SysExitStatus,
                &[p.host_pid as u64],
            )
            .ok()
            .and_then(|m| abi::result(&m).ok())
            .map(|s| s as i32)
        }
        // Gone before we could look: it was killed outright.
        .unwrap_or(libc::SIGKILL);
        if p.first.is_some() {
            // A task started by a move is the child of its node's SYSTASK
            // process; the parent reaps the task it forked.
            let _ = ctx.call(abi::systask(p.node), Call::SysReap, &[p.host_pid as u64]);
        }
        self.finish(ctx, pid, status);
    }

    /// Process `pid` ended with wait status `status`: FS closes its
    /// descriptors, its children go to init, its parent is told.
    pub(crate) fn finish(&mut self, ctx: &Ctx, pid: i32, status: i32) {
        let Some(p) = self.table.get(pid).cloned() else {
            return;
        };
        let ep = p.ep;
        let _ = ctx.call(abi::FS, Call::FsExitProc, &[ep.0 as u64]);
        self.table.unmap_ep(ep);
        self.free_endpoint(ctx, p.slot_node, ep);
        if let Some(q) = self.table.get_mut(pid) {
            q.life = Life::Zombie(status);
        }
        tracing::debug!(pid, status, "process ended");
        // Orphans go to init, which reaps the ones that already ended.
        for c in self.table.children(pid) {
            if let Some(q) = self.table.get_mut(c) {
                q.ppid = INIT_PID;
            }
            if matches!(self.table.get(c).map(|q| q.life), Some(Life::Zombie(_))) {
                self.reap_by_init(ctx, c);
            }
        }
        if p.ppid == INIT_PID {
            self.reap_by_init(ctx, pid);
        } else {
            let reaped =
                self.wake_waiters(ctx, p.ppid).contains(&pid) && self.table.get(pid).is_none();
            // The host sent SIGCHLD when the task died, possibly before PM
            // knew; a parent that waits with WNOHANG after SIGCHLD (shells)
            // must get one more now that the status can be collected.
            // Unless a wait of the parent's that was waiting took it: there
            // is nothing left to collect (and a shell would only ask again).
            let parent = self.table.get(p.ppid).filter(|q| q.life == Life::Alive);
            if let Some(parent) = parent.filter(|_| !reaped) {
                if parent.node == self.node {
                    // After the kernel's, never before it.
                    crate::systask::host_exit_barrier();
                    // SAFETY: kill(2) with integer arguments.
                    unsafe { libc::kill(parent.host_pid, libc::SIGCHLD) };
                } else {
                    let _ = ctx.call(
                        abi::systask(parent.node),
                        Call::SysKill,
                        &[parent.host_pid as u64, libc::SIGCHLD as u64],
                    );
                }
            }
        }
    }

    /// Init collects a child that ended.
    pub(crate) fn reap_by_init(&mut self, ctx: &Ctx, pid: i32) {
        let Some(p) = self.table.remove(pid) else {
            return;
        };
        let Life::Zombie(status) = p.life else {
            self.table.insert(p);
            return;
        };
        let (node, task) = p.first.unwrap_or((p.node, p.host_pid));
        let _ = ctx.call(abi::systask(node), Call::SysReap, &[task as u64]);
        self.init_reaped.insert(pid, status);
        self.answer_exit_waiters(ctx);
    }
}
