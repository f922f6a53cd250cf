#!/usr/bin/env python3
"""Compare CPython's own regression tests natively and inside a DC.

Runs `python3 -m test -v --junit-xml FILE MODULE` for each module, once on
the host and once under `dvs-exec`, parses the per-test-case outcomes
(pass / fail / error / skip), and writes:

  results/<module>.json   per case: native outcome, DC outcome, DC error
  results/summary.md      table + the cases that pass natively but not in the DC
  results/logs/           raw logs (last 2000 lines) and junit files, not committed

Exit status: 0 when (DC passes among native passes) / (native passes) is at
least --goal, 1 when it is not, 2 when the run could not be set up.

Standard library only. See README.md beside this file.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

ALL_MODULES = [
    "test_posix",
    "test_os",
    "test_signal",
    "test_subprocess",
    "test_fcntl",
    "test_select",
    "test_stat",
]
QUICK_MODULES = ["test_stat", "test_fcntl"]
QUICK_CAP = 300.0  # seconds, whole --quick run

LOG_KEEP_LINES = 2000
PASS = "pass"
FAIL = "fail"
ERROR = "error"
SKIP = "skip"
MISSING = "missing"  # no result reported (module did not load, run hung or crashed)

# ---------------------------------------------------------------- helpers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def python_version(python):
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return None
    return out.stdout.strip()


def missing_test_modules(python, modules):
    code = ("import importlib.util, sys\n"
            "for m in sys.argv[1:]:\n"
            "    try:\n"
            "        ok = importlib.util.find_spec('test.' + m) is not None\n"
            "    except Exception:\n"
            "        ok = False\n"
            "    if not ok:\n"
            "        print(m)\n")
    out = subprocess.run([python, "-c", code] + list(modules),
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return list(modules)
    return out.stdout.split()


def testsuite_package(version):
    major, minor = version.split(".")[:2]
    return "libpython%s.%s-testsuite" % (major, minor)


def find_dvs_exec(explicit):
    cands = []
    if explicit:
        cands.append(explicit)
    elif os.environ.get("DVS_EXEC"):
        cands.append(os.environ["DVS_EXEC"])
    else:
        dirs = []
        if os.environ.get("CARGO_TARGET_DIR"):
            dirs.append(os.environ["CARGO_TARGET_DIR"])
        dirs.append(os.path.join(REPO, "target"))
        for d in dirs:
            for prof in ("release", "debug"):
                cands.append(os.path.join(d, prof, "dvs-exec"))
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c), cands
    return None, cands


def git_describe():
    try:
        out = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=30)
        rev = out.stdout.strip() or "unknown"
        st = subprocess.run(["git", "-C", REPO, "status", "--porcelain",
                             "--untracked-files=no", "--", ".", ":!posix-tests"],
                            capture_output=True, text=True, timeout=30)
        if st.stdout.strip():
            rev += " (work tree modified)"
        return rev
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ------------------------------------------------------- process control


def proc_table():
    """{pid: ppid} of every process on the host."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                data = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ... ; comm may contain spaces and parens
        rest = data[data.rfind(b")") + 2:].split()
        try:
            table[int(name)] = int(rest[1])
        except (IndexError, ValueError):
            continue
    return table


def descendants(root, table):
    children = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in children.get(p, ()):
            out.append(c)
            todo.append(c)
    return out


def marked(marker):
    """Processes whose environment carries our per-run marker."""
    needle = ("DVS_POSIX_TESTS_RUN=%s" % marker).encode()
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            out.append(int(name))
    return out


def kill_all(root, marker):
    """SIGSTOP then SIGKILL `root`'s descendants and every process carrying
    `marker` (a test may have moved itself out of our tree). Returns how many
    processes other than `root` were killed."""
    seen = set()
    for _ in range(20):
        table = proc_table()
        targets = set(descendants(root, table)) | set(marked(marker))
        if root in table:
            targets.add(root)
        new = targets - seen
        if not new:
            break
        for pid in new:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        seen |= new
    for pid in seen:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(seen - {root})


