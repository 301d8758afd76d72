"""Every session builds its alerter from [alerts]: the configured channels get the kill alert."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.engine.test_crash import (  # noqa: F401
    MINUTE,
    crash_admin,
    crash_url,
    start,
    starts,
    steps,
    write_config,
)
from tests.engine.test_live_safety import _cli, _wait
from tests.risk.receivers import http_receiver
from tests.sandbox.conftest import Admin


def test_a_live_session_sends_the_kill_alert_to_the_configured_webhook(
    crash_url: str,  # noqa: F811
    crash_admin: Admin,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    with http_receiver() as http:
        with config.open("a") as handle:
            handle.write(f'\n[alerts.webhook]\nurl = "{http.url}/hook"\nmin_severity = "warning"\n')
        until = crash_admin("GET", "clock")["time"] + 600 * MINUTE
        proc = start(config, journal, until, None)
        try:
            _wait(lambda: starts(journal) == 1, proc, "the start")
            _cli("--config", str(config), "kill", "--journal", str(journal), "--reason", "drill")
            deadline = time.monotonic() + 120
            while not any("kill switch: drill" in b["message"] for b in http.bodies("/hook")):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "no kill alert reached the webhook"
                seen = steps(journal)
                crash_admin.advance(1)  # the session polls commands between bars
                _wait(lambda seen=seen: steps(journal) > seen, proc, "a bar")
        finally:
            proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    hook = next(b for b in http.bodies("/hook") if "kill switch: drill" in b["message"])
    assert "critical" in str(hook).lower()
    assert "CRITICAL: kill: kill switch: drill" in out  # and on the console
