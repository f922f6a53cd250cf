//! The file family: calls served by FS.

use crate::mem::{Buf, Mem};
use crate::{ret, Action, Shim};
use mol_servers::abi::{self, pack_lens, Call, FS, PATH_MAX};

const AT_FDCWD: u64 = libc::AT_FDCWD as i64 as u64;
/// Size of the kernel's `struct stat`.
pub(crate) const STAT_SIZE: usize = 144;
const STATFS_SIZE: usize = 120;
const STATX_BYTES: usize = 256;
/// `struct itimerspec`.
const ITIMERSPEC: usize = 32;
/// `struct ifreq`.
const IFREQ: usize = 40;

/// Which way an `ioctl` argument goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// The program gives it (or it is an integer, size 0).
    In,
    /// The program receives it.
    Out,
    /// The program gives it and receives it back.
    Both,
}

/// Size of the argument an `ioctl` request reads or writes, and its
/// direction.
fn ioctl_arg(req: u64) -> Option<(usize, Dir)> {
    use Dir::*;
    Some(match req as libc::c_ulong {
        libc::TCGETS => (36, Out),
        libc::TCSETS | libc::TCSETSW | libc::TCSETSF => (36, In),
        libc::TIOCGWINSZ => (8, Out),
        libc::TIOCSWINSZ => (8, In),
        libc::TIOCGPGRP => (4, Out),
        libc::TIOCSPGRP => (4, In),
        libc::FIONREAD | libc::TIOCGPTN => (4, Out),
        // Interface name <-> index (`if_nametoindex`): a `struct ifreq`.
        libc::SIOCGIFINDEX | libc::SIOCGIFNAME => (IFREQ, Both),
        libc::TIOCSPTLCK => (4, In),
        libc::TIOCGPTPEER => (0, In),
        libc::TIOCSCTTY | libc::TIOCNOTTY => (0, In),
        libc::FIONBIO => (4, In),
        libc::FIOCLEX | libc::FIONCLEX => (0, In),
        _ => return None,
    })
}

impl Shim {
    /// A path argument, with `/proc/<DC pid>` turned into the host
    /// directory of that process (see [`Shim::dc_proc_path`]).
    pub(crate) fn path(&self, mem: &dyn Mem, addr: u64) -> Result<Vec<u8>, i32> {
        Ok(self.dc_proc_path(mem.read_cstr(addr, PATH_MAX)?))
    }

    /// [`Shim::path`] of a call relative to `dirfd`, where a relative
    /// path from the working directory `/proc` is mapped too (see
    /// [`Shim::relative_to_proc_cwd`]).
    pub(crate) fn path_at(&self, mem: &dyn Mem, dirfd: u64, addr: u64) -> Result<Vec<u8>, i32> {
        let raw = mem.read_cstr(addr, PATH_MAX)?;
        Ok(self.dc_proc_path(self.relative_to_proc_cwd(dirfd, raw)))
    }

    /// A relative path whose first component is a number, from the
    /// working directory `/proc` (Debian's `pidof` does `chdir("/proc")`
    /// and opens `N/stat`): the absolute `/proc/N...`, which
    /// [`Shim::dc_proc_path`] then maps to the process's host directory.
    /// Costs FS one `getcwd`, for such paths only.
    pub(crate) fn relative_to_proc_cwd(&self, dirfd: u64, path: Vec<u8>) -> Vec<u8> {
        let first = path.split(|&b| b == b'/').next().unwrap_or_default();
        if dirfd as i32 != libc::AT_FDCWD
            || first.is_empty()
            || !first.iter().all(u8::is_ascii_digit)
        {
            return path;
        }
        let mut cwd = [0u8; 16];
        let in_proc = self
            .value(
                FS,
                Call::FsGetcwd,
                &[cwd.as_mut_ptr() as u64, cwd.len() as u64],
            )
            .is_ok_and(|n| matches!(cwd.get(..n as usize), Some(b"/proc\0" | b"/proc")));
        if !in_proc {
            return path;
        }
        let mut abs = b"/proc/".to_vec();
        abs.extend_from_slice(&path);
        abs
    }

