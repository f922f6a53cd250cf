#!/usr/bin/env bash
# bench/run.sh: dvs against native and against proot, all in the same run.
#
#   stat_ns, pread4k_ns   bench/c/syscalls.c: ns per stat() / 4 KiB pread()
#   startup_ms            `dvs-exec /bin/true` vs `/bin/true` (embedded node)
#   startup_node_ms       the same with an already running node daemon (info)
#   python_ms             `/usr/bin/python3 -c pass`
#   loop500_ms            `sh -c` loop of 500 fork+exec of /bin/true
#
# Usage (from the repository root): bash bench/run.sh
# Environment:
#   DVS_TARGET_DIR      cargo target dir holding release/dvs-exec (default: target/)
#   DVS_BENCH_NO_BUILD  1: do not run cargo build, use the binaries as they are
#   DVS_BENCH_RUNS      timed runs per short command (default 20)
#   DVS_BENCH_LOOP_RUNS timed runs of the 500 fork+exec loop (default 5)
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
RUNS=${DVS_BENCH_RUNS:-20}
LOOP_RUNS=${DVS_BENCH_LOOP_RUNS:-5}
PY=/usr/bin/python3
LOOP='i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done'

# Timeouts (seconds) on every external command.
T_APT=300
T_BUILD=1800
T_SHORT=30    # one syscalls run, the node daemon, cc
T_TIMING=600  # one hyperfine / timecmd.py invocation (all its runs)

die() { echo "bench/run.sh: error: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

# Every process started from here carries this variable, so that the exit
# trap can find (by pid) whatever survived, even in its own session.
RUN_ID="$$-$RANDOM$RANDOM"
export DVS_BENCH_RUN_ID=$RUN_ID
# dvs-exec must start its own embedded node (or use ours, explicitly).
unset DVS_SOCKET
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
            echo "bench/run.sh: warning: 'dvs node stop' failed" >&2
    fi
    while read -r pid comm; do
        [[ -n $pid ]] || continue
        echo "bench/run.sh: warning: killing leftover process $pid ($comm)" >&2
        kill -KILL "$pid" 2>/dev/null
        [[ $comm == dvs-exec ]] && rm -f "/run/dvs/exec-$pid.sock"
    done < <(leftover_pids)
    [[ -n $TMP ]] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
    else return 1
    fi
}

apt_install() { # PKG: installs a Debian package, returns non-zero on failure
    command -v apt-get >/dev/null || return 1
    export DEBIAN_FRONTEND=noninteractive
    as_root timeout "$T_APT" apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1 && return 0
    as_root timeout "$T_APT" apt-get update -qq >/dev/null 2>&1 || return 1
    as_root timeout "$T_APT" apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------- tools
[[ -x $PY ]] || die "$PY is missing (needed as a workload and for the report)"
command -v cc >/dev/null || die "cc is missing"
command -v timeout >/dev/null || die "timeout (coreutils) is missing"
if ! command -v proot >/dev/null; then
    say "installing proot"
    apt_install proot || die "proot is missing and 'apt-get install proot' failed"
fi
HYPERFINE=""
if [[ ${DVS_BENCH_NO_HYPERFINE:-0} != 1 ]]; then
    if ! command -v hyperfine >/dev/null; then
        say "installing hyperfine"
        apt_install hyperfine || echo "bench/run.sh: warning: no hyperfine; using bench/timecmd.py" >&2
    fi
    HYPERFINE=$(command -v hyperfine || true)
fi

# ---------------------------------------------------------------- build
if [[ ${DVS_BENCH_NO_BUILD:-0} != 1 ]]; then
    command -v cargo >/dev/null || die "cargo is missing (or set DVS_BENCH_NO_BUILD=1)"
    say "building dvs-exec and the preload library (release, $TARGET)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET timeout "$T_BUILD" cargo build --release -q -p dvs -p preload) ||
        die "cargo build failed"
fi
DVS_EXEC=$RELEASE/dvs-exec
for f in "$DVS_EXEC" "$RELEASE/dvs" "$RELEASE/libdvs_preload.so"; do
    [[ -e $f ]] || die "$f is missing (build it, or set DVS_TARGET_DIR)"
done

TMP=$(mktemp -d /tmp/dvs-bench.XXXXXX)
timeout "$T_SHORT" cc -O2 -Wall -Wextra -o "$TMP/syscalls" "$BENCH_DIR/c/syscalls.c" ||
    die "cannot compile bench/c/syscalls.c"
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
git_dirty=$(cd "$ROOT" && timeout 10 git status --porcelain -- . ':!bench' 2>/dev/null | head -c1 | wc -c)
say "commit $git_rev$([[ $git_dirty != 0 ]] && echo ' (+ uncommitted changes)'), $(uname -r), $(nproc) cpus," \
    "timer: ${HYPERFINE:-timecmd.py}$([[ -n $HYPERFINE ]] && echo " $(hyperfine --version | cut -d' ' -f2)"), $(proot --version 2>&1 | grep -om1 'v[0-9.]*' || echo proot)"

# ---------------------------------------------------------------- syscalls
# Median of 3 runs of the C program (each one is itself a median of 9
# rounds). Iterations are sized so that proot's slow path stays short.
syscalls_run() { # MODE N -> "stat pread pid"
    local mode=$1 n=$2 out
    local -n pre="${mode}_mode"
    out=$("${pre[@]}" "$TMP/syscalls" "$TMP/file4k" "$n") ||
        die "syscalls under $mode failed: $out"
    local s p pid
    s=$(sed -n 's/^stat_ns=//p' <<<"$out")
    p=$(sed -n 's/^pread4k_ns=//p' <<<"$out")
    pid=$(sed -n 's/^pid=//p' <<<"$out")
    [[ -n $s && -n $p && -n $pid ]] || die "syscalls under $mode: unexpected output: $out"
    echo "$s $p $pid"
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

say "stat / 4 KiB pread (bench/c/syscalls.c, median of 3 runs)"
for mode in native dvs proot; do
    case $mode in native) n=100000 ;; dvs) n=20000 ;; proot) n=2000 ;; esac
    ss=() ps=()
    for _ in 1 2 3; do
        res=$(syscalls_run "$mode" "$n")
        read -r s p pid <<<"$res"
        ss+=("$s") ps+=("$p")
        # In a DC the program is PID 2: proof that the preload served it.
        if [[ $mode == dvs && $pid != 2 ]]; then
            die "syscalls under dvs-exec saw pid $pid, not the DC's 2: not running in a DC"
        fi
    done
    s=$(median3 "${ss[@]}") p=$(median3 "${ps[@]}")
    printf '  %-6s stat %8s ns  pread4k %8s ns   (runs: %s / %s)\n' "$mode" "$s" "$p" "${ss[*]}" "${ps[*]}" >&2
    echo "stat_ns $mode $s" >>"$RESULTS"
    echo "pread4k_ns $mode $p" >>"$RESULTS"
