//! Typed DVK errors with stable numeric codes.
//!
//! The numbers follow the seed prototype where it fixed them (POSIX-like
//! codes `-1..-40`, `EDVSTIMEDOUT` = -61, IPC errors `-101..-110`,
//! `EDVSNOTBIND` = -310, `EDVSMIGRATE` = -332, `EDVSALIGN` = -347,
//! replication errors `-401/-402`), so that anyone who knows the
//! prototype can read them. Codes travel between processes as `i32`
//! (`DvkError::code` / `DvkError::from_code`); a code this library does
//! not know becomes `DvkError::Unknown` instead of a panic.

use serde::{Deserialize, Serialize};

macro_rules! dvk_errors {
    ($( $(#[$doc:meta])* $variant:ident = $code:expr, $name:literal, $text:literal; )*) => {
        /// An error of the DVK API. Every variant has a stable code (see
        /// [`DvkError::code`]) and a symbolic name such as `EDVSTIMEDOUT`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
        pub enum DvkError {
            $( $(#[$doc])* #[error("{} ({}): {}", $name, $code, $text)] $variant, )*
            /// A code that this version of the library does not know.
            #[error("EDVS? ({0}): unknown DVK error code")]
            Unknown(i32),
        }

        impl DvkError {
            /// The stable numeric code (always negative).
            pub fn code(self) -> i32 {
                match self {
                    $( DvkError::$variant => $code, )*
                    DvkError::Unknown(c) => c,
                }
            }

            /// Decodes a numeric code; unknown codes map to [`DvkError::Unknown`].
            pub fn from_code(code: i32) -> DvkError {
                match code {
                    $( $code => DvkError::$variant, )*
                    other => DvkError::Unknown(other),
                }
            }

            /// The symbolic name, e.g. `"EDVSTIMEDOUT"`.
            pub fn name(self) -> &'static str {
                match self {
                    $( DvkError::$variant => $name, )*
                    DvkError::Unknown(_) => "EDVS?",
                }
            }

            /// Every known error, for documentation and tests.
            pub fn all() -> &'static [DvkError] {
                &[ $( DvkError::$variant, )* ]
            }
        }
    };
}

dvk_errors! {
    /// Operation not permitted (the caller lacks the privilege).
    Perm = -1, "EDVSPERM", "operation not permitted";
    /// No such entry.
    NoEnt = -2, "EDVSNOENT", "no such entry";
    /// No such process.
    Srch = -3, "EDVSSRCH", "no such process";
    /// Interrupted call.
    Intr = -4, "EDVSINTR", "interrupted call";
    /// Input/output error.
    Io = -5, "EDVSIO", "input/output error";
    /// Argument list or size too large (e.g. a copy above max_copylen).
    TooBig = -7, "EDVS2BIG", "size too large";
    /// Resource temporarily unavailable.
    Again = -11, "EDVSAGAIN", "resource temporarily unavailable";
    /// Out of memory.
    NoMem = -12, "EDVSNOMEM", "out of memory";
    /// Permission denied.
    Acces = -13, "EDVSACCES", "permission denied";
    /// Bad address in a copy.
    Fault = -14, "EDVSFAULT", "bad address";
    /// Resource busy (e.g. slot already bound).
    Busy = -16, "EDVSBUSY", "resource busy";
    /// Already exists.
    Exist = -17, "EDVSEXIST", "already exists";
    /// Invalid argument.
    Inval = -22, "EDVSINVAL", "invalid argument";
    /// No space left in a table.
    NoSpc = -28, "EDVSNOSPC", "no free slot";
    /// Function not implemented.
    NoSys = -38, "EDVSNOSYS", "function not implemented";
    /// The timed variant of a call expired.
    TimedOut = -61, "EDVSTIMEDOUT", "timed out";
    /// The call would deadlock (send to a process that is sending to us).
    Locked = -101, "EDVSLOCKED", "the call would deadlock";
    /// Bad IPC call number.
    BadCall = -102, "EDVSBADCALL", "bad IPC call";
    /// Bad source or destination endpoint.
    BadSrcDst = -103, "EDVSBADSRCDST", "bad source or destination endpoint";
    /// The privilege record denies this call.
    CallDenied = -104, "EDVSCALLDENIED", "call denied by privileges";
    /// Source or destination is dead.
    DeadSrcDst = -105, "EDVSDEADSRCDST", "source or destination is dead";
    /// The peer is not in the state the call needs (e.g. reply to a process not waiting).
    NotReady = -106, "EDVSNOTREADY", "peer is not ready";
    /// Malformed request.
    BadRequest = -107, "EDVSBADREQUEST", "malformed request";
    /// The source died while we were waiting for it.
    SrcDied = -108, "EDVSSRCDIED", "source died";
    /// The destination died while we were waiting for it.
    DstDied = -109, "EDVSDSTDIED", "destination died";
    /// Trap denied.
    TrapDenied = -110, "EDVSTRAPDENIED", "trap denied";
    /// Generic DVS error base (never returned by itself).
    ErrCode = -300, "EDVSERRCODE", "generic DVS error";
    /// Node id out of range or unknown.
    BadNodeId = -301, "EDVSBADNODEID", "bad node id";
    /// DC id out of range.
    BadDcId = -302, "EDVSBADDCID", "bad DC id";
    /// The DC does not exist or is not running.
    DcNotRun = -303, "EDVSDCNOTRUN", "DC is not running";
    /// The DC already exists.
    DcExist = -304, "EDVSDCEXIST", "DC already exists";
    /// The DVS is not initialised on this node.
    DvsNotRun = -305, "EDVSDVSNOTRUN", "DVS is not initialised";
    /// The DVS is already initialised on this node.
    DvsRunning = -306, "EDVSDVSRUNNING", "DVS is already initialised";
    /// Endpoint out of range.
    BadEndpoint = -307, "EDVSENDPOINT", "endpoint out of range";
    /// Bad process slot number.
    BadProc = -308, "EDVSBADPROC", "bad process slot";
    /// Bad host PID.
    BadPid = -309, "EDVSBADPID", "bad host pid";
    /// Endpoint (or caller) is not bound.
    NotBind = -310, "EDVSNOTBIND", "endpoint is not bound";
    /// The host task is already bound to an endpoint.
    ProcBound = -311, "EDVSPROCBOUND", "host task is already bound";
    /// The slot is bound to another endpoint.
    SlotUsed = -312, "EDVSSLOTUSED", "slot is in use";
    /// Bad parameter value.
    BadValue = -313, "EDVSBADVALUE", "bad parameter value";
    /// No proxy serves that node.
    NoProxy = -314, "EDVSNOPROXY", "no proxy for the node";
    /// The node is not part of the DC.
    NoDcNode = -315, "EDVSNODCNODE", "node is not part of the DC";
    /// The daemon could not be reached or closed the connection.
    NoDaemon = -316, "EDVSNODAEMON", "node daemon not reachable";
    /// Protocol mismatch between client and daemon.
    Protocol = -317, "EDVSPROTOCOL", "control protocol error";
    /// No message available (non-blocking receive).
    NoMsg = -321, "EDVSNOMSG", "no message";
    /// The endpoint is migrating; retry later.
    Migrate = -332, "EDVSMIGRATE", "endpoint is migrating";
    /// The caller has no privileges for this call.
    Privileges = -340, "EDVSPRIVILEGES", "caller is not privileged";
    /// Misaligned buffer.
    Align = -347, "EDVSALIGN", "misaligned buffer";
    /// The endpoint is the primary of a replicated group.
    Primary = -401, "EDVSPRIMARY", "endpoint is primary";
    /// No replica available.
    NoReplica = -402, "EDVSNOREPLICA", "no replica";
}

/// Result type of the DVK API.
pub type Result<T> = std::result::Result<T, DvkError>;

impl DvkError {
    /// Maps a host `errno` from a failing system call to the closest DVK error.
    pub fn from_errno(e: nix::errno::Errno) -> DvkError {
        use nix::errno::Errno;
        match e {
            Errno::EPERM => DvkError::Perm,
            Errno::ENOENT => DvkError::NoEnt,
            Errno::ESRCH => DvkError::Srch,
            Errno::EINTR => DvkError::Intr,
            Errno::EAGAIN => DvkError::Again,
            Errno::ENOMEM => DvkError::NoMem,
            Errno::EACCES => DvkError::Acces,
            Errno::EFAULT => DvkError::Fault,
            Errno::EINVAL => DvkError::Inval,
            Errno::ETIMEDOUT => DvkError::TimedOut,
            Errno::ENOSYS => DvkError::NoSys,
            _ => DvkError::Io,
        }
    }
}

impl From<nix::errno::Errno> for DvkError {
    fn from(e: nix::errno::Errno) -> Self {
        DvkError::from_errno(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &e in DvkError::all() {
            assert!(e.code() < 0, "{e} must be negative");
            assert!(seen.insert(e.code()), "duplicate code {}", e.code());
            assert_eq!(DvkError::from_code(e.code()), e);
        }
        assert_eq!(DvkError::from_code(-9999), DvkError::Unknown(-9999));
    }

    #[test]
    fn prototype_numbers_are_kept() {
        assert_eq!(DvkError::TimedOut.code(), -61);
        assert_eq!(DvkError::NotBind.code(), -310);
        assert_eq!(DvkError::NoMsg.code(), -321);
        assert_eq!(DvkError::Migrate.code(), -332);
        assert_eq!(DvkError::Align.code(), -347);
        assert_eq!(DvkError::SrcDied.code(), -108);
        assert_eq!(DvkError::DstDied.code(), -109);
    }

    #[test]
    fn display_names_the_error() {
        let s = DvkError::TimedOut.to_string();
        assert!(s.starts_with("EDVSTIMEDOUT (-61)"), "{s}");
    }
}