class Run:
    """One execution of one module, native or in the DC."""

    def __init__(self, module, mode):
        self.module = module
        self.mode = mode  # "native" or "dc"
        self.cmd = []
        self.rc = None
        self.duration = 0.0
        self.timed_out = False
        self.timeout = None
        self.leftovers = 0
        self.log_path = None
        self.xml_path = None
        self.text = ""
        self.xml_cases = {}
        self.verbose_cases = {}
        self.errors = {}
        self.started = []  # case ids in the order they started
        self.module_error = None
        self.dvs_messages = {}  # case id -> [messages dvs printed while it ran]
        self.dvs_counts = {}  # message (PIDs blanked) -> count
        self.module_error_where = None
        self.hang_trace = None
        self.status = None


def run_module(module, mode, args, deadline, logs_dir):
    r = Run(module, mode)
    work = tempfile.mkdtemp(prefix="dvs-posix-%s-%s-" % (module, mode))
    xml_path = os.path.join(work, "junit.xml")
    timeout = args.timeout if mode == "native" else args.dc_timeout
    if deadline is not None:
        timeout = max(5.0, min(timeout, deadline - time.monotonic()))
    r.timeout = timeout
    test_cmd = [args.python, "-m", "test", "-v", "--junit-xml", xml_path,
                "--tempdir", os.path.join(work, "cwd")]
    # Let regrtest dump every thread's traceback and exit a little before
    # we kill it, so a hang says where it hangs.
    if timeout > 60:
        test_cmd += ["--timeout", "%d" % (timeout - 20)]
    for pat in args.ignore or []:
        test_cmd += ["--ignore", pat]
    test_cmd.append(module)
    cmd = test_cmd if mode == "native" else [args.dvs_exec, "--"] + test_cmd
    r.cmd = [c.replace(work, "$WORK") for c in cmd]
    marker = "%d-%s-%s-%d" % (os.getpid(), module, mode, int(time.time() * 1000))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k not in ("LD_PRELOAD", "DVS_SOCKET")}
    env["DVS_POSIX_TESTS_RUN"] = marker
    env["TMPDIR"] = work
    env.setdefault("LANG", "C.UTF-8")
    raw_log = os.path.join(work, "output.log")
    t0 = time.monotonic()
    with open(raw_log, "wb") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, cwd=work, env=env,
                             start_new_session=True)
        try:
            r.rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            r.timed_out = True
            # dvs-exec forwards SIGTERM to the DC's foreground group.
            try:
                os.kill(p.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            kill_all(p.pid, marker)
            r.rc = p.wait()
    r.duration = time.monotonic() - t0
    # Whatever the run left behind (a DC that did not clean up, a test's
    # daemon) is killed too, and counted.
    r.leftovers = kill_all(-1, marker)
    if mode == "dc":
        sock = "/run/dvs/exec-%d.sock" % p.pid
        if r.timed_out and os.path.exists(sock):
            try:
                os.unlink(sock)
            except OSError:
                pass
    with open(raw_log, "rb") as f:
        r.text = f.read().decode("utf-8", "replace")
    os.makedirs(logs_dir, exist_ok=True)
    r.log_path = os.path.join(logs_dir, "%s.%s.log" % (module, mode))
    lines = r.text.splitlines(True)
    with open(r.log_path, "w") as f:
        f.write("# %s\n# exit status %s after %.1f s%s\n" % (
            " ".join(r.cmd), r.rc, r.duration,
            " (timed out, killed)" if r.timed_out else ""))
        if len(lines) > LOG_KEEP_LINES:
            f.write("# ... %d earlier lines cut ...\n" % (len(lines) - LOG_KEEP_LINES))
        f.writelines(lines[-LOG_KEEP_LINES:])
    if os.path.exists(xml_path):
        r.xml_path = os.path.join(logs_dir, "%s.%s.xml" % (module, mode))
        shutil.copyfile(xml_path, r.xml_path)
        r.xml_cases, xml_errors = parse_junit(xml_path)
    else:
        xml_errors = {}
    parse_verbose(r)
    for k, v in xml_errors.items():
        r.errors.setdefault(k, v)
    r.status = describe_run(r)
    shutil.rmtree(work, ignore_errors=True)
    return r


# ---------------------------------------------------------------- parsing

STATUS_RE = re.compile(
    r"^(ok|FAIL|ERROR|skipped .*|expected failure|unexpected success)$")
START_RE = re.compile(
    r"^( {0,2})(\w+) \(((?:\w+\.)+\w+)\)( \(.*\))?(?: \.\.\. |$)", re.M)
HEADER_RE = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (\w+) \(((?:\w+\.)+\w+)\)", re.M)
DVS_MSG_RE = re.compile(r"(?:^|(?<= \.\.\. ))(dvs: [^\n]*)", re.M)
RANK = {ERROR: 5, FAIL: 4, PASS: 2, SKIP: 1}


def status_outcome(s):
    if s == "ok" or s == "expected failure":
        return PASS, None
    if s == "FAIL":
        return FAIL, None
    if s == "ERROR":
        return ERROR, None
    if s == "unexpected success":
        return FAIL, "unexpected success"
    if s.startswith("skipped"):
        reason = s[len("skipped "):]
        return SKIP, reason.strip("'\"")
    return None, None


def merge(cases, cid, outcome, detail=None):
    old = cases.get(cid)
    if old is None or RANK[outcome] > RANK[old[0]]:
        cases[cid] = (outcome, detail)


def find_status(segment):
    """The status unittest wrote for a case, in the text between its start
    line and the next case's."""
    lines = segment.split("\n")
    for i, line in enumerate(lines):
        cand = line.strip()
        if " ... " in cand:
            cand = cand.rsplit(" ... ", 1)[1].strip()
        if STATUS_RE.match(cand):
            return cand
        if i == 0 and not cand:
            continue
    # Output from a child process glued in front of the status.
    for line in lines:
        m = re.search(r"(ok|FAIL|ERROR|skipped '.*'|expected failure|unexpected success)$",
                      line.strip())
        if m and m.group(1) != "ok":
            return m.group(1)
    return None


def parse_verbose(r):
    text = r.text
    starts = list(START_RE.finditer(text))
    for i, m in enumerate(starts):
        cid = m.group(3)
        if not m.group(1) and not m.group(4):
            r.started.append(cid)
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        seg = text[m.end():end]
        for msg in DVS_MSG_RE.findall(seg):
            msg = re.sub(r"\bPID \d+", "PID N", msg.strip())
            lst = r.dvs_messages.setdefault(cid, [])
            if msg not in lst:
                lst.append(msg)
        # A test that writes its docstring: "name (id)\nDoc ... ok".
        st = find_status(seg)
        if st is None:
            r.verbose_cases.setdefault(cid, None)
            continue
        outcome, detail = status_outcome(st)
        if outcome is None:
            continue
        if m.group(4) and outcome == SKIP:
            # A skipped subtest does not make the case a skip.
            r.verbose_cases.setdefault(cid, None)
            continue
        cur = r.verbose_cases.get(cid)
        if cur is None or RANK[outcome] > RANK[cur[0]]:
            r.verbose_cases[cid] = (outcome, detail)
    for msg in DVS_MSG_RE.findall(text):
        msg = re.sub(r"\bPID \d+", "PID N", msg.strip())
        r.dvs_counts[msg] = r.dvs_counts.get(msg, 0) + 1
    # Error blocks printed at the end of the module.
    for m in HEADER_RE.finditer(text):
        cid = m.group(3)
        if m.group(1) == "UNEXPECTED SUCCESS":
            r.errors.setdefault(cid, "unexpected success")
            continue
        nxt = text.find("\n" + "=" * 70, m.end())
        ran = text.find("\nRan ", m.end())
        ends = [e for e in (nxt, ran) if e >= 0]
        block = text[m.end():min(ends) if ends else len(text)]
        msg = exception_line(block)
        if msg:
            r.errors.setdefault(cid, msg)
    # Module-level failure (import error, setUpModule...) and regrtest's
    # timeout traceback.
    m = re.search(r"^(\w+) failed \(uncaught exception\)", text, re.M)
    if m:
        before = text[:m.start()]
        r.module_error = exception_line(before) or "uncaught exception"
        frames = re.findall(r'^  File "([^"]+)", line (\d+), in (\S+)\n(?:    (.*)\n)?', before, re.M)
        if frames:
            r.module_error_where = " -> ".join(
                "%s:%s %s" % (os.path.basename(f), line, src.strip() or fn)
                for f, line, fn, src in frames[-2:])
    m = re.search(r"(?:^|(?<= \.\.\. ))Timeout \([0-9:]+\)!\n(.*?)(?:\n\n|\Z)", text,
                  re.M | re.S)
    if m:
        frames = ["%s:%s %s" % (os.path.basename(f), line, fn) for f, line, fn in
                  re.findall(r'^\s*File "([^"]+)", line (\d+) in (\S+)', m.group(1), re.M)]
        r.hang_trace = frames[:8]


def exception_line(block):
    """First line of the last exception in a traceback block."""
    lines = block.splitlines()
    last_tb = None
    for i, ln in enumerate(lines):
        if "Traceback (most recent call last):" in ln:
            last_tb = i
    if last_tb is None:
        return None
    for ln in lines[last_tb + 1:]:
        if ln and not ln[0].isspace() and not ln.startswith("  "):
            return ln.strip()[:300]
    return None


def parse_junit(path):
    cases, errors = {}, {}
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return cases, errors
    for tc in root.iter("testcase"):
        name = tc.get("name")
        if not name:
            continue
        cid = name.split(" ", 1)[0]
        outcome = PASS
        detail = None
        for child in tc:
            if child.tag == "error":
                outcome = ERROR
                detail = (child.get("message") or "").strip().splitlines()
                detail = detail[0] if detail else child.get("type")
            elif child.tag == "failure":
                outcome = FAIL
                detail = (child.get("message") or "").strip().splitlines()
                detail = detail[0] if detail else child.get("type")
            elif child.tag == "skipped":
                if outcome == PASS:
                    outcome = SKIP
                    detail = (child.text or "").strip()
        if tc.get("outcome") == "UNEXPECTED_SUCCESS":
            outcome, detail = FAIL, "unexpected success"
        if " " in name and outcome == SKIP:
            continue  # a skipped subtest
        merge(cases, cid, outcome, detail)
        if outcome in (FAIL, ERROR) and detail:
            errors.setdefault(cid, detail[:300])
    return cases, errors


def case_outcomes(r):
    """{case id: (outcome, detail)}; the verbose stream is complete even
    when the run died, junit fills in details."""
    out = {}
    for cid, v in r.verbose_cases.items():
        if v is not None:
            out[cid] = v
    for cid, v in r.xml_cases.items():
        if cid not in out:
            out[cid] = v
    for cid in r.verbose_cases:
        if cid not in out:
            # started, never finished: the run died or hung in it
            out[cid] = (MISSING, "started but never finished (%s)" % short_status(r))
    for cid, (o, d) in list(out.items()):
        if o in (FAIL, ERROR) and r.errors.get(cid):
            out[cid] = (o, r.errors[cid])
    return out


def describe_run(r):
    if r.timed_out:
        s = "timeout after %d s" % r.timeout
        if r.started:
            s += ", last test started: %s" % r.started[-1]
        return s
    if r.module_error:
        return "module failed: %s" % r.module_error
    if r.rc is not None and r.rc < 0:
        return "killed by signal %d" % -r.rc
    if r.rc is not None and r.rc >= 128 and r.mode == "dc" and r.rc != 0:
        sig = r.rc - 128
        if 0 < sig < 65:
            return "killed by signal %d (exit status %d)" % (sig, r.rc)
    if r.rc == 125 and r.mode == "dc":
        return "dvs-exec failed (exit status 125)"
    if r.hang_trace:
        s = "hung: regrtest's watchdog stopped it after %d s" % (r.timeout - 20)
        if r.started:
            s += ", last test started: %s" % r.started[-1]
        return s
    if r.rc == 0:
        return "ok"
    if r.rc == 2 and re.search(r"^Tests result: FAILURE", r.text, re.M):
        return "tests failed (exit status 2)"
    if re.search(r"^Tests result: (FAILURE|ENV CHANGED|SUCCESS)", r.text, re.M):
        return "exit status %s" % r.rc
    return "crashed, no regrtest result (exit status %s)" % r.rc


def short_status(r):
    if r.timed_out:
        return "run timed out"
    if r.hang_trace:
        return "the run hung, regrtest's watchdog stopped it"
    return "run ended: %s" % (r.status or describe_run(r))


# ---------------------------------------------------------------- results


def compare(module, native, dc):
    n_cases = case_outcomes(native)
    d_cases = case_outcomes(dc)
    cases = {}
    for cid in sorted(set(n_cases) | set(d_cases)):
        n = n_cases.get(cid, (MISSING, None))
        d = d_cases.get(cid)
        if d is None:
            d = (MISSING, "no result: %s" % dc_no_result_reason(dc))
        entry = {"native": n[0], "dc": d[0]}
        if n[0] in (FAIL, ERROR, SKIP) and n[1]:
            entry["native_detail"] = n[1]
        if d[0] != PASS and d[1]:
            entry["dc_detail"] = d[1]
        elif d[0] in (FAIL, ERROR):
            entry["dc_detail"] = "(no message: %s)" % (
                "the run ended before printing it" if dc.status != "tests failed (exit status 2)"
                else "not found in the output")
        if d[0] != PASS and dc.dvs_messages.get(cid):
            entry["dc_dvs_messages"] = dc.dvs_messages[cid][:5]
        cases[cid] = entry
    native_pass = [c for c, e in cases.items() if e["native"] == PASS]
    dc_pass = [c for c in native_pass if cases[c]["dc"] == PASS]
    return {
        "module": module,
        "native": run_info(native),
        "dc": run_info(dc),
        "counts": {
            "cases": len(cases),
            "native_pass": len(native_pass),
            "dc_pass_of_native_pass": len(dc_pass),
            "dc_pass_total": sum(1 for e in cases.values() if e["dc"] == PASS),
            "native": count(e["native"] for e in cases.values()),
            "dc": count(e["dc"] for e in cases.values()),
        },
        "cases": cases,
    }


def dc_no_result_reason(dc):
    if dc.module_error:
        return "the module did not load in the DC (%s)" % dc.module_error
    return "the DC run did not reach them (%s)" % short_status(dc)


def count(outcomes):
    c = {}
    for o in outcomes:
        c[o] = c.get(o, 0) + 1
    return dict(sorted(c.items()))


def run_info(r):
    info = {
        "command": " ".join(r.cmd),
        "exit_status": r.rc,
        "seconds": round(r.duration, 1),
        "timeout": r.timeout,
        "timed_out": r.timed_out,
        "status": r.status,
        "leftover_processes_killed": r.leftovers,
    }
    if r.module_error:
        info["module_error"] = r.module_error
        if r.module_error_where:
            info["module_error_where"] = r.module_error_where
    if r.hang_trace:
        info["hang_traceback"] = r.hang_trace
    if r.dvs_counts:
        info["dvs_messages"] = dict(sorted(r.dvs_counts.items(), key=lambda kv: -kv[1]))
    if r.started and r.status not in ("ok", "tests failed (exit status 2)"):
        info["last_test_started"] = r.started[-1]
    return info


def ratio_str(num, den):
    if den == 0:
        return "n/a"
    return "%.1f%%" % (100.0 * num / den)


def summary_markdown(results, meta, goal):
    tot_n = sum(r["counts"]["native_pass"] for r in results)
    tot_d = sum(r["counts"]["dc_pass_of_native_pass"] for r in results)
    tot_c = sum(r["counts"]["cases"] for r in results)
    ok = tot_n > 0 and tot_d / tot_n >= goal
    L = []
    L.append("# CPython regression tests: native vs. DC")
    L.append("")
    L.append("Generated by `posix-tests/run.py` on %s." % meta["date"])
    L.append("")
    L.append("- python: `%s` (%s)" % (meta["python"], meta["python_version"]))
    L.append("- dvs-exec: `%s` (built %s); repository HEAD at the time of the run: %s" % (
        meta["dvs_exec"], meta["dvs_exec_built"], meta["git"]))
    L.append("- timeouts: %d s native, %d s in the DC; %d job(s); total %.0f s" % (
        meta["timeout"], meta["dc_timeout"], meta["jobs"], meta["seconds"]))
    L.append("")
    L.append("| module | cases | passed natively | passed in DC among those | ratio | native run | DC run |")
    L.append("|---|---:|---:|---:|---:|---|---|")
    for r in results:
        c = r["counts"]
        L.append("| %s | %d | %d | %d | %s | %s, %.0f s | %s, %.0f s |" % (
            r["module"], c["cases"], c["native_pass"], c["dc_pass_of_native_pass"],
            ratio_str(c["dc_pass_of_native_pass"], c["native_pass"]),
            md(r["native"]["status"]), r["native"]["seconds"],
            md(r["dc"]["status"]), r["dc"]["seconds"]))
    L.append("| **total** | %d | %d | %d | **%s** | | |" % (
        tot_c, tot_n, tot_d, ratio_str(tot_d, tot_n)))
    L.append("")
    L.append("Goal: %.0f%% of what passes natively. Result: **%s**." % (
        goal * 100, "met" if ok else "not met"))
    L.append("")
    notes = []
    for r in results:
        d = r["dc"]
        if d["timed_out"]:
            notes.append("- %s: the DC run **timed out** after %d s and was killed; every "
                         "case it had not reported counts as failed (%s)." % (
                             r["module"], d["timeout"],
                             "last test started: `%s`" % d.get("last_test_started", "?")))
        elif d.get("module_error"):
            notes.append("- %s: the module **did not load** in the DC, so no case ran: `%s`%s." % (
                r["module"], md(d["module_error"]),
                " at `%s`" % md(d["module_error_where"]) if d.get("module_error_where") else ""))
        elif d.get("hang_traceback"):
            notes.append("- %s: the DC run **hung** and regrtest's watchdog stopped it after %d s; "
                         "every case it had not reported counts as failed (last test started: `%s`)."
                         % (r["module"], d["timeout"] - 20, d.get("last_test_started", "?")))
        elif d["status"] not in ("ok", "tests failed (exit status 2)"):
            notes.append("- %s: the DC run **ended abnormally** (%s); every case it had not "
                         "reported counts as failed." % (r["module"], md(d["status"])))
        if d.get("hang_traceback"):
            notes.append("  - where it hung (regrtest's traceback dump): `%s`" %
                         md(" <- ".join(d["hang_traceback"][:4])))
        if d["leftover_processes_killed"]:
            notes.append("- %s: %d process(es) of the DC run were still alive after it "
                         "and were killed." % (r["module"], d["leftover_processes_killed"]))
        n = r["native"]
        if n["status"] not in ("ok",):
            notes.append("- %s: the native run was not clean: %s." % (r["module"], md(n["status"])))
    if notes:
        L.append("## Runs that did not finish normally")
        L.append("")
        L.extend(notes)
        L.append("")
    diag = [r for r in results if r["dc"].get("dvs_messages")]
    if diag:
        L.append("## What dvs printed during the DC runs")
        L.append("")
        for r in diag:
            L.append("- %s:" % r["module"])
            for msg, n in list(r["dc"]["dvs_messages"].items())[:10]:
                L.append("  - %d× `%s`" % (n, md(msg)))
        L.append("")
    L.append("## Cases that pass natively but not in the DC")
    L.append("")
    any_case = False
    for r in results:
        bad = [(cid, e) for cid, e in r["cases"].items()
               if e["native"] == PASS and e["dc"] != PASS]
        if not bad:
            continue
        any_case = True
        L.append("### %s (%d)" % (r["module"], len(bad)))
        L.append("")
        # Group cases that have no result of their own into one line.
        missing = [(cid, e) for cid, e in bad if e["dc"] == MISSING
                   and e.get("dc_detail", "").startswith("no result:")]
        own = [(cid, e) for cid, e in bad if (cid, e) not in missing]
        for cid, e in own:
            extra = ""
            if e.get("dc_dvs_messages"):
                extra = " (%s)" % "; ".join(e["dc_dvs_messages"][:2])
            L.append("- `%s`: %s — %s%s" % (short_id(cid), e["dc"], md(e.get("dc_detail", "")),
                                           md(extra)))
        if missing:
            L.append("- %d case(s) with no result: %s" % (
                len(missing), md(missing[0][1]["dc_detail"][len("no result: "):])))
            L.append("  <details><summary>cases</summary>")
            L.append("")
            for cid, _ in missing:
                L.append("  `%s`" % short_id(cid))
            L.append("  </details>")
        L.append("")
    if not any_case:
        L.append("None.")
        L.append("")
    return "\n".join(L), ok, tot_n, tot_d


def short_id(cid):
    return cid[len("test."):] if cid.startswith("test.") else cid


def md(s):
    return str(s).replace("|", "\\|").replace("`", "'").replace("\n", " ")


def stdout_table(results, goal):
    rows = [("module", "cases", "native", "dc", "ratio", "dc run")]
    for r in results:
        c = r["counts"]
        rows.append((r["module"], str(c["cases"]), str(c["native_pass"]),
                     str(c["dc_pass_of_native_pass"]),
                     ratio_str(c["dc_pass_of_native_pass"], c["native_pass"]),
                     r["dc"]["status"][:70]))
    tot_n = sum(r["counts"]["native_pass"] for r in results)
    tot_d = sum(r["counts"]["dc_pass_of_native_pass"] for r in results)
    tot_c = sum(r["counts"]["cases"] for r in results)
    rows.append(("total", str(tot_c), str(tot_n), str(tot_d), ratio_str(tot_d, tot_n),
                 "goal %.0f%%" % (goal * 100)))
    w = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for j, row in enumerate(rows):
        out.append("  ".join(row[i].ljust(w[i]) if i in (0, 5) else row[i].rjust(w[i])
                             for i in range(len(row))).rstrip())
        if j == 0 or j == len(rows) - 2:
            out.append("  ".join("-" * w[i] for i in range(len(row))))
    return "\n".join(out)


# ------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(
        description="Compare CPython's regression tests natively and inside a dvs "
                    "Distributed Container (dvs-exec).")
    ap.add_argument("--dvs-exec", help="dvs-exec binary (default: $DVS_EXEC, else "
                    "$CARGO_TARGET_DIR or the repo's target/{release,debug}/dvs-exec)")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter whose test package is run (default %(default)s)")
    ap.add_argument("--modules", nargs="+", metavar="MODULE",
                    help="test modules (default: %s)" % " ".join(ALL_MODULES))
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds per module, native run (default %(default)s)")
    ap.add_argument("--dc-timeout", type=float, default=None,
                    help="seconds per module in the DC (default: twice --timeout)")
    ap.add_argument("--jobs", "-j", type=int, default=1,
                    help="runs in parallel (default %(default)s)")
    ap.add_argument("--goal", type=float, default=0.95,
                    help="required fraction of native passes that also pass in the DC "
                         "(default %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="only %s, whole run capped at %d s; results go to results-quick/ "
                         "unless --out is given" % (" and ".join(QUICK_MODULES), QUICK_CAP))
    ap.add_argument("--ignore", action="append", metavar="PATTERN",
                    help="skip test cases matching this glob, natively and in the DC "
                    "(repeatable; e.g. '*VSOCK*' where AF_VSOCK hangs natively)")
    ap.add_argument("--out", help="results directory (default: posix-tests/results)")
    ap.add_argument("--install-missing", action="store_true",
                    help="apt-get install CPython's test package if it is missing (root)")
    args = ap.parse_args()

    if args.dc_timeout is None:
        args.dc_timeout = 2 * args.timeout
    deadline = None
    modules = args.modules or ALL_MODULES
    if args.quick:
        if not args.modules:
            modules = QUICK_MODULES
        deadline = time.monotonic() + QUICK_CAP
        args.timeout = min(args.timeout, QUICK_CAP)
        args.dc_timeout = min(args.dc_timeout, QUICK_CAP)
    out_dir = args.out or os.path.join(HERE, "results-quick" if args.quick else "results")
    logs_dir = os.path.join(out_dir, "logs")
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")

    # --- preflight
    if not os.path.exists(args.python):
        log("error: %s not found" % args.python)
        return 2
    version = python_version(args.python)
    if version is None:
        log("error: %s does not run" % args.python)
        return 2
    missing = missing_test_modules(args.python, modules)
    if missing and not missing_test_modules(args.python, ["test_os"]):
        log("error: %s has CPython's test suite but no test module(s) %s" %
            (args.python, " ".join(missing)))
        return 2
    if missing:
        pkg = testsuite_package(version)
        if args.install_missing:
            log("CPython's test modules are missing (%s); installing %s" %
                (" ".join(missing), pkg))
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            rc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                 pkg], env=env).returncode
            if rc != 0:
                subprocess.run(["apt-get", "update", "-q"], env=env)
                subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                pkg], env=env)
            missing = missing_test_modules(args.python, modules)
        if missing:
            log("error: %s has no test module(s) %s: CPython's regression tests are not "
                "installed.\nOn Debian/Ubuntu install them with:\n\n"
                "    apt-get install %s\n\n(or rerun with --install-missing as root)" %
                (args.python, " ".join(missing), pkg))
            return 2
    dvs_exec, tried = find_dvs_exec(args.dvs_exec)
    if dvs_exec is None:
        log("error: dvs-exec not found (tried %s); build it with "
            "`cargo build --release` or pass --dvs-exec" % ", ".join(tried))
        return 2
    args.dvs_exec = dvs_exec
    if not os.path.exists(os.path.join(os.path.dirname(dvs_exec), "libdvs_preload.so")):
        log("warning: no libdvs_preload.so next to %s" % dvs_exec)
    smoke = subprocess.run([dvs_exec, "--", "/bin/true"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
    if smoke.returncode != 0:
        log("error: `%s -- /bin/true` failed (exit status %d):\n%s" %
            (dvs_exec, smoke.returncode, (smoke.stderr or smoke.stdout)[-2000:]))
        return 2

    log("python %s %s, dvs-exec %s, modules: %s, timeouts %ds native / %ds DC, %d job(s)"
        % (args.python, version, dvs_exec, " ".join(modules), args.timeout,
           args.dc_timeout, args.jobs))
    t_start = time.monotonic()
    runs = {}
    lock = threading.Lock()

    def task(mod, mode):
        r = run_module(mod, mode, args, deadline, logs_dir)
        with lock:
            log("  %-16s %-6s %6.1f s  %s" % (mod, mode, r.duration, r.status))
        return mod, mode, r

    jobs = [(m, mode) for m in modules for mode in ("native", "dc")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        for mod, mode, r in ex.map(lambda j: task(*j), jobs):
            runs[(mod, mode)] = r

    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "python": args.python,
        "python_version": version,
        "dvs_exec": dvs_exec,
        "dvs_exec_built": datetime.datetime.fromtimestamp(
            os.path.getmtime(dvs_exec)).strftime("%Y-%m-%d %H:%M"),
        "git": git_describe(),
        "timeout": args.timeout,
        "dc_timeout": args.dc_timeout,
        "jobs": args.jobs,
        "seconds": time.monotonic() - t_start,
    }
    results = []
    os.makedirs(out_dir, exist_ok=True)
    for m in modules:
        res = compare(m, runs[(m, "native")], runs[(m, "dc")])
        res["meta"] = {k: meta[k] for k in ("date", "python_version", "git")}
        results.append(res)
        with open(os.path.join(out_dir, "%s.json" % m), "w") as f:
            json.dump(res, f, indent=1, sort_keys=False)
            f.write("\n")
    text, ok, tot_n, tot_d = summary_markdown(results, meta, args.goal)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(stdout_table(results, args.goal))
    print()
    print("details: %s" % os.path.relpath(os.path.join(out_dir, "summary.md")))
    print("overall: %s of native passes also pass in the DC (goal %.0f%%): %s" % (
        ratio_str(tot_d, tot_n), args.goal * 100, "met" if ok else "NOT met"))
    print("conformance: %d passed, %d failed" % (tot_d, tot_n - tot_d))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
