//! Static binaries under `dvs-exec`: they run under the tracer (ptrace +
//! seccomp), and must behave as natively while getting DC semantics (DC
//! PIDs, files through FS inside `--root`, signals only inside the DC).
//! Needs Debian's `busybox-static` (`/bin/busybox`) and static glibc
//! (`libc6-dev`, for `cc -static`).

mod common;
use common::{dvs_exec_cmd, run_cmd, Guard, Run, BUSYBOX};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the static busybox is installed (`apt-get install busybox-static`).
fn busybox() -> bool {
    common::static_busybox()
}

fn native(cwd: &Path, args: &[&str]) -> Run {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    run_cmd(c, cwd)
}

fn in_dc(cwd: &Path, root: Option<&Path>, args: &[&str]) -> Run {
    let mut c = dvs_exec_cmd();
    if let Some(r) = root {
        c.arg("--root").arg(r);
    }
    c.arg("--").args(args);
    run_cmd(c, cwd)
}

/// Same stdout and exit status natively and in a DC; returns the DC run.
fn same(cwd: &Path, args: &[&str]) -> Run {
    let n = native(cwd, args);
    let d = in_dc(cwd, None, args);
    assert_eq!(
        d.stdout, n.stdout,
        "stdout differs for {args:?}\nDC stderr:\n{}",
        d.stderr
    );
    assert_eq!(
        d.code, n.code,
        "exit status differs for {args:?}\nDC stderr:\n{}",
        d.stderr
    );
    d
}

/// Compiles `examples/NAME.c` statically into `dir`.
fn static_example(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.c"));
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(["-static", "-O1", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(
        st.success(),
        "cannot compile {} statically (static glibc: apt-get install libc6-dev)",
        src.display()
    );
    out
}

fn scratch() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("fruit"), "pear\napple\nfig\nbanana\napple\n").unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    std::fs::write(d.path().join("sub/a"), "A\n").unwrap();
    std::fs::write(d.path().join("sub/b"), "BB\n").unwrap();
    d
}

const SCRIPT: &str = r#"
echo start
sort fruit | uniq -c | sort -rn | head -2
cat fruit | wc -l
(cd sub && ls; echo in-sub) | sed 's/^/> /'
find . -type f | sort
find . -name '*.txt' -o -name a | sort
awk '{n += length($0)} END {print n, NR}' fruit
grep -c apple fruit
x=$(echo hi | tr a-z A-Z); echo "$x"
false || echo failed-ok
( exit 7 ); echo "subshell=$?"
sh -c 'exit 9'; echo "child=$?"
sh -c 'kill -9 $$'; echo "killed=$?"
for i in 1 2 3; do echo "n$i"; done | sed -n '2p'
echo tmp > t.txt && cat t.txt && rm t.txt
cat /nonexistent/file 2>/dev/null; echo "cat=$?"
seq 1 200 | awk '{s += $1} END {print s}'
echo a b c | { read p q r; echo "$r $q $p"; }
exit 4
"#;

#[test]
fn busybox_script_matches_native() {
    if !busybox() {
        return;
    }
    let d = scratch();
    std::fs::write(d.path().join("s.sh"), SCRIPT).unwrap();
    let r = same(d.path(), &[BUSYBOX, "sh", "s.sh"]);
    assert_eq!(r.code, 4);
    assert!(r.stdout.contains("subshell=7"), "{}", r.stdout);
}