    /// `/proc/<N>...` with `N` a DC pid names that process: its host
    /// task's directory when it runs on this node (for PID 1, the process
    /// that runs PM), else `/proc/0...`, which does not exist (nor does
    /// `/proc/<N>` for a pid that is no DC process: host processes are
    /// not the DC's). Other paths, and `/proc/self` (FS's business), are
    /// returned as they are.
    pub(crate) fn dc_proc_path(&self, path: Vec<u8>) -> Vec<u8> {
        let Some(rest) = path.strip_prefix(b"/proc/") else {
            return path;
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || (digits < rest.len() && rest[digits] != b'/') {
            return path;
        }
        let Some(pid) = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse::<i32>().ok())
        else {
            return path;
        };
        // The caller's own directory is `/proc/self`, which FS knows how
        // to serve (its descriptors, the magic links in it).
        if i64::from(pid) == self.getpid() {
            let mut out = b"/proc/self".to_vec();
            out.extend_from_slice(&rest[digits..]);
            return out;
        }
        let host = if pid == abi::INIT_PID {
            // The DC's init is PM's: the process that runs PM stands for it.
            self.ipc.host_pid(abi::PM)
        } else {
            match self.value(abi::PM, Call::PmEndpointOf, &[pid as u64]) {
                Ok(ep) if pid > 0 => self.ipc.host_pid(dvk::Endpoint(ep as i32)),
                _ => 0,
            }
        };
        let mut out = format!("/proc/{host}").into_bytes();
        out.extend_from_slice(&rest[digits..]);
        out
    }

    /// A call whose first argument is a path: `[dirfd, path, len, rest...]`.
    fn at(&self, mem: &dyn Mem, call: Call, dirfd: u64, p: u64, rest: &[u64]) -> Result<i64, i32> {
        let path = self.path_at(mem, dirfd, p)?;
        let mut args = vec![dirfd, path.as_ptr() as u64, path.len() as u64];
        args.extend_from_slice(rest);
        self.value(FS, call, &args)
    }

    /// `openat(dirfd, p, flags, mode)`: the DC view of a process's `stat`
    /// or `status` ([`Shim::open_proc_view`]), or FS's open.
    fn open(&self, mem: &dyn Mem, dirfd: u64, p: u64, flags: u64, mode: u64) -> Result<i64, i32> {
        let raw = self.relative_to_proc_cwd(dirfd, mem.read_cstr(p, PATH_MAX)?);
        if let Some(r) = self.open_proc_view(&raw, flags) {
            return r;
        }
        let path = self.dc_proc_path(raw);
        self.value(
            FS,
            Call::FsOpenat,
            &[dirfd, path.as_ptr() as u64, path.len() as u64, flags, mode],
        )
    }

    /// A `read` (or, with `mode` [`abi::RECV_CHANNEL`], a `recv` without
    /// flags or address) that offers FS the data channel: `None` when
    /// the channel cannot serve it (not open, a small read, memory of
    /// another process).
    pub(crate) fn read_via_channel(
        &self,
        mem: &dyn Mem,
        fd: u64,
        addr: u64,
        len: u64,
        mode: u64,
    ) -> Option<Action> {
        let chan = self.channel_fd()?;
        if !mem.direct() || len < crate::CHANNEL_MIN {
            return None;
        }
        Some(match self.value(FS, Call::FsRead, &[fd, addr, len, mode]) {
            Ok(v) if v & abi::VIA_CHANNEL != 0 => {
                let n = (v & !abi::VIA_CHANNEL) as usize;
                Action::FromChannel { fd: chan, addr, n }
            }
            r => Action::Ret(ret(r)),
        })
    }

    fn read_like(
        &self,
        mem: &dyn Mem,
        call: Call,
        fd: u64,
        addr: u64,
        len: u64,
        off: Option<u64>,
    ) -> Action {
        if call == Call::FsRead {
            if let Some(a) = self.read_via_channel(mem, fd, addr, len, abi::READ_CHANNEL) {
                return a;
            }
        }
        let buf = Buf::output(mem, addr, len as usize);
        let mut args = vec![fd, buf.addr(), len];
        args.extend(off);
        let r = self.value(FS, call, &args);
        if let Ok(n) = r {
            if let Err(e) = buf.finish(mem, n as usize) {
                return Action::Ret(-(e as i64));
            }
        }
        Action::Ret(ret(r))
    }

    fn write_like(
        &self,
        mem: &dyn Mem,
        call: Call,
        fd: u64,
        addr: u64,
        len: u64,
        off: Option<u64>,
    ) -> Action {
        let buf = match Buf::input(mem, addr, len as usize) {
            Ok(b) => b,
            Err(e) => return Action::Ret(-(e as i64)),
        };
        let mut args = vec![fd, buf.addr(), len];
        args.extend(off);
        match self.value(FS, call, &args) {
            Err(libc::EPIPE) => Action::SigPipe,
            r => Action::Ret(ret(r)),
        }
    }

