//! `dvs-exec` against native Linux: the same command, run natively and
//! inside a DC, must print the same output and end with the same status.
//! Each run starts its own embedded single-node DVS.

mod common;
use common::{dvs_exec, dvs_exec_cmd, example, preload, C_EXAMPLES};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

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
        let mut c = dvs_exec_cmd();
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
    // A run that hangs fails its test instead of the whole suite.
    let pid = child.id() as i32;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let hung = matches!(
            stopped.recv_timeout(RUN_TIMEOUT),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if hung {
            // SAFETY: signalling our own child, not yet reaped (the test
            // thread is still waiting for it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        hung
    });
    let out = child.wait_with_output().expect("wait");
    let _ = stop.send(());
    let hung = watchdog.join().unwrap_or(true);
    assert!(!hung, "{args:?} (dc: {dc}) still ran after {RUN_TIMEOUT:?}");
    finish(out)
}

/// How long one command of a test may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

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
    // The program's parent, init, leads its own group and session, as
    // Linux's init does (it was ESRCH: Python's os.getsid(os.getppid())).
    let py = "import os; print(os.getppid(), os.getpgid(1), os.getsid(os.getppid()))";
    let r = run(true, d.path(), &["/usr/bin/python3", "-c", py], "");
    assert_eq!(r.stdout, "1 1 1\n", "{}", r.stderr);
}

