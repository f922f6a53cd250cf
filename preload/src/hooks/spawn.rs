//! `posix_spawn`, `system` and `popen`: glibc creates these children with
//! internal calls a preload cannot see, so the children would not join the
//! DC. They are rebuilt here from the hooked `fork`, descriptor calls and
//! `exec`, so every child is registered with PM and its descriptors are
//! FS's. File actions are recorded when the program adds them (the
//! `posix_spawn_file_actions_t` layout is glibc's private business).

use crate::state::{enter, set_errno};
use libc::*;
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Mutex;

/// One recorded file action.
#[derive(Clone, Debug)]
enum Action {
    Close(c_int),
    Dup2(c_int, c_int),
    Open(c_int, Vec<u8>, c_int, mode_t),
    Chdir(Vec<u8>),
    Fchdir(c_int),
}

/// Recorded actions by `posix_spawn_file_actions_t` address.
static ACTIONS: Mutex<Option<HashMap<usize, Vec<Action>>>> = Mutex::new(None);

fn with_actions<R>(f: impl FnOnce(&mut HashMap<usize, Vec<Action>>) -> R) -> R {
    let mut g = ACTIONS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn record(fa: *mut posix_spawn_file_actions_t, a: Action) {
    with_actions(|m| m.entry(fa as usize).or_default().push(a));
}

fn cstr(p: *const c_char) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: a C string from the caller.
    unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
}

redhook::hook! {
    unsafe fn posix_spawn_file_actions_init(fa: *mut posix_spawn_file_actions_t) -> c_int => hk_fa_init {
        with_actions(|m| m.insert(fa as usize, Vec::new()));
        // SAFETY: the real libc function with the caller's argument.
        unsafe { redhook::real!(posix_spawn_file_actions_init)(fa) }
    }
}

redhook::hook! {
    unsafe fn posix_spawn_file_actions_destroy(fa: *mut posix_spawn_file_actions_t) -> c_int => hk_fa_destroy {
        with_actions(|m| m.remove(&(fa as usize)));
        // SAFETY: the real libc function with the caller's argument.
        unsafe { redhook::real!(posix_spawn_file_actions_destroy)(fa) }
    }
}

redhook::hook! {
    unsafe fn posix_spawn_file_actions_addclose(fa: *mut posix_spawn_file_actions_t, fd: c_int) -> c_int => hk_fa_close {
        // SAFETY: the real libc function (it validates the arguments).
        let r = unsafe { redhook::real!(posix_spawn_file_actions_addclose)(fa, fd) };
        if r == 0 {
            record(fa, Action::Close(fd));
        }
        r
    }
}

redhook::hook! {
    unsafe fn posix_spawn_file_actions_adddup2(fa: *mut posix_spawn_file_actions_t, fd: c_int, newfd: c_int) -> c_int => hk_fa_dup2 {
        // SAFETY: the real libc function (it validates the arguments).
        let r = unsafe { redhook::real!(posix_spawn_file_actions_adddup2)(fa, fd, newfd) };
        if r == 0 {
            record(fa, Action::Dup2(fd, newfd));
        }
        r
    }
}

