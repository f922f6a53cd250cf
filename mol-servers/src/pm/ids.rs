//! Identity: PIDs, process groups, sessions and the console's foreground
//! group.

use super::Pm;
use crate::abi::{Call, INIT_PID};
use crate::server::{Ctx, Handler, Outcome, Request};

pub(super) const CALLS: &[(Call, Handler<Pm>)] = &[
    (Call::PmGetpid, Pm::getpid),
    (Call::PmGetppid, Pm::getppid),
    (Call::PmSetpgid, Pm::setpgid),
    (Call::PmGetpgid, Pm::getpgid),
    (Call::PmSetsid, Pm::setsid),
    (Call::PmGetsid, Pm::getsid),
    (Call::PmSetFg, Pm::set_fg),
    (Call::PmGetFg, Pm::get_fg),
    (Call::PmEndpointOf, Pm::endpoint_of),
    (Call::PmPidOfHost, Pm::pid_of_host),
];

impl Pm {
    /// `[pid]`: the endpoint of a process (for `pidfd_open`); `words[1]`
    /// is 1 if it is a zombie.
    fn endpoint_of(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        match self.table.get(req.i32(0)) {
            Some(p) => {
                let mut m = crate::abi::ok(p.ep.0 as i64);
                m.words_mut()[1] = u64::from(matches!(p.life, super::table::Life::Zombie(_)));
                Outcome::Reply(m)
            }
            None => Outcome::err(libc::ESRCH),
        }
    }

    /// `[host_pid]`: the PID of the live process whose task on the
    /// caller's node is `host_pid`.
    fn pid_of_host(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        let host = req.i32(0);
        let node = self
            .caller_pid(req.caller)
            .ok()
            .and_then(|p| self.table.get(p))
            .map(|p| p.node);
        let r = self
            .table
            .iter()
            .find(|p| {
                p.host_pid == host
                    && Some(p.node) == node
                    && !matches!(p.life, super::table::Life::Zombie(_))
            })
            .map(|p| i64::from(p.pid))
            .ok_or(libc::ESRCH);
        Outcome::from(r)
    }

    fn getpid(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        Outcome::from(self.caller_pid(req.caller).map(i64::from))
    }

    fn getppid(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        let r = self
            .caller_pid(req.caller)
            .and_then(|p| self.table.get(p).map(|p| p.ppid as i64).ok_or(libc::ESRCH));
        Outcome::from(r)
    }

    /// `pid` 0 means the caller.
    fn target(&self, req: &Request, pid: i32) -> Result<i32, i32> {
        let me = self.caller_pid(req.caller)?;
        if pid < 0 {
            return Err(libc::EINVAL);
        }
        Ok(if pid == 0 { me } else { pid })
    }

    fn setpgid(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        let r = (|| {
            let me = self.caller_pid(req.caller)?;
            let pid = self.target(req, req.i32(0))?;
            let pgid = match req.i32(1) {
                0 => pid,
                g if g < 0 => return Err(libc::EINVAL),
                g => g,
            };
            let caller = self.table.get(me).ok_or(libc::ESRCH)?.clone();
            let t = self.table.get(pid).ok_or(libc::ESRCH)?.clone();
            if pid != me && t.ppid != me {
                return Err(libc::ESRCH);
            }
            if pid != me && t.execed {
                return Err(libc::EACCES);
            }
            if t.sid == t.pid || t.sid != caller.sid {
                return Err(libc::EPERM);
            }
            if pgid != pid && !self.table.iter().any(|p| p.pgid == pgid && p.sid == t.sid) {
                return Err(libc::EPERM);
            }
            if let Some(p) = self.table.get_mut(pid) {
                p.pgid = pgid;
            }
            Ok(0)
        })();
        Outcome::from(r)
    }

    fn getpgid(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        let r = self.target(req, req.i32(0)).and_then(|p| match p {
            // Init leads its own group and session, as Linux's does.
            INIT_PID => Ok(INIT_PID as i64),
            p => self.table.get(p).map(|p| p.pgid as i64).ok_or(libc::ESRCH),
        });
        Outcome::from(r)
    }

    fn setsid(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        let r = (|| {
            let me = self.caller_pid(req.caller)?;
            if self.table.iter().any(|p| p.pgid == me) {
                return Err(libc::EPERM);
            }
            let p = self.table.get_mut(me).ok_or(libc::ESRCH)?;
            p.sid = me;
            p.pgid = me;
            Ok(me as i64)
        })();
        Outcome::from(r)
    }

    fn getsid(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        let r = self.target(req, req.i32(0)).and_then(|p| match p {
            INIT_PID => Ok(INIT_PID as i64),
            p => self.table.get(p).map(|p| p.sid as i64).ok_or(libc::ESRCH),
        });
        Outcome::from(r)
    }

    /// `PmSetFg [pgid]` (from `tcsetpgrp` on the console).
    fn set_fg(&mut self, _ctx: &Ctx, req: &Request) -> Outcome {
        let pgid = req.i32(0);
        if pgid <= 0 {
            return Outcome::err(libc::EINVAL);
        }
        if !self.table.iter().any(|p| p.pgid == pgid) {
            return Outcome::err(libc::EPERM);
        }
        self.fg_pgrp = pgid;
        Outcome::ok(0)
    }

    fn get_fg(&mut self, _ctx: &Ctx, _req: &Request) -> Outcome {
        Outcome::ok(self.fg_pgrp as i64)
    }
}