/// `/proc` lists the DC's processes by DC pid (as a pid namespace would),
/// and every process directory it lists can be read.
#[test]
fn proc_lists_dc_pids() {
    let d = scratch();
    let script = "sleep 2.5 & b=$!; \
        ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; \
        for p in /proc/[0-9]*; do cat $p/comm || echo unreadable $p; done | sort | tr '\\n' ' '; echo; \
        test -d /proc/$b && echo bg listed; test -d /proc/self && echo self; kill $b";
    let r = run(true, d.path(), &["sh", "-c", script], "");
    let lines: Vec<&str> = r.stdout.lines().collect();
    // init (dvs-exec), this shell, its sleep, and ls/grep/sort/tr of the
    // pipeline.
    assert!(
        lines.len() == 4,
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    let pids: Vec<i32> = lines[0]
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(&pids[..2], &[1, 2], "{}", lines[0]);
    assert!(
        pids.iter().all(|&p| p < 100),
        "host pids listed: {}",
        lines[0]
    );
    assert!(!lines[1].contains("unreadable"), "{}", lines[1]);
    assert!(
        lines[1].contains("dvs-exec") && lines[1].contains("sleep"),
        "{}",
        lines[1]
    );
    assert_eq!(&lines[2..], &["bg listed", "self"]);
}

/// `ps` and `pgrep` read `/proc/<pid>/stat`: they show DC pids, parents,
/// groups and sessions.
#[test]
fn ps_and_pgrep_show_dc_ids() {
    let d = scratch();
    let script = "sleep 2.5 & b=$!; ps -o pid=,ppid=,pgid=,sid=,comm=; \
        echo pgrep $(pgrep -x sleep) bg $b; \
        grep -E '^(Pid|PPid):' /proc/self/status | tr -s '\\t\\n' '  '; echo; kill $b";
    let r = run(true, d.path(), &["sh", "-c", script], "");
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = |comm: &str| rows.iter().find(|f| f.len() == 5 && f[4] == comm).cloned();
    assert_eq!(
        row("sh"),
        Some(vec!["2", "1", "2", "2", "sh"]),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(
        row("sleep"),
        Some(vec!["3", "2", "2", "2", "sleep"]),
        "{}",
        r.stdout
    );
    let ps = row("ps").expect("ps lists itself");
    assert_eq!(&ps[1..4], &["2", "2", "2"], "{}", r.stdout);
    assert!(r.stdout.contains("pgrep 3 bg 3\n"), "{}", r.stdout);
    // grep's own status: a child of the shell.
    assert!(r.stdout.contains("PPid: 2"), "{}", r.stdout);
}

/// GNU make with parallel jobs (`-j4`: its job server waits in `pselect`
/// with SIGCHLD let in) builds a small C program with the compiler, as
/// natively: the same commands run, the program prints the same, and a
/// failing rule fails the build the same way.
#[test]
fn parallel_make_builds_as_natively() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path();
    let mut main = String::from("#include <stdio.h>\n");
    for i in 1..=6 {
        std::fs::write(
            p.join(format!("f{i}.c")),
            format!("int f{i}(void){{return {i};}}\n"),
        )
        .unwrap();
        main += &format!("int f{i}(void);\n");
    }
    main += "int main(void){printf(\"%d\\n\", f1()+f2()+f3()+f4()+f5()+f6());return 0;}\n";
    std::fs::write(p.join("main.c"), main).unwrap();
    std::fs::write(
        p.join("Makefile"),
        "OBJS = main.o f1.o f2.o f3.o f4.o f5.o f6.o\n\
         app: $(OBJS)\n\t@$(CC) -o $@ $(OBJS)\n\
         %.o: %.c\n\t@$(CC) -O1 -c $< -o $@\n\
         broken:\n\t@false\n\
         clean:\n\t@rm -f app *.o\n",
    )
    .unwrap();
    for _ in 0..2 {
        let r = same(
            p,
            &["sh", "-c", "make -j4 -s app && ./app && make -s clean"],
            "",
        );
        assert_eq!(r.stdout, "21\n");
    }
    same(
        p,
        &[
            "sh",
            "-c",
            "make -j4 -s broken app; echo status $?; make -s clean",
        ],
        "",
    );
}

/// A `dvs-exec` killed with SIGKILL takes its embedded node, and with it
/// the DC's servers: the DC's processes that wait for a server (a shell
/// in `wait`, a reader of a pipe) end by SIGKILL too, instead of
/// retrying failed calls forever.
#[test]
fn processes_end_with_a_killed_dvs_exec() {
    let marker = format!("dvs-killed-{}", std::process::id());
    let script = format!(
        "/usr/bin/python3 -c 'import os; r, w = os.pipe(); os.read(r, 1)' {marker} & wait; echo {marker}"
    );
    let mut c = dvs_exec_cmd();
    c.args(["--", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("dvs-exec");
    // (pid, whether it is the program's python3, not dvs-exec or its
    // tracer, which carry the marker in their arguments too)
    let alive = |m: &str| {
        let mut v = Vec::new();
        for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'));
            if String::from_utf8_lossy(&cmd).contains(m) && !zombie {
                v.push((pid, cmd.starts_with(b"/usr/bin/python3")));
            }
        }
        v
    };
    let start = std::time::Instant::now();
    let program = |v: &[(u32, bool)]| v.iter().any(|&(_, py)| py);
    while !program(&alive(&marker)) && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Into its read.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = alive(&marker);
    child.kill().expect("kill dvs-exec");
    let _ = child.wait();
    let start = std::time::Instant::now();
    let mut left = alive(&marker);
    while !left.is_empty() && start.elapsed() < std::time::Duration::from_secs(8) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = alive(&marker);
    }
    for (p, _) in &left {
        // SAFETY: killing a leftover of this test.
        unsafe { libc::kill(*p as i32, libc::SIGKILL) };
    }
    assert!(
        program(&before),
        "the DC's processes did not start: {before:?}"
    );
    assert!(
        left.is_empty(),
        "DC processes outlived their dvs-exec: {left:?}"
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
    // A writer whose reader is gone dies of SIGPIPE (the launcher's own
    // runtime ignores SIGPIPE; its programs must not inherit that), and a
    // signal ignored before an exec stays ignored after it.
    same(
        p,
        &[
            "sh",
            "-c",
            "{ yes; echo \"yes $?\" > st; } | head -1; cat st; rm st",
        ],
        "",
    );
    same(
        p,
        &[
            "sh",
            "-c",
            "trap '' INT; sh -c 'kill -INT $$; echo survived'",
        ],
        "",
    );
    // /proc/self and /proc/thread-self name the program, not the server
    // that opens the path for it.
    same(
        p,
        &[
            "sh",
            "-c",
            "readlink /proc/self/exe; tr '\\0' ' ' < /proc/self/cmdline; echo; \
             head -1 /proc/self/status; grep -c . /proc/thread-self/stat",
        ],
        "",
    );
    // /proc/$pid names the DC process with that PID (a script that waits
    // for a job by watching its /proc directory), never the host process
    // that has the same number; a PID of no DC process has none.
    same(
        p,
        &[
            "sh",
            "-c",
            "sleep 1 & j=$!; sleep 0.3; [ -d /proc/$j ] && echo running;              read -r a name c < /proc/$j/stat; echo $name;              read -r a name c < /proc/$$/stat; echo $name;              wait $j; [ -d /proc/$j ] || echo reaped;              [ -e /proc/3999999 ] || echo none",
        ],
        "",
    );
    // A select timeout below a millisecond, or between two, is not cut
    // short (asyncio's select loop spun on such early returns).
    same(
        p,
        &[
            "python3",
            "-c",
            "import os, select, time; r, w = os.pipe()\n\
             for t in (0.0005, 0.0099):\n\
             \x20   t0 = time.monotonic(); select.select([r], [], [], t)\n\
             \x20   print(t, 'early' if time.monotonic() - t0 < t else 'ok')",
        ],
        "",
    );
    // Process substitution: programs stat /dev/fd/N before they open it
    // (diff said "Too many levels of symbolic links").
    same(
        p,
        &[
            "bash",
            "-c",
            "diff <(seq 3) <(seq 4); echo $?; wc -l <(seq 7); test -p /dev/stdin <<< x || echo file",
        ],
        "",
    );
    // A descriptor's link shows the program's file (it showed the host
    // descriptor of that number: the preload's socket to dvkd).
    same(
        p,
        &[
            "sh",
            "-c",
            "exec 3<fruit 4>out; readlink /proc/self/fd/3 /dev/fd/4; \
             ls -l /proc/self/fd/3 /proc/self/fd/4 | cut -c1-10; \
             stat -c %F /proc/self/fd/3; rm out",
        ],
        "",
    );
    // /proc/self/fd and /dev/fd list the program's DC descriptors.
    same(
        p,
        &[
            "python3",
            "-c",
            "import os; fd = os.open('.', os.O_RDONLY); \
             print([str(fd) in os.listdir(d) for d in ('/proc/self/fd', '/dev/fd')])",
        ],
        "",
    );
}

/// Named pipes: an open for writing waits for a reader and a reader's
/// first read waits for a writer, whichever comes first, as on Linux
/// (FS opens FIFOs without blocking itself).
#[test]
fn named_pipes_match_native() {
    let d = scratch();
    let p = d.path();
    for script in [
        // The reader comes first, the writer later.
        "rm -f f; mkfifo f; (sleep 0.2; echo late > f) & cat f; wait",
        // The writer comes first, the reader later.
        "rm -f f; mkfifo f; echo early > f & sleep 0.2; cat f; wait",
        // A writer that leaves without writing ends the reader's stream.
        "rm -f f; mkfifo f; (exec 3>f; sleep 0.1) & cat f; echo \"cat $?\"; wait",
        // Much more than a pipe holds.
        "rm -f f; mkfifo f; seq 1 50000 > f & wc -l < f; wait",
        // A non-blocking reader does not wait; read-write never waits.
        "rm -f f; mkfifo f; exec 3<>f; echo rw >&3; read x <&3; echo $x; \
         timeout 2 dd if=f iflag=nonblock status=none; echo \"dd $?\"",
    ] {
        same(p, &["sh", "-c", script], "");
    }
}

/// Descriptors above 2 that dvs-exec inherits are the program's, at the
/// same numbers (`dvs-exec prog 3<file`), and a pipe passed so ends for
/// its reader when the program closes it, not when dvs-exec ends.
#[test]
fn inherited_descriptors_reach_the_program() {
    let d = scratch();
    std::fs::write(d.path().join("in3"), "from three\n").expect("in3");
    let inner = "cat <&3; echo to four >&4; [ -e /dev/fd/5 ] && echo five; \
                 [ -e /dev/fd/6 ] || echo no six";
    let outer = |prefix: &str| {
        format!("exec 6>/dev/null; exec 6>&-; {prefix} sh -c '{inner}' 3<in3 4>out4 5</dev/null; cat out4")
    };
    let native = run(false, d.path(), &["sh", "-c", &outer("")], "");
    let prefix = format!("env DVS_PRELOAD={} {} --", preload().display(), dvs_exec());
    let dc = run(false, d.path(), &["sh", "-c", &outer(&prefix)], "");
    assert_eq!(native.stdout, "from three\nfive\nno six\nto four\n");
    assert_eq!(dc.stdout, native.stdout, "DC stderr:\n{}", dc.stderr);
    assert_eq!(dc.code, 0);
    // The reader's end of the stream: at once, although the program then
    // sleeps for 2 s.
    let eof = format!(
        "s=$(date +%s%N); \
         (exec 3>&1 >/dev/null; exec {} sh -c 'echo one >&3; exec 3>&-; sleep 2') \
         | (cat; echo $(( ($(date +%s%N) - s) / 1000000000 )))",
        prefix
    );
    let r = run(false, d.path(), &["sh", "-c", &eof], "");
    assert_eq!(r.stdout, "one\n0\n", "{}", r.stderr);
}

/// `waitid` with `WNOWAIT` reports a child's end and leaves it waitable
/// (it failed with `EINVAL`).
#[test]
fn waitid_wnowait_leaves_the_child_waitable() {
    same_python(
        "import os\n\
         pid = os.fork()\n\
         if pid == 0:\n\
         \x20   os._exit(5)\n\
         r = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)\n\
         print('peek', r.si_pid == pid, r.si_code == os.CLD_EXITED, r.si_status)\n\
         r = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT | os.WNOHANG)\n\
         print('again', r.si_pid == pid, r.si_status)\n\
         p, st = os.waitpid(pid, 0)\n\
         print('reaped', p == pid, os.WEXITSTATUS(st))\n\
         try:\n\
         \x20   os.waitpid(pid, 0)\n\
         except ChildProcessError:\n\
         \x20   print('gone')",
    );
}

/// Programs that read `/proc` from the working directory `/proc`
/// (Debian's `pidof` does `chdir("/proc")`, lists `.` and opens `N/stat`)
/// see the DC's pids, as with absolute `/proc/N` paths: `pidof` printed
/// host pids.
#[test]
fn proc_from_its_own_directory_shows_dc_pids() {
    let d = scratch();
    std::fs::copy("/bin/sleep", d.path().join("dvsnap")).expect("copy sleep");
    // The background child is `sh` until it has exec'd: wait for that.
    let script = "./dvsnap 5 & p=$!; \
                  for i in $(seq 500); do [ \"$(cut -d' ' -f2 /proc/$p/stat)\" = '(dvsnap)' ] && break; sleep 0.01; done; \
                  [ \"$(pidof dvsnap)\" = \"$p\" ] && echo pidof; \
                  d=$PWD; cd /proc && ls -d [0-9]* | grep -qx \"$p\" && echo listed; \
                  [ \"$(cut -d' ' -f1 $p/stat)\" = \"$p\" ] && cut -d' ' -f2 $p/stat; [ \"$(readlink $p/exe)\" = \"$d/dvsnap\" ] && echo exe; \
                  kill $p";
    let r = same(d.path(), &["sh", "-c", script], "");
    assert_eq!(r.stdout.lines().next(), Some("pidof"), "{}", r.stdout);
    assert!(r.stdout.contains("(dvsnap)\nexe\n"), "{}", r.stdout);
}

/// A program exec'd through a symlink has the name it was exec'd by, as
/// natively (`/proc/<pid>/comm`, what `ps` and `pgrep -x` match): the host
/// runs the file FS resolved, whose name differs (`python3` is
/// `python3.11`, `/bin/sh` is `dash`).
#[test]
fn programs_run_through_symlinks_keep_their_names() {
    let d = scratch();
    std::os::unix::fs::symlink("/bin/sleep", d.path().join("dvsnooze")).expect("symlink");
    let script = "./dvsnooze 5 & p=$!; \
        for i in $(seq 300); do [ \"$(cat /proc/$p/comm)\" = dvsnooze ] && break; sleep 0.01; done; \
        cat /proc/$p/comm; pgrep -x dvsnooze >/dev/null && echo pgrep; kill $p; \
        python3 -c 'print(open(\"/proc/self/comm\").read().strip())'; cat /proc/$$/comm";
    let r = same(d.path(), &["sh", "-c", script], "");
    assert_eq!(r.stdout, "dvsnooze\npgrep\npython3\nsh\n", "{}", r.stderr);
}

/// bash's `wait` with a trap: the trapped signal ends the `wait` (bash
/// leaves it with `longjmp` from its handler), the trap runs, and a second
/// `wait` gets the child's status, as natively. The call the jump left
/// used to keep the shell marked as inside the preload: the next `wait`
/// hung (`examples/sigjmp.c` is the same in C).
#[test]
fn bash_wait_is_ended_by_a_trapped_signal() {
    let d = scratch();
    let script = "trap 'echo trapped' USR1; \
        (sleep 0.2; kill -USR1 $$; sleep 0.2; exit 7) & p=$!; \
        wait $p; echo first $?; wait $p; echo second $?";
    let r = same(d.path(), &["bash", "-c", script], "");
    assert_eq!(r.stdout, "trapped\nfirst 138\nsecond 7\n", "{}", r.stderr);
}

/// The dynamic loader run as a program (what `ldd` does) is a dynamic
/// program: it loads the program it is given, and `ldd` lists the same
/// libraries as natively (the preload is not among them). It used to run
/// as a static program under the tracer, which cannot map DC files: `ldd`
/// said "not a dynamic executable".
#[test]
fn ldd_and_the_loader_run_as_natively() {
    let d = scratch();
    let script = "ldd /bin/true | sed 's/ (0x[0-9a-f]*)//'; \
        /lib64/ld-linux-x86-64.so.2 /bin/echo through the loader; \
        ldd fruit; echo $?";
    let r = same(d.path(), &["sh", "-c", script], "");
    assert!(r.stdout.contains("libc.so.6 => "), "{}", r.stdout);
    assert!(r.stdout.contains("through the loader\n"), "{}", r.stdout);
}

/// `fchmodat(AT_SYMLINK_NOFOLLOW)` on a symlink fails with `EOPNOTSUPP`,
/// as natively, and leaves the link's target alone: `tar` sets each
/// extracted member's mode that way, and the flag once got lost on the way
/// to FS, so a symlink's `rwxrwxrwx` went to its target.
#[test]
fn modes_of_symlinks_are_not_their_targets() {
    let d = scratch();
    let script = "mkdir t; echo x > t/z_target; chmod 640 t/z_target; ln -s z_target t/a_link; \
        tar cf t.tar t; rm -rf t; tar xf t.tar && echo extracted; stat -c %a t/z_target; \
        python3 -c 'import os\ntry:\n    os.chmod(\"t/a_link\", 0o777, follow_symlinks=False)\nexcept NotImplementedError:\n    print(\"refused\")'; \
        stat -c %a t/z_target";
    let r = same(d.path(), &["sh", "-c", script], "");
    assert_eq!(r.stdout, "extracted\n640\nrefused\n640\n", "{}", r.stderr);
}

/// A process's own `/proc` directory, named `self` or by its pid, as
/// natively: the magic links `exe`, `cwd` and `root` are followed (and
/// `lstat` sees the link), and `/proc/<pid>/fd` lists and reopens the
/// process's descriptors, a pipe's included. A regular file reopened
/// through its link (`/dev/stdin`, `/dev/fd/N`) has an offset of its own,
/// and `O_TRUNC` truncates it.
#[test]
fn own_proc_directory_links_match_native() {
    let r = same_python(
        r#"
import os, stat
pid = os.getpid()
fd = os.open("fruit", os.O_RDONLY)
for d in ("/proc/self", f"/proc/{pid}"):
    print(stat.S_ISREG(os.stat(d + "/exe").st_mode), stat.S_ISLNK(os.lstat(d + "/exe").st_mode))
    print(os.path.samefile(d + "/cwd", "."), os.path.exists(d + "/root/etc/hostname"))
    print(sorted(os.listdir(d + "/fd")) == sorted(os.listdir("/proc/self/fd")))
    print(open(f"{d}/fd/{fd}").read().split())
    r, w = os.pipe()
    os.write(w, b"piped")
    print(os.read(os.open(f"{d}/fd/{r}", os.O_RDONLY), 10))
"#,
    );
    assert_eq!(
        r.stdout.lines().filter(|l| *l == "True True").count(),
        4,
        "{}",
        r.stdout
    );
    let sh = same(
        scratch().path(),
        &[
            "sh",
            "-c",
            "stat -L -c %F /proc/self/exe; test -e /proc/$$/exe && echo exe; \
             cat /proc/self/root/$PWD/fruit | wc -l; readlink /proc/self/cwd | grep -c .; \
             { read a; cat /dev/stdin; } < fruit | wc -l; \
             exec 3<fruit; read a <&3; cat /dev/fd/3 | wc -l; \
             exec 4>out; echo one >&4; echo two > /proc/self/fd/4; cat out",
        ],
        "",
    );
    assert_eq!(
        sh.stdout, "regular file\nexe\n5\n1\n5\n5\ntwo\n",
        "{}",
        sh.stderr
    );
}

/// A standard descriptor closed when dvs-exec starts (`prog <&-`) is
/// closed for the program too (it was `/dev/null`, which Rust's runtime
/// puts there), and a program that closes its own can have glibc open a
/// locale file there and map it (the seccomp net's mirror used to refuse
/// the host's 0, 1 and 2, with a warning on stderr).
#[test]
fn closed_standard_descriptors_stay_closed() {
    let d = scratch();
    let script = "cat <&-; echo cat $? >&2; echo hi >&-; echo echo $? >&2; \
                  sh -c 'exec <&-; LC_ALL=C.UTF-8 sort -R /dev/null; echo sort $?'";
    let outer = |prefix: &str| {
        format!(
            "{prefix} cat <&-; echo $?; {prefix} /bin/echo hi >&-; echo $?; \
             {prefix} sh -c \"{script}\" 2>&1"
        )
    };
    let native = run(false, d.path(), &["sh", "-c", &outer("")], "");
    let prefix = format!("env DVS_PRELOAD={} {} --", preload().display(), dvs_exec());
    let dc = run(false, d.path(), &["sh", "-c", &outer(&prefix)], "");
    assert!(native.stdout.starts_with("1\n1\n"), "{}", native.stdout);
    assert_eq!(dc.stdout, native.stdout, "DC stderr:\n{}", dc.stderr);
    assert_eq!(dc.stderr, native.stderr);
}

/// `wait` reports stopped and continued children (`WUNTRACED`,
/// `WCONTINUED`, `waitid` with `WSTOPPED`), so a shell's job control sees
/// a stopped job: a `waitpid(pid, WUNTRACED)` never returned. The child
/// writes to a pipe as it runs: a stopped child really stops, `SIGTSTP`
/// too (the kernel discards it in the DC's orphaned host process group).
/// The child has a process group of its own, which is not orphaned (its
/// parent is in another group of the session) however the test runs:
/// natively the kernel discards `SIGTSTP` in an orphaned group. A child
/// that stops itself with `raise` is reported too.
#[test]
fn stopped_and_continued_children_are_reported() {
    same_python(
        r#"
import os, signal, time
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    os.close(r)
    while True:
        os.write(w, b'.'); time.sleep(0.01)
os.setpgid(pid, pid)
os.close(w)
os.set_blocking(r, False)
def moving():
    def drain():
        n = 0
        try:
            while True: n += len(os.read(r, 65536))
        except BlockingIOError:
            return n
    drain(); time.sleep(0.3); return drain() > 0
os.kill(pid, signal.SIGSTOP)
p, st = os.waitpid(pid, os.WUNTRACED)
print('stopped', p == pid, os.WIFSTOPPED(st), os.WSTOPSIG(st), moving())
os.kill(pid, signal.SIGCONT)
p, st = os.waitpid(pid, os.WCONTINUED)
print('continued', p == pid, os.WIFCONTINUED(st), moving())
print('nothing new', os.waitpid(pid, os.WNOHANG | os.WUNTRACED | os.WCONTINUED))
os.kill(pid, signal.SIGTSTP)
i = os.waitid(os.P_PID, pid, os.WSTOPPED)
print('waitid', i.si_code == os.CLD_STOPPED, i.si_status, moving())
os.kill(pid, signal.SIGCONT)
i = os.waitid(os.P_PID, pid, os.WCONTINUED)
print('waitid', i.si_code == os.CLD_CONTINUED, i.si_status, moving())
os.kill(pid, signal.SIGKILL)
print('killed', os.WTERMSIG(os.waitpid(pid, 0)[1]))
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    signal.raise_signal(signal.SIGTSTP)
    os._exit(3)
os.setpgid(pid, pid)
p, st = os.waitpid(pid, os.WUNTRACED)
print('raised', p == pid, os.WIFSTOPPED(st), os.WSTOPSIG(st))
os.kill(pid, signal.SIGCONT)
print('then', os.WEXITSTATUS(os.waitpid(pid, 0)[1]))
"#,
    );
    let d = scratch();
    let jobs = "set -m; sleep 60 & kill -STOP $!; sleep 0.3; jobs | tr -s ' '; \
                kill -CONT %1; sleep 0.2; jobs | tr -s ' '; kill %1; wait; echo done";
    let r = same(d.path(), &["bash", "-c", jobs], "");
    assert!(
        r.stdout.starts_with("[1]+ Stopped sleep 60\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn c_examples_match_native() {
    let d = scratch();
    let p = d.path();
    for name in C_EXAMPLES {
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
a, b = os.statvfs("."), os.fstatvfs(os.open(".", os.O_RDONLY))
print("statvfs", a.f_bsize == b.f_bsize, a.f_namemax, a.f_blocks == b.f_blocks)
try:
    os.statvfs("missing")
except OSError as e:
    print("statvfs missing", e.errno)
os.unlink("py.txt")
"#;
    same(d.path(), &["/usr/bin/python3", "-c", script], "");
}

/// Python's `multiprocessing` (POSIX semaphores that glibc maps itself,
/// pipes, forked workers) and locales, as natively.
#[test]
fn python_multiprocessing_and_locale() {
    let d = scratch();
    let script = r#"
import locale, multiprocessing as mp
print(locale.setlocale(locale.LC_ALL, "C.UTF-8"), "\u00fc".upper(), locale.getpreferredencoding(False))
with mp.Pool(2) as p:
    print(sorted(p.map(abs, [-1, -2, -3])))
q = mp.Queue()
pr = mp.Process(target=q.put, args=("from child",))
pr.start()
print(q.get())
pr.join()
print("exit", pr.exitcode)
lock = mp.Lock()
with lock:
    print("locked", lock.acquire(block=False))
"#;
    let r = same(d.path(), &["/usr/bin/python3", "-c", script], "");
    assert!(r.stdout.contains("[1, 2, 3]"), "{}", r.stdout);
}

/// util-linux `script` runs a command in a pseudo-terminal, watching its
/// signals through a signalfd, as natively.
#[test]
fn script_runs_a_command_in_a_pty() {
    let d = scratch();
    let r = same(
        d.path(),
        &[
            "script",
            "-qec",
            "tty >/dev/null && echo in a pty; exit 3",
            "/dev/null",
        ],
        "",
    );
    assert_eq!(r.code, 3);
    assert!(r.stdout.contains("in a pty"), "{}", r.stdout);
}

/// A signal from the host (a timer's SIGALRM) whose handler raises ends a
/// blocking call served by FS or PM, as natively; with SA_RESTART the call
/// goes on.
#[test]
fn host_signals_interrupt_blocking_calls() {
    let d = scratch();
    let script = r#"
import os, signal, socket, time, select
class Stop(Exception): pass
def h(*a): raise Stop()
signal.signal(signal.SIGALRM, h)
r, w = os.pipe()
a, b = socket.socketpair()
pid = 0
def child():
    global pid
    pid = os.fork()
    if pid == 0: time.sleep(3); os._exit(0)
    return os.waitpid(pid, 0)
for what, fn in [("pipe read", lambda: os.read(r, 10)), ("select", lambda: select.select([r], [], [], 30)),
                 ("recv", lambda: a.recv(10)), ("wait", child)]:
    t = time.time(); signal.alarm(1)
    try: fn(); print(what, "returned")
    except Stop: print(what, "interrupted", round(time.time() - t))
signal.signal(signal.SIGALRM, lambda *a: None)
signal.siginterrupt(signal.SIGALRM, False)
if os.fork() == 0: time.sleep(1.5); os.write(w, b"x"); os._exit(0)
signal.alarm(1); print("restarted read", os.read(r, 10))
"#;
    let r = same(d.path(), &["/usr/bin/python3", "-c", script], "");
    assert!(
        r.stdout.starts_with("pipe read interrupted 1\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn python_threads_subprocess_and_signals() {
    let d = scratch();
    let script = r#"
import os, signal, subprocess, threading, time
out = []
def work(i):
    with open(f"thr{i}.txt", "w") as f:
        f.write(str(i))
    out.append(open(f"thr{i}.txt").read())
    os.unlink(f"thr{i}.txt")
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print("threads", sorted(out))
r = subprocess.run(["sh", "-c", "echo sub $((1+2)); exit 3"], capture_output=True, text=True)
print("subprocess", r.stdout.strip(), r.returncode)
print("check_output", subprocess.check_output(["echo", "hi"]).decode().strip())
p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
o, _ = p.communicate(b"through cat")
print("communicate", o.decode(), p.returncode)
import select
ep = select.epoll()
r, w = os.pipe()
ep.register(r, select.EPOLLIN)
print("epoll empty", ep.poll(0.05))
os.write(w, b"x")
print("epoll ready", [(fd == r, ev) for fd, ev in ep.poll(1)])
ep.close()
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.05)
print("signal", got == [signal.SIGUSR1])
p = subprocess.Popen(["sleep", "10"])
p.send_signal(signal.SIGTERM)
print("killed child", p.wait())
"#;
    same(d.path(), &["/usr/bin/python3", "-c", script], "");
}

/// A DC run in the background, with its stdout readable line by line.
struct Background {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Background {
    fn start(dc: &str, args: &[&str]) -> Background {
        Self::start_with(dc, args, Stdio::null())
    }

    fn start_with(dc: &str, args: &[&str], stdin: Stdio) -> Background {
        let mut cmd = dvs_exec_cmd();
        common::as_foreground_job(&mut cmd);
        let mut child = cmd
            .args(["--dc", dc, "--"])
            .args(args)
            .env_remove("DVS_SOCKET")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dvs-exec");
        let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        Background { child, out }
    }

    fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut s = String::new();
        self.out.read_line(&mut s).expect("read");
        s.trim_end().to_string()
    }

    /// Exit status (128+N for a signal), waiting at most 20 s.
    fn wait(&mut self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let t = std::time::Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
            }
            assert!(t.elapsed().as_secs() < 20, "dvs-exec did not end");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dvs(args: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_dvs"))
        .args(args)
        .env_remove("DVS_SOCKET")
        .output()
        .expect("dvs");
    finish(o)
}

#[test]
fn dvs_ps_shows_and_dvs_kill_ends_a_dc_process() {
    let dc = format!("ps-test-{}", std::process::id());
    let mut bg = Background::start(&dc, &["sh", "-c", "echo ready; exec sleep 30"]);
    assert_eq!(bg.line(), "ready");
    // "ready" comes before the exec: wait until PM has seen it.
    let t = std::time::Instant::now();
    let procs = loop {
        let ps = dvs(&["ps", "--dc", &dc, "--json"]);
        assert_eq!(ps.code, 0, "{}", ps.stderr);
        let v: serde_json::Value = serde_json::from_str(&ps.stdout).expect("ps json");
        let procs = v[0]["processes"].as_array().expect("processes").clone();
        if procs.iter().any(|p| p["cmd"] == "sleep") {
            break procs;
        }
        assert!(t.elapsed().as_secs() < 10, "no sleep row: {procs:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let init = procs.iter().find(|p| p["pid"] == 1).expect("init row");
    assert_eq!(init["cmd"], "init");
    let sleep = procs
        .iter()
        .find(|p| p["cmd"] == "sleep")
        .expect("sleep row");
    assert_eq!(sleep["pid"], 2, "{procs:?}");
    assert_eq!(sleep["ppid"], 1);
    let text = dvs(&["ps", "--dc", &dc]);
    assert!(text.stdout.starts_with("PID"), "{}", text.stdout);
    assert!(text
        .stdout
        .lines()
        .any(|l| l.split_whitespace().last() == Some("sleep")));
    let k = dvs(&["kill", "--dc", &dc, "-s", "TERM", "2"]);
    assert_eq!(k.code, 0, "{}", k.stderr);
    assert_eq!(bg.wait(), 128 + libc::SIGTERM);
    let gone = dvs(&["kill", "--dc", &dc, "2"]);
    assert_ne!(gone.code, 0);
}

#[test]
fn ctrl_c_interrupts_the_foreground_group() {
    let dc = format!("int-test-{}", std::process::id());
    let mut bg = Background::start(
        &dc,
        &[
            "sh",
            "-c",
            "trap 'echo got INT; exit 5' INT; echo ready; while :; do sleep 0.05; done",
        ],
    );
    assert_eq!(bg.line(), "ready");
    // What the terminal does on Ctrl-C: SIGINT to dvs-exec's process group.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(bg.child.id() as i32, libc::SIGINT) };
    assert_eq!(bg.line(), "got INT");
    assert_eq!(bg.wait(), 5);
}

#[test]
fn ctrl_c_interrupts_a_blocked_read() {
    let dc = format!("eintr-test-{}", std::process::id());
    let script = "import sys\nprint('ready', flush=True)\ntry:\n    sys.stdin.readline()\n    print('not interrupted')\nexcept KeyboardInterrupt:\n    print('interrupted')\n    sys.exit(7)\n";
    let mut bg = Background::start_with(&dc, &["/usr/bin/python3", "-c", script], Stdio::piped());
    assert_eq!(bg.line(), "ready");
    std::thread::sleep(std::time::Duration::from_millis(100));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(bg.child.id() as i32, libc::SIGINT) };
    // stdin stays open: only the signal can end the read.
    assert_eq!(bg.line(), "interrupted");
    assert_eq!(bg.wait(), 7);
}

#[test]
fn console_answers_for_the_real_terminal() {
    // An exec'd C program line-buffers its stdout on a terminal (its
    // line comes before its stderr's; fully buffered, it would follow).
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = dir.path().join("probe.sh");
    std::fs::write(
        &probe,
        "test -t 0 && echo in-tty; test -t 1 && echo out-tty; stty size\n\
         (exec awk 'BEGIN { print \"out\"; printf \"err\\n\" > \"/dev/stderr\" }')\n",
    )
    .expect("probe");
    let probe = probe.display();
    let native = Command::new("script")
        .args(["-q", "-c", &format!("sh {probe}"), "/dev/null"])
        .output()
        .expect("script");
    let dc = Command::new("script")
        .args([
            "-q",
            "-c",
            &format!("{} sh {probe}", dvs_exec()),
            "/dev/null",
        ])
        .env_remove("DVS_SOCKET")
        .env("DVS_PRELOAD", preload())
        .output()
        .expect("script");
    let n = String::from_utf8_lossy(&native.stdout).into_owned();
    assert!(n.contains("out-tty"), "native run is not on a pty: {n}");
    assert!(n.ends_with("out\r\nerr\r\n"), "{n:?}");
    assert_eq!(String::from_utf8_lossy(&dc.stdout), n);
}

#[test]
fn root_confines_file_access() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::copy("/bin/cat", r.join("bin/cat")).unwrap();
    std::fs::write(r.join("data.txt"), "inside the root\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", r.join("escape")).unwrap();
    let run = |args: &[&str]| {
        let o = dvs_exec_cmd()
            .arg("--root")
            .arg(r)
            .arg("--")
            .args(args)
            .current_dir("/")
            .env_remove("DVS_SOCKET")
            .output()
            .expect("dvs-exec");
        finish(o)
    };
    let ok = run(&["/bin/cat", "/data.txt"]);
    assert_eq!(
        (ok.stdout.as_str(), ok.code),
        ("inside the root\n", 0),
        "{}",
        ok.stderr
    );
    // The host's /etc/hostname is not visible, directly or through a
    // symlink that points outside, or with `..`.
    for p in ["/etc/hostname", "/escape", "/../../etc/hostname"] {
        let r = run(&["/bin/cat", p]);
        assert_eq!(r.code, 1, "{p}: {}", r.stdout);
        assert!(r.stdout.is_empty(), "{p} leaked: {}", r.stdout);
        assert!(r.stderr.contains("No such file"), "{p}: {}", r.stderr);
    }
    // Programs are found inside the root only.
    assert_eq!(run(&["ls"]).code, 127);
}

/// Runs a Python script natively and in a DC (from a scratch directory)
/// and checks that both print the same and exit the same.
fn same_python(script: &str) -> Run {
    let d = scratch();
    same(d.path(), &["python3", "-c", script], "")
}

/// `SO_PASSCRED` on `AF_UNIX` sockets: every receive reports its sender
/// (the DC pid) in `SCM_CREDENTIALS`, before `SCM_RIGHTS`, cut as Linux
/// cuts it in a small control buffer; explicit credentials are checked;
/// a stream receive does not join two senders' bytes.
#[test]
fn unix_sockets_pass_credentials() {
    let r = same_python(
        r#"
import array, os, socket, struct
def creds(anc):
    return [("cred", len(d) == 12 and struct.unpack("iII", d)[0] == os.getpid(), len(d)) if t == socket.SCM_CREDENTIALS
            else ("fds", len(d) // 4) for l, t, d in anc]
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print("passcred", b.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED))
a.send(b"hi")
m, anc, fl, _ = b.recvmsg(10, socket.CMSG_SPACE(12))
print("dgram", m, creds(anc), [struct.unpack("iII", d)[1:] == (os.getuid(), os.getgid()) for l, t, d in anc])
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("iII", os.getpid(), os.getuid(), os.getgid()))])
print("explicit", creds(b.recvmsg(10, socket.CMSG_SPACE(12))[1]))
if os.fork() == 0:
    a.send(b"child"); os._exit(0)
os.wait()
m, anc, fl, _ = b.recvmsg(10, socket.CMSG_SPACE(12))
print("from child", m, creds(anc))
a, b = socket.socketpair()
b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
r, w = os.pipe()
a.sendmsg([b"fd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
m, anc, fl, _ = b.recvmsg(10, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4))
print("both", m, creds(anc), fl)
a.send(b"x")
m, anc, fl, _ = b.recvmsg(10, 16)
print("small", m, creds(anc), fl & socket.MSG_CTRUNC != 0)
a.send(b"y")
m, anc, fl, _ = b.recvmsg(10)
print("none", m, anc, fl)
if os.fork() == 0:
    a.send(b"child"); os._exit(0)
os.wait()
a.send(b"parent")
m, anc, fl, _ = b.recvmsg(100, 64)
print("glue1", m, creds(anc))
m, anc, fl, _ = b.recvmsg(100, 64)
print("glue2", m, creds(anc))
try: a.sendmsg([b"z"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("iI", 1, 2))])
except OSError as e: print("short creds", e.errno)
b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
a.send(b"off")
print("off", b.recvmsg(10, 64)[:2])
"#,
    );
    assert!(
        r.stdout
            .contains("both b'fd' [('cred', True, 12), ('fds', 1)] 0"),
        "{}",
        r.stdout
    );
}

/// Pseudo-terminals: `openpty` (its `TIOCGPTPEER` gives a new DC
/// descriptor), a read that waits for the other side, and `pty.fork`
/// (a child whose stdio is the terminal), natively and in a DC.
#[test]
fn python_pseudo_terminals() {
    let r = same_python(
        r#"
import os, pty, threading, time
m, s = os.openpty()
print(os.isatty(s), os.ttyname(s).startswith('/dev/pts/'))
threading.Thread(target=lambda: (time.sleep(0.3), os.write(m, b'late\n'))).start()
print(os.read(s, 100))
os.write(s, b'back\n')
time.sleep(0.3)
print(os.read(m, 100))
pid, fd = pty.fork()
if pid == 0:
    print('child on a tty:', os.isatty(0), flush=True)
    os._exit(5)
out = b''
while True:
    try:
        b = os.read(fd, 100)
    except OSError:
        break
    if not b:
        break
    out += b
print(out.replace(b'\r', b''), os.waitpid(pid, 0)[1] >> 8)
"#,
    );
    assert!(r.stdout.contains("child on a tty: True"), "{}", r.stdout);
}

/// `eventfd` (a host eventfd FS holds): counters, a read that waits for
/// a writer thread, readiness, `EFD_SEMAPHORE` and `EFD_NONBLOCK`,
/// natively and in a DC.
#[test]
fn python_eventfd() {
    let r = same_python(
        r#"
import os, select, threading, time
fd = os.eventfd(3, os.EFD_CLOEXEC)
print(os.eventfd_read(fd))
def later():
    time.sleep(0.2); os.eventfd_write(fd, 5)
threading.Thread(target=later).start()
print(os.eventfd_read(fd))           # waits for the writer
print(select.select([fd], [], [], 0)[0] == [])
os.eventfd_write(fd, 2)
print(select.select([fd], [], [], 0)[0] == [fd])
s = os.eventfd(2, os.EFD_SEMAPHORE | os.EFD_NONBLOCK)
print(os.eventfd_read(s), os.eventfd_read(s))
try:
    os.eventfd_read(s)
except BlockingIOError:
    print("would block")
try:
    os.read(s, 4)
except OSError as e:
    print("short read:", e.errno)
"#,
    );
    assert!(r.stdout.contains("would block"), "{}", r.stdout);
}

/// `memfd_create` (a host memfd FS holds): writes, `ftruncate`, a
/// shared mapping (through FS's descriptor link), a name too long, and
/// an in-memory program run with `fexecve`, natively and in a DC.
#[test]
fn python_memfd() {
    let r = same_python(
        r#"
import os, mmap, subprocess
fd = os.memfd_create("Hi", os.MFD_CLOEXEC)
print(os.get_inheritable(fd))
with open(fd, "wb", closefd=False) as f:
    f.write(b"memfd_create")
    print(f.tell())
os.ftruncate(fd, 4096)
m = mmap.mmap(fd, 4096)
print(m[:12])
m[0:5] = b"MEMFD"
os.lseek(fd, 0, 0)
print(os.read(fd, 12), os.fstat(fd).st_size)
try:
    os.memfd_create("x" * 300)
except OSError as e:
    print("long name:", e.errno)
# An in-memory executable run through fexecve.
sh = os.memfd_create("sh", 0)
os.write(sh, open("/bin/true", "rb").read())
pid = os.fork()
if pid == 0:
    os.execve(sh, ["true"], {})
print("fexecve status", os.waitpid(pid, 0)[1])
"#,
    );
    assert!(r.stdout.contains("fexecve status 0"), "{}", r.stdout);
}

#[test]
fn python_unix_sockets() {
    let d = scratch();
    let script = r#"
import os, selectors, socket, socketserver, stat, threading
a, b = socket.socketpair()
a.sendall(b"hello")
print(b.recv(10))
a.close()
print(b.recv(10))
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"echo:" + self.rfile.readline())
srv = socketserver.UnixStreamServer("srv.sock", Echo)
print(stat.S_ISSOCK(os.stat("srv.sock").st_mode))
t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
t.start()
for i in range(3):
    with socket.socket(socket.AF_UNIX) as c:
        c.connect("srv.sock")
        c.sendall(b"line %d\n" % i)
        print(c.makefile("rb").readline())
srv.shutdown(); t.join(); srv.server_close()
os.unlink("srv.sock")
sel = selectors.DefaultSelector()
x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
sel.register(x, selectors.EVENT_READ, "x")
print(sel.select(0))
if os.fork() == 0:
    y.send(b"from child"); os._exit(0)
print([k.data for k, _ in sel.select(5)], x.recv(100))
os.wait()
x.setblocking(False)
try:
    x.recv(1)
except BlockingIOError:
    print("EAGAIN")
"#;
    same(d.path(), &["/usr/bin/python3", "-c", script], "");
}

/// A user other than root runs programs in a DC: the embedded node's
/// socket goes in a directory of that user's (it used to go in root's
/// `/run/dvs`, which refused it), the program runs with the user's
/// permissions, and nothing is left behind.
#[test]
fn an_unprivileged_user_runs_programs_in_a_dc() {
    use std::os::unix::fs::PermissionsExt;
    const NOBODY: u32 = 65534;
    // The binaries under test, where that user can run them.
    let bin = tempfile::tempdir().expect("tempdir");
    let open = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    open(bin.path(), 0o755).expect("chmod");
    let exe = bin.path().join("dvs-exec");
    let lib = bin.path().join("libdvs_preload.so");
    std::fs::copy(dvs_exec(), &exe).expect("copy dvs-exec");
    std::fs::copy(common::preload(), &lib).expect("copy the preload");
    open(&lib, 0o755).expect("chmod");
    // Root's directory of embedded nodes exists, as once root ran dvs-exec.
    std::fs::create_dir_all("/run/dvs").expect("/run/dvs");
    let run = PathBuf::from(format!("/tmp/dvs-{NOBODY}"));
    let _ = std::fs::remove_dir_all(&run);
    let o = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(&exe)
        .args([
            "sh",
            "-c",
            "id -u; cat /etc/shadow >/dev/null 2>&1 || echo denied; echo $$",
        ])
        .env("DVS_PRELOAD", &lib)
        .env_remove("DVS_SOCKET")
        .env_remove("XDG_RUNTIME_DIR")
        .current_dir("/")
        .output()
        .expect("setpriv");
    let left: Vec<_> = std::fs::read_dir(&run)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&run);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "65534\ndenied\n2\n",
        "{err}"
    );
    assert!(left.is_empty(), "left in {}: {left:?}", run.display());
}

#[test]
fn stale_embedded_node_sockets_are_swept() {
    // What a dvs-exec killed by SIGKILL leaves behind: a socket file nobody
    // listens on.
    std::fs::create_dir_all("/run/dvs").expect("/run/dvs");
    let stale = PathBuf::from(format!("/run/dvs/exec-{}999.sock", std::process::id()));
    let _ = std::fs::remove_file(&stale);
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind a socket"));
    assert!(stale.exists());
    let o = dvs_exec_cmd().arg("/bin/true").output().expect("dvs-exec");
    let left = stale.exists();
    let _ = std::fs::remove_file(&stale);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !left,
        "the stale socket of a dead embedded node is still there"
    );
}

/// A program that clears its environment (CPython's `test_os` does) stays
/// in its DC, and so do the children it spawns afterwards: `sh` sees the
/// one variable the program set, and runs as a DC process (its parent's
/// PID is the program's).
#[test]
fn cleared_environment_keeps_children_in_the_dc() {
    let r = same_python(
        r#"
import os, subprocess
os.environ.clear()
os.environ.update(HELLO="World")
with os.popen("/bin/sh -c 'echo $HELLO'") as p:
    print(repr(p.read().strip()))
ppid = subprocess.run(["/bin/sh", "-c", "echo $PPID"], capture_output=True).stdout
print(int(ppid) == os.getpid())
"#,
    );
    assert_eq!(r.stdout, "'World'\nTrue\n", "stderr: {}", r.stderr);
}

/// `pidfd_send_signal` takes a `/proc/<pid>` directory as well as a
/// pidfd (the program's own, through its DC pid or `/proc/self`, and a
/// child's); any other descriptor is `EBADF`.
#[test]
fn proc_directories_work_as_pidfds() {
    let r = same_python(
        r#"
import os, signal
class Got(Exception):
    pass
def handler(sig, frame):
    raise Got()
# Not SIGINT: a test run in the background starts with it ignored.
signal.signal(signal.SIGUSR1, handler)
try:
    signal.pidfd_send_signal(0, signal.SIGUSR1)
except OSError as e:
    print("fd 0:", e.errno)
for path in (f'/proc/{os.getpid()}', '/proc/self'):
    try:
        signal.pidfd_send_signal(os.open(path, os.O_DIRECTORY), signal.SIGUSR1)
    except Got:
        print("got SIGUSR1")
pid = os.fork()
if pid == 0:
    import time; time.sleep(5); os._exit(0)
signal.pidfd_send_signal(os.open(f'/proc/{pid}', os.O_DIRECTORY), signal.SIGTERM)
print("child", os.waitpid(pid, 0)[1])
try:
    signal.pidfd_send_signal(os.open('/tmp', os.O_DIRECTORY), signal.SIGTERM)
except OSError as e:
    print("/tmp:", e.errno)
"#,
    );
    assert_eq!(
        r.stdout, "fd 0: 9\ngot SIGUSR1\ngot SIGUSR1\nchild 15\n/tmp: 9\n",
        "stderr: {}",
        r.stderr
    );
}

/// A program that starts subprocess after subprocess keeps its memory:
/// Python's `subprocess` vforks, and the child attaches in the parent's
/// memory (its endpoint, mappings and exec environment are the parent's
/// to free when it wakes). Before the parent freed the child's exec
/// values, RSS grew by 3.7 KB per subprocess; natively it stays flat.
#[test]
fn subprocesses_leak_no_memory_or_mappings() {
    let script = r#"
import subprocess
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
def maps():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)
for i in range(30):
    subprocess.run(["/bin/true"], check=True)
r, m = rss(), maps()
for i in range(400):
    subprocess.run(["/bin/sh", "-c", "exit 0"], check=True, stdout=subprocess.PIPE)
grew = rss() - r
print("rss grew under 400 KB:", grew < 400, "" if grew < 400 else grew)
print("same number of mappings:", maps() == m)
"#;
    let r = same_python(script);
    assert!(r.stdout.contains("True"), "{}", r.stdout);
}

