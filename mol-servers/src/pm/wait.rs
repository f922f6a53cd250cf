//! `wait4` and the spawner's wait for a process it started.

use super::table::Life;
use super::{Pm, Waiter};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};

pub(super) const CALLS: &[(Call, Handler<Pm>)] = &[
    (Call::PmWait4, Pm::wait4),
    (Call::PmWaitExit, Pm::wait_exit),
];

impl Pm {
    /// Whether child `c` of `pid` matches the `pid` argument of `wait4`.
    fn matches(&self, waiter: i32, spec: i32, c: i32) -> bool {
        let Some(child) = self.table.get(c) else {
            return false;
        };
        match spec {
            s if s > 0 => c == s,
            -1 => true,
            0 => self.table.get(waiter).is_some_and(|w| w.pgid == child.pgid),
            s => child.pgid == -s,
        }
    }

    /// Collects a child of `waiter` matching `spec` that ended (with
    /// `WEXITED` in `options`), or stopped or continued since it was last
    /// asked (`WUNTRACED`, `WCONTINUED`): `Some(reply)`, or `None` if
    /// matching children exist but none has news; `ECHILD` if there are
    /// none. A stop or continue is reported with host pid 0: there is no
    /// host task to reap; so is anything with `WNOWAIT`, which leaves the
    /// child waitable.
    fn collect(
        &mut self,
        waiter: i32,
        spec: i32,
        options: i32,
    ) -> Result<Option<dvk::Message>, i32> {
        let kids: Vec<i32> = self
            .table
            .children(waiter)
            .into_iter()
            .filter(|&c| self.matches(waiter, spec, c))
            .collect();
        if kids.is_empty() {
            return Err(libc::ECHILD);
        }
        for c in kids {
            let Some(p) = self.table.get_mut(c) else {
                continue;
            };
            let wanted = match p.job_report {
                Some(0xffff) => options & libc::WCONTINUED != 0,
                Some(_) => options & libc::WUNTRACED != 0,
                None => false,
            };
            let peek = options & libc::WNOWAIT != 0;
            if p.life == Life::Alive && wanted {
                let status = if peek {
                    p.job_report.unwrap_or(0)
                } else {
                    p.job_report.take().unwrap_or(0)
                };
                let mut r = abi::ok(c as i64);
                r.words_mut()[1] = status as u32 as u64;
                return Ok(Some(r));
            }
            if options & libc::WEXITED == 0 {
                continue;
            }
            if let Some(Life::Zombie(status)) = self.table.get(c).map(|p| p.life) {
                // The host task the parent forked (before any move).
                let host_pid = self
                    .table
                    .get(c)
                    .map_or(0, |p| p.first.map_or(p.host_pid, |(_, t)| t));
                // WNOWAIT: the zombie stays for a later wait, nothing
                // to reap yet.
                let host_pid = if peek {
                    0
                } else {
                    self.table.remove(c);
                    host_pid
                };
                let mut r = abi::ok(c as i64);
                r.words_mut()[1] = status as u32 as u64;
                r.words_mut()[2] = host_pid as u64;
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// `PmWait4 [pid, options]`: deferred until a matching child ends
    /// (`WEXITED`), stops (`WUNTRACED`) or continues (`WCONTINUED`),
    /// unless `WNOHANG`.
    fn wait4(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        let Ok(me) = self.caller_pid(req.caller) else {
            return Outcome::err(libc::ESRCH);
        };
        let spec = req.i32(0);
        let options = req.i32(1);
        match self.collect(me, spec, options) {
            Err(e) => Outcome::err(e),
            Ok(Some(r)) => Outcome::Reply(r),
            Ok(None) if options & libc::WNOHANG != 0 => Outcome::ok(0),
            Ok(None) => {
                self.waiters.push(Waiter {
                    reply_to: req.sender,
                    pid: me,
                    spec,
                    options,
                });
                Outcome::Deferred
            }
        }
    }

    /// Answers the deferred `wait4` calls of `parent` that can now
    /// complete, and returns the children they reported.
    pub(crate) fn wake_waiters(&mut self, ctx: &Ctx, parent: i32) -> Vec<i32> {
        let mut keep = Vec::new();
        let mut reported = Vec::new();
        for w in std::mem::take(&mut self.waiters) {
            if w.pid != parent {
                keep.push(w);
                continue;
            }
            match self.collect(w.pid, w.spec, w.options) {
                Ok(Some(r)) => {
                    reported.push(r.words()[0] as i32);
                    ctx.reply(w.reply_to, &r);
                }
                Ok(None) => keep.push(w),
                Err(e) => ctx.reply(w.reply_to, &abi::err(e)),
            }
        }
        self.waiters.append(&mut keep);
        reported
    }

    /// `PmWaitExit [pid]`: for the spawner, the wait status of a child of
    /// init once it ended.
    fn wait_exit(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !ctx.ipc.is_privileged(req.sender) {
            return Outcome::err(libc::EPERM);
        }
        let pid = req.i32(0);
        if let Some(st) = self.init_reaped.remove(&pid) {
            return Outcome::ok(st as i64);
        }
        if self.table.get(pid).is_none() {
            return Outcome::err(libc::ECHILD);
        }
        self.exit_waiters.push((req.sender, pid));
        Outcome::Deferred
    }

    pub(crate) fn answer_exit_waiters(&mut self, ctx: &Ctx) {
        let mut keep = Vec::new();
        for (to, pid) in std::mem::take(&mut self.exit_waiters) {
            match self.init_reaped.remove(&pid) {
                Some(st) => ctx.reply(to, &abi::ok(st as i64)),
                None => keep.push((to, pid)),
            }
        }
        self.exit_waiters = keep;
        // Keep the record bounded: statuses nobody asked for are dropped.
        if self.init_reaped.len() > 4096 {
            self.init_reaped.clear();
        }
    }
}
