"""`quantdesk dashboard` stops its Voila child with it: SIGTERM is forwarded, and a SIGKILLed
parent takes the child along (PR_SET_PDEATHSIG); the page needs the token; by default it
listens on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO

TOKEN = "test-token-123"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* shows them) with a socket LISTENing on port."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                    found.append(address)
    return found


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited, waiting for a parent that is gone too
            return True
        time.sleep(0.1)
    return False


def _start(tmp_path: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "QUANTDESK_DASHBOARD_TOKEN": TOKEN, "QUANTDESK_DATA": str(tmp_path)}
    command = [
        sys.executable, "-m", "quantdesk.cli", "dashboard", "strategy_explorer",
        "--port", str(port), "--notebooks", str(REPO / "notebooks"),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not _listening(port):
        assert proc.poll() is None and time.monotonic() < deadline, "dashboard did not start"
        time.sleep(0.2)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_voila_child_stops_with_the_parent(sig: signal.Signals, tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        (child,) = _children(proc.pid)
        login = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30)
        assert "/login" in login.url  # no token: the dashboard is not served
        proc.send_signal(sig)  # the parent only, not its process group
        proc.wait(timeout=30)
        assert _gone(child), "the Voila server outlived quantdesk dashboard"
        assert not _listening(port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group (a kernel)
    if sig is signal.SIGTERM:
        assert proc.returncode == 0


def test_session_dashboards_need_a_journal(tmp_path: Path, capsys) -> None:
    from tests.conftest import run_cli

    code, _, err = run_cli(["dashboard", "session", "--notebooks", str(REPO / "notebooks")], capsys)
    assert (
        code == 2
        and err.strip() == "error: dashboard session needs --journal PATH or --journals DIR"
    )
    code, _, err = run_cli(
        ["dashboard", "session", "--notebooks", str(REPO / "notebooks"), "--journal",
         str(tmp_path / "none.sqlite")],
        capsys,
    )  # fmt: skip
    assert code == 2 and "no journal at" in err and err.count("\n") == 1
    assert not (tmp_path / "none.sqlite").exists()


def test_the_dashboard_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    from quantdesk.dashboards.serve import voila_args

    assert "--Voila.ip=127.0.0.1" in voila_args(Path("session.ipynb"), 8866)
    port = _free_port()
    proc = _start(tmp_path, port)  # no --ip
    try:
        assert _listeners(port) == ["0100007F"]  # 127.0.0.1 (IPv4), not 0.0.0.0 nor ::
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
