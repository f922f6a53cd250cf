#!/usr/bin/env bash
# bench/inet.sh: INET sockets in a DC against the same programs run
# natively, in the same run (modes interleaved).
#
#   http_rps      requests/s that `wrk` (on the host, 1 thread, 8
#                 connections, 5 s) gets from `python3 -m http.server`
#                 serving a 1 KiB file; the server runs natively / in a DC
#   bulk_mib_s    bench/c/tcpbulk.c: a receiver (natively / in a DC) reads
#                 512 MiB that a host sender writes over loopback
#
# Usage (from the repository root): bash bench/inet.sh
# Environment:
#   DVS_TARGET_DIR      cargo target dir holding release/dvs-exec (default: target/)
#   DVS_BENCH_NO_BUILD  1: do not run cargo build
#   DVS_BENCH_ROUNDS    rounds per measurement (default 3)
#
# Prints one line per run, then "BENCH <metric> native=... dvs=... ratio=..."
# and "GOAL ... PASS|FAIL" lines (issue 6: HTTP >= 0.5, bulk >= 0.7 of native).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
TARGET=${DVS_TARGET_DIR:-$ROOT/target}
DVS_EXEC=$TARGET/release/dvs-exec
ROUNDS=${DVS_BENCH_ROUNDS:-3}
PY=/usr/bin/python3

# (Measurements run in subshells: a failing one stops its own server.)
die() {
    echo "bench/inet.sh: error: $*" >&2
    [[ -n ${SERVER:-} ]] && kill -KILL "$SERVER" 2>/dev/null
    exit 1
}
say() { echo "== $*" >&2; }

TMP=$(mktemp -d /tmp/dvs-inet-bench.XXXXXX)
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

unset DVS_SOCKET DVS_LOG

if ! command -v wrk >/dev/null; then
    say "installing wrk"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } \
        >/dev/null 2>&1 || die "wrk is missing and 'apt-get install wrk' failed"
fi
if [[ ${DVS_BENCH_NO_BUILD:-0} != 1 ]]; then
    say "building dvs-exec (release, $TARGET)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q) || die "cargo build failed"
fi
[[ -x $DVS_EXEC ]] || die "$DVS_EXEC is not built"
cc -O2 -o "$TMP/tcpbulk" "$BENCH_DIR/c/tcpbulk.c" || die "cannot compile tcpbulk.c"

mkdir -p "$TMP/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/index.html"

# Starts "$@" in the background with its stdout in $TMP/out; sets PORT to
# the last number of its first line.
start_server() {
    : >"$TMP/out"
    "$@" >"$TMP/out" 2>/dev/null &
    PIDS+=("$!")
    SERVER=$!
    PORT=""
    for _ in $(seq 200); do
        PORT=$(head -n1 "$TMP/out" | grep -oE '[0-9]+' | tail -n1 || true)
        [[ -n $PORT ]] && return 0
        sleep 0.05
    done
    die "server did not start: $*"
}

stop_server() {
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
}

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

http_rps() {
    local mode=$1 rps
    if [[ $mode == dvs ]]; then
        start_server "$DVS_EXEC" -- "$PY" -u -m http.server 0 --bind 127.0.0.1 -d "$TMP/www"
    else
        start_server "$PY" -u -m http.server 0 --bind 127.0.0.1 -d "$TMP/www"
    fi
    rps=$(timeout 60 wrk -t1 -c8 -d5s "http://127.0.0.1:$PORT/index.html" |
        awk '/Requests\/sec/ {print $2}')
    stop_server
    [[ -n $rps ]] || die "wrk got no result ($mode)"
    echo "$rps"
}

bulk_mib_s() {
    local mode=$1 rate
    if [[ $mode == dvs ]]; then
        start_server "$DVS_EXEC" -- "$TMP/tcpbulk" -l 512
    else
        start_server "$TMP/tcpbulk" -l 512
    fi
    timeout 120 "$TMP/tcpbulk" -c "$PORT" 512 || die "tcpbulk sender failed ($mode)"
    wait "$SERVER" || die "tcpbulk receiver failed ($mode)"
    rate=$(awk '/tcpbulk_mib_s/ {print $2}' "$TMP/out")
    [[ -n $rate ]] || die "tcpbulk printed no rate ($mode)"
    echo "$rate"
}

declare -A R
for metric in http_rps bulk_mib_s; do
    say "$metric ($ROUNDS rounds, native and dvs interleaved)"
    for mode in native dvs; do R[$metric.$mode]=""; done
    for _ in $(seq "$ROUNDS"); do
        for mode in native dvs; do
            v=$($metric "$mode")
            echo "  $metric $mode $v" >&2
            R[$metric.$mode]+="$v"$'\n'
        done
    done
done

load=$(cut -d' ' -f1-3 /proc/loadavg)
for spec in "http_rps 0.5" "bulk_mib_s 0.7"; do
    read -r metric goal <<<"$spec"
    n=$(printf '%s' "${R[$metric.native]}" | median)
    d=$(printf '%s' "${R[$metric.dvs]}" | median)
    ratio=$(awk -v d="$d" -v n="$n" 'BEGIN {printf "%.2f", d / n}')
    echo "BENCH $metric native=$n dvs=$d ratio=$ratio"
    if awk -v r="$ratio" -v g="$goal" 'BEGIN {exit !(r >= g)}'; then
        echo "GOAL inet-${metric} PASS dvs/native=$ratio (need >= $goal)"
    else
        echo "GOAL inet-${metric} FAIL dvs/native=$ratio (need >= $goal)"
    fi
done
echo "INFO load average: $load (2 cpus here; other load skews every ratio)"
exit 0