redhook::hook! {
    unsafe fn posix_spawn_file_actions_addopen(fa: *mut posix_spawn_file_actions_t, fd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int => hk_fa_open {
        // SAFETY: the real libc function (it validates the arguments).
        let r = unsafe { redhook::real!(posix_spawn_file_actions_addopen)(fa, fd, path, flags, mode) };
        if r == 0 {
            record(fa, Action::Open(fd, cstr(path), flags, mode));
        }
        r
    }
}

redhook::hook! {
    unsafe fn posix_spawn_file_actions_addchdir_np(fa: *mut posix_spawn_file_actions_t, path: *const c_char) -> c_int => hk_fa_chdir {
        // SAFETY: the real libc function (it validates the arguments).
        let r = unsafe { redhook::real!(posix_spawn_file_actions_addchdir_np)(fa, path) };
        if r == 0 {
            record(fa, Action::Chdir(cstr(path)));
        }
        r
    }
}

redhook::hook! {
    unsafe fn posix_spawn_file_actions_addfchdir_np(fa: *mut posix_spawn_file_actions_t, fd: c_int) -> c_int => hk_fa_fchdir {
        // SAFETY: the real libc function (it validates the arguments).
        let r = unsafe { redhook::real!(posix_spawn_file_actions_addfchdir_np)(fa, fd) };
        if r == 0 {
            record(fa, Action::Fchdir(fd));
        }
        r
    }
}

/// In the child of a spawn: applies the attributes and file actions, then
/// execs. Never returns; a failure exits with 127, like glibc's child.
/// The child of `posix_spawn`: the attributes, the file actions, the
/// exec. A step that fails ends it with 127, its errno in `*err` (which a
/// child that shares its parent's memory hands over, as glibc's does).
fn child(
    search: bool,
    path: *const c_char,
    fa: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
    err: *mut c_int,
) -> ! {
    // SAFETY: `err` is the spawning call's, valid while it waits.
    let fail = || -> ! {
        unsafe {
            *err = *__errno_location();
            _exit(127)
        }
    };
    // SAFETY (whole function): calls into our own hooked libc entry points
    // (so the descriptor work is FS's) and libc attribute getters, with
    // arguments from the program's posix_spawn call.
    unsafe {
        if !attr.is_null() {
            let mut flags: c_short = 0;
            posix_spawnattr_getflags(attr, &mut flags);
            let flags = flags as c_int;
            if flags & POSIX_SPAWN_SETSIGDEF != 0 {
                let mut set: sigset_t = std::mem::zeroed();
                posix_spawnattr_getsigdefault(attr, &mut set);
                for s in 1..65 {
                    if sigismember(&set, s) == 1 {
                        signal(s, SIG_DFL);
                    }
                }
            }
            if flags & POSIX_SPAWN_SETSID as c_int != 0 && libc::setsid() < 0 {
                fail();
            }
            if flags & POSIX_SPAWN_SETPGROUP != 0 {
                let mut g: pid_t = 0;
                posix_spawnattr_getpgroup(attr, &mut g);
                if libc::setpgid(0, g) < 0 {
                    fail();
                }
            }
            if flags & POSIX_SPAWN_RESETIDS != 0 {
                let _ = setgid(getgid());
                let _ = setuid(getuid());
            }
            if flags & POSIX_SPAWN_SETSIGMASK != 0 {
                let mut set: sigset_t = std::mem::zeroed();
                posix_spawnattr_getsigmask(attr, &mut set);
                sigprocmask(SIG_SETMASK, &set, std::ptr::null_mut());
            }
        }
        let actions = with_actions(|m| m.get(&(fa as usize)).cloned()).unwrap_or_default();
        for a in actions {
            let ok = match a {
                Action::Close(fd) => libc::close(fd) == 0 || *__errno_location() == EBADF,
                Action::Dup2(fd, nfd) => {
                    if fd == nfd {
                        // posix_spawn clears FD_CLOEXEC in that case.
                        libc::fcntl(fd, F_SETFD, 0) == 0
                    } else {
                        libc::dup2(fd, nfd) == nfd
                    }
                }
                Action::Open(fd, p, flags, mode) => match std::ffi::CString::new(p) {
                    Ok(c) => {
                        let o = libc::open(c.as_ptr(), flags, mode as c_uint);
                        o == fd || (o >= 0 && libc::dup2(o, fd) == fd && libc::close(o) == 0)
                    }
                    Err(_) => false,
                },
                Action::Chdir(p) => match std::ffi::CString::new(p) {
                    Ok(c) => libc::chdir(c.as_ptr()) == 0,
                    Err(_) => false,
                },
                Action::Fchdir(fd) => libc::fchdir(fd) == 0,
            };
            if !ok {
                fail();
            }
        }
        if search {
            libc::execvpe(
                path,
                argv as *const *const c_char,
                envp as *const *const c_char,
            );
        } else {
            libc::execve(
                path,
                argv as *const *const c_char,
                envp as *const *const c_char,
            );
        }
        fail()
    }
}

fn spawn(
    search: bool,
    pid: *mut pid_t,
    path: *const c_char,
    fa: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    let mut err: c_int = 0;
    let e: *mut c_int = &mut err;
    // A child in our memory (as glibc's), else our hooked fork.
    let c = match crate::vfork::spawn(&mut || child(search, path, fa, attr, argv, envp, e)) {
        Some(c) => c,
        // SAFETY: our hooked fork (registers the child with PM).
        None => match unsafe { libc::fork() } {
            0 => child(search, path, fa, attr, argv, envp, e),
            c => c,
        },
    };
    if c < 0 {
        // SAFETY: reading this thread's errno.
        return unsafe { *__errno_location() };
    }
    if err != 0 {
        // The child could not exec: reap it and report why, as glibc does.
        let mut st = 0;
        // SAFETY: our hooked waitpid on our own child.
        unsafe { libc::waitpid(c, &mut st, 0) };
        return err;
    }
    if !pid.is_null() {
        // SAFETY: the caller's result pointer.
        unsafe { *pid = c };
    }
    0
}

redhook::hook! {
    unsafe fn posix_spawn(pid: *mut pid_t, path: *const c_char, fa: *const posix_spawn_file_actions_t, attr: *const posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int => hk_posix_spawn {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(posix_spawn)(pid, path, fa, attr, argv, envp) };
        }
        spawn(false, pid, path, fa, attr, argv, envp)
    }
}

