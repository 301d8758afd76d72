"""Alerts: channels over loopback (webhook, Telegram, SMTP), dedup, throttling, never blocking."""

from __future__ import annotations

import logging
import threading

import pytest

from quantdesk.alerts import (
    Alert,
    Alerter,
    AlertsConfig,
    EmailChannel,
    EmailConfig,
    LogChannel,
    Severity,
    TelegramChannel,
    TelegramConfig,
    WebhookChannel,
    WebhookConfig,
)
from quantdesk.config import parse_config
from quantdesk.engine.journal import Journal
from quantdesk.errors import ConfigError
from tests.risk.receivers import http_receiver, smtp_server

TOKEN = "123456:very-secret-token"


class Recorder:
    """A channel that records what it is given."""

    def __init__(self, name: str = "recorder", min_severity: Severity = Severity.INFO) -> None:
        self.name = name
        self.min_severity = min_severity
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


class Hangs:
    """A channel stuck until released."""

    name = "hangs"
    min_severity = Severity.INFO

    def __init__(self) -> None:
        self.release = threading.Event()

    def send(self, alert: Alert) -> None:
        self.release.wait(30)


class Raises:
    name = "raises"
    min_severity = Severity.INFO

    def send(self, alert: Alert) -> None:
        raise ConnectionError("channel down")


def test_webhook_telegram_and_email_deliver_over_loopback(tmp_path) -> None:
    with http_receiver() as http, smtp_server() as (port, mails):
        config = AlertsConfig(
            webhook=WebhookConfig(url=f"{http.url}/hook", min_severity="warning"),
            telegram=TelegramConfig(chat_id="42", base_url=http.url, min_severity="error"),
            email=EmailConfig(
                host="127.0.0.1",
                port=port,
                sender="qd@localhost",
                to=["ops@localhost"],
                starttls=False,
                min_severity="critical",
            ),
        )
        journal = Journal(tmp_path / "j.sqlite")
        alerter = Alerter.from_config(
            config, journal=journal, env={"QUANTDESK_TELEGRAM_TOKEN": TOKEN}, clock=lambda: 7
        )
        alerter.alert("info", "hello")
        alerter.alert("error", "venue down", payload={"venue": "sandbox"})
        alerter.alert(Severity.CRITICAL, "daily loss limit: halted")
        assert alerter.wait_idle(10)
        alerter.close()
        hooks = http.bodies("/hook")
        assert [h["message"] for h in hooks] == ["venue down", "daily loss limit: halted"]
        assert hooks[0]["severity"] == "error" and hooks[0]["payload"] == {"venue": "sandbox"}
        telegram = http.bodies(f"/bot{TOKEN}/sendMessage")
        assert [t["text"] for t in telegram] == [
            "[ERROR] venue down",
            "[CRITICAL] daily loss limit: halted",
        ]
        assert telegram[0]["chat_id"] == "42"
        assert [m["Subject"] for m in mails] == ["quantdesk [CRITICAL] daily loss limit: halted"]
        assert mails[0]["To"] == "ops@localhost"
        assert list(journal.alerts()["level"]) == ["info", "error", "critical"]
        journal.close()


def test_duplicates_within_the_window_are_suppressed() -> None:
    now = [0]
    rec = Recorder()
    alerter = Alerter([rec], dedup_window_s=60, clock=lambda: now[0])
    assert alerter.alert("warning", "breaker open")
    now[0] = 59_999
    assert not alerter.alert("warning", "breaker open")
    assert alerter.alert("warning", "breaker open", key="other key")
    now[0] = 60_000
    assert alerter.alert("warning", "breaker open")
    alerter.wait_idle()
    assert len(rec.sent) == 3 and alerter.suppressed == 1


def test_throttling_per_channel_spares_critical() -> None:
    rec = Recorder()
    alerter = Alerter([rec], dedup_window_s=0, max_per_minute=3)
    for i in range(5):
        alerter.alert("warning", f"w{i}")
    alerter.alert("critical", "halted")
    alerter.wait_idle()
    assert [a.message for a in rec.sent] == ["w0", "w1", "w2", "halted"]
    assert alerter.stats()["recorder"]["throttled"] == 2


