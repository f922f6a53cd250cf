//! The gate page: a fixed-address executable page holding the one
//! `syscall` instruction through which a DC process's own host system
//! calls pass (the preload's, and dvs-exec's child before its `execve`),
//! and, right after it, a data page that tells the seccomp net's
//! supervisor what state the process is in.
//!
//! The seccomp net ([`crate::seccomp::Filter::notify`]) lets a redirected
//! system call through only when the instruction pointer is
//! [`GATE_RET`], the address right after that `syscall`: every other
//! redirected call is sent to the supervisor. The address is the same in
//! every image, so the (inherited) filter is valid across `execve`.
//!
//! [`GATE_ADDR`] is `0x6476_7300_0000` ("dvs" in ASCII, about 110 TiB): above
//! where the kernel places PIE executables (`0x55..`/`0x56..`) and their
//! heaps, and far below the top-down mmap area and the stack (`0x7f..`),
//! which would have to grow by some 20 TiB to reach it. It is mapped with
//! `MAP_FIXED_NOREPLACE`, so a collision is an error, never a silent
//! replacement.
//!
//! This is a net against accidental escapes (glibc internals, raw
//! `syscall` instructions), not a wall against hostile code: a program
//! can jump to the gate on purpose.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Address of the gate (page-aligned).
pub const GATE_ADDR: u64 = 0x6476_7300_0000;
/// Instruction pointer the kernel reports for a call made by the gate
/// (`syscall` is two bytes long).
pub const GATE_RET: u64 = GATE_ADDR + 2;
/// Address of the data page.
pub const DATA_ADDR: u64 = mol_servers::abi::GATE_DATA;
/// Page size.
const PAGE: u64 = 4096;
/// The code: `syscall; ret`.
const CODE: [u8; 3] = [0x0f, 0x05, 0xc3];
/// Address of the vfork gate: `syscall; jmp *%r8`. A `vfork` made with
/// the gate's `syscall; ret` would have the child return through the
/// parent's stack slot and clobber it; this one keeps the return address
/// in a register. The net lets only `vfork` through it.
pub const GATE_VFORK: u64 = GATE_ADDR + 16;
/// Instruction pointer the kernel reports for the vfork gate's call.
pub const GATE_VFORK_RET: u64 = GATE_VFORK + 2;
/// The vfork gate's code: `syscall; jmp *%r8`.
const VFORK_CODE: [u8; 5] = [0x0f, 0x05, 0x41, 0xff, 0xe0];
/// First word of the data page once it is initialised.
pub const MAGIC: u64 = mol_servers::abi::GATE_MAGIC;
/// Number of threads that can be inside the preload's `fork` at once.
pub const FORK_SLOTS: usize = 16;

/// A request to the net's supervisor, made as a `kill(0, 0, ADOPT_MAGIC,
/// ADOPT_MAGIC)` that bypasses the gate: trace this process, which is
/// about to exec a static program ([`ADOPTED`] is the answer; a kernel
/// without the net answers 0).
pub const ADOPT_MAGIC: u64 = u64::from_le_bytes(*b"dvsadopt");
/// The supervisor's answer to an adoption request.
pub const ADOPTED: i64 = 0x6476_7361;

/// The data page, as the supervisor reads it from a process.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageData {
    /// [`MAGIC`] once initialised.
    pub magic: u64,
    /// 1 once the preload is attached to its DC endpoint: from then on
    /// redirected calls that bypass the gate are served by the supervisor.
    pub attached: u64,
    /// Start and end of the dynamic loader's code: calls from there (the
    /// loader mapping libraries for `dlopen`) run natively.
    pub loader: [u64; 2],
    /// Host tids of threads inside the preload's `fork` (0: free slot):
    /// their `clone` is the host half of a fork the preload registers.
    pub forking: [u32; FORK_SLOTS],
    /// The signals whose handler restarts interrupted calls (bit
    /// `sig - 1`; see `mol_servers::abi::GATE_DATA`).
    pub restarts: u64,
}

