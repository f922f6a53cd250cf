//! SYSTASK: one per node; acts on the host for the other servers.
//!
//! It binds new processes' endpoints (`lclbind`), starts programs on its
//! node for a launcher of another node (`SysSpawn`, `SysGo`), sends host
//! signals, reads the exit status of a task that ended (from
//! `/proc/<pid>/stat`, while the task is still a zombie), and reaps the
//! tasks whose host parent is this node's subreaper (`dvs-exec`, or the
//! `dvs node` process on a node that joined the DC). Its SLOTS thread
//! ([`crate::slots_group`]) decides which process slots the node owns;
//! SYSTASK gives them out (`SysSlot`, `SysRelease`, `SysSlots`).

use crate::abi::{self, Call, SpawnSpec};
use crate::server::{self, Ctx, Handler, Outcome, Request, Service, Starting};
use crate::slots_group::SlotsGroup;
use crate::spawn::{self, Held};
use dvk::{Dvk, Endpoint};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest `SpawnSpec` accepted.
const SPEC_MAX: usize = 1 << 20;

/// How long `SysSlot` waits for the group to give this node a slot (a
/// node that just joined the DC has none before it gets the table and a
/// donation).
const SLOT_WAIT: Duration = Duration::from_secs(3);

/// An exec prepared by a [`Supervisor`] (it runs in the forked child).
pub type PreparedExec = Box<dyn Fn(&spawn::ExecArgs) -> i32 + Send>;

/// What a SYSTASK asks of the process it runs in about the programs it
/// starts (`SysSpawn`): a static program needs the tracer, which lives
/// outside the MoL servers (`dvs node` provides one per DC).
pub trait Supervisor: Send {
    /// Called before `prog` (a host path) is forked: an exec that prepares
    /// the process first (installs the tracer's filter), if it needs one.
    fn exec_for(&mut self, prog: &std::ffi::CStr) -> Result<Option<PreparedExec>, i32>;
    /// The program `exec_for` just prepared was forked as `pid` (held).
    fn spawned(&mut self, pid: i32);
    /// A program that `exec_for` prepared, still held, is bound as `ep`.
    fn bound(&mut self, pid: i32, ep: Endpoint) -> Result<(), i32>;
}

/// The SYSTASK server state.
pub struct Systask {
    dcid: i32,
    /// This node's daemon socket (the `DVS_SOCKET` of programs started here).
    socket: PathBuf,
    /// Programs started by `SysSpawn`, waiting for `SysGo`.
    held: HashMap<i32, Held>,
    /// Host tasks bound here and not reaped through `SysReap` yet.
    bound: HashSet<i32>,
    /// Supervises the programs that need it.
    supervisor: Option<Box<dyn Supervisor>>,
    /// Held programs the supervisor prepared.
    supervised: HashSet<i32>,
    /// This node's process slots.
    slots: Arc<SlotsGroup>,
}

/// How long a SYSTASK whose DC ended waits for the DC's processes (killed
/// by then) to end, so that it can reap those that are its children.
const LAST_REAP: Duration = Duration::from_secs(2);

