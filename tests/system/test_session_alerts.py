"""Every session builds its alerter from [alerts]: each configured channel (webhook, Telegram,
e-mail, all on loopback receivers) gets the limit, breaker and kill alerts of a live session."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.risk.receivers import HttpReceiver, http_receiver, smtp_server
from tests.sandbox.conftest import Admin
from tests.sessions import MINUTE, cli, start, starts, steps, wait, write_config

TOKEN = "123456:session-bot-token"


def _channels(http: HttpReceiver, mails: list) -> dict[str, Callable[[], list[str]]]:
    """What each channel has received so far, as message texts."""
    return {
        "webhook": lambda: [b["message"] for b in http.bodies("/hook")],
        "telegram": lambda: [b["text"] for b in http.bodies(f"/bot{TOKEN}/sendMessage")],
        "email": lambda: [m.get_payload(decode=True).decode() for m in mails],
    }


def test_every_configured_channel_gets_the_limit_breaker_and_kill_alerts(
    crash_url: str,
    crash_admin: Admin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    monkeypatch.setenv("QUANTDESK_TELEGRAM_TOKEN", TOKEN)  # the session's env is ours plus keys
    with http_receiver() as http, smtp_server() as (port, mails):
        with config.open("a") as handle:
            handle.write(
                # any loss trips the daily limit: the first fill's fee does
                "\n[risk]\ndaily_loss_limit = 0.000001\nbreaker_failures = 2\n"
                "breaker_cooldown_s = 0.5\n"
                '\n[alerts]\nlog_min_severity = "warning"\n'
                f'[alerts.webhook]\nurl = "{http.url}/hook"\nmin_severity = "warning"\n'
                f'[alerts.telegram]\nchat_id = "42"\nbase_url = "{http.url}"\n'
                'min_severity = "warning"\n'
                f'[alerts.email]\nhost = "127.0.0.1"\nport = {port}\nstarttls = false\n'
                'sender = "qd@localhost"\nto = ["desk@localhost"]\nmin_severity = "warning"\n'
            )
        channels = _channels(http, mails)
        until = crash_admin("GET", "clock")["time"] + 600 * MINUTE
        proc = start(config, journal, until, None)

        def everywhere(text: str) -> bool:
            return all(any(text in m for m in got()) for got in channels.values())

        def trade_until(text: str, what: str) -> None:
            """Advance bar by bar (the session acts between bars) until every channel has it."""
            deadline = time.monotonic() + 120
            while not everywhere(text):
                missing = [n for n, got in channels.items() if not any(text in m for m in got())]
                assert time.monotonic() < deadline, f"no {what} alert on {missing}"
                seen = steps(journal)
                crash_admin.advance(1)
                wait(lambda seen=seen: steps(journal) > seen, proc, "a bar")

        try:
            wait(lambda: starts(journal) == 1, proc, "the start")
            # 1. a limit: the strategy trades, the fee is a loss past the daily limit: halted
            trade_until("reached the 0.00% limit", "daily-loss limit")
            # 2. the breaker: every request fails (503) until it opens, then the venue is back
            crash_admin.faults(error_rate=1.0)
            deadline = time.monotonic() + 60
            while not everywhere("circuit breaker for sandbox: closed -> open"):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "no breaker alert"
                time.sleep(0.1)
            crash_admin.faults(error_rate=0.0)
            # 3. the operator's kill
            cli("--config", str(config), "kill", "--journal", str(journal), "--reason", "drill")
            trade_until("kill switch: drill", "kill")
        finally:
            proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    for name, got in channels.items():
        texts = got()
        for wanted in ("daily loss", "circuit breaker for sandbox", "kill switch: drill"):
            assert any(wanted in t for t in texts), (name, wanted, texts)
    hook = next(b for b in http.bodies("/hook") if "kill switch: drill" in b["message"])
    assert "critical" in str(hook).lower()
    assert "CRITICAL: kill: kill switch: drill" in out  # and on the console
    assert TOKEN not in out  # the bot token is part of Telegram's URL: never printed
