//! The seccomp filters of DC processes, built with `seccompiler` plus a
//! small raw BPF prologue (seccompiler cannot test the instruction pointer
//! or the x32 bit):
//!
//! * [`Filter::trace`], for static programs under the tracer:
//!   `SECCOMP_RET_TRACE` for every redirected call ([`crate::redirected`])
//!   and `tkill`/`tgkill`; everything else runs without a stop.
//! * [`Filter::notify`], the net of dynamic programs, installed by
//!   dvs-exec's child before its first `execve` and inherited by the whole
//!   DC: `SECCOMP_RET_USER_NOTIF` for the same calls **unless** they come
//!   from the gate ([`crate::gatepage::GATE_RET`]), which five
//!   instructions allow (the preload's `vfork` passes through the vfork
//!   gate, [`crate::gatepage::GATE_VFORK_RET`]); and for `mmap` of a
//!   descriptor from anywhere else (glibc's internal mappings of DC
//!   descriptors). A search on the call number comes first
//!   ([`by_number`]): every other call is allowed by the kernel's seccomp
//!   cache without running the program.

use crate::gatepage::{GATE_RET, GATE_VFORK_RET};
use seccompiler::{sock_filter, BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// Calls caught on top of the shim's list: signals to single threads,
/// which name host ids.
pub const THREAD_SIGNALS: &[i64] = &[libc::SYS_tkill, libc::SYS_tgkill];

/// The x32 ABI bit of a system call number: such calls would bypass the
/// x86-64 rules, so they are caught too (and fail with `ENOSYS`).
pub const X32_BIT: i64 = 0x4000_0000;

/// `seccomp_data` offsets: the call number, the architecture, and the
/// two halves of the instruction pointer.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_IP_LO: u32 = 8;
const OFF_IP_HI: u32 = 12;
/// The low half of the first argument (`clone`'s flags).
const OFF_ARG0_LO: u32 = 16;
/// Low word of the second argument.
const OFF_ARG1_LO: u32 = 24;

/// The net's probe: a `clone3` whose size argument is this value fails
/// under the net with [`NET_PROBE_ERRNO`], an error the kernel never gives
/// `clone3` (it gives `E2BIG` for such a size, and another seccomp filter
/// refusing `clone3`, as container runtimes' do, `ENOSYS` or `EPERM`). A
/// process learns from it, without a notification, that its redirected
/// calls that bypass the preload are the DC's.
pub const NET_PROBE: u32 = 0x6476_7072;

/// What the net's probe fails with ([`NET_PROBE`]).
pub const NET_PROBE_ERRNO: i32 = libc::EBADSLT;

/// Building a filter failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {0}")]
pub struct FilterError(String);

/// A compiled filter, ready to be installed in a child after `fork`.
pub struct Filter {
    prog: BpfProgram,
}

/// Every system call number the filters catch.
pub fn caught() -> Vec<i64> {
    let mut v = crate::redirected::redirected();
    v.extend_from_slice(THREAD_SIGNALS);
    v.sort_unstable();
    v.dedup();
    v
}

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LD_W_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JA: u32 = libc::BPF_JMP | libc::BPF_JA;
const JEQ_K: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE_K: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET_K: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
const RET_K: u32 = libc::BPF_RET | libc::BPF_K;

/// The calls the net looks at beyond their number: the caught ones, and
/// those its prologue and `mmap` rule test.
fn watched() -> Vec<u32> {
    let mut v: Vec<u32> = caught()
        .into_iter()
        .chain([
            libc::SYS_mmap,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_vfork,
        ])
        .map(|nr| nr as u32)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A prefix that lets every x86-64 call outside `watched` run on its
/// number alone and sends the others (and any other architecture or x32
/// call) to the rest of the program, which follows it. It loads nothing
/// but the number and the architecture, so the kernel's seccomp cache can
/// work out, when the filter is installed, that such a call is always
/// allowed: it then runs no BPF at all. Without it the net's prologue,
/// which reads the instruction pointer first, ran the whole program on
/// every call (a `futex` wake cost 3x native: 0.4 against 0.13 µs).
///
/// The set is tested with a binary search: a handful of comparisons on
/// the way to the caught calls.
fn by_number(watched: &[u32]) -> Result<Vec<sock_filter>, FilterError> {
    let mut out = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(JA, 0),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, X32_BIT as u32, 0, 1),
        stmt(JA, 0),
    ];
    let mut to_rest = vec![2, 5];
    search(watched, &mut out, &mut to_rest)?;
    let end = out.len();
    for i in to_rest {
        out[i].k = (end - i - 1) as u32;
    }
    Ok(out)
}

