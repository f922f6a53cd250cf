#!/usr/bin/env bash
# bench/run.sh: dvs against native and against proot, all in the same run.
#
#   stat_ns, pread4k_ns   bench/c/syscalls.c: ns per stat() / 4 KiB pread()
#   host_ns               the same program: ns per futex wake, a call never served
#   startup_ms            `dvs-exec /bin/true` vs `/bin/true` (embedded node)
#   startup_node_ms       the same with an already running node daemon (info)
#   python_ms             `/usr/bin/python3 -c pass`
#   loop500_ms            `sh -c` loop of 500 fork+exec of /bin/true
#   locale10_ms           `sh -c` running `cat /dev/null` ten times with
#                         LC_ALL=C.UTF-8 (each loads the locale's files, inside
#                         libc: info)
#   static_stat_ns        syscalls.c built static: stat() served through the tracer
#   static_loop500_ms     busybox (static) sh loop of 500 fork+exec of busybox true
#   static_spin_ms        spin.c built static: no redirected call in the timed loop
#
# Usage (from the repository root): bash bench/run.sh
# Environment:
#   DVS_TARGET_DIR      cargo target dir holding release/dvs-exec (default: target/)
#   DVS_BENCH_NO_BUILD  1: do not run cargo build, use the binaries as they are
#   DVS_BENCH_RUNS      timed runs per short command (default 21)
#   DVS_BENCH_LOOP_RUNS timed runs of the 500 fork+exec loop (default 6)
#   DVS_BENCH_ROUNDS    rounds the runs are split into, modes interleaved (default 3)
#   DVS_BENCH_STRICT    1: exit 1 when a goal of the issue is missed
#   DVS_BENCH_NO_HYPERFINE  1: use the built-in median-of-N timer (timecmd.py)
#
# Prints one line per measured command, a table of ratios, one
# machine-readable line per metric ("BENCH <metric> native=... dvs=...") and
# one per goal ("GOAL ... PASS|FAIL"). See bench/README.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
TARGET=${DVS_TARGET_DIR:-$ROOT/target}
RELEASE=$TARGET/release
RUNS=${DVS_BENCH_RUNS:-21}
LOOP_RUNS=${DVS_BENCH_LOOP_RUNS:-6}
ROUNDS=${DVS_BENCH_ROUNDS:-3}
PY=/usr/bin/python3
LOOP='i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done'

# Timeouts (seconds) on every external command.
T_APT=300
T_BUILD=1800
T_SHORT=60    # one syscalls run, the node daemon, cc
T_TIMING=600  # one hyperfine / timecmd.py invocation (all its runs)

# Messages go to fd 9, a copy of the script's stderr: a trap can run while
# a redirected function call (stderr to a file) is in progress.
exec 9>&2
die() { echo "bench/run.sh: error: $*" >&9; exit 1; }
warn() { echo "bench/run.sh: warning: $*" >&9; }
say() { echo "== $*" >&9; }

# Every process started from here carries this variable, so that the exit
# trap can find (by pid) whatever survived, even in its own session.
RUN_ID="$$-$RANDOM$RANDOM"
export DVS_BENCH_RUN_ID=$RUN_ID
# dvs-exec must start its own embedded node (or use ours, explicitly), and
# not log. DVS_SPIN_US / DVS_SPIN_PURE_US are kept (and shown): they are
# tuning knobs worth benchmarking.
unset DVS_SOCKET DVS_LOG
TMP=""
NODE_SOCK=""

leftover_pids() {
    # pids (other than this shell) whose environment carries our RUN_ID
    timeout 20 "$PY" - "$RUN_ID" "$$" <<'EOF'
import os, sys
tag = ("DVS_BENCH_RUN_ID=" + sys.argv[1]).encode()
me = {sys.argv[2], str(os.getpid()), str(os.getppid())}
for p in os.listdir("/proc"):
    if not p.isdigit() or p in me:
        continue
    try:
        env = open(f"/proc/{p}/environ", "rb").read().split(b"\0")
        comm = open(f"/proc/{p}/comm").read().strip()
    except OSError:
        continue
    if tag in env:
        print(p, comm)
EOF
}

