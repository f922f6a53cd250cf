//! Process calls: served by PM. `fork` and `exec` run on the host, with PM
//! told about them.

use crate::state::{self, enter, libc_ret, set_errno, with_shim};
use crate::sys;
use crate::vfork::Held;
use libc::*;
use std::ffi::{CStr, CString};

sys!(getpid => hk_getpid() -> pid_t, SYS_getpid, []);
sys!(getppid => hk_getppid() -> pid_t, SYS_getppid, []);
sys!(kill => hk_kill(pid: pid_t, sig: c_int) -> c_int, SYS_kill, [pid, sig]);
sys!(killpg => hk_killpg(g: pid_t, sig: c_int) -> c_int, SYS_kill, [-(g as i64), sig]);
sys!(pidfd_open => hk_pidfd_open(pid: pid_t, flags: c_uint) -> c_int, SYS_pidfd_open, [pid, flags]);
sys!(pidfd_send_signal => hk_pidfd_send_signal(fd: c_int, sig: c_int, info: *mut libc::siginfo_t, flags: c_uint) -> c_int, SYS_pidfd_send_signal, [fd, sig, info, flags]);
sys!(pidfd_getfd => hk_pidfd_getfd(fd: c_int, target: c_int, flags: c_uint) -> c_int, SYS_pidfd_getfd, [fd, target, flags]);
sys!(setpgid => hk_setpgid(pid: pid_t, g: pid_t) -> c_int, SYS_setpgid, [pid, g]);
sys!(setpgrp => hk_setpgrp() -> c_int, SYS_setpgid, [0, 0]);
sys!(getpgid => hk_getpgid(pid: pid_t) -> pid_t, SYS_getpgid, [pid]);
sys!(getpgrp => hk_getpgrp() -> pid_t, SYS_getpgrp, []);
sys!(__getpgid => hk_getpgid_internal(pid: pid_t) -> pid_t, SYS_getpgid, [pid]);
sys!(setsid => hk_setsid() -> pid_t, SYS_setsid, []);
sys!(getsid => hk_getsid(pid: pid_t) -> pid_t, SYS_getsid, [pid]);
sys!(wait4 => hk_wait4(pid: pid_t, st: *mut c_int, opt: c_int, ru: *mut rusage) -> pid_t, SYS_wait4, [pid, st, opt, ru]);
sys!(waitpid => hk_waitpid(pid: pid_t, st: *mut c_int, opt: c_int) -> pid_t, SYS_wait4, [pid, st, opt, 0]);
sys!(wait => hk_wait(st: *mut c_int) -> pid_t, SYS_wait4, [-1i64, st, 0, 0]);
sys!(wait3 => hk_wait3(st: *mut c_int, opt: c_int, ru: *mut rusage) -> pid_t, SYS_wait4, [-1i64, st, opt, ru]);
sys!(waitid => hk_waitid(t: idtype_t, id: id_t, info: *mut siginfo_t, opt: c_int) -> c_int, SYS_waitid, [t, id, info, opt, 0]);

/// The host fork, and PM told about the child.
fn do_fork(real_fork: impl Fn() -> pid_t) -> pid_t {
    match host_fork(real_fork) {
        c if c <= 0 => c,
        child => libc_ret(register_child(child)) as pid_t,
    }
}

/// The host fork. While glibc's fork runs, the calling thread holds a
/// fork slot of the gate page, so that the seccomp net lets its `clone`
/// run (a `clone` outside such a slot is a raw fork the net refuses). The
/// child attaches to the binding its parent asks PM for.
fn host_fork(real_fork: impl Fn() -> pid_t) -> pid_t {
    // SAFETY: gettid has no arguments.
    let tid = unsafe { libc::syscall(SYS_gettid) } as u32;
    let slot = shim::gatepage::fork_enter(tid);
    // A native fork never fails with EINTR, but under the seccomp net a
    // signal that arrives before the supervisor has taken the `clone`
    // interrupts it (for handlers without SA_RESTART): try again, as the
    // kernel would have.
    let child = loop {
        let c = real_fork();
        // SAFETY: reading this thread's errno.
        if c < 0 && unsafe { *libc::__errno_location() } == EINTR {
            continue;
        }
        break c;
    };
    if child != 0 {
        if let Some(s) = slot {
            shim::gatepage::fork_leave(s);
        }
    }
    if child == 0 {
        state::reattach_child();
    }
    child
}