    fn vec_io(&self, mem: &dyn Mem, write: bool, fd: u64, iov: u64, cnt: u64, off: u64) -> Action {
        if cnt > 1024 {
            return Action::Ret(-(libc::EINVAL as i64));
        }
        if mem.direct() {
            let call = if write { Call::FsWritev } else { Call::FsReadv };
            return match self.value(FS, call, &[fd, iov, cnt, off]) {
                Err(libc::EPIPE) => Action::SigPipe,
                r => Action::Ret(ret(r)),
            };
        }
        // Remote memory: gather into one bounce buffer.
        let mut segs = Vec::new();
        let mut total = 0usize;
        for i in 0..cnt {
            let v: [u64; 2] = match mem.read_val(iov + 16 * i) {
                Ok(v) => v,
                Err(e) => return Action::Ret(-(e as i64)),
            };
            total = total.saturating_add(v[1] as usize);
            segs.push(v);
        }
        let mut data = vec![0u8; total];
        if write {
            let mut o = 0;
            for s in &segs {
                if let Err(e) = mem.read(s[0], &mut data[o..o + s[1] as usize]) {
                    return Action::Ret(-(e as i64));
                }
                o += s[1] as usize;
            }
        }
        let one = [data.as_ptr() as u64, total as u64];
        let call = if write { Call::FsWritev } else { Call::FsReadv };
        let r = self.value(FS, call, &[fd, one.as_ptr() as u64, 1, off]);
        if let (false, Ok(n)) = (write, r) {
            let mut o = 0usize;
            for s in &segs {
                let take = (s[1] as usize).min((n as usize).saturating_sub(o));
                if take == 0 {
                    break;
                }
                if let Err(e) = mem.write(s[0], &data[o..o + take]) {
                    return Action::Ret(-(e as i64));
                }
                o += take;
            }
        }
        match r {
            Err(libc::EPIPE) => Action::SigPipe,
            r => Action::Ret(ret(r)),
        }
    }

    /// `stat`-like calls: the struct comes back through an output buffer.
    fn stat_like(
        &self,
        mem: &dyn Mem,
        dirfd: u64,
        p: Option<u64>,
        sb: u64,
        flags: u64,
    ) -> Result<i64, i32> {
        self.struct_at(mem, Call::FsFstatat, STAT_SIZE, dirfd, p, sb, flags)
    }

