//! SYSTASK: one per node; acts on the host for the other servers.
//!
//! It binds new processes' endpoints (`lclbind`), sends host signals,
//! reads the exit status of a task that ended (from `/proc/<pid>/stat`,
//! while the task is still a zombie), and reaps the tasks whose host
//! parent is this node's subreaper (`dvs-exec`).

use crate::abi::{self, Call};
use crate::server::{self, Ctx, Handler, Outcome, Request, Service};
use dvk::{Dvk, Endpoint};
use std::path::Path;

/// The SYSTASK server state.
pub struct Systask {
    dcid: i32,
}

impl Service for Systask {
    const NAME: &'static str = "systask";

    fn table() -> Vec<(Call, Handler<Self>)> {
        vec![
            (Call::SysBind, Systask::bind),
            (Call::SysKill, Systask::kill),
            (Call::SysExitStatus, Systask::exit_status),
            (Call::SysReap, Systask::reap),
        ]
    }
}

/// Only the MoL servers may ask SYSTASK to act on the host.
fn trusted(ctx: &Ctx, req: &Request) -> bool {
    ctx.ipc.is_privileged(req.sender)
}

impl Systask {
    fn bind(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        let tid = req.i32(0);
        let ep = Endpoint(req.i32(1));
        match ctx.ipc.dvk().lclbind(self.dcid, tid, ep) {
            Ok(e) => Outcome::ok(e.0 as i64),
            Err(e) => {
                tracing::warn!(tid, %ep, %e, "lclbind failed");
                Outcome::err(libc::ESRCH)
            }
        }
    }

    fn kill(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        // SAFETY: kill(2) with integer arguments has no memory effects.
        let r = unsafe { libc::kill(req.i32(0), req.i32(1)) };
        if r == 0 {
            Outcome::ok(0)
        } else {
            Outcome::err(nix::errno::Errno::last_raw())
        }
    }

    fn exit_status(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        match exit_status_of(req.i32(0)) {
            Some(st) => Outcome::ok(st as i64),
            None => Outcome::err(libc::ESRCH),
        }
    }

    fn reap(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        let pid = req.i32(0);
        // The task has ended (its pidfd fired), so this does not block
        // for long; ECHILD means another parent reaps it.
        let mut st = 0;
        // SAFETY: waitpid with a valid status pointer on our stack.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::__WALL) };
        Outcome::ok(r as i64)
    }
}

/// The wait status of an ended, not yet reaped task: field 52
/// (`exit_code`) of `/proc/<pid>/stat`, in the form `waitpid` reports.
pub fn exit_status_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); exit_code is field 52.
    if fields.first() != Some(&"Z") && fields.first() != Some(&"X") {
        return None;
    }
    fields.get(52 - 3)?.parse().ok()
}

/// Binds a new thread as `SYSTASK(node)` in DC `dcid` and serves.
pub fn start(socket: &Path, dcid: i32, node: i32) -> std::io::Result<std::thread::JoinHandle<()>> {
    let socket = socket.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::Builder::new()
        .name("systask".into())
        .spawn(move || {
            let ipc = Dvk::connect(&socket).and_then(|k| k.tbind(dcid, abi::systask(node)));
            match ipc {
                Ok(ipc) => {
                    let _ = tx.send(Ok(()));
                    server::run(ipc, Systask { dcid });
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })?;
    match rx.recv() {
        Ok(Ok(())) => Ok(h),
        Ok(Err(e)) => Err(std::io::Error::other(format!("SYSTASK cannot bind: {e}"))),
        Err(_) => Err(std::io::Error::other("SYSTASK thread died")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_of_a_zombie() {
        let mut c = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let pid = c.id() as i32;
        // Wait until it is a zombie without reaping it.
        let mut st = None;
        for _ in 0..500 {
            st = exit_status_of(pid);
            if st.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(st, Some(7 << 8));
        assert!(c.wait().unwrap().code() == Some(7));
        assert_eq!(exit_status_of(pid), None);
    }
}
