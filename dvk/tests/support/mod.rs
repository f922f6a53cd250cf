//! Test support: a real `dvkd` per test, and helper processes ("roles")
//! that are this test binary re-executed with `--role NAME ARGS...`.

#![allow(dead_code)]

use dvk::{DcParams, Dvk, DvsParams, Endpoint};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A node daemon for one test, killed and cleaned up on drop.
pub struct TestDaemon {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestDaemon {
    pub fn start() -> TestDaemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("dvkd.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_dvkd"))
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn dvkd");
        let d = TestDaemon {
            child,
            socket,
            _dir: dir,
        };
        let t0 = Instant::now();
        while Dvk::connect(&d.socket).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "dvkd did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        d
    }

    /// A new control connection (from the calling thread).
    pub fn dvk(&self) -> Dvk {
        Dvk::connect(&self.socket).expect("connect to dvkd")
    }

    /// Creates DC `id` named `name` with default parameters.
    pub fn dc(&self, id: i32, name: &str) -> DcParams {
        let p = DcParams::new(id, name, &DvsParams::default());
        self.dvk().dc_init(&p).expect("dc_init");
        p
    }

    /// Kills the daemon (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the daemon process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().map(|s| s.is_none()).unwrap_or(false)
    }

    /// Spawns a role process talking to this daemon.
    pub fn role(&self, name: &str, args: &[&str]) -> Role {
        Role::spawn(&self.socket, name, args)
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A helper process. Its stdout is a line protocol: the role prints
/// `READY ...` once set up, and its results; the test reads them.
pub struct Role {
    pub child: Child,
    out: BufReader<ChildStdout>,
}

impl Role {
    fn spawn(socket: &std::path::Path, name: &str, args: &[&str]) -> Role {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .arg("--role")
            .arg(name)
            .args(args)
            .env("DVS_SOCKET", socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn role");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Role { child, out }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Next stdout line (without newline); panics on EOF or after 20 s.
    pub fn line(&mut self) -> String {
        let pid = self.pid();
        let (tx, rx) = std::sync::mpsc::channel();
        // Watchdog: a hung role must not hang the test.
        std::thread::spawn(move || {
            if rx.recv_timeout(Duration::from_secs(20)).is_err() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        });
        let mut s = String::new();
        let n = self.out.read_line(&mut s).expect("read role output");
        let _ = tx.send(());
        assert!(n > 0, "role {pid} ended without output");
        s.trim_end().to_string()
    }

    /// Waits for a line starting with `prefix` and returns the rest.
    pub fn expect(&mut self, prefix: &str) -> String {
        let l = self.line();
        assert!(
            l.starts_with(prefix),
            "expected a line starting with {prefix:?}, got {l:?}"
        );
        l[prefix.len()..].trim().to_string()
    }

    /// Waits for the exit (20 s at most); returns the exit code, or
    /// 128+signal.
    pub fn wait(mut self) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                let mut rest = String::new();
                let _ = self.out.read_to_string(&mut rest);
                return st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("role {} did not exit", self.child.id());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses an endpoint given as a role argument.
pub fn ep(s: &str) -> Endpoint {
    Endpoint(s.parse().expect("endpoint number"))
}

/// Measures how long `f` takes.
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// Prints a role result line and flushes.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        println!($($t)*);
        let _ = std::io::stdout().flush();
    }};
}

/// Ends the whole test binary, and the daemons and roles it started, if it
/// is still running after `limit`: a deadlocked test must fail the run, not
/// hang it.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("test binary still running after {limit:?}: a test hangs; giving up");
        let me = std::process::id().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // Field 4 of /proc/PID/stat (after the parenthesised name) is the parent.
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1));
            if ppid == Some(me.as_str()) {
                if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        std::process::exit(101);
    });
}
