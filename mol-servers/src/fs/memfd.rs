//! `memfd_create`: an anonymous file in memory.
//!
//! FS creates a host memfd and installs it as a regular file, so `read`,
//! `write`, `lseek`, `ftruncate`, `fstat` and sealing are the host
//! kernel's. It has no path: its host path (for `mmap` and `fexecve`,
//! which reopen a descriptor's file) is FS's `/proc/<pid>/fd/<n>` link
//! (see `open::host_path`).

use super::table::{Kind, Ofd};
use super::Fs;
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};

/// `MFD_NOEXEC_SEAL` and `MFD_EXEC` (Linux 6.3; not in the libc crate).
const MFD_NOEXEC_SEAL: u32 = 0x8;
const MFD_EXEC: u32 = 0x10;

/// Flags passed to the host (`MFD_CLOEXEC` is the DC descriptor's).
const HOST_FLAGS: u32 = libc::MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | MFD_EXEC;

/// `[name, len, flags]`: a new memfd.
fn create(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.args[2] as u32;
    let r = (|| {
        if flags & !(HOST_FLAGS | libc::MFD_CLOEXEC) != 0 {
            // Huge pages and anything newer: not offered.
            return Err(libc::EINVAL);
        }
        // The name is at most 249 bytes (Linux's limit), without its NUL.
        if req.args[1] > 249 {
            return Err(libc::EINVAL);
        }
        let name = ctx.copy_in(req.sender, req.args[0], req.args[1] as usize)?;
        let name = super::sys::cstr(&name)?;
        // SAFETY: a valid C string and integer flags; `owned` checks it.
        let fd =
            unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | (flags & HOST_FLAGS)) };
        let fd = super::sys::owned(fd)?;
        let ofd = Ofd::new(
            Kind::File {
                fd,
                ftype: libc::S_IFREG,
            },
            libc::O_RDWR | super::path::O_LARGEFILE,
        );
        fs.install(req.caller, ofd, flags & libc::MFD_CLOEXEC != 0)
    })();
    Outcome::from(r.map(i64::from))
}

/// The memfd call.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![(Call::FsMemfdCreate, create as Handler<Fs>)]
}
