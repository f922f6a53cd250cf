//! Host fork of a program that waits before its `execve`: the DC must know
//! the new process (PM and FS entries, its endpoint) before it runs.
//!
//! The child takes the signal state the program is to start with (see
//! [`SignalState`]), starts a session of its own, enters its working
//! directory and waits for one byte on a pipe. [`Held::release`]
//! sends it; dropping the [`Held`] instead makes the child exit (125)
//! without running the program. Only async-signal-safe calls run in the
//! child, on data prepared before the fork, so the parent may have threads.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};

/// What `execve` takes, as `fork_held` prepared it: NUL-terminated arrays
/// of NUL-terminated strings that stay valid in the child.
pub struct ExecArgs {
    prog: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
}

impl ExecArgs {
    /// The program path.
    pub fn prog(&self) -> *const libc::c_char {
        self.prog
    }
    /// The argument vector.
    pub fn argv(&self) -> *const *const libc::c_char {
        self.argv
    }
    /// The environment.
    pub fn envp(&self) -> *const *const libc::c_char {
        self.envp
    }
}

/// What an `execve` keeps of a process's signals: which are ignored and
/// which are blocked (bit `n - 1` stands for signal `n`). Every other
/// signal starts with its default action, whatever the forking server's
/// own dispositions are (a node daemon may run with SIGINT ignored, and
/// the Rust runtime ignores SIGPIPE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignalState {
    /// Signals set to `SIG_IGN`.
    pub ignored: u64,
    /// The blocked mask.
    pub blocked: u64,
}