/// Tells PM about host child `child` (`PmFork`): its DC pid, or `-errno`
/// after killing it (it must not run outside the DC).
pub(crate) fn register_child(child: pid_t) -> i64 {
    let r = with_shim(|s| s.forked(child)).unwrap_or(-(ENOSYS as i64));
    if r < 0 {
        // SAFETY: signalling our own fresh child.
        unsafe { crate::gate::syscall6(SYS_kill, [child as u64, SIGKILL as u64, 0, 0, 0, 0]) };
        crate::gate::reap(child);
    }
    r
}

redhook::hook! {
    unsafe fn fork() -> pid_t => hk_fork {
        let Some(g) = enter() else {
            // SAFETY: the real libc function.
            return unsafe { redhook::real!(fork)() };
        };
        // SAFETY: glibc's fork (it runs the atfork handlers).
        let r = do_fork(|| unsafe { redhook::real!(fork)() });
        drop(g);
        r
    }
}

/// `vfork` run as a `fork` (same observable result for the exec-or-exit
/// children vfork is meant for), when [`crate::vfork::vfork`] cannot
/// take the host's: outside a DC, or in a process whose vfork children
/// do more than exec.
pub(crate) extern "C" fn vfork_as_fork() -> pid_t {
    let Some(g) = enter() else {
        // SAFETY: the real libc fork (a hook cannot return twice through
        // one frame, as libc's vfork does).
        return unsafe { redhook::real!(fork)() };
    };
    // SAFETY: glibc's fork.
    let r = do_fork(|| unsafe { redhook::real!(fork)() });
    drop(g);
    r
}

/// The environment for the image about to be exec'd: the caller's, with
/// the variables that keep it in its DC, and the path it exec's.
fn dc_env(envp: *const *const c_char, path: &CStr) -> Vec<CString> {
    let mut out = Vec::new();
    let keep = state::DC_VARS;
    // With `LD_TRACE_LOADED_OBJECTS` (`ldd`) the loader lists the
    // program's libraries and runs nothing: the preload is left out of the
    // list, as it is of a native `ldd`'s.
    let mut listing = false;
    // The program's own `LD_PRELOAD`, loaded after this library.
    let mut given = Vec::new();
    if !envp.is_null() {
        let mut i = 0;
        loop {
            // SAFETY: envp is a NULL-terminated array of C strings (the
            // execve contract); we stop at the NULL.
            let p = unsafe { *envp.add(i) };
            if p.is_null() {
                break;
            }
            // SAFETY: p is a valid C string.
            let s = unsafe { CStr::from_ptr(p) };
            let b = s.to_bytes();
            listing |= b.len() > b"LD_TRACE_LOADED_OBJECTS=".len()
                && b.starts_with(b"LD_TRACE_LOADED_OBJECTS=");
            if let Some(v) = b.strip_prefix(b"LD_PRELOAD=") {
                given = v.to_vec();
            }
            let ours = keep
                .iter()
                .any(|k| b.starts_with(k.as_bytes()) && b.get(k.len()) == Some(&b'='))
                || b.starts_with(b"DVS_EXEC_PATH=");
            if !ours {
                out.push(s.to_owned());
            }
            i += 1;
        }
    }
    for (k, v) in state::dc_vars() {
        let v = std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str());
        let mut list: Vec<&[u8]> = Vec::new();
        if *k == "LD_PRELOAD" {
            if !listing {
                list.push(v);
            }
            list.extend(state::preload_entries(&given).filter(|e| *e != v));
            if list.is_empty() {
                continue;
            }
        } else {
            list.push(v);
        }
        let mut e = k.as_bytes().to_vec();
        e.push(b'=');
        e.extend_from_slice(&list.join(&b':'));
        if let Ok(c) = CString::new(e) {
            out.push(c);
        }
    }
    let mut e = b"DVS_EXEC_PATH=".to_vec();
    e.extend_from_slice(path.to_bytes());
    if let Ok(c) = CString::new(e) {
        out.push(c);
    }
    out
}