/// `AUDIT_ARCH_X86_64` (not in the libc crate).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// Emits the search of `set` (sorted, not empty) for the number in the
/// accumulator: `ret ALLOW` when it is not there, a jump to the rest of
/// the program (recorded in `to_rest`, its offset set later) when it is.
fn search(
    set: &[u32],
    out: &mut Vec<sock_filter>,
    to_rest: &mut Vec<usize>,
) -> Result<(), FilterError> {
    if set.len() <= 4 {
        let m = set.len();
        for (j, &nr) in set.iter().enumerate() {
            out.push(jump(JEQ_K, nr, (m - j) as u8, 0));
        }
        out.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
        to_rest.push(out.len());
        out.push(stmt(JA, 0));
        return Ok(());
    }
    let mid = set.len() / 2;
    let at = out.len();
    out.push(jump(JGE_K, set[mid], 0, 0));
    search(&set[..mid], out, to_rest)?;
    out[at].jt = u8::try_from(out.len() - at - 1)
        .map_err(|_| FilterError("the call-number search is too deep".into()))?;
    search(&set[mid..], out, to_rest)
}

/// seccompiler's program: `ret` `action` for every caught call (and, for
/// the net, `mmap` of a descriptor, see [`mmap_of_descriptor`]), allow
/// for the rest.
fn body(net: bool) -> Result<BpfProgram, FilterError> {
    let mut rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        caught().into_iter().map(|nr| (nr, Vec::new())).collect();
    if net {
        rules.insert(libc::SYS_mmap, vec![mmap_of_descriptor()?]);
    }
    let f = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Trace(0),
        TargetArch::x86_64,
    )
    .map_err(|e| FilterError(e.to_string()))?;
    f.try_into()
        .map_err(|e: seccompiler::BackendError| FilterError(e.to_string()))
}

/// An `mmap` of a descriptor (`fd` ≥ 0, no `MAP_ANONYMOUS`) that is not
/// a library segment of the dynamic loader (which always passes
/// `MAP_DENYWRITE`, a flag the kernel ignores and programs do not use):
/// glibc's internal file mappings (locales, `sem_open`, `catopen`,
/// iconv modules) bypass the preload's `mmap` and name DC descriptors,
/// which the supervisor mirrors into the caller before the call runs.
fn mmap_of_descriptor() -> Result<seccompiler::SeccompRule, FilterError> {
    use seccompiler::{SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond};
    let err = |e: seccompiler::BackendError| FilterError(e.to_string());
    let flags = (libc::MAP_ANONYMOUS | libc::MAP_DENYWRITE) as u64;
    seccompiler::SeccompRule::new(vec![
        Cond::new(3, Len::Dword, Op::MaskedEq(flags), 0).map_err(err)?,
        Cond::new(4, Len::Dword, Op::Lt, 0x8000_0000).map_err(err)?,
    ])
    .map_err(err)
}

impl Filter {
    /// The tracer's filter: `SECCOMP_RET_TRACE` for the caught calls.
    pub fn trace() -> Result<Filter, FilterError> {
        // x32 calls stop as well. seccompiler checks the architecture
        // (i386 `int 0x80` calls kill the process) but not the x32 bit.
        let mut prog = vec![
            stmt(LD_W_ABS, OFF_NR),
            jump(JGE_K, X32_BIT as u32, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_TRACE),
        ];
        prog.extend(body(false)?);
        Ok(Filter { prog })
    }

