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