cleanup() {
    local rc=$? pid comm
    set +e
    trap - EXIT INT TERM
    if [[ -n $NODE_SOCK && -S $NODE_SOCK ]]; then
        timeout 15 "$RELEASE/dvs" node stop --socket "$NODE_SOCK" >/dev/null 2>&1 ||
            warn "'dvs node stop' failed"
    fi
    # A few passes: a process may fork while the previous pass kills.
    local pass found
    for pass in 1 2 3; do
        found=0
        while read -r pid comm; do
            [[ -n $pid ]] || continue
            found=1
            warn "killing leftover process $pid ($comm)"
            kill -KILL "$pid" 2>/dev/null
            # a killed dvs-exec leaves its embedded node's socket behind
            [[ $comm == dvs-exec ]] && rm -f "/run/dvs/exec-$pid.sock"
        done < <(leftover_pids)
        ((found)) || break
        sleep 0.2
    done
    [[ -n $TMP ]] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench/run.sh: interrupted" >&9; exit 130' INT
trap 'echo "bench/run.sh: terminated" >&9; exit 143' TERM

# Runs a long command in the background and waits for it, so that INT and
# TERM reach the traps at once (bash defers traps until a foreground
# command ends); the exit trap then kills what is left.
run() {
    "$@" &
    wait "$!"
}

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
    else return 1
    fi
}

apt_install() { # PKG: installs a Debian package, returns non-zero on failure
    command -v apt-get >/dev/null || return 1
    export DEBIAN_FRONTEND=noninteractive
    run as_root timeout "$T_APT" apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1 && return 0
    run as_root timeout "$T_APT" apt-get update -qq >/dev/null 2>&1 || return 1
    run as_root timeout "$T_APT" apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------- tools
[[ -x $PY ]] || die "$PY is missing (needed as a workload and for the report)"
command -v cc >/dev/null || die "cc is missing"
command -v timeout >/dev/null || die "timeout (coreutils) is missing"
if ! command -v proot >/dev/null; then
    say "installing proot"
    apt_install proot || die "proot is missing and 'apt-get install proot' failed"
fi
BUSYBOX=/bin/busybox
# `ldd` succeeds only on dynamic executables: the tracer's benchmarks need
# Debian's static busybox.
if [[ ! -x $BUSYBOX ]] || ldd "$BUSYBOX" >/dev/null 2>&1; then
    say "installing busybox-static"
    apt_install busybox-static || die "a static /bin/busybox is missing and 'apt-get install busybox-static' failed"
fi
HYPERFINE=""
if [[ ${DVS_BENCH_NO_HYPERFINE:-0} != 1 ]]; then
    if ! command -v hyperfine >/dev/null; then
        say "installing hyperfine"
        apt_install hyperfine || warn "no hyperfine; using bench/timecmd.py"
    fi
    HYPERFINE=$(command -v hyperfine || true)
fi

# ---------------------------------------------------------------- build
if [[ ${DVS_BENCH_NO_BUILD:-0} != 1 ]]; then
    command -v cargo >/dev/null || die "cargo is missing (or set DVS_BENCH_NO_BUILD=1)"
    say "building dvs-exec and the preload library (release, $TARGET)"
    run env CARGO_TARGET_DIR="$TARGET" timeout "$T_BUILD" \
        cargo build --manifest-path "$ROOT/Cargo.toml" --release -q -p dvs -p preload ||
        die "cargo build failed"
fi
DVS_EXEC=$RELEASE/dvs-exec
for f in "$DVS_EXEC" "$RELEASE/dvs" "$RELEASE/libdvs_preload.so"; do
    [[ -e $f ]] || die "$f is missing (build it, or set DVS_TARGET_DIR)"
done

TMP=$(mktemp -d /tmp/dvs-bench.XXXXXX)
timeout "$T_SHORT" cc -O2 -Wall -Wextra -o "$TMP/syscalls" "$BENCH_DIR/c/syscalls.c" ||
    die "cannot compile bench/c/syscalls.c"
timeout "$T_SHORT" cc -O2 -Wall -Wextra -static -o "$TMP/syscalls-static" "$BENCH_DIR/c/syscalls.c" ||
    die "cannot compile bench/c/syscalls.c statically (libc6-dev provides libc.a)"
timeout "$T_SHORT" cc -O2 -Wall -Wextra -static -o "$TMP/spin" "$BENCH_DIR/c/spin.c" ||
    die "cannot compile bench/c/spin.c statically"
head -c 4096 /dev/urandom >"$TMP/file4k"
RESULTS=$TMP/results
: >"$RESULTS"

# A node daemon of our own, for startup_node_ms only.
NODE_SOCK=$TMP/node.sock
timeout "$T_SHORT" "$RELEASE/dvs" node start --socket "$NODE_SOCK" >/dev/null ||
    die "cannot start a node daemon on $NODE_SOCK"

dvs_mode=(timeout "$T_SHORT" "$DVS_EXEC" --)
proot_mode=(timeout "$T_SHORT" proot)
native_mode=(timeout "$T_SHORT")

git_rev=$(cd "$ROOT" && timeout 10 git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_changes=$(cd "$ROOT" && timeout 10 git status --porcelain --untracked-files=no -- . ':!bench' 2>/dev/null || true)
proot_info=$(timeout 10 proot --version 2>&1 || true)
proot_ver=$(grep -oE '[0-9]+\.[0-9]+\.[0-9]+' <<<"$proot_info" | head -n1 || true)
proot_seccomp=$(grep -oE 'seccomp_filter = (yes|no)' <<<"$proot_info" || true)
timer="timecmd.py (median of N)"
[[ -n $HYPERFINE ]] && timer="hyperfine $("$HYPERFINE" --version | cut -d' ' -f2)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "commit $git_rev${git_changes:+ (+ uncommitted changes)}; $(uname -r); $(nproc) cpus; load $load_before"
say "timer: $timer; proot ${proot_ver:-?} (${proot_seccomp:-seccomp_filter = ?})$(
    )${DVS_SPIN_US:+; DVS_SPIN_US=$DVS_SPIN_US}${DVS_SPIN_PURE_US:+; DVS_SPIN_PURE_US=$DVS_SPIN_PURE_US}"

# ---------------------------------------------------------------- syscalls
# Median of 3 runs of the C program (each one is itself a median of 9
# rounds). Iterations are sized so that proot's slow path stays short.
syscalls_run() { # MODE N [BINARY] -> "stat pread pid host"
    local mode=$1 n=$2 bin=${3:-$TMP/syscalls} out
    local -n pre="${mode}_mode"
    out=$("${pre[@]}" "$bin" "$TMP/file4k" "$n") ||
        die "syscalls under $mode failed: $out"
    local s p pid h
    s=$(sed -n 's/^stat_ns=//p' <<<"$out")
    p=$(sed -n 's/^pread4k_ns=//p' <<<"$out")
    pid=$(sed -n 's/^pid=//p' <<<"$out")
    h=$(sed -n 's/^host_ns=//p' <<<"$out")
    [[ -n $s && -n $p && -n $pid && -n $h ]] || die "syscalls under $mode: unexpected output: $out"
    echo "$s $p $pid $h"
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

say "stat / 4 KiB pread (bench/c/syscalls.c, median of 3 runs)"
for mode in native dvs proot; do
    case $mode in native) n=100000 ;; dvs) n=20000 ;; proot) n=2000 ;; esac
    ss=() ps=() hs=()
    for _ in 1 2 3; do
        res=$(syscalls_run "$mode" "$n")
        read -r s p pid h <<<"$res"
        ss+=("$s") ps+=("$p") hs+=("$h")
        # In a DC the program is PID 2: proof that the preload served it.
        if [[ $mode == dvs && $pid != 2 ]]; then
            die "syscalls under dvs-exec saw pid $pid, not the DC's 2: not running in a DC"
        fi
    done
    s=$(median3 "${ss[@]}") p=$(median3 "${ps[@]}") h=$(median3 "${hs[@]}")
    printf '  %-6s stat %8s ns  pread4k %8s ns  host call %5s ns   (runs: %s / %s / %s)\n' \
        "$mode" "$s" "$p" "$h" "${ss[*]}" "${ps[*]}" "${hs[*]}" >&9
    echo "stat_ns $mode $s" >>"$RESULTS"
    echo "pread4k_ns $mode $p" >>"$RESULTS"
    echo "host_ns $mode $h" >>"$RESULTS"
