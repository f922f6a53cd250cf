//! Finding the program to run and the preload library.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The program cannot be run: not found (127) or not executable (126).
#[derive(Debug)]
pub enum NotRunnable {
    /// No such program.
    NotFound(String),
    /// Exists but cannot be executed.
    NotExecutable(String),
}

impl NotRunnable {
    /// The shell-style exit status.
    pub fn code(&self) -> i32 {
        match self {
            NotRunnable::NotFound(_) => 127,
            NotRunnable::NotExecutable(_) => 126,
        }
    }
}

impl std::fmt::Display for NotRunnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRunnable::NotFound(p) => write!(f, "{p}: command not found"),
            NotRunnable::NotExecutable(p) => {
                write!(f, "{p}: permission denied (not an executable file)")
            }
        }
    }
}

impl std::error::Error for NotRunnable {}

fn executable(p: &Path) -> Option<bool> {
    let m = std::fs::metadata(p).ok()?;
    Some(m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The host path of `prog` (a DC path when it contains `/`, else searched
/// in `$PATH`), inside `root`.
pub fn program(prog: &std::ffi::OsStr, root: &Path) -> Result<PathBuf, NotRunnable> {
    let name = prog.to_string_lossy().into_owned();
    let in_root = |p: &Path| -> PathBuf {
        if root == Path::new("/") {
            p.to_path_buf()
        } else {
            root.join(p.strip_prefix("/").unwrap_or(p))
        }
    };
    if name.contains('/') {
        let p = in_root(Path::new(prog));
        return match executable(&p) {
            Some(true) => Ok(p),
            Some(false) => Err(NotRunnable::NotExecutable(name)),
            None => Err(NotRunnable::NotFound(name)),
        };
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut denied = false;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = in_root(&Path::new(dir).join(prog));
        match executable(&p) {
            Some(true) => return Ok(p),
            Some(false) => denied = true,
            None => {}
        }
    }
    Err(if denied {
        NotRunnable::NotExecutable(name)
    } else {
        NotRunnable::NotFound(name)
    })
}

/// The preload library: `$DVS_PRELOAD`, else `libdvs_preload.so` next to
/// this executable (where cargo builds it).
pub fn preload() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("DVS_PRELOAD").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    for cand in [
        dir.join("libdvs_preload.so"),
        dir.join("../libdvs_preload.so"),
    ] {
        if cand.exists() {
            return Ok(cand.canonicalize().unwrap_or(cand));
        }
    }
    anyhow::bail!(
        "the dvs preload library (libdvs_preload.so) is not next to {}; \
         build the whole workspace (`cargo build --release --workspace`) or set DVS_PRELOAD",
        exe.display()
    )
}