impl SignalState {
    /// The calling thread's ignored signals and blocked mask. SIGPIPE
    /// counts as not ignored: the Rust runtime ignores it for itself, and
    /// restores it for the programs it starts, as this does.
    pub fn current() -> SignalState {
        let mut st = SignalState::default();
        for sig in 1..=64 {
            // SAFETY: a query (no new action) into a buffer of the kernel's size.
            let old = unsafe { kernel_sigaction(sig, None) };
            if old == Some(libc::SIG_IGN as u64) && sig != libc::SIGPIPE {
                st.ignored |= 1 << (sig - 1);
            }
        }
        let mut mask = 0u64;
        // SAFETY: a query (no new mask) into our 8-byte set.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_BLOCK,
                std::ptr::null::<u64>(),
                &mut mask as *mut u64,
                8usize,
            )
        };
        if r == 0 {
            st.blocked = mask;
        }
        st
    }

    /// Makes it the calling process's: in a forked child, before `execve`.
    ///
    /// # Safety
    /// Changes process-wide signal dispositions: only for a child that
    /// execs next (async-signal-safe calls only).
    unsafe fn apply(self) {
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let ignored = self.ignored & (1 << (sig - 1)) != 0;
            let handler = if ignored {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            kernel_sigaction(sig, Some(handler as u64));
        }
        let mask = self.blocked;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

/// The kernel's `rt_sigaction`, which (unlike the C library's) also
/// reaches the signals the C library keeps for itself: sets `handler`
/// (`SIG_DFL`/`SIG_IGN`, no flags, empty mask) if given, and returns the
/// previous handler.
///
/// # Safety
/// Changing a disposition is process-wide.
unsafe fn kernel_sigaction(sig: i32, handler: Option<u64>) -> Option<u64> {
    // handler, flags, restorer, mask
    let new = [handler.unwrap_or(0), 0u64, 0, 0];
    let mut old = [0u64; 4];
    let newp = if handler.is_some() {
        new.as_ptr()
    } else {
        std::ptr::null()
    };
    let r = libc::syscall(libc::SYS_rt_sigaction, sig, newp, old.as_mut_ptr(), 8usize);
    (r == 0).then_some(old[0])
}

/// `execve`, or a variant that prepares the process first (a seccomp
/// filter): runs in the child and returns the errno of the failed exec, or
/// 0 if it could not even try (the child then exits 125).
pub type Exec<'a> = &'a dyn Fn(&ExecArgs) -> i32;

/// A forked program waiting for [`Held::release`].
#[derive(Debug)]
pub struct Held {
    /// Its host pid.
    pub pid: i32,
    go: OwnedFd,
}

impl Held {
    /// Lets the program `execve`.
    pub fn release(self) -> std::io::Result<()> {
        nix::unistd::write(&self.go, &[1])?;
        Ok(())
    }
}

/// Plain `execve`.
pub fn execve(a: &ExecArgs) -> i32 {
    // SAFETY: `ExecArgs` only comes from `fork_held`, whose arrays outlive
    // the call.
    unsafe {
        libc::execve(a.prog, a.argv, a.envp);
        *libc::__errno_location()
    }
}

/// Forks `prog` with `argv` and `envp`, held before its exec (see the
/// module), with the signal state `signals`. A program that is missing exits 127, one that cannot be
/// executed 126, as a shell reports them.
pub fn fork_held(
    prog: &CStr,
    argv: &[CString],
    envp: &[CString],
    cwd: Option<&CStr>,
    signals: SignalState,
    exec: Exec<'_>,
) -> std::io::Result<Held> {
    let mut av: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    av.push(std::ptr::null());
    let mut ev: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    ev.push(std::ptr::null());
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (go, release) = (go_r.as_raw_fd(), go_w.as_raw_fd());
    // SAFETY: the child only calls async-signal-safe functions (sigaction,
    // sigprocmask, setsid, chdir, close, read, what `exec` does, _exit) on
    // data prepared before the fork.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => unsafe {
            signals.apply();
            libc::setsid();
            if let Some(d) = cwd {
                libc::chdir(d.as_ptr());
            }
            // Only the parent may release it (or, by closing, abandon it).
            libc::close(release);
            let mut b = 0u8;
            if libc::read(go, &mut b as *mut u8 as *mut libc::c_void, 1) != 1 {
                libc::_exit(125);
            }
            let args = ExecArgs {
                prog: prog.as_ptr(),
                argv: av.as_ptr(),
                envp: ev.as_ptr(),
            };
            match exec(&args) {
                0 => libc::_exit(125),
                libc::ENOENT => libc::_exit(127),
                _ => libc::_exit(126),
            }
        },
        pid => Ok(Held { pid, go: go_w }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn status(pid: i32) -> i32 {
        let mut st = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        st
    }

    #[test]
    fn runs_only_when_released_in_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("pwd > {}", out.display());
        let held = fork_held(
            &c("/bin/sh"),
            &[c("sh"), c("-c"), c(&script)],
            &[c("PATH=/usr/bin:/bin")],
            Some(&c(dir.path().to_str().unwrap())),
            SignalState::default(),
            &execve,
        )
        .unwrap();
        let pid = held.pid;
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!out.exists(), "the program ran before it was released");
        held.release().unwrap();
        assert_eq!(status(pid), 0);
        let pwd = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            std::path::Path::new(pwd.trim()).canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
    }

    #[test]
    fn dropped_never_runs_and_missing_is_127() {
        let held = fork_held(
            &c("/bin/true"),
            &[c("true")],
            &[],
            None,
            SignalState::default(),
            &execve,
        )
        .unwrap();
        let pid = held.pid;
        drop(held);
        assert_eq!(libc::WEXITSTATUS(status(pid)), 125);
        let held = fork_held(
            &c("/nonexistent/x"),
            &[c("x")],
            &[],
            None,
            SignalState::default(),
            &execve,
        )
        .unwrap();
        let pid = held.pid;
        held.release().unwrap();
        assert_eq!(libc::WEXITSTATUS(status(pid)), 127);
    }

    /// The program starts with the ignored and blocked signals it is
    /// given, every other one at its default, whatever this process
    /// ignores (the Rust test harness ignores SIGPIPE).
    #[test]
    fn starts_with_the_given_signal_state() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let bit = |s: i32| 1u64 << (s - 1);
        let want = SignalState {
            ignored: bit(libc::SIGINT) | bit(libc::SIGHUP),
            blocked: bit(libc::SIGUSR1),
        };
        // Not through a shell: dash clears its blocked mask.
        let held = fork_held(
            &c("/bin/cp"),
            &[c("cp"), c("/proc/self/status"), c(out.to_str().unwrap())],
            &[c("PATH=/usr/bin:/bin")],
            None,
            want,
            &execve,
        )
        .unwrap();
        let pid = held.pid;
        held.release().unwrap();
        assert_eq!(status(pid), 0);
        let got = std::fs::read_to_string(&out).unwrap();
        let mask = |name: &str| {
            let l = got.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(l[name.len()..].trim(), 16).unwrap()
        };
        assert_eq!(mask("SigIgn:"), want.ignored, "{got}");
        assert_eq!(mask("SigBlk:"), want.blocked, "{got}");
    }
}
