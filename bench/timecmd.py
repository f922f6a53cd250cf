#!/usr/bin/python3
"""Times one command, median of N runs after W warmups (bench/run.sh's
fallback when hyperfine is not installed).

usage: timecmd.py RUNS WARMUP TIMEOUT_S JSON_OUT -- CMD [ARGS...]

Runs CMD with stdin and stdout on /dev/null (stderr is kept, so errors are
seen), each run under a timeout, and writes a hyperfine-like JSON file:
{"results": [{"command": ..., "median": s, "mean": s, "min": s, "max": s,
"times": [...]}]}. Exits non-zero if any run fails or times out.
"""
import json
import statistics
import subprocess
import sys
import threading
import time


def main() -> int:
    if len(sys.argv) < 7 or sys.argv[5] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    runs, warmup = int(sys.argv[1]), int(sys.argv[2])
    timeout, out = float(sys.argv[3]), sys.argv[4]
    cmd = sys.argv[6:]
    times = []
    for i in range(warmup + runs):
        # A blocking wait, with a timer to kill a run that hangs:
        # subprocess's own timeout polls with growing sleeps (0.5 ms
        # doubling to 50 ms), which rounds every time up to that schedule.
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        p.wait()
        dt = time.perf_counter() - t0
        timer.cancel()
        if dt >= timeout:
            print(f"timecmd: {cmd!r} timed out after {timeout} s",
                  file=sys.stderr)
            return 1
        if p.returncode != 0:
            print(f"timecmd: {cmd!r} exited with {p.returncode}",
                  file=sys.stderr)
            return 1
        if i >= warmup:
            times.append(dt)
    res = {
        "command": " ".join(cmd),
        "median": statistics.median(times),
        "mean": statistics.fmean(times),
        "min": min(times),
        "max": max(times),
        "times": times,
    }
    with open(out, "w") as f:
        json.dump({"results": [res]}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
