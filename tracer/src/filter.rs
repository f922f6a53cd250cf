//! The seccomp filter of traced programs: the shim's
//! [`shim::seccomp::Filter::trace`] (`SECCOMP_RET_TRACE` for every
//! redirected call and `tkill`/`tgkill`; every other call runs at full
//! speed without a stop).

pub use shim::seccomp::{caught as traced, Filter, THREAD_SIGNALS as TRACER_ONLY, X32_BIT};
