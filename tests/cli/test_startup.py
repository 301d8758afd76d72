"""The CLI starts fast: help and version import none of the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pandas", "numpy", "ccxt", "sqlalchemy", "vectorbt", "optuna", "pyarrow", "scipy")
PROBE = """
import sys
from quantdesk.cli import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "CODE=" + str(code), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["data", "--help"], ["run", "--help"], ["kill", "--help"]],
)
def test_help_and_version_import_no_heavy_library(argv: list[str]) -> None:
    """Seconds of pandas/ccxt/SQLAlchemy imports are paid only by commands that use them."""
    probe = PROBE.format(argv=argv, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    report = done.stderr.strip().splitlines()[-1]
    assert report == "HEAVY= CODE=0", done.stderr
    assert done.stdout.strip(), "the command printed nothing"


FIRST_LINE_PROBE = """
import io, sys
seen = []
class Spy(io.TextIOWrapper):
    def write(self, text):
        if not seen and text.strip():
            seen.append(sorted(m for m in {heavy!r} if m in sys.modules))
        return super().write(text)
sys.stdout = Spy(sys.stdout.detach(), encoding="utf-8", line_buffering=True)
from quantdesk.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("SEEN=" + repr(seen), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["backtest", "--strategy", "sma_cross", "--symbols", "BTC/USDT", "--timeframe", "1h"],
        ["replay", "--strategy", "sma_cross", "--symbols", "BTC/USDT", "--timeframe", "1h"],
        ["select", "--universe", "BTC/USDT,ETH/USDT"],
    ],
)
def test_slow_commands_say_what_they_do_before_the_heavy_imports(argv: list[str], tmp_path) -> None:
    """The first line of a slow command comes before pandas/vectorbt load (issue 20, item 9)."""
    probe = FIRST_LINE_PROBE.format(argv=argv, heavy=HEAVY)
    env = {**__import__("os").environ, "QUANTDESK_DATA": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    report = [line for line in done.stderr.splitlines() if line.startswith("SEEN=")]
    assert report == ["SEEN=[[]]"], done.stderr
    assert done.stdout.splitlines()[0].startswith(argv[0]), done.stdout