impl Drop for Systask {
    /// The DC ended. Programs never released exit without running; the
    /// DC's processes whose host parent is this process are reaped.
    fn drop(&mut self) {
        self.slots.stop();
        let mut left: Vec<i32> = self.held.keys().copied().collect();
        self.held.clear();
        left.extend(self.bound.drain());
        let deadline = Instant::now() + LAST_REAP;
        while !left.is_empty() && Instant::now() < deadline {
            left.retain(|&pid| {
                let mut st = 0;
                // SAFETY: waitpid with a valid status pointer; ECHILD for
                // tasks that are not our children.
                let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG | libc::__WALL) };
                r == 0
            });
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Service for Systask {
    const NAME: &'static str = "systask";

    fn table() -> Vec<(Call, Handler<Self>)> {
        vec![
            (Call::SysBind, Systask::bind),
            (Call::SysKill, Systask::kill),
            (Call::SysExitStatus, Systask::exit_status),
            (Call::SysReap, Systask::reap),
            (Call::SysSpawn, Systask::spawn),
            (Call::SysGo, Systask::go),
            (Call::SysStat, Systask::stat),
            (Call::SysSlot, Systask::slot),
            (Call::SysRelease, Systask::release),
            (Call::SysSlots, Systask::slots),
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
            Ok(e) => {
                self.bound.insert(tid);
                if self.supervised.remove(&tid) {
                    if let Some(s) = self.supervisor.as_mut() {
                        if let Err(errno) = s.bound(tid, e) {
                            tracing::warn!(tid, %ep, errno, "the program cannot be supervised");
                            let _ = ctx.ipc.dvk().unbind(self.dcid, e);
                            return Outcome::err(errno);
                        }
                    }
                }
                Outcome::ok(e.0 as i64)
            }
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
        let (pid, sig) = (req.i32(0), req.i32(1));
        let effect = job_effect(pid, sig);
        // The DC's processes share one host session, whose process group
        // is orphaned (its leader's parent is in another session), and
        // the kernel discards terminal stop signals in an orphaned group.
        // A stop the DC lets happen is therefore a SIGSTOP on the host;
        // the wait status still names the signal sent.
        let host_sig = if effect == abi::STOPS {
            libc::SIGSTOP
        } else {
            sig
        };
        if sig == libc::SIGCHLD {
            host_exit_barrier();
        }
        // SAFETY: kill(2) with integer arguments has no memory effects.
        let r = unsafe { libc::kill(pid, host_sig) };
        if r == 0 {
            let mut m = abi::ok(0);
            m.words_mut()[1] = interrupts(pid, sig) as u64;
            m.words_mut()[2] = effect;
            Outcome::Reply(m)
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
        self.bound.remove(&pid);
        // The task has ended (its pidfd fired), so this does not block
        // for long; ECHILD means another parent reaps it.
        let mut st = 0;
        // SAFETY: waitpid with a valid status pointer on our stack.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::__WALL) };
        Outcome::ok(r as i64)
    }
}

impl Systask {
    fn spawn(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        let len = req.args[1] as usize;
        if len > SPEC_MAX {
            return Outcome::err(libc::E2BIG);
        }
        let spec = match ctx.copy_in(req.sender, req.args[0], len) {
            Ok(b) => b,
            Err(e) => return Outcome::err(e),
        };
        let Ok(spec) = bincode::deserialize::<SpawnSpec>(&spec) else {
            return Outcome::err(libc::EINVAL);
        };
        match self.fork(spec) {
            Ok((h, supervised)) => {
                let pid = h.pid;
                self.held.insert(pid, h);
                if supervised {
                    self.supervised.insert(pid);
                }
                Outcome::ok(pid as i64)
            }
            Err(e) => Outcome::err(e),
        }
    }

    /// Forks the program held; whether the supervisor prepared it.
    fn fork(&mut self, spec: SpawnSpec) -> Result<(Held, bool), i32> {
        let c = |b: Vec<u8>| CString::new(b).map_err(|_| libc::EINVAL);
        let prog = c(spec.prog)?;
        let argv = spec
            .argv
            .into_iter()
            .map(c)
            .collect::<Result<Vec<_>, _>>()?;
        let mut envp: Vec<CString> = spec
            .envp
            .into_iter()
            .filter(|e| !e.starts_with(b"DVS_SOCKET="))
            .map(c)
            .collect::<Result<_, _>>()?;
        envp.push(c([
            b"DVS_SOCKET=".as_slice(),
            self.socket.as_os_str().as_bytes(),
        ]
        .concat())?);
        let cwd = c(spec.cwd)?;
        let prepared = match self.supervisor.as_mut() {
            Some(s) => s.exec_for(&prog)?,
            None => None,
        };
        let exec: spawn::Exec<'_> = match &prepared {
            Some(p) => p.as_ref(),
            None => &spawn::execve,
        };
        let held = spawn::fork_held(&prog, &argv, &envp, Some(&cwd), spec.signals, exec)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        if prepared.is_some() {
            if let Some(s) = self.supervisor.as_mut() {
                s.spawned(held.pid);
            }
        }
        Ok((held, prepared.is_some()))
    }

    fn go(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        let pid = req.i32(0);
        let Some(h) = self.held.remove(&pid) else {
            return Outcome::err(libc::ESRCH);
        };
        self.supervised.remove(&pid);
        Outcome::from(
            h.release()
                .map(|_| 0)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
        )
    }
}

impl Systask {
    /// `[host_pid]`: word 0 the CPU ticks, word 1 the state letter.
    fn stat(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        let (state, ticks) = host_state(req.i32(0));
        let mut m = abi::ok(0);
        m.words_mut()[0] = ticks;
        m.words_mut()[1] = state.bytes().next().unwrap_or(b'?') as u64;
        Outcome::Reply(m)
    }
}

impl Systask {
    fn slot(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        Outcome::from(self.slots.alloc(SLOT_WAIT).map(|ep| ep.0 as i64))
    }

    fn release(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        self.slots.release(Endpoint(req.i32(0)));
        Outcome::ok(0)
    }

    fn slots(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        if !trusted(ctx, req) {
            return Outcome::err(libc::EPERM);
        }
        let Ok(json) = serde_json::to_vec(&self.slots.status()) else {
            return Outcome::err(libc::EIO);
        };
        if json.len() <= req.args[1] as usize {
            if let Err(e) = ctx.copy_out(req.sender, req.args[0], &json) {
                return Outcome::err(e);
            }
        }
        Outcome::ok(json.len() as i64)
    }
}

/// What `sig` does to host task `pid`'s run state, for PM's stop
/// reports: [`abi::STOPS`] (`SIGSTOP`, or a terminal stop signal it
/// neither catches, ignores nor blocks), [`abi::CONTINUES`] (`SIGCONT`),
/// else 0.
fn job_effect(pid: i32, sig: i32) -> u64 {
    match sig {
        libc::SIGSTOP => abi::STOPS,
        libc::SIGCONT => abi::CONTINUES,
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
            let Ok(st) = dvk::sys::read_proc(&format!("/proc/{pid}/status")) else {
                return 0;
            };
            let mask = |key: &str| {
                st.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                    .unwrap_or(u64::MAX)
            };
            let bit = 1u64 << (sig - 1);
            let held = mask("SigCgt:") | mask("SigIgn:") | mask("SigBlk:");
            if held & bit == 0 {
                abi::STOPS
            } else {
                0
            }
        }
        _ => 0,
    }
}

/// Whether `sig` ends the blocking call of host task `pid`: it has a
/// handler for it, and that handler does not restart calls (as far as
/// the process's preload tells, see [`abi::GATE_DATA`]).
fn interrupts(pid: i32, sig: i32) -> bool {
    catches(pid, sig) && !restarts(pid, sig)
}

/// Whether the preload of host task `pid` says that its handler of `sig`
/// restarts interrupted calls (`SA_RESTART`).
fn restarts(pid: i32, sig: i32) -> bool {
    let Ok(page) = dvk::sys::vm_read(pid, abi::GATE_DATA, abi::GATE_RESTARTS + 8) else {
        return false;
    };
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&page[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    word(0) == abi::GATE_MAGIC && word(abi::GATE_RESTARTS) & (1u64 << (sig - 1)) != 0
}

/// Whether host task `pid` has a handler for `sig` (`SigCgt` in
/// `/proc/<pid>/status`).
fn catches(pid: i32, sig: i32) -> bool {
    if !(1..=64).contains(&sig) {
        return false;
    }
    let Ok(st) = dvk::sys::read_proc(&format!("/proc/{pid}/status")) else {
        return false;
    };
    st.lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
}

/// State letter and CPU ticks (user + system) of a host task.
pub fn host_state(pid: i32) -> (String, u64) {
    let Ok(stat) = dvk::sys::read_proc(&format!("/proc/{pid}/stat")) else {
        return ("?".into(), 0);
    };
    let Some(i) = stat.rfind(')') else {
        return ("?".into(), 0);
    };
    let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
    let ticks = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (f.first().unwrap_or(&"?").to_string(), ticks(14) + ticks(15))
}

/// Returns once every task that has begun its end on this host has sent
/// its parent the kernel's `SIGCHLD`. The kernel sends it while holding
/// the task list lock, which `waitid` takes too; PM learns of an end from
/// the task's pidfd, which wakes its watcher inside that locked section,
/// so PM's own `SIGCHLD` (the one that says the status can be collected)
/// could otherwise overtake the kernel's when the ending task's CPU is
/// held up there (a preempted virtual CPU) and be the record a
/// `signalfd` reader sees first.
pub fn host_exit_barrier() {
    // SAFETY: a zeroed siginfo is a valid buffer for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with a valid siginfo pointer; WNOHANG|WNOWAIT neither
    // blocks nor reaps (ECHILD without children is fine: the lock was taken).
    unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
}

/// The wait status of an ended, not yet reaped task: field 52
/// (`exit_code`) of `/proc/<pid>/stat`, in the form `waitpid` reports.
pub fn exit_status_of(pid: i32) -> Option<i32> {
    let stat = dvk::sys::read_proc(&format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); exit_code is field 52.
    if fields.first() != Some(&"Z") && fields.first() != Some(&"X") {
        return None;
    }
    fields.get(52 - 3)?.parse().ok()
}

/// Binds a new thread as `SYSTASK(node)` in DC `dcid` of another node,
/// which this node joined, with a supervisor for the programs it starts,
/// and serves. Its SLOTS thread joins the DC's group with `join`.
pub fn start_with(
    socket: &Path,
    dcid: i32,
    node: i32,
    supervisor: Option<Box<dyn Supervisor>>,
    join: dvk::membership::JoinGroup,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let slots = crate::slots_group::start_joiner(socket, dcid, node, join)?;
    spawn(socket, dcid, node, supervisor, slots)?.ready()
}

/// Starts `SYSTASK(node)` of DC `dcid` on a new thread, binding it; it
/// gives out the slots of `slots`.
pub fn spawn(
    socket: &Path,
    dcid: i32,
    node: i32,
    supervisor: Option<Box<dyn Supervisor>>,
    slots: Arc<SlotsGroup>,
) -> std::io::Result<Starting> {
    let socket = socket.to_path_buf();
    let sock = socket.clone();
    Starting::spawn(
        "systask",
        move || Dvk::tbind_at(&sock, dcid, abi::systask(node)).map_err(server::dvk_io),
        move |ipc| {
            server::run(
                ipc,
                Systask {
                    dcid,
                    socket,
                    held: HashMap::new(),
                    bound: HashSet::new(),
                    supervisor,
                    supervised: HashSet::new(),
                    slots,
                },
            )
        },
    )
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