redhook::hook! {
    unsafe fn posix_spawnp(pid: *mut pid_t, file: *const c_char, fa: *const posix_spawn_file_actions_t, attr: *const posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int => hk_posix_spawnp {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(posix_spawnp)(pid, file, fa, attr, argv, envp) };
        }
        spawn(true, pid, file, fa, attr, argv, envp)
    }
}

redhook::hook! {
    unsafe fn system(cmd: *const c_char) -> c_int => hk_system {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's argument.
            return unsafe { redhook::real!(system)(cmd) };
        }
        // SAFETY (below): POSIX system(): SIGINT/SIGQUIT ignored and
        // SIGCHLD blocked in the caller while the shell runs; our hooked
        // fork, exec and waitpid.
        unsafe {
            if cmd.is_null() {
                return 1; // a shell is available
            }
            let mut ign: sigaction = std::mem::zeroed();
            ign.sa_sigaction = SIG_IGN;
            let (mut old_int, mut old_quit): (sigaction, sigaction) = (std::mem::zeroed(), std::mem::zeroed());
            sigaction(SIGINT, &ign, &mut old_int);
            sigaction(SIGQUIT, &ign, &mut old_quit);
            let mut chld: sigset_t = std::mem::zeroed();
            let mut old_mask: sigset_t = std::mem::zeroed();
            sigemptyset(&mut chld);
            sigaddset(&mut chld, SIGCHLD);
            sigprocmask(SIG_BLOCK, &chld, &mut old_mask);
            let run = || -> ! {
                sigaction(SIGINT, &old_int, std::ptr::null_mut());
                sigaction(SIGQUIT, &old_quit, std::ptr::null_mut());
                sigprocmask(SIG_SETMASK, &old_mask, std::ptr::null_mut());
                let argv = [c"sh".as_ptr(), c"-c".as_ptr(), cmd, std::ptr::null()];
                libc::execv(c"/bin/sh".as_ptr(), argv.as_ptr());
                _exit(127)
            };
            // A child in our memory, else our hooked fork.
            let c = match crate::vfork::spawn(&mut || run()) {
                Some(c) => c,
                None => match libc::fork() {
                    0 => run(),
                    c => c,
                },
            };
            let mut status = -1;
            if c > 0 {
                while libc::waitpid(c, &mut status, 0) < 0 {
                    if *__errno_location() != EINTR {
                        status = -1;
                        break;
                    }
                }
            }
            sigaction(SIGINT, &old_int, std::ptr::null_mut());
            sigaction(SIGQUIT, &old_quit, std::ptr::null_mut());
            sigprocmask(SIG_SETMASK, &old_mask, std::ptr::null_mut());
            status
        }
    }
}

/// Children of `popen` streams, by `FILE *`.
static POPENED: Mutex<Option<HashMap<usize, pid_t>>> = Mutex::new(None);

