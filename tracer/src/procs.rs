//! Process calls of a tracee that need more than the shim: registering a
//! forked child with PM, resolving the program of an `exec` inside the DC
//! root, and finding a process's endpoint.

use dvk::Endpoint;
use mol_servers::abi::{self, Call, PATH_MAX, PM};
use shim::mem::Mem;
use shim::Shim;

/// Room left below the tracee's stack pointer (red zone and more) before
/// the host path of an `exec` is written there.
const STACK_GAP: u64 = 1024;

/// An `execve` (`dirfd` = `AT_FDCWD`, `flags` = 0) or `execveat` to
/// resolve.
#[derive(Debug, Clone)]
pub(crate) struct ExecRequest {
    /// DC descriptor the path is relative to.
    pub dirfd: i32,
    /// Address of the path in the tracee.
    pub path: u64,
    /// `execveat` flags.
    pub flags: i32,
    /// The call is an `execveat` (its host path must always be rewritten,
    /// since `dirfd` is a DC descriptor the host does not know).
    pub at: bool,
    /// The tracee's stack pointer.
    pub sp: u64,
    /// Host pid of the tracee (for `/proc/self`).
    pub tgid: i32,
}

/// Resolves the program of an exec to a host path through FS (inside the
/// DC root). Returns where the host path was written in the tracee's
/// memory (None when the original path names the same file), and the DC
/// path for `PmExec`.
pub(crate) fn exec_path(
    shim: &Shim,
    mem: &dyn Mem,
    r: &ExecRequest,
) -> Result<(Option<u64>, Vec<u8>), i32> {
    let p = mem.read_cstr(r.path, PATH_MAX)?;
    let (host, dc) = if p.is_empty() {
        if r.flags & libc::AT_EMPTY_PATH == 0 {
            return Err(libc::ENOENT);
        }
        let h = shim.host_path(r.dirfd)?;
        (h.clone(), h)
    } else if p == b"/proc/self/exe" || p == format!("/proc/{}/exe", r.tgid).as_bytes() {
        // The tracee's own image (busybox re-executing itself): FS would
        // resolve /proc/self in its own process.
        let h = std::fs::read_link(format!("/proc/{}/exe", r.tgid)).map_err(|_| libc::ENOENT)?;
        (
            std::os::unix::ffi::OsStrExt::as_bytes(h.as_os_str()).to_vec(),
            p.clone(),
        )
    } else {
        let h = shim.host_path_at(r.dirfd, &p, r.flags & libc::AT_SYMLINK_NOFOLLOW)?;
        (h, p.clone())
    };
    if !r.at && host == p && p.starts_with(b"/") {
        return Ok((None, dc));
    }
    let len = host.len() as u64 + 1;
    let addr = r.sp.wrapping_sub(STACK_GAP + len) & !15;
    let mut z = host;
    z.push(0);
    mem.write(addr, &z)?;
    Ok((Some(addr), dc))
}

/// `PmFork [child]` on behalf of `parent`: the child's DC PID and
/// endpoint.
pub(crate) fn fork(shim: &Shim, parent: Endpoint, child: i32) -> Result<(i32, Endpoint), i32> {
    let mut m = abi::request(Call::PmFork, &[child as u64, 0]);
    m.words_mut()[6] = parent.0 as u32 as u64;
    shim.ipc()
        .sendrec(PM, &mut m)
        .map_err(shim::errno::of_ipc)?;
    let pid = abi::result(&m)? as i32;
    let ep = Endpoint(m.words()[1] as u32 as i32);
    if ep.0 == 0 {
        // A PM that does not report the endpoint: the child cannot be
        // served.
        return Err(libc::ENOSYS);
    }
    Ok((pid, ep))
}

/// DC PID and endpoint of the process whose host pid is `host_pid`.
pub(crate) fn lookup(shim: &Shim, host_pid: i32) -> Result<(i32, Endpoint), i32> {
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..4 {
        let mut m = abi::request(Call::PmPs, &[buf.as_mut_ptr() as u64, buf.len() as u64]);
        shim.ipc()
            .sendrec(PM, &mut m)
            .map_err(shim::errno::of_ipc)?;
        let n = abi::result(&m)? as usize;
        if n > buf.len() {
            buf.resize(n, 0);
            continue;
        }
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&buf[..n]).map_err(|_| libc::EIO)?;
        for r in rows {
            if r.get("host_pid").and_then(|v| v.as_i64()) == Some(host_pid as i64) {
                let pid = r.get("pid").and_then(|v| v.as_i64()).ok_or(libc::EIO)?;
                let ep = r
                    .get("endpoint")
                    .and_then(|v| v.as_i64())
                    .ok_or(libc::EIO)?;
                return Ok((pid as i32, Endpoint(ep as i32)));
            }
        }
        return Err(libc::ESRCH);
    }
    Err(libc::EIO)
}
