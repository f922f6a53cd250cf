//! `dvs-exec` against native Linux: the same command, run natively and
//! inside a DC, must print the same output and end with the same status.
//! Each run starts its own embedded single-node DVS.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn dvs_exec() -> &'static str {
    env!("CARGO_BIN_EXE_dvs-exec")
}

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

fn finish(o: Output) -> Run {
    use std::os::unix::process::ExitStatusExt;
    Run {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o
            .status
            .code()
            .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
    }
}

fn run(dc: bool, cwd: &Path, args: &[&str], stdin: &str) -> Run {
    let mut cmd = if dc {
        let mut c = Command::new(dvs_exec());
        c.arg("--").args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    cmd.current_dir(cwd)
        .env_remove("DVS_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut i = child.stdin.take().expect("stdin");
        let _ = i.write_all(stdin.as_bytes());
    }
    finish(child.wait_with_output().expect("wait"))
}

/// Runs `args` natively and in a DC and checks that stdout and the exit
/// status agree; returns the DC run.
fn same(cwd: &Path, args: &[&str], stdin: &str) -> Run {
    let n = run(false, cwd, args, stdin);
    let d = run(true, cwd, args, stdin);
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

fn scratch() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("fruit"), "pear\napple\nfig\nbanana\napple\n").unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    std::fs::write(d.path().join("sub/a"), "A\n").unwrap();
    std::fs::write(d.path().join("sub/b"), "BB\n").unwrap();
    d
}

/// Compiles `examples/NAME.c` into `dir`.
fn example(name: &str, dir: &Path) -> PathBuf {
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

#[test]
fn coreutils_match_native() {
    let d = scratch();
    let p = d.path();
    same(p, &["echo", "hello", "world"], "");
    same(p, &["cat", "fruit"], "");
    same(p, &["sort", "fruit"], "");
    same(p, &["wc", "fruit"], "");
    same(p, &["ls", "-la", "sub"], "");
    same(p, &["find", ".", "-name", "a"], "");
    same(p, &["cat"], "from stdin\n");
    same(p, &["sort", "-u"], "b\na\nb\n");
}

#[test]
fn cp_r_copies_a_tree() {
    let d = scratch();
    let r = same(d.path(), &["cp", "-r", "sub", "copy"], "");
    assert_eq!(r.code, 0);
    assert_eq!(
        std::fs::read_to_string(d.path().join("copy/b")).unwrap(),
        "BB\n"
    );
}

#[test]
fn exit_statuses() {
    let d = scratch();
    assert_eq!(same(d.path(), &["sh", "-c", "exit 3"], "").code, 3);
    assert_eq!(same(d.path(), &["false"], "").code, 1);
    assert_eq!(same(d.path(), &["sh", "-c", "kill -9 $$"], "").code, 137);
    let r = run(true, d.path(), &["no-such-program-anywhere"], "");
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(r.stderr.contains("command not found"), "{}", r.stderr);
    let r = run(true, d.path(), &["./fruit"], "");
    assert_eq!(r.code, 126, "{}", r.stderr);
}

#[test]
fn dc_pids() {
    let d = scratch();
    let r = run(true, d.path(), &["sh", "-c", "echo $$ $PPID"], "");
    assert_eq!(r.stdout, "2 1\n", "{}", r.stderr);
    // A child sees its parent's DC PID.
    same(
        d.path(),
        &["sh", "-c", "test $(sh -c 'echo $PPID') = $$ && echo ok"],
        "",
    );
}

#[test]
fn shell_scripts_match_native() {
    let d = scratch();
    let p = d.path();
    same(
        p,
        &["sh", "-c", "sort fruit | uniq -c | sort -rn | head -2"],
        "",
    );
    same(p, &["sh", "-c", "x=$(wc -l < fruit); echo lines=$x"], "");
    same(
        p,
        &["sh", "-c", "(cd sub && cat a b) > out; cat out; rm out"],
        "",
    );
    same(
        p,
        &["sh", "-c", "sleep 0.1 & sleep 0.05 & wait; echo done"],
        "",
    );
    same(p, &["sh", "-c", "trap 'echo trapped' EXIT; echo body"], "");
    same(
        p,
        &["sh", "-c", "for i in 1 2 3; do echo $i; done | tac"],
        "",
    );
    same(p, &["sh", "-c", "echo err >&2; echo out; exit 4"], "");
}

#[test]
fn c_examples_match_native() {
    let d = scratch();
    let p = d.path();
    for name in ["forktree", "waitstatus", "pipeline", "pgkill"] {
        let exe = example(name, p);
        same(p, &[exe.to_str().unwrap()], "");
    }
    let exe = example("fileerrno", p);
    std::fs::create_dir(p.join("n")).unwrap();
    std::fs::create_dir(p.join("c")).unwrap();
    let n = run(false, p, &[exe.to_str().unwrap(), "n"], "");
    let c = run(true, p, &[exe.to_str().unwrap(), "c"], "");
    assert_eq!(c.stdout, n.stdout, "DC stderr:\n{}", c.stderr);
    assert_eq!(c.code, n.code);
}

#[test]
fn python_file_io_and_processes() {
    let d = scratch();
    let script = r#"
import os, sys
with open("py.txt", "w") as f:
    f.write("line\n" * 3)
print(open("py.txt").read().count("line"))
pid = os.fork()
if pid == 0:
    os._exit(7)
_, st = os.waitpid(pid, 0)
print("child", os.WEXITSTATUS(st))
r, w = os.pipe()
if os.fork() == 0:
    os.close(r); os.write(w, b"via pipe"); os._exit(0)
os.close(w)
print(os.read(r, 100).decode())
os.wait()
print(sorted(os.listdir("sub")))
os.unlink("py.txt")
"#;
    same(d.path(), &["python3", "-c", script], "");
}