    /// A call that fills a struct of `size` bytes about `(dirfd, path)`.
    #[allow(clippy::too_many_arguments)]
    fn struct_at(
        &self,
        mem: &dyn Mem,
        call: Call,
        size: usize,
        dirfd: u64,
        p: Option<u64>,
        sb: u64,
        flags: u64,
    ) -> Result<i64, i32> {
        let path = match p {
            Some(p) => self.path_at(mem, dirfd, p)?,
            None => Vec::new(),
        };
        let buf = Buf::output(mem, sb, size);
        let r = self.value(
            FS,
            call,
            &[
                dirfd,
                path.as_ptr() as u64,
                path.len() as u64,
                buf.addr(),
                flags,
            ],
        )?;
        buf.finish(mem, size)?;
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    fn two_paths(
        &self,
        mem: &dyn Mem,
        call: Call,
        od: u64,
        op: u64,
        nd: u64,
        np: u64,
        flags: u64,
    ) -> Result<i64, i32> {
        let a = self.path(mem, op)?;
        let b = self.path(mem, np)?;
        self.value(
            FS,
            call,
            &[
                od,
                a.as_ptr() as u64,
                pack_lens(a.len(), b.len()),
                nd,
                b.as_ptr() as u64,
                flags,
            ],
        )
    }

    fn poll_like(&self, mem: &dyn Mem, fds: u64, n: u64, timeout_ms: i64) -> Result<i64, i32> {
        if n > 4096 {
            return Err(libc::EINVAL);
        }
        let len = 8 * n as usize;
        let buf = Buf::input(mem, fds, len)?;
        let r = self.value(FS, Call::FsPoll, &[buf.addr(), n, timeout_ms as u64])?;
        buf.finish(mem, len)?;
        Ok(r)
    }

    /// `select`/`pselect6`, expressed as a poll.
    fn select(
        &self,
        mem: &dyn Mem,
        n: u64,
        rd: u64,
        wr: u64,
        ex: u64,
        timeout_ms: i64,
    ) -> Result<i64, i32> {
        if n > 1024 {
            return Err(libc::EINVAL);
        }
        let words = (n as usize).div_ceil(64);
        let read_set = |addr: u64| -> Result<Vec<u64>, i32> {
            let mut v = vec![0u64; words];
            if addr != 0 {
                for (i, w) in v.iter_mut().enumerate() {
                    *w = mem.read_val(addr + 8 * i as u64)?;
                }
            }
            Ok(v)
        };
        let sets = [read_set(rd)?, read_set(wr)?, read_set(ex)?];
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        for fd in 0..n as usize {
            let bit = |s: &Vec<u64>| s[fd / 64] >> (fd % 64) & 1 == 1;
            let mut ev = 0;
            if bit(&sets[0]) {
                ev |= libc::POLLIN;
            }
            if bit(&sets[1]) {
                ev |= libc::POLLOUT;
            }
            if bit(&sets[2]) {
                ev |= libc::POLLPRI;
            }
            if ev != 0 {
                pfds.push(libc::pollfd {
                    fd: fd as i32,
                    events: ev,
                    revents: 0,
                });
            }
        }
        self.value(
            FS,
            Call::FsPoll,
            &[
                pfds.as_mut_ptr() as u64,
                pfds.len() as u64,
                timeout_ms as u64,
            ],
        )?;
        let mut out = [vec![0u64; words], vec![0u64; words], vec![0u64; words]];
        let mut count = 0;
        for p in &pfds {
            if p.revents & libc::POLLNVAL != 0 {
                return Err(libc::EBADF);
            }
            let fd = p.fd as usize;
            let mut set = |k: usize, on: bool| {
                if on {
                    out[k][fd / 64] |= 1 << (fd % 64);
                    count += 1;
                }
            };
            set(
                0,
                p.events & libc::POLLIN != 0
                    && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
            );
            set(
                1,
                p.events & libc::POLLOUT != 0 && p.revents & (libc::POLLOUT | libc::POLLERR) != 0,
            );
            set(
                2,
                p.events & libc::POLLPRI != 0 && p.revents & libc::POLLPRI != 0,
            );
        }
        for (k, addr) in [rd, wr, ex].into_iter().enumerate() {
            if addr != 0 {
                for (i, w) in out[k].iter().enumerate() {
                    mem.write_val(addr + 8 * i as u64, w)?;
                }
            }
        }
        Ok(count)
    }

    fn ioctl(&self, mem: &dyn Mem, fd: u64, req: u64, arg: u64) -> Result<i64, i32> {
        let Some((size, dir)) = ioctl_arg(req) else {
            return Err(libc::ENOTTY);
        };
        // The foreground group lives in PM; FS checks that fd is a tty.
        if req as libc::c_ulong == libc::TIOCGPGRP || req as libc::c_ulong == libc::TIOCSPGRP {
            let mut probe = [0u8; 36];
            self.value(
                FS,
                Call::FsIoctl,
                &[fd, libc::TCGETS, probe.as_mut_ptr() as u64],
            )?;
            if req as libc::c_ulong == libc::TIOCGPGRP {
                let g = self.value(abi::PM, Call::PmGetFg, &[])? as i32;
                mem.write_val(arg, &g)?;
                return Ok(0);
            }
            let g: i32 = mem.read_val(arg)?;
            return self.value(abi::PM, Call::PmSetFg, &[g as u64]);
        }
        if size == 0 {
            // The argument, if any, is an integer.
            return self.value(FS, Call::FsIoctl, &[fd, req, arg]);
        }
        let buf = if dir == Dir::Out {
            Buf::output(mem, arg, size)
        } else {
            Buf::input(mem, arg, size)?
        };
        let r = self.value(FS, Call::FsIoctl, &[fd, req, buf.addr()])?;
        if dir != Dir::In {
            buf.finish(mem, size)?;
        }
        Ok(r)
    }

    fn fcntl(&self, mem: &dyn Mem, fd: u64, cmd: u64, arg: u64) -> Result<i64, i32> {
        match cmd as i32 {
            libc::F_GETLK | libc::F_SETLK | libc::F_SETLKW => {
                let size = std::mem::size_of::<libc::flock>();
                let buf = Buf::input(mem, arg, size)?;
                let r = self.value(FS, Call::FsFcntl, &[fd, cmd, buf.addr()])?;
                buf.finish(mem, size)?;
                Ok(r)
            }
            _ => self.value(FS, Call::FsFcntl, &[fd, cmd, arg]),
        }
    }

    /// Serves the call if it belongs to the file family.
    #[allow(non_upper_case_globals)]
    pub(crate) fn file_call(&self, mem: &dyn Mem, nr: i64, a: [u64; 6]) -> Option<Action> {
        use super::files::AT_FDCWD;
        use libc::*;
        use mol_servers::abi::FS;
        let r = |x: Result<i64, i32>| Some(Action::Ret(ret(x)));
        match nr {
            SYS_read => Some(self.read_like(mem, Call::FsRead, a[0], a[1], a[2], None)),
            SYS_write => Some(self.write_like(mem, Call::FsWrite, a[0], a[1], a[2], None)),
            SYS_pread64 => Some(self.read_like(mem, Call::FsPread, a[0], a[1], a[2], Some(a[3]))),
            SYS_pwrite64 => {
                Some(self.write_like(mem, Call::FsPwrite, a[0], a[1], a[2], Some(a[3])))
            }
            SYS_readv => Some(self.vec_io(mem, false, a[0], a[1], a[2], u64::MAX)),
            SYS_writev => Some(self.vec_io(mem, true, a[0], a[1], a[2], u64::MAX)),
            SYS_preadv => Some(self.vec_io(mem, false, a[0], a[1], a[2], a[3])),
            SYS_pwritev => Some(self.vec_io(mem, true, a[0], a[1], a[2], a[3])),
            SYS_preadv2 | SYS_pwritev2 => {
                // [fd, iov, cnt, pos_l, pos_h, flags]; flags are hints FS
                // has no use for, except RWF_NOWAIT, which it cannot honour.
                if a[5] as i32 & RWF_NOWAIT != 0 {
                    return Some(Action::Ret(-(EOPNOTSUPP as i64)));
                }
                let off = if a[3] as i64 == -1 { u64::MAX } else { a[3] };
                Some(self.vec_io(mem, nr == SYS_pwritev2, a[0], a[1], a[2], off))
            }
            SYS_lseek => r(self.value(FS, Call::FsLseek, &[a[0], a[1], a[2]])),
            SYS_open => r(self.open(mem, AT_FDCWD, a[0], a[1], a[2])),
            SYS_creat => r(self.at(
                mem,
                Call::FsOpenat,
                AT_FDCWD,
                a[0],
                &[(O_CREAT | O_WRONLY | O_TRUNC) as u64, a[1]],
            )),
            SYS_openat => r(self.open(mem, a[0], a[1], a[2], a[3])),
            SYS_close => r(self.value(FS, Call::FsClose, &[a[0]])),
            SYS_stat => r(self.stat_like(mem, AT_FDCWD, Some(a[0]), a[1], 0)),
            SYS_lstat => {
                r(self.stat_like(mem, AT_FDCWD, Some(a[0]), a[1], AT_SYMLINK_NOFOLLOW as u64))
            }
            SYS_fstat => r(self.stat_like(mem, a[0], None, a[1], AT_EMPTY_PATH as u64)),
            SYS_statfs => r(self.struct_at(
                mem,
                Call::FsStatfs,
                STATFS_SIZE,
                AT_FDCWD,
                Some(a[0]),
                a[1],
                0,
            )),
            SYS_fstatfs => r(self.struct_at(
                mem,
                Call::FsStatfs,
                STATFS_SIZE,
                a[0],
                None,
                a[1],
                AT_EMPTY_PATH as u64,
            )),
            SYS_newfstatat => r(self.stat_like(mem, a[0], Some(a[1]), a[2], a[3])),
            SYS_statx => r((|| {
                let path = self.path_at(mem, a[0], a[1])?;
                let buf = Buf::output(mem, a[4], STATX_BYTES);
                let v = self.value(
                    FS,
                    Call::FsStatx,
                    &[
                        a[0],
                        path.as_ptr() as u64,
                        path.len() as u64,
                        a[2],
                        a[3],
                        buf.addr(),
                    ],
                )?;
                buf.finish(mem, STATX_BYTES)?;
                Ok(v)
            })()),
            SYS_access => r(self.at(mem, Call::FsFaccessat, AT_FDCWD, a[0], &[a[1], 0])),
            SYS_faccessat => r(self.at(mem, Call::FsFaccessat, a[0], a[1], &[a[2], 0])),
            SYS_faccessat2 => r(self.at(mem, Call::FsFaccessat, a[0], a[1], &[a[2], a[3]])),
            SYS_truncate => r((|| {
                let p = self.path(mem, a[0])?;
                self.value(
                    FS,
                    Call::FsTruncate,
                    &[p.as_ptr() as u64, p.len() as u64, a[1]],
                )
            })()),
            SYS_ftruncate => r(self.value(FS, Call::FsFtruncate, &[a[0], a[1]])),
            SYS_fsync => r(self.value(FS, Call::FsFsync, &[a[0], 0])),
            SYS_fdatasync => r(self.value(FS, Call::FsFsync, &[a[0], 1])),
            SYS_chmod => r(self.at(mem, Call::FsFchmodat, AT_FDCWD, a[0], &[a[1], 0])),
            SYS_fchmod => r(self.value(
                FS,
                Call::FsFchmodat,
                &[a[0], 0, 0, a[1], AT_EMPTY_PATH as u64],
            )),
            SYS_fchmodat => r(self.at(mem, Call::FsFchmodat, a[0], a[1], &[a[2], 0])),
            SYS_fchmodat2 => r(self.at(mem, Call::FsFchmodat, a[0], a[1], &[a[2], a[3]])),
            SYS_chown => r(self.at(mem, Call::FsFchownat, AT_FDCWD, a[0], &[a[1], a[2], 0])),
            SYS_lchown => r(self.at(
                mem,
                Call::FsFchownat,
                AT_FDCWD,
                a[0],
                &[a[1], a[2], AT_SYMLINK_NOFOLLOW as u64],
            )),
            SYS_fchown => r(self.value(
                FS,
                Call::FsFchownat,
                &[a[0], 0, 0, a[1], a[2], AT_EMPTY_PATH as u64],
            )),
            SYS_fchownat => r(self.at(mem, Call::FsFchownat, a[0], a[1], &[a[2], a[3], a[4]])),
            SYS_umask => r(self.value(FS, Call::FsUmask, &[a[0]])),
            SYS_utimensat => r((|| {
                let path = if a[1] == 0 {
                    Vec::new()
                } else {
                    self.path(mem, a[1])?
                };
                let times = if a[2] == 0 {
                    None
                } else {
                    Some(Buf::input(mem, a[2], 32)?)
                };
                self.value(
                    FS,
                    Call::FsUtimensat,
                    &[
                        a[0],
                        path.as_ptr() as u64,
                        path.len() as u64,
                        times.as_ref().map_or(0, |t| t.addr()),
                        a[3],
                    ],
                )
            })()),
            SYS_mkdir => r(self.at(mem, Call::FsMkdirat, AT_FDCWD, a[0], &[a[1]])),
            SYS_mkdirat => r(self.at(mem, Call::FsMkdirat, a[0], a[1], &[a[2]])),
            SYS_rmdir => r(self.at(
                mem,
                Call::FsUnlinkat,
                AT_FDCWD,
                a[0],
                &[AT_REMOVEDIR as u64],
            )),
            SYS_unlink => r(self.at(mem, Call::FsUnlinkat, AT_FDCWD, a[0], &[0])),
            SYS_unlinkat => r(self.at(mem, Call::FsUnlinkat, a[0], a[1], &[a[2]])),
            SYS_rename => {
                r(self.two_paths(mem, Call::FsRenameat2, AT_FDCWD, a[0], AT_FDCWD, a[1], 0))
            }
            SYS_renameat => r(self.two_paths(mem, Call::FsRenameat2, a[0], a[1], a[2], a[3], 0)),
            SYS_renameat2 => {
                r(self.two_paths(mem, Call::FsRenameat2, a[0], a[1], a[2], a[3], a[4]))
            }
            SYS_link => r(self.two_paths(mem, Call::FsLinkat, AT_FDCWD, a[0], AT_FDCWD, a[1], 0)),
            SYS_linkat => r(self.two_paths(mem, Call::FsLinkat, a[0], a[1], a[2], a[3], a[4])),
            SYS_symlink | SYS_symlinkat => r((|| {
                let (target, dirfd, p) = if nr == SYS_symlink {
                    (a[0], AT_FDCWD, a[1])
                } else {
                    (a[0], a[1], a[2])
                };
                // The target is stored as it is, never resolved here.
                let t = mem.read_cstr(target, abi::PATH_MAX)?;
                let q = self.path(mem, p)?;
                self.value(
                    FS,
                    Call::FsSymlinkat,
                    &[
                        t.as_ptr() as u64,
                        pack_lens(t.len(), q.len()),
                        dirfd,
                        q.as_ptr() as u64,
                    ],
                )
            })()),
            SYS_readlink | SYS_readlinkat => r((|| {
                let (dirfd, p, b, n) = if nr == SYS_readlink {
                    (AT_FDCWD, a[0], a[1], a[2])
                } else {
                    (a[0], a[1], a[2], a[3])
                };
                let path = self.path_at(mem, dirfd, p)?;
                let buf = Buf::output(mem, b, n as usize);
                let v = self.value(
                    FS,
                    Call::FsReadlinkat,
                    &[
                        dirfd,
                        path.as_ptr() as u64,
                        path.len() as u64,
                        buf.addr(),
                        n,
                    ],
                )?;
                buf.finish(mem, v as usize)?;
                Ok(v)
            })()),
            SYS_getdents64 => Some(self.read_like(mem, Call::FsGetdents64, a[0], a[1], a[2], None)),
            SYS_chdir => r((|| {
                let p = self.path(mem, a[0])?;
                self.value(FS, Call::FsChdir, &[p.as_ptr() as u64, p.len() as u64])
            })()),
            SYS_fchdir => r(self.value(FS, Call::FsFchdir, &[a[0]])),
            SYS_getcwd => r((|| {
                let buf = Buf::output(mem, a[0], a[1] as usize);
                let v = self.value(FS, Call::FsGetcwd, &[buf.addr(), a[1]])?;
                buf.finish(mem, v as usize)?;
                Ok(v)
            })()),
            SYS_dup => r(self.value(FS, Call::FsDup, &[a[0]])),
            SYS_dup2 => r(self.value(FS, Call::FsDup3, &[a[0], a[1], abi::DUP2])),
            SYS_dup3 => r(self.value(FS, Call::FsDup3, &[a[0], a[1], a[2]])),
            SYS_fcntl => r(self.fcntl(mem, a[0], a[1], a[2])),
            SYS_pipe | SYS_pipe2 => r((|| {
                let flags = if nr == SYS_pipe { 0 } else { a[1] };
                let m = self.call(FS, Call::FsPipe2, &[flags])?;
                let rfd = abi::result(&m)? as i32;
                let wfd = m.words()[1] as i32;
                if let Err(e) = mem.write_val(a[0], &[rfd, wfd]) {
                    let _ = self.value(FS, Call::FsClose, &[rfd as u64]);
                    let _ = self.value(FS, Call::FsClose, &[wfd as u64]);
                    return Err(e);
                }
                Ok(0)
            })()),
            SYS_poll => r(self.poll_like(mem, a[0], a[1], a[2] as i32 as i64)),
            SYS_ppoll => r((|| {
                let t = timespec_ms(mem, a[2])?;
                self.poll_like(mem, a[0], a[1], t)
            })()),
            SYS_select => r((|| {
                let t = if a[4] == 0 {
                    -1
                } else {
                    // Rounded up, as the kernel does: a wait never ends
                    // before its time (a 0.5 ms timeout is not 0).
                    let tv: [i64; 2] = mem.read_val(a[4])?;
                    if tv[0] < 0 || !(0..1_000_000).contains(&tv[1]) {
                        return Err(libc::EINVAL);
                    }
                    tv[0].saturating_mul(1000) + (tv[1] + 999) / 1000
                };
                self.select(mem, a[0], a[1], a[2], a[3], t)
            })()),
            SYS_pselect6 => r((|| {
                let t = timespec_ms(mem, a[4])?;
                self.select(mem, a[0], a[1], a[2], a[3], t)
            })()),
            SYS_ioctl => r(self.ioctl(mem, a[0], a[1], a[2])),
            SYS_epoll_create => {
                if (a[0] as i32) <= 0 {
                    r(Err(EINVAL))
                } else {
                    r(self.value(FS, Call::FsEpollCreate, &[0]))
                }
            }
            SYS_epoll_create1 => r(self.value(FS, Call::FsEpollCreate, &[a[0]])),
            SYS_memfd_create => r((|| {
                let name = mem.read_cstr(a[0], abi::PATH_MAX)?;
                self.value(
                    FS,
                    Call::FsMemfdCreate,
                    &[name.as_ptr() as u64, name.len() as u64, a[1]],
                )
            })()),
            SYS_inotify_init => r(self.value(FS, Call::FsInotifyInit, &[0])),
            SYS_inotify_init1 => r(self.value(FS, Call::FsInotifyInit, &[a[0]])),
            SYS_inotify_add_watch => r((|| {
                let path = self.path(mem, a[1])?;
                self.value(
                    FS,
                    Call::FsInotifyAddWatch,
                    &[a[0], path.as_ptr() as u64, path.len() as u64, a[2]],
                )
            })()),
            SYS_inotify_rm_watch => r(self.value(FS, Call::FsInotifyRmWatch, &[a[0], a[1]])),
            SYS_timerfd_create => r(self.value(FS, Call::FsTimerfdCreate, &[a[0], a[1]])),
            SYS_timerfd_settime => r((|| {
                let new = Buf::input(mem, a[2], ITIMERSPEC)?;
                let old = (a[3] != 0).then(|| Buf::output(mem, a[3], ITIMERSPEC));
                let old_addr = old.as_ref().map_or(0, |b| b.addr());
                let v = self.value(
                    FS,
                    Call::FsTimerfdSettime,
                    &[a[0], a[1], new.addr(), old_addr],
                )?;
                if let Some(b) = old {
                    b.finish(mem, ITIMERSPEC)?;
                }
                Ok(v)
            })()),
            SYS_timerfd_gettime => r((|| {
                let cur = Buf::output(mem, a[1], ITIMERSPEC);
                let v = self.value(FS, Call::FsTimerfdGettime, &[a[0], cur.addr()])?;
                cur.finish(mem, ITIMERSPEC)?;
                Ok(v)
            })()),
            SYS_eventfd => r(self.value(FS, Call::FsEventfd, &[a[0], 0])),
            SYS_eventfd2 => r(self.value(FS, Call::FsEventfd, &[a[0], a[1]])),
            SYS_epoll_ctl => r((|| {
                // struct epoll_event is packed on x86-64: u32 events, u64 data.
                let (events, data) = if a[1] as i32 == EPOLL_CTL_DEL || a[3] == 0 {
                    (0u32, 0u64)
                } else {
                    let raw: [u8; 12] = mem.read_val(a[3])?;
                    let ev = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
                    let mut d = [0u8; 8];
                    d.copy_from_slice(&raw[4..12]);
                    (ev, u64::from_ne_bytes(d))
                };
                if a[1] as i32 != EPOLL_CTL_DEL && a[3] == 0 {
                    return Err(EFAULT);
                }
                self.value(
                    FS,
                    Call::FsEpollCtl,
                    &[a[0], a[1], a[2], events as u64, data],
                )
            })()),
            SYS_epoll_wait | SYS_epoll_pwait => r((|| {
                let max = a[2] as i32;
                if max <= 0 || max > 4096 {
                    return Err(EINVAL);
                }
                let len = 12 * max as usize;
                let buf = Buf::output(mem, a[1], len);
                let n = self.value(
                    FS,
                    Call::FsEpollWait,
                    &[a[0], buf.addr(), a[2], a[3] as i32 as i64 as u64],
                )?;
                buf.finish(mem, 12 * n as usize)?;
                Ok(n)
            })()),
            SYS_close_range => r(self.value(FS, Call::FsCloseRange, &[a[0], a[1], a[2]])),
            SYS_mknod => r(self.at(mem, Call::FsMknodat, AT_FDCWD, a[0], &[a[1], a[2]])),
            SYS_mknodat => r(self.at(mem, Call::FsMknodat, a[0], a[1], &[a[2], a[3]])),
            SYS_fallocate => r(self.value(FS, Call::FsFallocate, &[a[0], a[1], a[2], a[3]])),
            SYS_flock => r(self.value(FS, Call::FsFlock, &[a[0], a[1]])),
            SYS_copy_file_range => r((|| {
                let off = |p: u64| -> Result<i64, i32> {
                    if p == 0 {
                        Ok(-1)
                    } else {
                        mem.read_val::<i64>(p)
                    }
                };
                let (oi, oo) = (off(a[1])?, off(a[3])?);
                let n = self.value(
                    FS,
                    Call::FsCopyFileRange,
                    &[a[0], oi as u64, a[2], oo as u64, a[4], a[5]],
                )?;
                if a[1] != 0 {
                    mem.write_val(a[1], &(oi + n))?;
                }
                if a[3] != 0 {
                    mem.write_val(a[3], &(oo + n))?;
                }
                Ok(n)
            })()),
            _ => None,
        }
    }
}

/// A `struct timespec *` timeout in milliseconds (-1 for none).
fn timespec_ms(mem: &dyn Mem, addr: u64) -> Result<i64, i32> {
    if addr == 0 {
        return Ok(-1);
    }
    let ts: [i64; 2] = mem.read_val(addr)?;
    if ts[0] < 0 || !(0..1_000_000_000).contains(&ts[1]) {
        return Err(libc::EINVAL);
    }
    Ok(ts[0].saturating_mul(1000) + (ts[1] + 999_999) / 1_000_000)
}
