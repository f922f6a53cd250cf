//! How the shim reaches the memory of the process whose system call it
//! serves.
//!
//! * [`Local`]: the shim runs inside that process (the preload). Data
//!   buffers are passed to the servers as they are: the servers `vcopy`
//!   straight from/to the program's memory. Small arguments (paths,
//!   structs) are read with `process_vm_readv` on ourselves, so a bad
//!   pointer gives `EFAULT` instead of a crash.
//! * [`Remote`]: the shim runs in a supervisor on behalf of process `pid`.
//!   Buffers are bounced through the supervisor's memory.

use crate::errno;
use dvk::sys::{own_pid, vm_copy, CopyDir};

/// Memory of the process a system call is served for.
pub trait Mem {
    /// Copies `buf.len()` bytes at `addr` into `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), i32>;
    /// Copies `data` to `addr`.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), i32>;
    /// Whether the servers can reach addresses of this memory directly
    /// (the caller endpoint lives in this address space).
    fn direct(&self) -> bool;

    /// Reads a NUL-terminated string (at most `max` bytes, without the NUL).
    fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, i32> {
        if addr == 0 {
            return Err(libc::EFAULT);
        }
        let mut out = Vec::new();
        let mut a = addr;
        // Most strings (paths, names) are short: a first read of at most
        // this much, then up to a page at a time.
        let mut want = 256;
        while out.len() <= max {
            // Never across the end of a page, so a string that ends just
            // before an unmapped page is still readable.
            let room = (4096 - (a as usize % 4096)).min(want);
            want = 4096;
            let mut chunk = vec![0u8; room];
            self.read(a, &mut chunk)?;
            if let Some(n) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..n]);
                return if out.len() > max {
                    Err(libc::ENAMETOOLONG)
                } else {
                    Ok(out)
                };
            }
            out.extend_from_slice(&chunk);
            a += room as u64;
        }
        Err(libc::ENAMETOOLONG)
    }
}

impl dyn Mem + '_ {
    /// Reads a plain value (`T` is a C struct of integers).
    pub fn read_val<T: Copy + Default>(&self, addr: u64) -> Result<T, i32> {
        let mut v = T::default();
        // SAFETY: `T` is a plain-old-data C struct (only integers), so any
        // byte pattern is a valid value; the slice covers exactly `v`.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(&mut v as *mut T as *mut u8, std::mem::size_of::<T>())
        };
        self.read(addr, bytes)?;
        Ok(v)
    }

    /// Writes a plain value.
    pub fn write_val<T: Copy>(&self, addr: u64, v: &T) -> Result<(), i32> {
        // SAFETY: viewing a plain C struct as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>())
        };
        self.write(addr, bytes)
    }
}

/// The calling process's own memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Mem for Local {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), i32> {
        if buf.is_empty() {
            return Ok(());
        }
        vm_copy(
            CopyDir::Read,
            own_pid(),
            buf.as_mut_ptr() as u64,
            addr,
            buf.len(),
        )
        .map_err(|_| libc::EFAULT)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), i32> {
        if data.is_empty() {
            return Ok(());
        }
        vm_copy(
            CopyDir::Write,
            own_pid(),
            data.as_ptr() as u64,
            addr,
            data.len(),
        )
        .map_err(|_| libc::EFAULT)
    }
    fn direct(&self) -> bool {
        true
    }
}

/// The memory of another process (host pid).
#[derive(Debug, Clone, Copy)]
pub struct Remote {
    /// Host pid (or tid) of the process.
    pub pid: i32,
}

impl Mem for Remote {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), i32> {
        if buf.is_empty() {
            return Ok(());
        }
        vm_copy(
            CopyDir::Read,
            self.pid,
            buf.as_mut_ptr() as u64,
            addr,
            buf.len(),
        )
        .map_err(errno::of_copy)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), i32> {
        if data.is_empty() {
            return Ok(());
        }
        vm_copy(
            CopyDir::Write,
            self.pid,
            data.as_ptr() as u64,
            addr,
            data.len(),
        )
        .map_err(errno::of_copy)
    }
    fn direct(&self) -> bool {
        false
    }
}

/// A data buffer as passed to a server: the program's own address
/// (direct), or a bounce buffer in the shim's memory.
pub struct Buf {
    bounce: Option<Vec<u8>>,
    user: u64,
}

impl Buf {
    /// A buffer the server will read from (data going out of the program).
    pub fn input(mem: &dyn Mem, addr: u64, len: usize) -> Result<Buf, i32> {
        if mem.direct() {
            return Ok(Buf {
                bounce: None,
                user: addr,
            });
        }
        let mut v = vec![0u8; len];
        mem.read(addr, &mut v)?;
        Ok(Buf {
            bounce: Some(v),
            user: addr,
        })
    }

    /// A buffer the server will write into (data coming into the program).
    pub fn output(mem: &dyn Mem, addr: u64, len: usize) -> Buf {
        if mem.direct() {
            Buf {
                bounce: None,
                user: addr,
            }
        } else {
            Buf {
                bounce: Some(vec![0u8; len]),
                user: addr,
            }
        }
    }

    /// The address to give the server.
    pub fn addr(&self) -> u64 {
        match &self.bounce {
            Some(v) => v.as_ptr() as u64,
            None => self.user,
        }
    }

    /// After the call: copies the first `n` bytes back to the program.
    pub fn finish(&self, mem: &dyn Mem, n: usize) -> Result<(), i32> {
        match &self.bounce {
            Some(v) => mem.write(self.user, &v[..n.min(v.len())]),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings of every length around the first read (256 bytes) and a
    /// page, ending right before an unmapped page, too long, or at a bad
    /// address.
    #[test]
    fn read_cstr_finds_the_end_anywhere() {
        let mem: &dyn Mem = &Local;
        for len in [0usize, 1, 255, 256, 257, 4095, 4096, 5000] {
            let mut s = vec![b'x'; len];
            s.push(0);
            assert_eq!(mem.read_cstr(s.as_ptr() as u64, 8192), Ok(vec![b'x'; len]));
            assert_eq!(
                mem.read_cstr(s.as_ptr() as u64, len.saturating_sub(1)),
                if len == 0 {
                    Ok(vec![])
                } else {
                    Err(libc::ENAMETOOLONG)
                }
            );
        }
        // SAFETY: mapping two fresh anonymous pages and unmapping the
        // second, so the first ends at an unmapped page.
        let p = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            libc::munmap((p as usize + 4096) as *mut libc::c_void, 4096);
            p as *mut u8
        };
        // SAFETY: the first page is ours and writable.
        let page = unsafe { std::slice::from_raw_parts_mut(p, 4096) };
        page.fill(b'y');
        page[4095] = 0;
        assert_eq!(mem.read_cstr(p as u64 + 10, 8192), Ok(vec![b'y'; 4085]));
        page[4095] = b'y';
        assert_eq!(mem.read_cstr(p as u64 + 10, 8192), Err(libc::EFAULT));
        assert_eq!(mem.read_cstr(0, 10), Err(libc::EFAULT));
        // SAFETY: unmapping the page mapped above.
        unsafe { libc::munmap(p.cast(), 4096) };
    }
}