/// `execve` of a DC path: run on the host with the DC environment kept.
fn do_execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    if path.is_null() {
        set_errno(EFAULT);
        return -1;
    }
    // SAFETY: a non-null C string from the caller.
    let p = unsafe { CStr::from_ptr(path) };
    exec_at(AT_FDCWD, p, argv, envp, 0)
}

/// Execs DC path `p` (relative to DC descriptor `dirfd`): FS resolves it
/// inside the DC root to the host file the host kernel runs.
fn exec_at(
    dirfd: c_int,
    p: &CStr,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: c_int,
) -> c_int {
    let host = match with_shim(|s| s.host_path_at(dirfd, p.to_bytes(), flags & AT_SYMLINK_NOFOLLOW))
    {
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            set_errno(e);
            return -1;
        }
        None => {
            set_errno(ENOSYS);
            return -1;
        }
    };
    let Ok(host) = CString::new(host) else {
        set_errno(ENOENT);
        return -1;
    };
    let host = Held::new(host);
    exec_host(&host, p, argv, envp)
}

/// Runs host file `host` (DC path `p`) on the host, keeping the DC
/// environment. Returns only on failure.
fn exec_host(
    host: &CStr,
    p: &CStr,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let env = Held::new(dc_env(envp, p));
    if let Some(node) = crate::rexec::target_node(&env) {
        // Moving the process to another node needs a process of its own.
        if crate::vfork::borrowed() {
            crate::vfork::attach_child();
        }
        return crate::rexec::exec_on(node, host, argv, &env);
    }
    let mut envv: Vec<*const c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envv.push(std::ptr::null());
    let envv = Held::new(envv);
    let is_static = crate::adopt::is_static(host);
    // The supervisor traces a static image as a process of its own.
    if is_static && crate::vfork::borrowed() {
        crate::vfork::attach_child();
    }
    // A vfork child's parked endpoints are its parent's.
    if !crate::vfork::in_child() {
        crate::state::drop_parked();
    }
    // A static program has no preload: the net's supervisor traces it.
    // Without a supervisor it runs as before, served by nothing.
    if is_static && !crate::adopt::request() {
        crate::state::report_once(
            "static",
            "dvs: a static program runs without the seccomp net (DVS_NET=off): its calls reach the host",
        );
    }
    // SAFETY: argv from the caller; host and envv are NUL-/NULL-terminated
    // and live until the call returns (it only returns on failure).
    let r = unsafe {
        crate::gate::syscall6(
            SYS_execve,
            [
                host.as_ptr() as u64,
                argv as u64,
                envv.as_ptr() as u64,
                0,
                0,
                0,
            ],
        )
    };
    libc_ret(r) as c_int
}

redhook::hook! {
    unsafe fn execveat(dirfd: c_int, path: *const c_char, argv: *const *const c_char, envp: *const *const c_char, flags: c_int) -> c_int => hk_execveat {
        let Some(_g) = state::enter_exec() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(execveat)(dirfd, path, argv, envp, flags) };
        };
        if path.is_null() {
            set_errno(EFAULT);
            return -1;
        }
        // SAFETY: a non-null C string from the caller.
        let p = unsafe { CStr::from_ptr(path) };
        if p.to_bytes().is_empty() && flags & AT_EMPTY_PATH != 0 {
            return match with_shim(|s| s.host_path(dirfd)) {
                Some(Ok(h)) => match CString::new(h) {
                    Ok(c) => {
                        let c = Held::new(c);
                        exec_host(&c, &c, argv, envp)
                    }
                    Err(_) => {
                        set_errno(ENOENT);
                        -1
                    }
                },
                Some(Err(e)) => {
                    set_errno(e);
                    -1
                }
                None => {
                    set_errno(ENOSYS);
                    -1
                }
            };
        }
        exec_at(dirfd, p, argv, envp, flags)
    }
}