done

say "static binaries, served by the tracer: stat (syscalls.c -static, median of 3 runs)"
for mode in native dvs proot; do
    case $mode in native) n=100000 ;; dvs) n=5000 ;; proot) n=2000 ;; esac
    ss=()
    for _ in 1 2 3; do
        read -r s p pid _ <<<"$(syscalls_run "$mode" "$n" "$TMP/syscalls-static")"
        ss+=("$s")
        if [[ $mode == dvs && $pid != 2 ]]; then
            die "the static syscalls program saw pid $pid under dvs-exec, not the DC's 2: not traced"
        fi
    done
    s=$(median3 "${ss[@]}")
    printf '  %-6s stat %8s ns   (runs: %s)\n' "$mode" "$s" "${ss[*]}" >&9
    echo "static_stat_ns $mode $s" >>"$RESULTS"
done

say "static binaries: a loop with no redirected call (spin.c -static, median of 3 runs)"
for mode in native dvs proot; do
    vs=()
    for _ in 1 2 3; do
        pre="${mode}_mode[@]"
        out=$("${!pre}" "$TMP/spin") || die "spin under $mode failed: $out"
        v=$(sed -n 's/^spin_ms=//p' <<<"$out")
        [[ -n $v ]] || die "spin under $mode: unexpected output: $out"
        vs+=("$v")
    done
    v=$(median3 "${vs[@]}")
    printf '  %-6s spin %8s ms   (runs: %s)\n' "$mode" "$v" "${vs[*]}" >&9
    echo "static_spin_ms $mode $v" >>"$RESULTS"