/// dvs-exec loads no Corosync library (`libcpg` brings nine more, about
/// 0.7 ms of every start): a DC's `/proc/1` is the process that runs its
/// servers, dvs-exec itself, whose mappings show its libraries. A run in
/// a cluster is handed over to `dvs`, which has them (tests/remote_exec.rs).
#[test]
fn dvs_exec_loads_no_corosync_library() {
    let d = scratch();
    let r = run(true, d.path(), &["cat", "/proc/1/maps"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("/dvs-exec\n"),
        "not dvs-exec's maps:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("/libc.so.6\n"), "{}", r.stdout);
    for lib in ["libcpg", "libqb", "libsystemd"] {
        assert!(
            !r.stdout.contains(lib),
            "dvs-exec maps {lib}:\n{}",
            r.stdout
        );
    }
}

/// Wide-character stdio on DC streams, which are `fopencookie` streams
/// that glibc keeps byte-oriented: `getwc` on one crashed (util-linux's
/// `rev` died of SIGSEGV) and `putwc`, `fputws` and `wprintf` wrote
/// nothing (`column` printed an empty line). `examples/widestdio.c` also
/// reads its standard input; `rev` gets a byte that is no UTF-8 too.
#[test]
fn wide_character_streams_match_native() {
    let d = scratch();
    let exe = example("widestdio", d.path());
    let r = same(d.path(), &[exe.to_str().unwrap()], "\u{fc}n\u{ef} line\nX");
    assert!(
        r.stdout.contains("stdin: \u{fc}n\u{ef} line\nthen: 88\n"),
        "{}",
        r.stdout
    );
    let script = "export LC_ALL=C.UTF-8; printf 'h\\303\\251llo\\nw\\303\\266rld\\n' | rev; \
        rev fruit; printf 'bad \\377\\n' | rev; echo $?";
    let r = same(d.path(), &["sh", "-c", script], "");
    assert!(
        r.stdout.starts_with("oll\u{e9}h\ndlr\u{f6}w\nraep\n"),
        "{}",
        r.stdout
    );
}

/// Descriptor numbers above 1024, for a program that raised its
/// `RLIMIT_NOFILE` (servers with many connections; valgrind keeps its own
/// descriptors near the hard limit): FS capped them at 1024, so `dup2` to
/// 1500 failed with `EBADF` and `F_DUPFD` from 1024 with `EINVAL`.
#[test]
fn descriptors_go_as_high_as_the_limit() {
    let d = scratch();
    let py = "import fcntl, os, resource\n\
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
        n = min(hard, 4096)\n\
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))\n\
        print(os.dup2(1, n - 1) == n - 1, fcntl.fcntl(1, fcntl.F_DUPFD, n - 10) == n - 10)\n\
        os.write(n - 1, b'through the high descriptor\\n')\n\
        os.closerange(3, n)\n\
        print(os.dup(1))";
    let r = same(d.path(), &["/usr/bin/python3", "-c", py], "");
    assert_eq!(
        r.stdout, "True True\nthrough the high descriptor\n3\n",
        "{}",
        r.stderr
    );
}

