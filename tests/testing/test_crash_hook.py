"""The crash hook of the crash tests, and that production code never loads it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from quantdesk.testing.crash import CrashHook


def test_crash_hook_spec() -> None:
    assert CrashHook(None).point is None
    hook = CrashHook("after_send:2")
    assert (hook.point, hook.n) == ("after_send", 2)
    hook.reached("after_send")  # the first occurrence passes
    hook.reached("before_send")  # other points are ignored
    assert hook.seen == 1
    with pytest.raises(ValueError, match="unknown point"):
        CrashHook("somewhere")


def test_the_cli_and_sessions_never_load_the_fault_module() -> None:
    code = (
        "import sys, quantdesk.cli, quantdesk.cli.run, quantdesk.system.live; "
        "print(sorted(m for m in sys.modules if m.startswith('quantdesk.testing')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