    /// The net: `SECCOMP_RET_USER_NOTIF` for the caught calls that do not
    /// come from the gate; x32 calls fail with `ENOSYS`. Two answers the
    /// supervisor would give anyway are given by the filter, so that
    /// `pthread_create` costs no round trip to it: `clone3` fails with
    /// `ENOSYS` (glibc falls back to `clone`, whose flags a filter can
    /// read), and a `clone` of a thread runs.
    pub fn notify() -> Result<Filter, FilterError> {
        let hi = (GATE_RET >> 32) as u32;
        debug_assert_eq!(hi, (GATE_VFORK_RET >> 32) as u32);
        let mut prog = by_number(&watched())?;
        prog.extend([
            // A call from the gate runs, and a `vfork` from the
            // vfork gate.
            stmt(LD_W_ABS, OFF_IP_HI),
            jump(JEQ_K, hi, 0, 7),
            stmt(LD_W_ABS, OFF_IP_LO),
            jump(JEQ_K, GATE_RET as u32, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_ALLOW),
            jump(JEQ_K, GATE_VFORK_RET as u32, 0, 3),
            stmt(LD_W_ABS, OFF_NR),
            jump(JEQ_K, libc::SYS_vfork as u32, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_ALLOW),
            // x32 calls fail.
            stmt(LD_W_ABS, OFF_NR),
            jump(JGE_K, X32_BIT as u32, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
            // clone3 fails; the net's probe fails its own way.
            jump(JEQ_K, libc::SYS_clone3 as u32, 0, 4),
            stmt(LD_W_ABS, OFF_ARG1_LO),
            jump(JEQ_K, NET_PROBE, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_ERRNO | NET_PROBE_ERRNO as u32),
            stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
            // A clone of a thread runs (seccompiler's program, which
            // follows, loads what it tests itself).
            jump(JEQ_K, libc::SYS_clone as u32, 0, 3),
            stmt(LD_W_ABS, OFF_ARG0_LO),
            jump(JSET_K, libc::CLONE_THREAD as u32, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        ]);
        // seccompiler has no USER_NOTIF action: its `Trace(0)` returns
        // become USER_NOTIF ones.
        prog.extend(body(true)?.into_iter().map(|mut i| {
            if i.code == RET_K as u16 && i.k == libc::SECCOMP_RET_TRACE {
                i.k = libc::SECCOMP_RET_USER_NOTIF;
            }
            i
        }));
        Ok(Filter { prog })
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// Whether the program is empty (never: it always has its prologue).
    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }

    /// Installs the filter in the calling thread (`PR_SET_NO_NEW_PRIVS`,
    /// then `seccomp(SECCOMP_SET_MODE_FILTER, flags)`). Returns the
    /// syscall's result (a listener descriptor with
    /// `SECCOMP_FILTER_FLAG_NEW_LISTENER`, else 0), or `-errno`.
    /// Async-signal-safe: meant for a child between `fork` and `execve`
    /// (it allocates nothing).
    pub fn install_raw_flags(&self, flags: libc::c_ulong) -> i64 {
        let fprog = libc::sock_fprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            // SAFETY: reading this thread's errno.
            return -(unsafe { *libc::__errno_location() } as i64);
        }
        // SAFETY: `fprog` points to `self.prog`, whose layout is the
        // kernel's `struct sock_filter` (seccompiler's type is repr(C) with
        // the same fields); the kernel copies it before returning.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            // SAFETY: reading this thread's errno.
            return -(unsafe { *libc::__errno_location() } as i64);
        }
        r
    }

    /// Installs a [`Filter::trace`] filter; returns 0 or an errno. The
    /// calling process must already be traced: a `RET_TRACE` call with no
    /// tracer fails with `ENOSYS`.
    pub fn install_raw(&self) -> i32 {
        (-self.install_raw_flags(0).min(0)) as i32
    }

