"""CLI start-up: wall time from process start to the first line of output, per command.

Each command runs in a fresh interpreter (`python -m quantdesk.cli`-equivalent through the
console script's entry point), best of `BENCH_STARTS` (default 5). Issue 20's goal: help and
version under 1 s, any command's first line under 3 s on warm caches.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTS = int(os.environ.get("BENCH_STARTS", "5"))
ENTRY = "import sys; from quantdesk.cli import main; sys.exit(main(sys.argv[1:]))"
COMMANDS = (
    ["--version"],
    ["--help"],
    ["backtest", "--help"],
    ["data", "list"],
    ["data", "synth", "--days", "30", "--timeframes", "1h"],  # pandas, pyarrow
    ["backtest", "--strategy", "sma_cross", "--symbols", "BTC/USDT", "--timeframe", "1h"],
)  # in this order: the backtest reads what synth wrote


def first_line_s(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first output line, seconds to exit) of one fresh process."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    first = time.perf_counter() - began
    proc.stdout.read()
    code = proc.wait()
    if code != 0:
        raise RuntimeError(f"quantdesk {' '.join(argv)} exited {code}")
    return first, time.perf_counter() - began


def main() -> None:
    """Print the start-up table."""
    load = os.getloadavg()[0]
    print(
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}, load avg {load:.1f}, best of {STARTS}\n"
    )
    print("| command | first line | exit |")
    print("|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QUANTDESK_DATA": str(Path(tmp) / "data")}
        for argv in COMMANDS:
            runs = [first_line_s(argv, env) for _ in range(STARTS)]
            first = min(r[0] for r in runs)
            done = min(r[1] for r in runs)
            print(f"| `quantdesk {' '.join(argv)}` | {first:.2f} s | {done:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