done

# ---------------------------------------------------------------- commands
time_cmd() { # METRIC MODE RUNS WARMUP CMD... : median wall time in ms
    local metric=$1 mode=$2 runs=$3 warmup=$4
    shift 4
    local json=$TMP/$metric-$mode.json
    if [[ -n $HYPERFINE ]]; then
        local quoted
        quoted=$(printf '%q ' "$@")
        timeout -k 10 "$T_TIMING" "$HYPERFINE" -N --style none --output null \
            --warmup "$warmup" --runs "$runs" --export-json "$json" "$quoted" >/dev/null ||
            die "$metric/$mode: hyperfine failed or timed out on: $*"
    else
        timeout -k 10 "$T_TIMING" "$PY" "$BENCH_DIR/timecmd.py" "$runs" "$warmup" "$T_SHORT" "$json" -- "$@" ||
            die "$metric/$mode: timing failed or timed out on: $*"
    fi
    local line
    line=$("$PY" - "$json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"{r['median'] * 1e3:.2f} {r['min'] * 1e3:.2f} {r['max'] * 1e3:.2f} {len(r['times'])}")
EOF
    ) || die "cannot read $json"
    local med min max n
    read -r med min max n <<<"$line"
    printf '  %-16s %-6s median %9s ms  (min %s, max %s, %s runs)\n' "$metric" "$mode" "$med" "$min" "$max" "$n" >&2
    echo "$metric $mode $med" >>"$RESULTS"
}

say "startup: /bin/true"
time_cmd startup_ms native "$RUNS" 3 /bin/true
time_cmd startup_ms dvs "$RUNS" 3 "$DVS_EXEC" -- /bin/true
time_cmd startup_ms proot "$RUNS" 3 proot /bin/true
time_cmd startup_node_ms native "$RUNS" 3 /bin/true
time_cmd startup_node_ms dvs "$RUNS" 3 "$DVS_EXEC" --socket "$NODE_SOCK" -- /bin/true
time_cmd startup_node_ms proot "$RUNS" 3 proot /bin/true

say "python3 -c pass"
time_cmd python_ms native "$RUNS" 3 "$PY" -c pass
time_cmd python_ms dvs "$RUNS" 3 "$DVS_EXEC" -- "$PY" -c pass
time_cmd python_ms proot "$RUNS" 3 proot "$PY" -c pass

say "sh loop of 500 fork+exec of /bin/true"
time_cmd loop500_ms native "$LOOP_RUNS" 1 sh -c "$LOOP"
time_cmd loop500_ms dvs "$LOOP_RUNS" 1 "$DVS_EXEC" -- sh -c "$LOOP"
time_cmd loop500_ms proot "$LOOP_RUNS" 1 proot sh -c "$LOOP"

# ---------------------------------------------------------------- report
missed=0
timeout 20 "$PY" - "$RESULTS" >"$TMP/report" <<'EOF' || missed=$?
import sys
vals = {}
for line in open(sys.argv[1]):
    metric, mode, v = line.split()
    vals.setdefault(metric, {})[mode] = float(v)

order = ["stat_ns", "pread4k_ns", "startup_ms", "startup_node_ms", "python_ms", "loop500_ms"]
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
if [[ $missed == 3 && ${DVS_BENCH_STRICT:-0} == 1 ]]; then
    exit 1
fi
exit 0