/// A script whose `#!` interpreter is the static busybox is traced as
/// busybox is: started by dvs-exec itself, and exec'd by a dynamic
/// program inside the DC.
#[test]
fn static_interpreter_scripts_match_native() {
    if !busybox() {
        return;
    }
    let d = scratch();
    let script = d.path().join("s.sh");
    std::fs::write(&script, format!("#!{BUSYBOX} sh\n{SCRIPT}")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = same(d.path(), &["./s.sh"]);
    assert_eq!(r.code, 4);
    assert!(r.stdout.contains("subshell=7"), "{}", r.stdout);
    let r = same(d.path(), &["/bin/sh", "-c", "./s.sh; echo \"script=$?\""]);
    assert!(r.stdout.contains("script=4"), "{}", r.stdout);
}

#[test]
fn busybox_sees_dc_pids_and_exit_statuses() {
    if !busybox() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let r = in_dc(
        d.path(),
        None,
        &[BUSYBOX, "sh", "-c", "echo $$ $PPID; exit 3"],
    );
    assert_eq!(r.stdout, "2 1\n", "stderr: {}", r.stderr);
    assert_eq!(r.code, 3);
    let r = in_dc(d.path(), None, &[BUSYBOX, "sh", "-c", "kill -TERM $$"]);
    assert_eq!(r.code, 128 + libc::SIGTERM, "stderr: {}", r.stderr);
    // A child's PID, as its parent and itself see it.
    let r = in_dc(
        d.path(),
        None,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "sh -c 'echo $$ $PPID' & wait $!; echo $!",
        ],
    );
    assert_eq!(r.stdout, "3 2\n3\n", "stderr: {}", r.stderr);
    // Group-stop and continue of a child; the parent's wait, blocked in PM
    // while SIGCHLD (caught) arrives, still collects it.
    for _ in 0..3 {
        let r = in_dc(
            d.path(),
            None,
            &[
                BUSYBOX,
                "sh",
                "-c",
                "sleep 0.3 & kill -STOP $!; sleep 0.2; kill -CONT $!; wait $!; echo waited=$?",
            ],
        );
        assert_eq!(r.stdout, "waited=0\n", "stderr: {}", r.stderr);
    }
}

#[test]
fn static_c_program_matches_native() {
    let d = tempfile::tempdir().unwrap();
    let prog = static_example("static_procs", d.path());
    let p = prog.to_str().unwrap();
    let r = same(d.path(), &[p]);
    assert_eq!(r.code, 5);
    assert!(r.stdout.contains("killed by 15"), "{}", r.stdout);
}

/// File calls and their errno values from a static program: those the
/// ptrace thread serves itself (`stat`, `readlink`, `lseek`...) and those
/// it hands to a worker give what they give natively.
#[test]
fn static_file_errors_match_native() {
    let d = tempfile::tempdir().unwrap();
    let prog = static_example("fileerrno", d.path());
    let p = prog.to_str().unwrap();
    std::fs::create_dir(d.path().join("n")).unwrap();
    std::fs::create_dir(d.path().join("c")).unwrap();
    let n = native(d.path(), &[p, "n"]);
    let c = in_dc(d.path(), None, &[p, "c"]);
    assert_eq!(c.stdout, n.stdout, "DC stderr:\n{}", c.stderr);
    assert_eq!(c.code, n.code);
    assert!(n.stdout.contains("stat(\"d/g\", &st)"), "{}", n.stdout);
}

/// Extended attributes and `splice` of a static program go through the
/// tracer to FS (data through the shim's bounce buffers).
#[test]
fn static_xattrs_and_splice_match_native() {
    let d = tempfile::tempdir().unwrap();
    let prog = static_example("xattrs", d.path());
    let r = same(d.path(), &[prog.to_str().unwrap()]);
    assert!(r.stdout.contains("out: .....345612"), "{}", r.stdout);
}

/// Threads of a static program run under the tracer; the C library's
/// `clone3` fails quietly there (it falls back to `clone`), and its
/// `/proc/self/fd` lists its DC descriptors.
#[test]
fn static_threads_run_without_complaints() {
    let d = tempfile::tempdir().unwrap();
    let prog = static_example("threadchurn", d.path());
    // It counts its descriptors in /proc/self/fd before and after.
    let r = same(d.path(), &[prog.to_str().unwrap()]);
    assert_eq!(r.stdout, "300 threads ran, descriptors flat\n");
    assert!(!r.stderr.contains("unsupported"), "stderr: {}", r.stderr);
}

