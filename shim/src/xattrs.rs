//! Extended attributes (served by FS): `getxattr`, `setxattr`,
//! `listxattr`, `removexattr` and their `l` and `f` forms.

use crate::mem::{Buf, Mem};
use crate::{ret, Action, Shim};
use mol_servers::abi::{Call, FS};

/// `XATTR_NAME_MAX`: longer names are `ERANGE`.
const NAME_MAX: usize = 255;
/// `XATTR_SIZE_MAX`: larger values are `E2BIG`.
const SIZE_MAX: usize = 65536;

/// What a call names: a path (followed or not), or a descriptor.
#[derive(Clone, Copy)]
enum On {
    Path(u64),
    Link(u64),
    Fd(u64),
}

impl On {
    fn of(nr: i64, a0: u64) -> On {
        match nr {
            libc::SYS_getxattr
            | libc::SYS_setxattr
            | libc::SYS_listxattr
            | libc::SYS_removexattr => On::Path(a0),
            libc::SYS_lgetxattr
            | libc::SYS_lsetxattr
            | libc::SYS_llistxattr
            | libc::SYS_lremovexattr => On::Link(a0),
            _ => On::Fd(a0),
        }
    }
}

impl Shim {
    /// Serves the extended-attribute calls; `None` for other calls.
    pub(crate) fn xattr_call(&self, mem: &dyn Mem, nr: i64, a: [u64; 6]) -> Option<Action> {
        let on = On::of(nr, a[0]);
        let r = match nr {
            libc::SYS_getxattr | libc::SYS_lgetxattr | libc::SYS_fgetxattr => {
                self.get_like(mem, Call::FsGetxattr, on, Some(a[1]), a[2], a[3])
            }
            libc::SYS_listxattr | libc::SYS_llistxattr | libc::SYS_flistxattr => {
                self.get_like(mem, Call::FsListxattr, on, None, a[1], a[2])
            }
            libc::SYS_setxattr | libc::SYS_lsetxattr | libc::SYS_fsetxattr => (|| {
                let (dirfd, names, flags) = self.names(mem, on, Some(a[1]))?;
                let size = a[3] as usize;
                if size > SIZE_MAX {
                    return Err(libc::E2BIG);
                }
                let value = Buf::input(mem, a[2], size)?;
                self.value(
                    FS,
                    Call::FsSetxattr,
                    &[
                        dirfd,
                        names.as_ptr() as u64,
                        names.len() as u64,
                        flags | (a[4] as u32 as u64) << 32,
                        value.addr(),
                        size as u64,
                    ],
                )
            })(),
            libc::SYS_removexattr | libc::SYS_lremovexattr | libc::SYS_fremovexattr => (|| {
                let (dirfd, names, flags) = self.names(mem, on, Some(a[1]))?;
                self.value(
                    FS,
                    Call::FsRemovexattr,
                    &[dirfd, names.as_ptr() as u64, names.len() as u64, flags],
                )
            })(
            ),
            _ => return None,
        };
        Some(Action::Ret(ret(r)))
    }

    /// `getxattr` and `listxattr`: a value or list of at most `size` bytes
    /// into `buf` (the size only when `size` is 0).
    fn get_like(
        &self,
        mem: &dyn Mem,
        call: Call,
        on: On,
        name: Option<u64>,
        buf: u64,
        size: u64,
    ) -> Result<i64, i32> {
        let (dirfd, names, flags) = self.names(mem, on, name)?;
        let size = (size as usize).min(SIZE_MAX);
        let out = Buf::output(mem, buf, size);
        let n = self.value(
            FS,
            call,
            &[
                dirfd,
                names.as_ptr() as u64,
                names.len() as u64,
                flags,
                if size == 0 { 0 } else { out.addr() },
                size as u64,
            ],
        )?;
        if size != 0 {
            out.finish(mem, n as usize)?;
        }
        Ok(n)
    }

    /// The request's `dirfd`, its path-and-name buffer (the path, a NUL,
    /// the name) and its `AT_*` flags.
    fn names(&self, mem: &dyn Mem, on: On, name: Option<u64>) -> Result<(u64, Vec<u8>, u64), i32> {
        let (dirfd, mut buf, flags) = match on {
            On::Path(p) => (AT_FDCWD, self.path(mem, p)?, 0),
            On::Link(p) => (AT_FDCWD, self.path(mem, p)?, libc::AT_SYMLINK_NOFOLLOW),
            On::Fd(fd) => (fd, Vec::new(), libc::AT_EMPTY_PATH),
        };
        if let Some(addr) = name {
            let name = mem.read_cstr(addr, NAME_MAX).map_err(|e| {
                if e == libc::ENAMETOOLONG {
                    libc::ERANGE
                } else {
                    e
                }
            })?;
            buf.push(0);
            buf.extend_from_slice(&name);
        }
        Ok((dirfd, buf, flags as u64))
    }
}

const AT_FDCWD: u64 = libc::AT_FDCWD as i64 as u64;