redhook::hook! {
    unsafe fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int => hk_execve {
        let Some(_g) = state::enter_exec() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(execve)(path, argv, envp) };
        };
        do_execve(path, argv, envp)
    }
}

extern "C" {
    static environ: *const *const c_char;
}

pub(crate) fn current_env() -> *const *const c_char {
    // SAFETY: reading the process's environment pointer.
    unsafe { environ }
}

redhook::hook! {
    unsafe fn execv(path: *const c_char, argv: *const *const c_char) -> c_int => hk_execv {
        let Some(_g) = state::enter_exec() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(execv)(path, argv) };
        };
        do_execve(path, argv, current_env())
    }
}

/// `execvpe`: searches `PATH` like glibc (default "/bin:/usr/bin"), trying
/// each candidate; `ENOEXEC` falls back to `/bin/sh`.
fn do_execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    if file.is_null() {
        set_errno(EFAULT);
        return -1;
    }
    // SAFETY: non-null C string from the caller.
    let f = unsafe { CStr::from_ptr(file) }.to_bytes();
    if f.is_empty() {
        set_errno(ENOENT);
        return -1;
    }
    if f.contains(&b'/') {
        return do_execve(file, argv, envp);
    }
    let path = Held::new(std::env::var("PATH").unwrap_or_else(|_| "/bin:/usr/bin".into()));
    let mut last = ENOENT;
    let mut seen_eacces = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let mut cand = dir.as_bytes().to_vec();
        cand.push(b'/');
        cand.extend_from_slice(f);
        let Ok(c) = CString::new(cand) else {
            continue;
        };
        let c = Held::new(c);
        do_execve(c.as_ptr(), argv, envp);
        // SAFETY: reading this thread's errno.
        let e = unsafe { *libc::__errno_location() };
        match e {
            EACCES => {
                seen_eacces = true;
            }
            ENOEXEC => {
                // Run it as a shell script: sh path args...
                let mut args: Vec<*const c_char> = vec![c"/bin/sh".as_ptr(), c.as_ptr()];
                let mut i = 1;
                loop {
                    // SAFETY: argv is NULL-terminated (execvp contract).
                    let a = unsafe { *argv.add(i) };
                    if a.is_null() {
                        break;
                    }
                    args.push(a);
                    i += 1;
                }
                args.push(std::ptr::null());
                let args = Held::new(args);
                return do_execve(c"/bin/sh".as_ptr(), args.as_ptr(), envp);
            }
            ENOENT | ENOTDIR | ESTALE | ENODEV | ETIMEDOUT => {}
            other => {
                last = other;
                break;
            }
        }
    }
    set_errno(if seen_eacces { EACCES } else { last });
    -1
}

redhook::hook! {
    unsafe fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int => hk_execvp {
        let Some(_g) = state::enter_exec() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(execvp)(file, argv) };
        };
        do_execvpe(file, argv, current_env())
    }
}

redhook::hook! {
    unsafe fn execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int => hk_execvpe {
        let Some(_g) = state::enter_exec() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(execvpe)(file, argv, envp) };
        };
        do_execvpe(file, argv, envp)
    }
}

redhook::hook! {
    unsafe fn fexecve(fd: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int => hk_fexecve {
        let Some(_g) = state::enter_exec() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(fexecve)(fd, argv, envp) };
        };
        match with_shim(|s| s.host_path(fd)) {
            Some(Ok(p)) => match CString::new(p) {
                Ok(c) => {
                    let c = Held::new(c);
                    exec_host(&c, &c, argv, envp)
                }
                Err(_) => {
                    set_errno(ENOENT);
                    -1
                }
            },
            Some(Err(e)) => {
                set_errno(e);
                -1
            }
            None => {
                set_errno(ENOSYS);
                -1
            }
        }
    }
}
