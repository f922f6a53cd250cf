//! The seccomp net of dynamic programs under `dvs-exec`: calls that
//! bypass the preload's hooks (glibc's `syscall(2)`, raw `syscall`
//! instructions) are served by the supervisor with DC semantics: DC PIDs,
//! files through FS inside `--root`, signals only inside the DC, and raw
//! forks refused instead of leaking host PIDs.

mod common;
use common::{dvs_exec, example, preload, run_cmd, Guard, Run, BUSYBOX};
use std::path::Path;
use std::process::Command;

fn in_dc(cwd: &Path, root: Option<&Path>, args: &[&str], net: bool) -> Run {
    let mut c = Command::new(dvs_exec());
    c.env("DVS_PRELOAD", preload()).env_remove("DVS_SOCKET");
    // The net is on by default.
    if net {
        c.env_remove("DVS_NET");
    } else {
        c.env("DVS_NET", "off");
    }
    if let Some(r) = root {
        c.arg("--root").arg(r);
    }
    c.arg("--").args(args);
    run_cmd(c, cwd)
}

/// A host process outside the DC, killed when dropped.
fn bystander() -> Guard {
    Guard(
        Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep"),
    )
}

fn alive(g: &mut Guard) -> bool {
    g.0.try_wait().expect("try_wait").is_none()
}

#[test]
fn syscall2_gets_dc_semantics() {
    let d = tempfile::tempdir().expect("tempdir");
    let prog = example("rawsys_dyn", d.path());
    let host = d.path().join("hostfile");
    std::fs::write(&host, "host secret\n").unwrap();
    let mut victim = bystander();
    let vpid = victim.0.id().to_string();
    let r = in_dc(
        d.path(),
        None,
        &[prog.to_str().unwrap(), host.to_str().unwrap(), &vpid],
        true,
    );
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    let want = "getpid=2\n\
                insn getpid=2\n\
                insn read 12: host secret\n\
                read 12: host secret\n\
                kill host pid: -1 errno 3\n\
                child getpid=3 getppid=2\n\
                fork=3 kill=0 wait4=3 signaled=1 sig=15\n\
                raw fork: -1 errno 38\n\
                raw clone: -1 errno 38\n\
                raw clone3: -1 errno 38\n";
    assert_eq!(r.stdout, want, "stderr:\n{}", r.stderr);
    // Refused forks say why, once each (a raw fork, a raw clone).
    assert_eq!(
        r.stderr.matches("forked without libc's fork").count(),
        2,
        "{}",
        r.stderr
    );
    assert!(
        alive(&mut victim),
        "a host process outside the DC was killed"
    );
}

#[test]
fn syscall2_cannot_leave_the_root() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("bin")).unwrap();
    example("rawsys_dyn", &root.path().join("bin"));
    std::fs::write(root.path().join("inside"), "inside the root\n").unwrap();
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let r = in_dc(
        root.path(),
        Some(root.path()),
        &["/bin/rawsys_dyn", secret.to_str().unwrap()],
        true,
    );
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    assert!(
        r.stdout.contains("\nopenat: errno 2\n") && r.stdout.contains("insn openat: errno 2\n"),
        "a host file outside --root was opened:\n{}",
        r.stdout
    );
    assert!(!r.stdout.contains("host secret"), "{}", r.stdout);
    let r = in_dc(
        root.path(),
        Some(root.path()),
        &["/bin/rawsys_dyn", "/inside"],
        true,
    );
    assert!(
        r.stdout.contains("\nread 16: inside the root\n")
            && r.stdout.contains("insn read 16: inside the root\n"),
        "{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
}