def test_min_severity_per_channel() -> None:
    low, high = Recorder("low"), Recorder("high", Severity.ERROR)
    alerter = Alerter([low, high], dedup_window_s=0)
    alerter.alert("info", "a")
    alerter.alert("error", "b")
    alerter.wait_idle()
    assert [a.message for a in low.sent] == ["a", "b"]
    assert [a.message for a in high.sent] == ["b"]


def test_a_hanging_or_failing_channel_blocks_nobody(caplog) -> None:
    hangs, rec = Hangs(), Recorder()
    alerter = Alerter([hangs, Raises(), rec], dedup_window_s=0, queue_size=2)
    caplog.set_level(logging.WARNING, logger="quantdesk.alerts")
    for i in range(5):  # alert() returns at once although "hangs" never finishes one
        alerter.alert("error", f"e{i}")
        assert alerter.wait_idle(5, channels=["recorder", "raises"])
    assert [a.message for a in rec.sent] == [f"e{i}" for i in range(5)]
    stats = alerter.stats()
    assert stats["raises"]["failed"] == 5
    assert stats["hangs"]["dropped"] >= 2  # its bounded queue overflowed instead of growing
    assert not alerter.wait_idle(0.05, channels=["hangs"])
    hangs.release.set()
    alerter.close()
    assert "channel down" in caplog.text


def test_slow_http_channel_does_not_delay_the_caller() -> None:
    with http_receiver() as http:
        slow = WebhookChannel(WebhookConfig(url=f"{http.url}/hang", timeout_s=5))
        alerter = Alerter([slow], dedup_window_s=0)
        for i in range(20):
            alerter.alert("error", f"e{i}")
        # the caller got control back while the first send is still waiting on the server
        assert not alerter.wait_idle(0.2)
        assert http.bodies("") == []
        http.release.set()
        alerter.close(timeout=0.1)


def test_telegram_failures_never_log_the_token(caplog) -> None:
    with http_receiver() as http:
        channel = TelegramChannel(
            TelegramConfig(chat_id="1", base_url=f"{http.url}/fail"),
            env={"QUANTDESK_TELEGRAM_TOKEN": TOKEN},
        )
        caplog.set_level(logging.DEBUG)
        alerter = Alerter([channel], dedup_window_s=0)
        alerter.alert("error", "x")
        alerter.wait_idle(10)
        alerter.close()
    assert alerter.stats()["telegram"]["failed"] == 1
    assert "500" in caplog.text and TOKEN not in caplog.text
    assert TOKEN not in repr(channel)


def test_email_login_uses_the_password_from_the_environment() -> None:
    channel = EmailChannel(
        EmailConfig(host="h", sender="a@b", to=["c@d"], username="u", password_env="PW"),
        env={"PW": "hunter2"},
    )
    assert channel._password == "hunter2" and "hunter2" not in repr(channel)


def test_telegram_without_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="QUANTDESK_TELEGRAM_TOKEN"):
        TelegramChannel(TelegramConfig(chat_id="1"), env={})


def test_log_channel_logs_at_the_severity(caplog) -> None:
    caplog.set_level(logging.INFO, logger="quantdesk.alert")
    LogChannel().send(Alert(Severity.ERROR, "disk full", "k", 0))
    assert caplog.records[-1].levelno == logging.ERROR
    assert caplog.records[-1].getMessage() == "[ERROR] disk full"


def test_alerts_config_validation_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.webhook\.url"):
        parse_config({"alerts": {"webhook": {"url": "ftp://x"}}})
    with pytest.raises(ConfigError, match=r"alerts\.email\.min_severity"):
        parse_config(
            {
                "alerts": {
                    "email": {"host": "h", "sender": "a@b", "to": ["c"], "min_severity": "loud"}
                }
            }
        )
