//! The process family: calls served by PM.

use crate::mem::Mem;
use crate::{ret, Action, Shim};
use mol_servers::abi::{self, Call, FS, PM};

impl Shim {
    /// The caller's DC PID (asked once, then cached: it never changes).
    pub fn getpid(&self) -> i64 {
        let c = self.pid_cache.get();
        if c > 0 {
            return c as i64;
        }
        let r = ret(self.value(PM, Call::PmGetpid, &[]));
        if r > 0 {
            self.pid_cache.set(r as i32);
        }
        r
    }

    /// `wait4` through PM: returns `(pid, status, host pid)`.
    fn wait(&self, pid: i64, options: u64) -> Result<(i64, i32, i32), i32> {
        let m = self.call(PM, Call::PmWait4, &[pid as u64, options])?;
        let r = abi::result(&m)?;
        Ok((r, m.words()[1] as u32 as i32, m.words()[2] as i32))
    }

    fn wait4(&self, mem: &dyn Mem, a: [u64; 6]) -> Result<Action, i32> {
        let options = a[2] & (libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED) as u64;
        let options = options | libc::WEXITED as u64;
        let (pid, status, host_pid) = self.wait(a[0] as i32 as i64, options)?;
        if pid == 0 {
            return Ok(Action::Ret(0));
        }
        if a[1] != 0 {
            mem.write_val(a[1], &status)?;
        }
        if a[3] != 0 {
            mem.write(a[3], &[0u8; std::mem::size_of::<libc::rusage>()])?;
        }
        if job_report(status) {
            return Ok(Action::Ret(pid));
        }
        Ok(Action::Reap { ret: pid, host_pid })
    }

    /// `pidfd_open`: PM names the process's endpoint (or says it ended),
    /// FS opens it. A process that ends in between is asked about again.
    fn pidfd_open(&self, pid: i32, flags: u64) -> Result<i64, i32> {
        if pid <= 0 {
            return Err(libc::EINVAL);
        }
        let mut tries = 0;
        loop {
            let m = self.call(PM, Call::PmEndpointOf, &[pid as u64])?;
            let ep = abi::result(&m)?;
            let zombie = m.words()[1];
            match self.value(
                FS,
                Call::FsPidfdOpen,
                &[pid as u64, ep as u64, flags, zombie],
            ) {
                Err(libc::ESRCH) if tries == 0 => tries += 1,
                r => return r,
            }
        }
    }

    /// The DC pid of process descriptor `fd`.
    fn pidfd_pid(&self, fd: u64) -> Result<i64, i32> {
        self.value(FS, Call::FsPidfdPid, &[fd])
    }