/// What went wrong mapping the gate.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The address is taken by another mapping.
    #[error("the gate address {GATE_ADDR:#x} is already in use")]
    Taken,
    /// A host call failed.
    #[error("{0}: {1}")]
    Sys(&'static str, std::io::Error),
}

static MAPPED: AtomicBool = AtomicBool::new(false);

/// Whether the gate is mapped in this process.
pub fn mapped() -> bool {
    MAPPED.load(Ordering::Acquire)
}

/// Maps the gate and its data page at their fixed addresses (idempotent;
/// an existing gate inherited through `fork` is reused).
pub fn map() -> Result<(), GateError> {
    if mapped() {
        return Ok(());
    }
    // SAFETY: an anonymous private mapping at a fixed address that must
    // be free (MAP_FIXED_NOREPLACE never replaces an existing mapping).
    let p = unsafe {
        libc::mmap(
            GATE_ADDR as *mut libc::c_void,
            2 * PAGE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) && ours() {
            MAPPED.store(true, Ordering::Release);
            return Ok(());
        }
        return Err(if e.raw_os_error() == Some(libc::EEXIST) {
            GateError::Taken
        } else {
            GateError::Sys("mmap", e)
        });
    }
    if p as u64 != GATE_ADDR {
        // A kernel without MAP_FIXED_NOREPLACE treats the address as a hint.
        // SAFETY: unmapping the mapping we just made.
        unsafe { libc::munmap(p, 2 * PAGE as usize) };
        return Err(GateError::Taken);
    }
    // SAFETY: the two pages are ours and writable; the code fits.
    unsafe {
        std::ptr::copy_nonoverlapping(CODE.as_ptr(), GATE_ADDR as *mut u8, CODE.len());
        std::ptr::copy_nonoverlapping(VFORK_CODE.as_ptr(), GATE_VFORK as *mut u8, VFORK_CODE.len());
        *(DATA_ADDR as *mut u64) = MAGIC;
    }
    // SAFETY: changing the protection of our own first page.
    if unsafe { libc::mprotect(p, PAGE as usize, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
        return Err(GateError::Sys("mprotect", std::io::Error::last_os_error()));
    }
    MAPPED.store(true, Ordering::Release);
    Ok(())
}

/// Reads our own memory at `addr` without faulting (false if unreadable).
fn read_self(addr: u64, buf: &mut [u8]) -> bool {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: copies into `buf` only; a bad remote address makes the call
    // fail instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    n == buf.len() as isize
}

/// Whether the mapping at the gate address is an initialised gate.
fn ours() -> bool {
    let mut magic = [0u8; 8];
    let mut code = [0u8; 3];
    let mut vfork = [0u8; 5];
    read_self(DATA_ADDR, &mut magic)
        && u64::from_le_bytes(magic) == MAGIC
        && read_self(GATE_ADDR, &mut code)
        && code == CODE
        && read_self(GATE_VFORK, &mut vfork)
        && vfork == VFORK_CODE
}

/// Issues system call `nr` through the gate (which must be mapped).
/// Returns the raw result (`-errno` on failure).
///
/// # Safety
/// The gate must be mapped ([`mapped`]) and the arguments valid for `nr`.
pub unsafe fn syscall6(nr: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: a call to the gate's `syscall; ret`: the Linux x86-64
    // system call ABI (number in rax, arguments in rdi, rsi, rdx, r10, r8,
    // r9; rcx and r11 clobbered by `syscall`). The call pushes a return
    // address, so the block is not `nostack` (no red zone is live).
    unsafe {
        std::arch::asm!(
            "call {gate}",
            gate = in(reg) GATE_ADDR,
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

fn word64(offset: usize) -> &'static AtomicU64 {
    // SAFETY: the data page is mapped for the life of the image (callers
    // check `mapped()`), 8-aligned offsets inside it.
    unsafe { &*((DATA_ADDR as usize + offset) as *const AtomicU64) }
}

fn word32(offset: usize) -> &'static AtomicU32 {
    // SAFETY: as in `word64`, 4-aligned offsets inside the page.
    unsafe { &*((DATA_ADDR as usize + offset) as *const AtomicU32) }
}

const OFF_ATTACHED: usize = 8;
const OFF_LOADER: usize = 16;
const OFF_FORKING: usize = 32;

/// Records that the preload is attached (or not) to its DC endpoint.
pub fn set_attached(on: bool) {
    if mapped() {
        word64(OFF_ATTACHED).store(u64::from(on), Ordering::Release);
    }
}

/// Records the dynamic loader's code range.
pub fn set_loader(start: u64, end: u64) {
    if mapped() {
        word64(OFF_LOADER).store(start, Ordering::Release);
        word64(OFF_LOADER + 8).store(end, Ordering::Release);
    }
}

/// Records whether the handler of `sig` restarts interrupted calls.
pub fn set_restarts(sig: i32, on: bool) {
    if mapped() && (1..=64).contains(&sig) {
        let bit = 1u64 << (sig - 1);
        let w = word64(mol_servers::abi::GATE_RESTARTS);
        if on {
            w.fetch_or(bit, Ordering::AcqRel);
        } else {
            w.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

/// Books a fork slot for thread `tid` (the host half of a fork the
/// preload registers); returns the slot to give back with [`fork_leave`].
pub fn fork_enter(tid: u32) -> Option<usize> {
    if !mapped() {
        return None;
    }
    (0..FORK_SLOTS).find(|&i| {
        word32(OFF_FORKING + 4 * i)
            .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// Gives back a fork slot.
pub fn fork_leave(slot: usize) {
    if mapped() && slot < FORK_SLOTS {
        word32(OFF_FORKING + 4 * slot).store(0, Ordering::Release);
    }
}

/// In a forked child: forgets the slots copied from the parent.
pub fn fork_clear() {
    if mapped() {
        for i in 0..FORK_SLOTS {
            word32(OFF_FORKING + 4 * i).store(0, Ordering::Release);
        }
    }
}

/// Reads the data page of another process (None: no gate there, e.g. a
/// fresh image whose preload has not run yet).
pub fn read_remote(mem: &dyn crate::mem::Mem) -> Option<PageData> {
    let mut d = PageData::default();
    // SAFETY: PageData is a plain C struct of integers; the slice covers
    // exactly `d`.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            (&mut d as *mut PageData).cast::<u8>(),
            std::mem::size_of::<PageData>(),
        )
    };
    mem.read(DATA_ADDR, bytes).ok()?;
    (d.magic == MAGIC).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(std::mem::offset_of!(PageData, attached), OFF_ATTACHED);
        assert_eq!(std::mem::offset_of!(PageData, loader), OFF_LOADER);
        assert_eq!(std::mem::offset_of!(PageData, forking), OFF_FORKING);
        assert_eq!(
            std::mem::offset_of!(PageData, restarts),
            mol_servers::abi::GATE_RESTARTS
        );
        assert_eq!(DATA_ADDR, GATE_ADDR + PAGE);
        assert!(std::mem::size_of::<PageData>() <= PAGE as usize);
    }

    #[test]
    fn gate_calls_the_kernel() {
        map().unwrap();
        map().unwrap();
        // SAFETY: getpid through the gate.
        let pid = unsafe { syscall6(libc::SYS_getpid, [0; 6]) };
        assert_eq!(pid, std::process::id() as i64);
        set_attached(true);
        let slot = fork_enter(7).unwrap();
        let d = read_remote(&crate::mem::Local).unwrap();
        assert_eq!(d.attached, 1);
        assert_eq!(d.forking[slot], 7);
        fork_leave(slot);
    }
}
