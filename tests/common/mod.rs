// Each test crate uses a different part of this module.
#![allow(dead_code)]

//! What every test of `dvs-exec` needs: the binary, and the preload
//! library that `cargo test --workspace` just built.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `dvs-exec` binary under test.
pub fn dvs_exec() -> &'static str {
    env!("CARGO_BIN_EXE_dvs-exec")
}

/// The preload library of this build: cargo leaves a test build's cdylib
/// in `deps/`, and `cargo build`'s next to the executables; the newer one
/// is this source's (a single test target does not rebuild `deps/`).
pub fn preload() -> PathBuf {
    let dir = Path::new(dvs_exec()).parent().expect("target directory");
    [
        dir.join("deps/libdvs_preload.so"),
        dir.join("libdvs_preload.so"),
    ]
    .into_iter()
    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
    .max()
    .map(|(_, p)| p)
    .expect("libdvs_preload.so is not built: run `cargo test --workspace`")
}

/// `dvs-exec` with the freshly built preload library, outside any node
/// named by the environment.
pub fn dvs_exec_cmd() -> Command {
    let mut c = Command::new(dvs_exec());
    c.env("DVS_PRELOAD", preload()).env_remove("DVS_SOCKET");
    c
}

/// Starts `cmd` with SIGINT and SIGQUIT at their defaults, as a terminal's
/// foreground job has them, whatever this test process inherited (a
/// background job of a non-interactive shell starts with them ignored, and
/// a program cannot catch a signal ignored at its start).
pub fn as_foreground_job(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) is async-signal-safe; nothing else runs between
    // fork and exec here.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        })
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a command printed, and how it ended (128+N for signal N).
#[derive(Debug)]
pub struct Run {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its exit status.
    pub code: i32,
}

/// Runs `cmd` in `cwd` with no input and a 60 s deadline (killed after).
pub fn run_cmd(mut cmd: Command, cwd: &Path) -> Run {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    cmd.current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut g = Guard(cmd.spawn().expect("spawn"));
    let mut out = g.0.stdout.take().expect("stdout");
    let mut err = g.0.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = g.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "{cmd:?} did not finish in time");
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
    }
}

/// The C examples that run the same natively and in a DC (and print
/// nothing that differs between runs).
pub const C_EXAMPLES: [&str; 30] = [
    "forktree",
    "execforms",
    "waitstatus",
    "pipeline",
    "pgkill",
    "spawn",
    "unixsock",
    "threadchurn",
    "threadself",
    "pidfd",
    "timerfd",
    "inotify",
    "sigwrites",
    "xattrs",
    "sigactions",
    "dnotify",
    "raise",
    "libcmaps",
    "freopen",
    "signalfd",
    "daemon",
    "forkpty",
    "vfork",
    "sigmaskwait",
    "sigjmp",
    "widestdio",
    "handlercalls",
    "heaptrim",
    "libcthreads",
    "syscallintr",
];

/// Compiles `examples/NAME.c` (dynamically linked) into `dir`.
pub fn example(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.c"));
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(["-O1", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cannot compile {}", src.display());
    out
}

/// Debian's static busybox (`apt-get install busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// Whether [`BUSYBOX`] is a static program (no `PT_INTERP`), as the
/// tracer tells them apart. (Its text mentions `ld-linux`, so a search
/// for that string took it for a dynamic one.)
pub fn static_busybox() -> bool {
    let ok = matches!(
        tracer::elf::kind(Path::new(BUSYBOX)),
        Ok(tracer::elf::Kind::Static)
    );
    if !ok {
        eprintln!("skipped: {BUSYBOX} is not a static busybox (apt-get install busybox-static)");
    }
    ok
}