#[test]
fn raw_syscalls_get_dc_semantics() {
    let d = tempfile::tempdir().unwrap();
    let prog = static_example("rawsys", d.path());
    std::fs::write(d.path().join("data"), "raw data\n").unwrap();
    let r = in_dc(d.path(), None, &[prog.to_str().unwrap(), "data"]);
    assert_eq!(
        r.stdout,
        "getpid=2\nread 9: raw data\nchild getppid=2 getpid-is-small=1\n\
         fork=3 kill=0 wait4 same=1 signaled=1 sig=15\n",
        "stderr: {}",
        r.stderr
    );
    assert_eq!(r.code, 0);
}

#[test]
fn static_programs_cannot_read_outside_root() {
    if !busybox() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    std::fs::create_dir(root.path().join("bin")).unwrap();
    std::fs::copy(BUSYBOX, root.path().join("bin/busybox")).unwrap();
    static_example("rawsys", &root.path().join("bin"));
    std::fs::write(root.path().join("inside"), "inside\n").unwrap();
    let s = secret.to_str().unwrap();
    let up = format!("../../../../../../..{s}");
    for args in [
        vec!["/bin/busybox", "cat", s],
        vec!["/bin/busybox", "cat", &up],
        vec!["/bin/busybox", "sh", "-c", "cd / && cat ..$0", s],
        vec!["/bin/rawsys", s],
    ] {
        let r = in_dc(root.path(), Some(root.path()), &args);
        assert!(
            !r.stdout.contains("host secret"),
            "{args:?} read a host file outside --root: {}",
            r.stdout
        );
    }
    let r = in_dc(root.path(), Some(root.path()), &["/bin/rawsys", "/inside"]);
    assert!(r.stdout.contains("read 7: inside"), "{r:?}");
    let r = in_dc(
        root.path(),
        Some(root.path()),
        &["/bin/busybox", "cat", "/inside"],
    );
    assert_eq!(r.stdout, "inside\n", "{r:?}");
}

#[test]
fn static_programs_cannot_signal_host_processes() {
    if !busybox() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let rawsys = static_example("rawsys", d.path());
    let sleeper = Guard(
        Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("start sleep"),
    );
    let host = sleeper.0.id().to_string();
    let r = in_dc(d.path(), None, &[BUSYBOX, "kill", "-9", &host]);
    assert_ne!(r.code, 0, "busybox kill of a host pid succeeded: {r:?}");
    let r = in_dc(
        d.path(),
        None,
        &[rawsys.to_str().unwrap(), "/dev/null", &host],
    );
    assert!(
        !r.stdout.contains("kill host pid: 0"),
        "raw kill of a host pid succeeded: {r:?}"
    );
    // The host process is alive (not a zombie).
    let stat = std::fs::read_to_string(format!("/proc/{host}/stat")).expect("sleep is gone");
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    assert!(!state.starts_with('Z'), "sleep was killed: {stat}");
    // ... and a static program cannot learn its own host pid.
    let r = in_dc(d.path(), None, &[BUSYBOX, "sh", "-c", "echo $$"]);
    assert_eq!(r.stdout, "2\n");
}

#[test]
fn static_program_execs_dynamic_one() {
    if !busybox() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // /bin/sh is a dynamic program: it runs with the preload, in the DC.
    let r = in_dc(
        d.path(),
        None,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "/bin/sh -c 'echo dyn $$ $PPID'; exec /bin/sh -c 'echo exec $$'",
        ],
    );
    assert_eq!(r.stdout, "dyn 3 2\nexec 2\n", "stderr: {}", r.stderr);
    assert_eq!(r.code, 0);
}

/// A static program that a dynamic one started (dash, then busybox sh)
/// runs other static programs, by a path through a symlink (`/bin` is
/// one on a merged-/usr system): "an exec that bypassed libc cannot be
/// served" before.
#[test]
fn static_program_from_a_dynamic_one_execs_static_ones() {
    if !busybox() {
        return;
    }
    let d = scratch();
    same(
        d.path(),
        &[
            "sh",
            "-c",
            "/bin/busybox sh -c '/bin/busybox cat fruit | /bin/busybox wc -l; \
             /bin/busybox sh -c \"echo \\$\\$ > /dev/null; exit 3\"; echo $?'",
        ],
    );
}