/// The program's environment is the one it was given, as natively: the
/// DC's own variables (`DVS_SOCKET`, the preload in `LD_PRELOAD`) are
/// kept by the preload for the execs, not shown; bash, which has its own
/// `unsetenv`, still showed them. A preload of the program's own is
/// loaded, after dvs's, and is its whole `LD_PRELOAD`; it used to be
/// dropped at every exec.
#[test]
fn environment_is_the_programs_own() {
    let d = scratch();
    let src = d.path().join("up.c");
    std::fs::write(&src, "int dvs_test_preload(void) { return 1; }\n").unwrap();
    let lib = d.path().join("libup.so");
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    let lib = lib.to_str().unwrap();
    let script = "env | grep -v '^_=\\|^DVS_PRELOAD=' | sort; echo ---; grep -q libup /proc/self/maps && echo mapped; \
        sh -c 'echo \"[$LD_PRELOAD]\"'; \
        exec bash -c 'echo \"[$LD_PRELOAD] [$DVS_SOCKET$DVS_EXEC_PATH]\"'";
    let with = format!("LD_PRELOAD={lib}");
    let r = same(d.path(), &["env", &with, "bash", "-c", script], "");
    assert!(
        r.stdout
            .ends_with(&format!("---\nmapped\n[{lib}]\n[{lib}] []\n")),
        "{}",
        r.stdout
    );
    let r = same(
        d.path(),
        &["env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", "env | sort"],
        "",
    );
    assert_eq!(
        r.stdout,
        format!("PATH=/usr/bin:/bin\nPWD={}\n", d.path().display())
    );
}
