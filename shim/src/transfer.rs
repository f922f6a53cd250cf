//! Data moved from one descriptor to another by the shim itself, as a
//! read and a write through FS like any other, so that either side may be
//! any DC descriptor (file, pipe, socket, console): `sendfile` and
//! `splice`. At most 1 MiB moves per call, as a partial transfer.

use crate::files::STAT_SIZE;
use crate::mem::Mem;
use crate::{ret, Action, Shim};
use mol_servers::abi::{Call, FS};

/// The most one call moves.
const STEP: usize = 1 << 20;
/// Where `st_mode` is in the kernel's `struct stat`.
const ST_MODE: usize = 24;

impl Shim {
    /// Serves `sendfile` and `splice`; `None` for other calls.
    pub(crate) fn transfer_call(&self, mem: &dyn Mem, nr: i64, a: [u64; 6]) -> Option<Action> {
        let r = match nr {
            libc::SYS_sendfile => self.sendfile(mem, a[0], a[1], a[2], a[3]),
            libc::SYS_splice => self.splice(mem, a),
            _ => return None,
        };
        Some(match r {
            Err(libc::EPIPE) => Action::SigPipe,
            r => Action::Ret(ret(r)),
        })
    }

    /// `sendfile(out, in, offset, count)`: `in` read at `*offset` (which
    /// moves) or at its file offset.
    fn sendfile(
        &self,
        mem: &dyn Mem,
        out: u64,
        inp: u64,
        offp: u64,
        count: u64,
    ) -> Result<i64, i32> {
        let off = read_offset(mem, offp)?;
        let sent = self.relay(inp, off, out, None, count)?;
        if let Some(o) = off {
            mem.write_val(offp, &(o + sent))?;
        }
        Ok(sent)
    }

    /// `splice(in, off_in, out, off_out, len, flags)`: one side must be a
    /// pipe, and a pipe side takes no offset (`ESPIPE`).
    fn splice(&self, mem: &dyn Mem, a: [u64; 6]) -> Result<i64, i32> {
        let (inp, offp_in, out, offp_out, len) = (a[0], a[1], a[2], a[3], a[4]);
        let (pipe_in, pipe_out) = (self.is_pipe(inp)?, self.is_pipe(out)?);
        if !pipe_in && !pipe_out {
            return Err(libc::EINVAL);
        }
        if (pipe_in && offp_in != 0) || (pipe_out && offp_out != 0) {
            return Err(libc::ESPIPE);
        }
        let (off_in, off_out) = (read_offset(mem, offp_in)?, read_offset(mem, offp_out)?);
        let n = self.relay(inp, off_in, out, off_out, len)?;
        if let Some(o) = off_in {
            mem.write_val(offp_in, &(o + n))?;
        }
        if let Some(o) = off_out {
            mem.write_val(offp_out, &(o + n))?;
        }
        Ok(n)
    }

    /// Whether descriptor `fd` is a pipe (`EBADF` if it is not open).
    fn is_pipe(&self, fd: u64) -> Result<bool, i32> {
        let mut st = [0u8; STAT_SIZE];
        self.value(
            FS,
            Call::FsFstatat,
            &[fd, 0, 0, st.as_mut_ptr() as u64, libc::AT_EMPTY_PATH as u64],
        )?;
        let mut mode = [0u8; 4];
        mode.copy_from_slice(&st[ST_MODE..ST_MODE + 4]);
        Ok(u32::from_ne_bytes(mode) & libc::S_IFMT == libc::S_IFIFO)
    }

    /// Reads at most [`STEP`] bytes of `inp` (at `off_in`, or at its file
    /// offset) and writes them to `out` (at `off_out`, or at its file
    /// offset); returns the bytes written. Bytes read but not written are
    /// given back to an input read at its file offset.
    fn relay(
        &self,
        inp: u64,
        off_in: Option<i64>,
        out: u64,
        off_out: Option<i64>,
        count: u64,
    ) -> Result<i64, i32> {
        let n = (count as usize).min(STEP);
        if n == 0 {
            return Ok(0);
        }
        let mut buf = vec![0u8; n];
        let at = buf.as_mut_ptr() as u64;
        let got = match off_in {
            Some(o) => self.value(FS, Call::FsPread, &[inp, at, n as u64, o as u64])?,
            None => self.value(FS, Call::FsRead, &[inp, at, n as u64])?,
        };
        if got <= 0 {
            return Ok(0);
        }
        let put = match off_out {
            Some(o) => self.value(FS, Call::FsPwrite, &[out, at, got as u64, o as u64]),
            None => self.value(FS, Call::FsWrite, &[out, at, got as u64]),
        };
        let sent = *put.as_ref().unwrap_or(&0);
        if off_in.is_none() && sent < got {
            // Bytes read but not sent stay unread (where the input can
            // seek: a pipe's are lost, as a short write to the output is
            // only possible when that output failed).
            let back = (sent - got) as u64;
            let _ = self.value(FS, Call::FsLseek, &[inp, back, libc::SEEK_CUR as u64]);
        }
        put
    }
}

/// The offset at `p` (a `loff_t *`), `None` for a null pointer.
fn read_offset(mem: &dyn Mem, p: u64) -> Result<Option<i64>, i32> {
    if p == 0 {
        return Ok(None);
    }
    let o: i64 = mem.read_val(p)?;
    if o < 0 {
        return Err(libc::EINVAL);
    }
    Ok(Some(o))
}
