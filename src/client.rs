//! Connecting to the node daemon, and turning DVK errors into readable
//! messages.

use dvk::{Dvk, DvkError};
use std::fmt::Display;
use std::path::{Path, PathBuf};

/// The control socket to use: `--socket` if given, else `$DVS_SOCKET` if set
/// and not empty, else [`dvk::DEFAULT_SOCKET`] (the semantics of
/// [`dvk::socket_path`]).
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    match flag {
        Some(p) => p,
        None => {
            let p = dvk::socket_path();
            if p.as_os_str().is_empty() {
                PathBuf::from(dvk::DEFAULT_SOCKET)
            } else {
                p
            }
        }
    }
}

/// Connects to the node daemon on `socket`, with the standard message when
/// none is running.
pub fn connect(socket: &Path) -> anyhow::Result<Dvk> {
    Dvk::connect(socket).map_err(|e| match e {
        DvkError::NoDaemon => anyhow::anyhow!(
            "no node daemon is running on {} (start one with `dvs node start`)",
            socket.display()
        ),
        e => anyhow::anyhow!(
            "cannot talk to the node daemon on {}: {}",
            socket.display(),
            explain(e)
        ),
    })
}

/// The text of a DVK error (`EDVSxxx (code): text`), with a hint for the
/// errors a command-line user can do something about.
pub fn explain(e: DvkError) -> String {
    let hint = match e {
        DvkError::Perm | DvkError::Privileges => {
            " (management needs the node daemon's user, root, or a privileged endpoint)"
        }
        DvkError::DvsNotRun => " (the node daemon was started without initialising the DVS)",
        DvkError::NoDaemon => " (the node daemon closed the connection; is it still running?)",
        DvkError::Protocol => " (are `dvs` and the node daemon the same version?)",
        _ => "",
    };
    format!("{e}{hint}")
}

/// Adds what was being done to a DVK error: `what: EDVSxxx (code): text`.
pub trait DvkContext<T> {
    /// Converts the error to an [`anyhow::Error`] prefixed with `what`.
    fn doing(self, what: impl Display) -> anyhow::Result<T>;
}

impl<T> DvkContext<T> for dvk::Result<T> {
    fn doing(self, what: impl Display) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{what}: {}", explain(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_socket_wins() {
        assert_eq!(socket_path(Some("/x/y".into())), PathBuf::from("/x/y"));
    }

    #[test]
    fn context_keeps_the_dvk_text() {
        let r: dvk::Result<()> = Err(DvkError::DcExist);
        let msg = r.doing("cannot create DC web").unwrap_err().to_string();
        assert_eq!(
            msg,
            "cannot create DC web: EDVSDCEXIST (-304): DC already exists"
        );
    }
}