redhook::hook! {
    unsafe fn popen(cmd: *const c_char, mode: *const c_char) -> *mut FILE => hk_popen {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(popen)(cmd, mode) };
        }
        if cmd.is_null() || mode.is_null() {
            set_errno(EINVAL);
            return std::ptr::null_mut();
        }
        // SAFETY: a C string from the caller.
        let m = unsafe { CStr::from_ptr(mode) }.to_bytes();
        let reading = match m.first() {
            Some(b'r') => true,
            Some(b'w') => false,
            _ => {
                set_errno(EINVAL);
                return std::ptr::null_mut();
            }
        };
        let cloexec = m.contains(&b'e');
        // SAFETY (below): our hooked pipe, fork, dup2, close and exec.
        unsafe {
            let mut p = [0 as c_int; 2];
            if libc::pipe(p.as_mut_ptr()) < 0 {
                return std::ptr::null_mut();
            }
            let (mine, theirs, target) = if reading { (p[0], p[1], 1) } else { (p[1], p[0], 0) };
            let run = || -> ! {
                libc::close(mine);
                if theirs != target {
                    libc::dup2(theirs, target);
                    libc::close(theirs);
                }
                // Streams of earlier popen calls are not inherited.
                let open: Vec<c_int> = POPENED
                    .lock()
                    .map(|g| g.as_ref().map(|m| m.keys().map(|&f| libc::fileno(f as *mut FILE)).collect()).unwrap_or_default())
                    .unwrap_or_default();
                for fd in open {
                    if fd >= 0 && fd != target {
                        libc::close(fd);
                    }
                }
                let argv = [c"sh".as_ptr(), c"-c".as_ptr(), cmd, std::ptr::null()];
                libc::execv(c"/bin/sh".as_ptr(), argv.as_ptr());
                _exit(127)
            };
            // A child in our memory, else our hooked fork.
            let c = match crate::vfork::spawn(&mut || run()) {
                Some(c) => c,
                None => match libc::fork() {
                    0 => run(),
                    c => c,
                },
            };
            if c < 0 {
                libc::close(p[0]);
                libc::close(p[1]);
                return std::ptr::null_mut();
            }
            libc::close(theirs);
            if cloexec {
                libc::fcntl(mine, F_SETFD, FD_CLOEXEC);
            }
            let f = libc::fdopen(mine, if reading { c"r".as_ptr() } else { c"w".as_ptr() });
            if f.is_null() {
                libc::close(mine);
                return f;
            }
            let mut g = POPENED.lock().unwrap_or_else(|e| e.into_inner());
            g.get_or_insert_with(HashMap::new).insert(f as usize, c);
            f
        }
    }
}

redhook::hook! {
    unsafe fn pclose(f: *mut FILE) -> c_int => hk_pclose {
        let child = {
            let mut g = POPENED.lock().unwrap_or_else(|e| e.into_inner());
            g.as_mut().and_then(|m| m.remove(&(f as usize)))
        };
        let Some(c) = child else {
            // SAFETY: a glibc popen stream, given back to glibc.
            return unsafe { redhook::real!(pclose)(f) };
        };
        // SAFETY: closing the stream we created, then our hooked waitpid.
        unsafe {
            libc::fclose(f);
            let mut status = 0;
            loop {
                if libc::waitpid(c, &mut status, 0) >= 0 {
                    return status;
                }
                if *__errno_location() != EINTR {
                    return -1;
                }
            }
        }
    }
}

redhook::hook! {
    unsafe fn daemon(nochdir: c_int, noclose: c_int) -> c_int => hk_daemon {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(daemon)(nochdir, noclose) };
        }
        // glibc's daemon(3) forks with its internal fork, which the seccomp
        // net refuses (a child PM would not know): the same steps through
        // the hooked fork, setsid, chdir, open, dup2 and close.
        // SAFETY (below): libc calls with valid C strings; the parent
        // leaves with _exit as glibc's does.
        unsafe {
            match libc::fork() {
                -1 => return -1,
                0 => {}
                _ => _exit(0),
            }
            if libc::setsid() < 0 {
                return -1;
            }
            if nochdir == 0 {
                libc::chdir(c"/".as_ptr());
            }
            if noclose == 0 {
                let fd = libc::open(c"/dev/null".as_ptr(), O_RDWR);
                if fd < 0 {
                    return -1;
                }
                for n in 0..3 {
                    libc::dup2(fd, n);
                }
                if fd > 2 {
                    libc::close(fd);
                }
            }
            0
        }
    }
}
