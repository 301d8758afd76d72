"""Issue 19: a second `quantdesk run` on a journal refuses in one line; a killed run frees it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from quantdesk.cli.runlock import JournalInUseError, lock_path, session_lock
from tests.conftest import run_cli
from tests.sandbox.conftest import Admin
from tests.sessions import MINUTE, start, starts, write_config

BTC = "BTC/USDT"


def run_args(config: Path, journal: Path) -> list[str]:
    """`quantdesk run` on the sandbox venue; everything before the lock passes validation."""
    return [
        "--config", str(config), "run", "--strategy", "sma_cross", "--symbols", BTC,
        "--param", "fast=2", "--param", "slow=3", "--mode", "live", "--venue", "sandbox",
        "--journal", str(journal), "--registry", str(config.parent / "promoted.toml"),
    ]  # fmt: skip


def hold_in_child(journal: Path) -> subprocess.Popen:
    """A process holding the journal's run lock until it is killed."""
    script = textwrap.dedent(
        f"""
        import time
        from quantdesk.cli.runlock import session_lock
        with session_lock({str(journal)!r}):
            print("held", flush=True)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_refuses_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    journal = tmp_path / "live.sqlite"
    holder = hold_in_child(journal)
    try:
        code, out, err = run_cli(run_args(config, journal), capsys)
        assert code == 2, (out, err)
        assert err.strip() == (
            f"error: journal {journal} is in use by another quantdesk run (pid {holder.pid}): "
            "stop it first, or pass another --journal"
        )
        # only the announcement of what it was about to do; no session line, no journal
        assert len(out.splitlines()) == 1 and out.startswith("live run of") and not journal.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # SIGKILL left the lock file but not the lock: the next session gets it at once.
    assert lock_path(journal).exists()
    started = time.monotonic()
    with session_lock(journal):
        assert time.monotonic() - started < 1
        with (
            pytest.raises(JournalInUseError, match=r"in use by another quantdesk run \(pid"),
            session_lock(journal),
        ):
            pass


@pytest.mark.slow
def test_two_real_runs_on_one_journal(
    crash_url: str,
    crash_admin: Admin,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A live session against the sandbox holds the journal; once SIGKILLed, a restart resumes."""
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    until = crash_admin("GET", "clock")["time"] + 60 * MINUTE
    first = start(config, journal, until, None)
    try:
        deadline = time.monotonic() + 120
        while starts(journal) == 0:
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
            time.sleep(0.05)
        code, _, err = run_cli(run_args(config, journal), capsys)
        assert code == 2 and err.count("\n") == 1
        assert f"journal {journal} is in use by another quantdesk run (pid {first.pid})" in err
    finally:
        first.kill()
        first.wait()
    second = start(config, journal, until, None)
    try:
        deadline = time.monotonic() + 120
        while starts(journal) < 2:
            assert second.poll() is None and time.monotonic() < deadline, second.stdout.read()
            time.sleep(0.05)
    finally:
        second.kill()
        second.wait()