/// Without the net (`DVS_NET=off`) the program's own `syscall`
/// instructions and its raw forks reach the host: the tests above are
/// meaningful. glibc's `syscall(2)` is the preload's, net or not.
#[test]
fn without_the_net_they_escape() {
    let d = tempfile::tempdir().expect("tempdir");
    let prog = example("rawsys_dyn", d.path());
    let host = d.path().join("hostfile");
    std::fs::write(&host, "host secret\n").unwrap();
    let r = in_dc(
        d.path(),
        None,
        &[prog.to_str().unwrap(), host.to_str().unwrap()],
        false,
    );
    assert!(r.stdout.starts_with("getpid=2\n"), "{}", r.stdout);
    assert!(!r.stdout.contains("insn getpid=2\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("\nread 12: host secret\n"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("raw fork: -1"), "{}", r.stdout);
}

/// glibc opens, reads and maps files inside itself (NSS's
/// `/etc/nsswitch.conf` and `/etc/passwd`, locale files), through
/// functions no symbol interposition reaches. Under the net the preload
/// points them at itself (the first instruction of libc's
/// `__close_nocancel` becomes a jump), and they are served in-process:
/// they are the DC's files, inside `--root`. Outside the net, libc is
/// left as it is.
#[test]
fn glibc_internal_file_calls_see_the_dc_root() {
    let root = tempfile::tempdir().expect("tempdir");
    let bin = root.path().join("bin");
    let etc = root.path().join("etc");
    std::fs::create_dir(&bin).unwrap();
    std::fs::create_dir(&etc).unwrap();
    std::fs::copy("/usr/bin/id", bin.join("id")).expect("copy id");
    std::fs::write(etc.join("nsswitch.conf"), "passwd: files\ngroup: files\n").unwrap();
    std::fs::write(etc.join("passwd"), "dcadmin:x:0:0:in the DC:/:/bin/sh\n").unwrap();
    std::fs::write(etc.join("group"), "dcgroup:x:0:\n").unwrap();
    let r = in_dc(
        root.path(),
        Some(root.path()),
        &["/bin/id", "-un", "0"],
        true,
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "dcadmin\n"),
        "stderr:\n{}",
        r.stderr
    );
    let r = in_dc(
        root.path(),
        Some(root.path()),
        &["/bin/id", "-gn", "0"],
        true,
    );
    assert_eq!(r.stdout, "dcgroup\n", "stderr:\n{}", r.stderr);

    let first_byte = "import ctypes; l = ctypes.CDLL('libc.so.6'); \
                      a = ctypes.cast(l.__close_nocancel, ctypes.c_void_p).value; \
                      print(ctypes.string_at(a, 1).hex())";
    let d = tempfile::tempdir().expect("tempdir");
    let r = in_dc(d.path(), None, &["python3", "-c", first_byte], true);
    assert_eq!(r.stdout, "e9\n", "stderr:\n{}", r.stderr);
    let r = in_dc(d.path(), None, &["python3", "-c", first_byte], false);
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    assert_ne!(r.stdout, "e9\n", "patched outside the net");
}

/// glibc's `raise` names the process with its internal `getpid`, which
/// the net answers with the DC PID: `tgkill` must still reach the caller.
#[test]
fn raise_and_abort_still_work() {
    let d = tempfile::tempdir().expect("tempdir");
    let r = in_dc(
        d.path(),
        None,
        &[
            "/usr/bin/python3",
            "-c",
            "import os, signal\n\
             signal.signal(signal.SIGUSR1, lambda *a: print('handled'))\n\
             signal.raise_signal(signal.SIGUSR1)\n\
             print(os.getpid())\n\
             os.abort()",
        ],
        true,
    );
    assert_eq!(r.stdout, "handled\n2\n", "stderr:\n{}", r.stderr);
    assert_eq!(r.code, 128 + libc::SIGABRT, "stderr:\n{}", r.stderr);
}

/// glibc's `setuid`/`setgid` in a multithreaded program signal every
/// other thread and wait for each: under the net the signal comes from the
/// supervisor, and the preload must make glibc's handler accept it, or
/// the call never returns.
#[test]
fn setxid_with_threads_returns() {
    let d = tempfile::tempdir().expect("tempdir");
    let script = "import os, threading\n\
                  ev = threading.Event()\n\
                  ts = [threading.Thread(target=ev.wait, args=(30,)) for _ in range(3)]\n\
                  [t.start() for t in ts]\n\
                  os.setgid(os.getgid()); os.setuid(os.getuid())\n\
                  print('set', os.getuid() == os.geteuid())\n\
                  ev.set(); [t.join() for t in ts]\n\
                  print(os.getpid())";
    let r = in_dc(d.path(), None, &["/usr/bin/python3", "-c", script], true);
    assert_eq!(r.stdout, "set True\n2\n", "stderr:\n{}", r.stderr);
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
}

fn static_busybox() -> bool {
    common::static_busybox()
}

/// A dynamic `sh` runs a static busybox: its preload has the net's
/// supervisor trace the process before the exec, so the static image gets
/// DC PIDs, files through FS (inside `--root`), forks and pipes.
#[test]
fn dynamic_sh_runs_static_busybox() {
    if !static_busybox() {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("data"), "some data\n").unwrap();
    let script = "echo sh=$$; busybox sh -c 'echo bb=$$ ppid=$PPID; echo abc | busybox wc -c; \
                  (echo sub); busybox cat data; busybox sh -c \"exit 3\"; echo st=$?'; echo rc=$?";
    let native = run_cmd(
        {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        },
        d.path(),
    );
    let r = in_dc(d.path(), None, &["sh", "-c", script], true);
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("sh=") && !l.starts_with("bb="))
            .map(String::from)
            .collect()
    };
    assert_eq!(
        strip(&r.stdout),
        strip(&native.stdout),
        "stderr:\n{}",
        r.stderr
    );
    assert!(r.stdout.starts_with("sh=2\nbb=3 ppid=2\n"), "{}", r.stdout);

    // Inside --root: the static program reads the root's files only.
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("bin")).unwrap();
    std::fs::copy("/bin/sh", root.path().join("bin/sh")).unwrap();
    std::fs::copy(BUSYBOX, root.path().join("bin/busybox")).unwrap();
    std::fs::write(root.path().join("inside"), "inside the root\n").unwrap();
    let secret = d.path().join("data");
    let script = format!(
        "/bin/busybox sh -c 'echo $$ $PPID; read l < /inside; echo $l; read s < {}; echo s=$s'",
        secret.display()
    );
    let r = in_dc(
        root.path(),
        Some(root.path()),
        &["/bin/sh", "-c", &script],
        true,
    );
    assert_eq!(
        r.stdout, "3 2\ninside the root\ns=\n",
        "stderr:\n{}",
        r.stderr
    );
}

/// `ptrace` (a debugger's, strace's) names processes by host pid and
/// waits for stops that PM's `wait4` does not report: `strace prog` in a
/// DC hung. It now fails at once with `ENOSYS` and a one-line report.
#[test]
fn ptrace_fails_clearly() {
    let d = tempfile::tempdir().expect("tempdir");
    let script = "import ctypes, os\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  libc.ptrace.restype = ctypes.c_long\n\
                  r = libc.ptrace(0, 0, 0, 0)\n\
                  print(r, os.strerror(ctypes.get_errno()))";
    let r = in_dc(d.path(), None, &["python3", "-c", script], true);
    assert_eq!(r.stdout, "-1 Function not implemented\n", "{}", r.stderr);
    assert!(
        r.stderr.contains("dvs: unsupported syscall ptrace"),
        "{}",
        r.stderr
    );
}
