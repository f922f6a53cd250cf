//! Remote exec: an `exec` whose environment has `DVS_NODE=N`, N another
//! node of the DC, runs the new program on node N. PM moves the process
//! there (its PID, descriptors and parent stay; see
//! `mol_servers::pm::rexec`) and this task, the old image, exits at once.
//! `DVS_NODE` stays in the environment, so the program's own children
//! and execs stay on node N.

use crate::state::{set_errno, with_shim};
use libc::{c_char, c_int};
use mol_servers::abi::SpawnSpec;
use mol_servers::spawn::SignalState;
use std::ffi::{CStr, CString};

/// The node named by `DVS_NODE` in `env`, if it is not this one.
pub fn target_node(env: &[CString]) -> Option<i32> {
    let v = env
        .iter()
        .find_map(|e| e.to_bytes().strip_prefix(b"DVS_NODE="))?;
    let n: i32 = std::str::from_utf8(v).ok()?.trim().parse().ok()?;
    let here = with_shim(|s| s.ipc().node())?;
    (n != here).then_some(n)
}

/// The host working directory ("/" if it cannot be read).
fn host_cwd() -> Vec<u8> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: getcwd into our buffer of its length.
    let r = unsafe {
        crate::gate::syscall6(
            libc::SYS_getcwd,
            [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0, 0],
        )
    };
    if r <= 0 {
        return b"/".to_vec();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf.truncate(end);
    buf
}

/// The signals this image ignores and blocks, which the new image keeps
/// (an exec resets only the handled ones).
fn signal_state() -> SignalState {
    let mut st = SignalState::default();
    for sig in 1..=64u64 {
        // The kernel's `struct sigaction`: handler, flags, restorer, mask.
        let mut old = [0u64; 4];
        // SAFETY: a query (no new action) into our buffer of the kernel's
        // size, with the kernel's 8-byte sigset.
        let r = unsafe {
            crate::gate::syscall6(
                libc::SYS_rt_sigaction,
                [sig, 0, old.as_mut_ptr() as u64, 8, 0, 0],
            )
        };
        if r == 0 && old[0] == libc::SIG_IGN as u64 {
            st.ignored |= 1 << (sig - 1);
        }
    }
    let mut mask = 0u64;
    // SAFETY: a query (no new mask) into our 8-byte set.
    let r = unsafe {
        crate::gate::syscall6(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_BLOCK as u64,
                0,
                &mut mask as *mut u64 as u64,
                8,
                0,
                0,
            ],
        )
    };
    if r == 0 {
        st.blocked = mask;
    }
    st
}

/// Runs host file `host` with `argv` and `env` on `node`. Returns only on
/// failure (-1, errno set).
pub fn exec_on(node: i32, host: &CStr, argv: *const *const c_char, env: &[CString]) -> c_int {
    let mut args = Vec::new();
    if !argv.is_null() {
        for i in 0.. {
            // SAFETY: argv is a NULL-terminated array of C strings (the
            // execve contract); we stop at the NULL.
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                break;
            }
            // SAFETY: p is a valid C string.
            args.push(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec());
        }
    }
    let spec = SpawnSpec {
        prog: host.to_bytes().to_vec(),
        argv: args,
        envp: env.iter().map(|e| e.to_bytes().to_vec()).collect(),
        cwd: host_cwd(),
        signals: signal_state(),
    };
    let Ok(spec) = bincode::serialize(&spec) else {
        set_errno(libc::E2BIG);
        return -1;
    };
    match with_shim(|s| s.rexec(node, &spec)) {
        Some(Ok(())) => {
            // The process lives on at `node`; this image must not run on
            // (nor flush anything: an exec discards it too).
            // SAFETY: exit_group takes an integer.
            unsafe { crate::gate::syscall6(libc::SYS_exit_group, [0; 6]) };
            set_errno(libc::EIO);
            -1
        }
        Some(Err(e)) => {
            set_errno(e);
            -1
        }
        None => {
            set_errno(libc::ENOSYS);
            -1
        }
    }
}
