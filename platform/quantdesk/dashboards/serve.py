"""Serving dashboards: Voila as a child process that lives and dies with `quantdesk dashboard`.

The parent forwards SIGTERM/SIGINT/SIGHUP to the child and waits for it; the child also asks
the kernel (prctl PR_SET_PDEATHSIG) for a SIGTERM when the parent dies without a chance to
forward anything (SIGKILL), so no Voila server is ever left listening on its own.

Run as `python -m quantdesk.dashboards.serve VOILA-ARGS...` it is that child: it takes the
access token from the environment (never from the command line, which `ps` shows to every
user) and starts Voila with it.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

TOKEN_ENV = "QUANTDESK_DASHBOARD_TOKEN"
PARENT_ENV = "QUANTDESK_DASHBOARD_PARENT"
_PR_SET_PDEATHSIG = 1
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def new_token() -> str:
    """A random URL-safe access token."""
    return secrets.token_urlsafe(24)


def voila_args(target: Path, port: int, ip: str = "127.0.0.1") -> list[str]:
    """Voila's arguments for one notebook (or a folder of them) on ip:port."""
    return [
        str(target), f"--port={port}", "--no-browser", f"--Voila.ip={ip}",
        "--Voila.port_retries=0", "--show_tracebacks=False",
    ]  # fmt: skip


def run_child(args: Sequence[str], env: Mapping[str, str], grace_s: float = 15.0) -> int:
    """Run Voila as a child with `args`; signals to this process stop it, and we wait for it."""
    child_env = {**env, PARENT_ENV: str(os.getpid())}
    command = [sys.executable, "-m", "quantdesk.dashboards.serve", *args]
    proc = subprocess.Popen(command, env=child_env)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in _FORWARDED}
    try:
        while True:
            try:
                code = proc.wait(timeout=grace_s if received else None)
                break
            except subprocess.TimeoutExpired:
                proc.kill()  # a stop was asked for and the server did not go in time
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if received else code


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the parent dies; exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the parent's signal forwarding still covers SIGTERM
    if os.getppid() != parent:  # it died before prctl took effect
        sys.exit(0)


def main(argv: Sequence[str] | None = None) -> None:
    """The child: start Voila with the token taken out of the environment."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is not None:
        _die_with_parent(int(parent))
    token = os.environ.pop(TOKEN_ENV, "")  # kernels inherit the env: keep the token out of it
    from voila.app import Voila

    Voila.launch_instance(argv=list(argv if argv is not None else sys.argv[1:]), token=token)


if __name__ == "__main__":
    main()