    /// The DC pid of the process whose `/proc/<pid>` directory descriptor
    /// `fd` is (`EBADF` for any other descriptor).
    fn proc_dir_pid(&self, fd: u64) -> Result<i64, i32> {
        let path = self.host_path(fd as i32).map_err(|_| libc::EBADF)?;
        let host = path
            .strip_prefix(b"/proc/")
            .filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u64>().ok())
            .ok_or(libc::EBADF)?;
        self.value(PM, Call::PmPidOfHost, &[host])
    }

    fn waitid(&self, mem: &dyn Mem, a: [u64; 6]) -> Result<Action, i32> {
        let options = a[3] as i32;
        let what = libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED;
        if options & what == 0 {
            return Err(libc::EINVAL);
        }
        // WNOWAIT peeks: the child stays waitable, nothing is reaped.
        let peek = options & libc::WNOWAIT != 0;
        let spec = match a[0] as u32 {
            libc::P_PID => a[1] as i32 as i64,
            libc::P_PIDFD => self.pidfd_pid(a[1])?,
            libc::P_PGID => -(a[1] as i32 as i64),
            libc::P_ALL => -1,
            _ => return Err(libc::EINVAL),
        };
        let (pid, status, host_pid) = self.wait(
            spec,
            (options & (what | libc::WNOHANG | libc::WNOWAIT)) as u64,
        )?;
        if a[2] != 0 {
            let mut info = [0i32; 32];
            if pid != 0 {
                let sig = status & 0x7f;
                info[0] = libc::SIGCHLD;
                info[2] = if status == 0xffff {
                    libc::CLD_CONTINUED
                } else if sig == 0x7f {
                    libc::CLD_STOPPED
                } else if sig == 0 {
                    libc::CLD_EXITED
                } else if status & 0x80 != 0 {
                    libc::CLD_DUMPED
                } else {
                    libc::CLD_KILLED
                };
                info[4] = pid as i32;
                info[6] = if status == 0xffff {
                    libc::SIGCONT
                } else if sig == 0 || sig == 0x7f {
                    (status >> 8) & 0xff
                } else {
                    sig
                };
            }
            mem.write_val(a[2], &info)?;
        }
        if pid == 0 || job_report(status) || peek {
            return Ok(Action::Ret(0));
        }
        Ok(Action::Reap { ret: 0, host_pid })
    }

    /// Serves the call if it belongs to the process family.
    #[allow(non_upper_case_globals)]
    pub(crate) fn proc_call(&self, mem: &dyn Mem, nr: i64, a: [u64; 6]) -> Option<Action> {
        use libc::*;
        use mol_servers::abi::PM;
        let r = |x: Result<i64, i32>| Some(Action::Ret(ret(x)));
        let act = |x: Result<Action, i32>| {
            Some(match x {
                Ok(a) => a,
                Err(e) => Action::Ret(-(e as i64)),
            })
        };
        match nr {
            SYS_getpid => Some(Action::Ret(self.getpid())),
            SYS_getppid => r(self.value(PM, Call::PmGetppid, &[])),
            SYS_fork => Some(Action::Fork { vfork: false }),
            SYS_vfork => Some(Action::Fork { vfork: true }),
            SYS_clone => {
                let flags = a[0] as i32;
                if flags & CLONE_THREAD != 0 {
                    Some(Action::Native)
                } else if flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0 {
                    Some(Action::Unsupported(nr))
                } else {
                    Some(Action::Fork {
                        vfork: flags & CLONE_VFORK != 0,
                    })
                }
            }
            SYS_execve | SYS_execveat => Some(Action::Exec),
            SYS_wait4 => act(self.wait4(mem, a)),
            SYS_waitid => act(self.waitid(mem, a)),
            SYS_kill => r(self.value(PM, Call::PmKill, &[a[0] as i32 as i64 as u64, a[1]])),
            SYS_pidfd_open => match self.pidfd_open(a[0] as i32, a[1]) {
                // A process of another node has no pidfd here.
                Err(libc::EREMOTE) => Some(Action::Unsupported(nr)),
                x => r(x),
            },
            SYS_pidfd_send_signal => {
                if a[2] != 0 {
                    // A siginfo to queue: not served (kill semantics only).
                    return Some(Action::Unsupported(nr));
                }
                if a[3] != 0 {
                    return Some(Action::Ret(-(libc::EINVAL as i64)));
                }
                let pid = match self.pidfd_pid(a[0]) {
                    // A `/proc/<pid>` directory names a process too.
                    Err(libc::EBADF) => self.proc_dir_pid(a[0]),
                    r => r,
                };
                r(pid.and_then(|pid| self.value(PM, Call::PmKill, &[pid as u64, a[1]])))
            }
            SYS_setpgid => r(self.value(PM, Call::PmSetpgid, &[a[0], a[1]])),
            SYS_getpgid => r(self.value(PM, Call::PmGetpgid, &[a[0]])),
            SYS_getpgrp => r(self.value(PM, Call::PmGetpgid, &[0])),
            SYS_setsid => r(self.value(PM, Call::PmSetsid, &[])),
            SYS_getsid => r(self.value(PM, Call::PmGetsid, &[a[0]])),
            _ => None,
        }
    }
}

/// Whether a wait status reports a stop or a continue (no host task ended:
/// nothing to reap).
fn job_report(status: i32) -> bool {
    status & 0xff == 0x7f || status == 0xffff
}
