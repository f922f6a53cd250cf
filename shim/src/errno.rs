//! Errno helpers.

use dvk::DvkError;

/// The errno a failed copy gives.
pub fn of_copy(e: DvkError) -> i32 {
    match e {
        DvkError::Fault => libc::EFAULT,
        DvkError::Srch => libc::ESRCH,
        _ => libc::EFAULT,
    }
}

/// The errno of a failed IPC call to a server: the server is gone or the
/// DC ended.
pub fn of_ipc(e: DvkError) -> i32 {
    match e {
        DvkError::DcNotRun | DvkError::NotBind | DvkError::DstDied | DvkError::SrcDied => {
            libc::ENOSYS
        }
        DvkError::TimedOut => libc::ETIMEDOUT,
        _ => libc::EIO,
    }
}
