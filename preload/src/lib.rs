//! # libdvs_preload — the LD_PRELOAD side of dvs
//!
//! Loaded into every dynamic program that runs inside a DC (dvs-exec sets
//! `LD_PRELOAD`). At load time it attaches the process to its DC binding
//! (`wait4bind`); then the libc entry points of the redirected families
//! (files and descriptors, processes) are served by the MoL servers
//! through the shim, in-process: a `read` is one `sendrec` to FS, which
//! copies the data straight into the program's buffer.
//!
//! A process that was not started inside a DC (no `DVS_SOCKET`) is left
//! alone: every hook falls through to libc.

#![allow(static_mut_refs)]
#![allow(missing_abi)]

mod adopt;
mod gate;
mod gatepage;
mod handler_writes;
pub mod hooks;
mod interrupts;
mod libc_internal;
mod rexec;
pub mod setxid;
mod state;
mod vfork;

use std::time::Duration;

extern "C" fn init() {
    let _g = state::enter_init();
    if state::socket().is_some() {
        // The preload's host descriptors stay clear of the program's
        // numbers (see `dvk::sys::high_fd`).
        dvk::sys::keep_fds_high();
        if let Err(e) = gatepage::init() {
            eprintln!("dvs: cannot map the gate page: {e}");
            // SAFETY: leaving without running the program at all.
            unsafe { libc::_exit(127) };
        }
    }
    match state::attach(Duration::from_secs(5), state::FIRST_PEERS) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            eprintln!(
                "dvs: this process is not registered in its DC ({e}); \
                 it was probably started by a call dvs does not serve yet"
            );
            // SAFETY: leaving without running the program at all.
            unsafe { libc::_exit(127) };
        }
    }
    // After an exec, PM's answer says whether stdout is a terminal.
    let mut tty = None;
    if let Some(p) = std::env::var_os("DVS_EXEC_PATH") {
        let p = std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec();
        name_after(&p);
        match state::with_shim(|s| s.execed(&p)) {
            Some(Ok(t)) => tty = Some(t),
            Some(Err(e)) => eprintln!("dvs: PM did not accept the exec of this image ({e})"),
            None => {}
        }
    }
    state::hide_dc_vars();
    hooks::stdio::install(tty);
    dvk::set_signal_policy(interrupts::policy);
    dvk::set_handler_runs(interrupts::handler_runs);
    dvk::set_handler_pending(handler_writes::pending);
}

/// Gives the task the name Linux gives it at an exec of DC path `path`:
/// its last component (at most 15 bytes). The host ran the file FS
/// resolved, whose name can differ (`/bin/sh` is `/usr/bin/dash` here),
/// and `ps`, `pgrep` and `/proc/self/comm` show the task's name.
fn name_after(path: &[u8]) {
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
    let mut name = [0u8; 16];
    let n = base.len().min(15);
    name[..n].copy_from_slice(&base[..n]);
    if n == 0 || name[..n].contains(&0) {
        return;
    }
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes from `name`, which holds one.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;