done

# ---------------------------------------------------------------- commands
# Each metric is timed in ROUNDS rounds; a round times native, dvs and proot
# one after the other, so that a change of load on the machine hits the
# three alike. The figure is the median over all the runs of all rounds.
run_timer() { # QUOTED_CMD RUNS WARMUP JSON
    local q=$1 runs=$2 warmup=$3 json=$4 err=$TMP/timer.err
    if [[ -n $HYPERFINE ]]; then
        run timeout -k 10 "$T_TIMING" "$HYPERFINE" -N --style none --output null \
            --warmup "$warmup" --runs "$runs" --export-json "$json" "$q" >/dev/null 2>"$err" || {
            cat "$err" >&9
            die "hyperfine failed or timed out on: $q"
        }
    else
        local -a argv
        eval "argv=($q)"
        run timeout -k 10 "$T_TIMING" "$PY" "$BENCH_DIR/timecmd.py" "$runs" "$warmup" "$T_SHORT" "$json" -- "${argv[@]}" ||
            die "timing failed or timed out on: $q"
    fi
}

time_metric() { # METRIC RUNS WARMUP NATIVE_CMD DVS_CMD PROOT_CMD (each quoted with printf %q)
    local metric=$1 runs=$2 warmup=$3
    shift 3
    local -a modes=(native dvs proot) cmds=("$@")
    local per=$(((runs + ROUNDS - 1) / ROUNDS)) r i w
    for ((r = 1; r <= ROUNDS; r++)); do
        w=$warmup
        ((r == 1 || w == 0)) || w=1
        for i in 0 1 2; do
            run_timer "${cmds[i]}" "$per" "$w" "$TMP/$metric-${modes[i]}-$r.json"
        done
    done
    local mode line med min max n
    for mode in "${modes[@]}"; do
        line=$("$PY" - "$TMP/$metric-$mode"-*.json <<'EOF'
import json, statistics, sys
t = [x for f in sys.argv[1:] for x in json.load(open(f))["results"][0]["times"]]
print(f"{statistics.median(t) * 1e3:.2f} {min(t) * 1e3:.2f} {max(t) * 1e3:.2f} {len(t)}")
EOF
        ) || die "cannot read the timings of $metric/$mode"
        read -r med min max n <<<"$line"
        printf '  %-16s %-6s median %9s ms  (min %s, max %s, %s runs)\n' "$metric" "$mode" "$med" "$min" "$max" "$n" >&9
        echo "$metric $mode $med" >>"$RESULTS"
    done
}
q() { printf '%q ' "$@"; }

say "startup: /bin/true ($ROUNDS rounds)"
time_metric startup_ms "$RUNS" 3 "$(q /bin/true)" "$(q "$DVS_EXEC" -- /bin/true)" "$(q proot /bin/true)"
time_metric startup_node_ms "$RUNS" 3 "$(q /bin/true)" \
    "$(q "$DVS_EXEC" --socket "$NODE_SOCK" -- /bin/true)" "$(q proot /bin/true)"

say "python3 -c pass ($ROUNDS rounds)"
time_metric python_ms "$RUNS" 3 "$(q "$PY" -c pass)" "$(q "$DVS_EXEC" -- "$PY" -c pass)" "$(q proot "$PY" -c pass)"

say "sh loop of 500 fork+exec of /bin/true ($ROUNDS rounds)"
time_metric loop500_ms "$LOOP_RUNS" 1 "$(q sh -c "$LOOP")" "$(q "$DVS_EXEC" -- sh -c "$LOOP")" "$(q proot sh -c "$LOOP")"

LOC='for i in 1 2 3 4 5 6 7 8 9 10; do cat /dev/null; done'
say "sh running cat /dev/null ten times in the C.UTF-8 locale ($ROUNDS rounds)"
time_metric locale10_ms "$RUNS" 3 "$(q env LC_ALL=C.UTF-8 sh -c "$LOC")" \
    "$(q env LC_ALL=C.UTF-8 "$DVS_EXEC" -- sh -c "$LOC")" "$(q env LC_ALL=C.UTF-8 proot sh -c "$LOC")"