    /// Installs a [`Filter::notify`] filter and returns its listener
    /// descriptor (close-on-exec), or `-errno`. Waits for the supervisor
    /// are killable only once it has received the notification
    /// (`SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`), so that a caught signal
    /// does not restart a call the supervisor is already serving.
    pub fn install_listener(&self) -> i64 {
        self.install_raw_flags(
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `prog` as the kernel does, loading words through `load`;
    /// `None` when a load or an instruction is not one `load` and this
    /// walker know (what the kernel's seccomp cache gives up on).
    fn eval(prog: &[sock_filter], load: impl Fn(u32) -> Option<u32>) -> Option<u32> {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &prog[pc];
            let op = u32::from(i.code);
            let cond = |c: bool| if c { i.jt } else { i.jf } as usize;
            pc += 1 + match op {
                LD_W_ABS => {
                    acc = load(i.k)?;
                    0
                }
                RET_K => return Some(i.k),
                JA => i.k as usize,
                JEQ_K => cond(acc == i.k),
                JGE_K => cond(acc >= i.k),
                JSET_K => cond(acc & i.k != 0),
                x if x == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => cond(acc > i.k),
                x if x == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => {
                    acc &= i.k;
                    0
                }
                _ => return None,
            };
        }
    }

    /// What `prog` returns for one call.
    fn run(prog: &[sock_filter], nr: u32, arch: u32, ip: u64, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> Option<u32> {
            Some(match off {
                OFF_NR => nr,
                OFF_ARCH => arch,
                8 => ip as u32,
                12 => (ip >> 32) as u32,
                o if (16..64).contains(&o) => {
                    let a = args[(o as usize - 16) / 8];
                    if o % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                _ => return None,
            })
        };
        eval(prog, word).expect("an instruction or load the filters do not use")
    }

    /// The kernel's seccomp cache check (`seccomp_is_const_allow`): whether
    /// `prog` allows x86-64 call `nr` whatever its arguments and address.
    fn const_allow(prog: &[sock_filter], nr: u32) -> bool {
        let word = |off: u32| match off {
            OFF_NR => Some(nr),
            OFF_ARCH => Some(AUDIT_ARCH_X86_64),
            _ => None,
        };
        eval(prog, word) == Some(libc::SECCOMP_RET_ALLOW)
    }

    #[test]
    fn the_prefix_changes_no_answer() {
        let net = Filter::notify().unwrap().prog;
        let without = &net[by_number(&watched()).unwrap().len()..];
        let flags = [
            libc::MAP_PRIVATE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            libc::MAP_PRIVATE | libc::MAP_DENYWRITE,
            libc::CLONE_THREAD | libc::CLONE_VM,
            libc::SIGCHLD,
        ];
        let nrs = (0..480).chain([X32_BIT as u32, X32_BIT as u32 + 59, 0xffff_ffff]);
        let mut caught = 0;
        for nr in nrs {
            for arch in [AUDIT_ARCH_X86_64, 0x4000_0003] {
                for ip in [GATE_RET, GATE_VFORK_RET, 0x7f12_3456_789a] {
                    for f in flags {
                        for fd in [3u64, u64::MAX] {
                            let args = [f as u64, 0, 0, f as u64, fd, 0];
                            let r = run(&net, nr, arch, ip, args);
                            assert_eq!(r, run(without, nr, arch, ip, args), "call {nr}");
                            caught += usize::from(r == libc::SECCOMP_RET_USER_NOTIF);
                        }
                    }
                }
            }
        }
        assert!(caught > 0);
    }

    #[test]
    fn the_probe_tells_the_net() {
        let net = Filter::notify().unwrap().prog;
        let clone3 = libc::SYS_clone3 as u32;
        let probe = [0, NET_PROBE as u64, 0, 0, 0, 0];
        let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
        let ip = 0x7f12_3456_789a;
        assert_eq!(
            run(&net, clone3, AUDIT_ARCH_X86_64, ip, probe),
            errno(NET_PROBE_ERRNO)
        );
        let other = [0, 88, 0, 0, 0, 0];
        assert_eq!(
            run(&net, clone3, AUDIT_ARCH_X86_64, ip, other),
            errno(libc::ENOSYS)
        );
        // From the gate, the probe reaches the kernel like any call.
        assert_eq!(
            run(&net, clone3, AUDIT_ARCH_X86_64, GATE_RET, probe),
            libc::SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn uncaught_calls_cost_no_bpf() {
        let net = Filter::notify().unwrap().prog;
        let watched = watched();
        for nr in 0..480u32 {
            assert_eq!(const_allow(&net, nr), !watched.contains(&nr), "call {nr}");
        }
        assert!(const_allow(&net, libc::SYS_futex as u32));
        assert!(!const_allow(&net, libc::SYS_openat as u32));
        // The tracer's filter was cacheable already.
        let trace = Filter::trace().unwrap().prog;
        assert!(const_allow(&trace, libc::SYS_futex as u32));
        assert!(!const_allow(&trace, libc::SYS_openat as u32));
    }

    #[test]
    fn builds() {
        let f = Filter::trace().unwrap();
        assert!(f.len() > caught().len());
        assert!(caught().contains(&libc::SYS_openat));
        assert!(!caught().contains(&libc::SYS_mmap));
        let n = Filter::notify().unwrap();
        // The prologue's 18 instructions and the `mmap` rule.
        assert!(n.len() > f.len() + 18);
        // The net's prologue leaves the accumulator with `clone`'s flags:
        // seccompiler's program must load what it tests (first the
        // architecture).
        let b = body(true).unwrap();
        assert_eq!((b[0].code, b[0].k), (LD_W_ABS as u16, 4));
        assert!(n
            .prog
            .iter()
            .any(|i| i.code == RET_K as u16 && i.k == libc::SECCOMP_RET_USER_NOTIF));
        assert!(!n
            .prog
            .iter()
            .any(|i| i.code == RET_K as u16 && i.k == libc::SECCOMP_RET_TRACE));
    }
}