BLOOP='i=0; while [ $i -lt 500 ]; do /bin/busybox true; i=$((i+1)); done'
say "busybox (static) sh loop of 500 fork+exec of busybox true ($ROUNDS rounds)"
time_metric static_loop500_ms "$LOOP_RUNS" 1 "$(q "$BUSYBOX" sh -c "$BLOOP")" \
    "$(q "$DVS_EXEC" -- "$BUSYBOX" sh -c "$BLOOP")" "$(q proot "$BUSYBOX" sh -c "$BLOOP")"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
missed=0
timeout 20 "$PY" - "$RESULTS" >"$TMP/report" <<'EOF' || missed=$?
import sys
vals = {}
for line in open(sys.argv[1]):
    metric, mode, v = line.split()
    vals.setdefault(metric, {})[mode] = float(v)

order = ["stat_ns", "pread4k_ns", "host_ns", "startup_ms", "startup_node_ms", "python_ms", "loop500_ms",
         "locale10_ms", "static_stat_ns", "static_spin_ms", "static_loop500_ms"]
def fmt(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.2f}" if v < 10 else f"{v:.1f}"

print()
print(f"{'metric':<16} {'native':>10} {'dvs':>10} {'proot':>10} {'dvs/native':>11} {'proot/native':>13} {'proot/dvs':>10}")
for m in order:
    v = vals[m]
    print(f"{m:<16} {fmt(v['native']):>10} {fmt(v['dvs']):>10} {fmt(v['proot']):>10}"
          f" {v['dvs'] / v['native']:>11.2f} {v['proot'] / v['native']:>13.2f} {v['proot'] / v['dvs']:>10.2f}")
print()
for m in order:
    v = vals[m]
    print(f"BENCH {m} native={fmt(v['native'])} dvs={fmt(v['dvs'])} proot={fmt(v['proot'])}"
          f" dvs_native={v['dvs'] / v['native']:.3f} proot_native={v['proot'] / v['native']:.3f}"
          f" proot_dvs={v['proot'] / v['dvs']:.3f}")

# The goals of the issue.
goals = []
for m in ("stat_ns", "pread4k_ns"):
    r = vals[m]["proot"] / vals[m]["dvs"]
    goals.append((f"served-syscalls-3x-proot {m}", r >= 3, f"proot/dvs={r:.2f} (need >= 3)"))
d = vals["startup_ms"]["dvs"] - vals["startup_ms"]["native"]
goals.append(("startup-30ms startup_ms", d <= 30, f"dvs-native=+{d:.1f} ms (need <= +30)"))
for m in ("python_ms", "loop500_ms"):
    v = vals[m]
    r = v["dvs"] / v["native"]
    goals.append((f"workload-1.5x-native {m}", r <= 1.5, f"dvs/native={r:.2f} (need <= 1.5)"))
    goals.append((f"workload-faster-than-proot {m}", v["dvs"] < v["proot"],
                  f"proot/dvs={v['proot'] / v['dvs']:.2f} (need > 1)"))
# Issue 4 (static binaries under the tracer).
r = vals["static_stat_ns"]["proot"] / vals["static_stat_ns"]["dvs"]
goals.append(("tracer-not-slower-than-proot static_stat_ns", r >= 1, f"proot/dvs={r:.2f} (need >= 1)"))
r = vals["static_loop500_ms"]["proot"] / vals["static_loop500_ms"]["dvs"]
goals.append(("tracer-not-slower-than-proot static_loop500_ms", r >= 1, f"proot/dvs={r:.2f} (need >= 1)"))
r = vals["static_spin_ms"]["native"] / vals["static_spin_ms"]["dvs"]
goals.append(("static-no-redirected-0.95x-native static_spin_ms", r >= 0.95,
              f"native/dvs={r:.3f} (need >= 0.95)"))
d = vals["startup_node_ms"]["dvs"] - vals["startup_node_ms"]["native"]
print(f"INFO startup_node_ms dvs-native=+{d:.1f} ms (dvs-exec with a running node daemon)")
failed = 0
for name, ok, detail in goals:
    print(f"GOAL {name} {'PASS' if ok else 'FAIL'} {detail}")
    failed += not ok
print(f"GOALS {len(goals) - failed}/{len(goals)} met")
sys.exit(3 if failed else 0)
EOF
case $missed in 0 | 3) ;; *) die "cannot compute the report" ;; esac
cat "$TMP/report"
echo "INFO load average before: $load_before, after: $load_after ($(nproc) cpus; other load skews every ratio)"
if [[ $missed == 3 && ${DVS_BENCH_STRICT:-0} == 1 ]]; then
    exit 1
fi
exit 0
