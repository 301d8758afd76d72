"""Alerts to people: log, Telegram, e-mail and webhook channels, de-duplicated and throttled.

`Alerter.alert()` is what trading code calls: it journals the alert and hands it to each
channel's own worker thread through a bounded queue, then returns. Sending never happens on the
trading path, so a channel that fails, hangs or is slow delays nobody (not even the other
channels); when a channel's queue is full the alert is dropped for that channel and logged.
Secrets (bot token, SMTP password) come from environment variables and never reach a log line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import smtplib
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import IntEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantdesk.errors import ConfigError

log = logging.getLogger(__name__)


class Severity(IntEnum):
    """How bad it is; channels send alerts at or above their minimum."""

    # The logging module's numbers, so the log channel logs at the same level.
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """From a name like "warning" (case-insensitive)."""
        return value if isinstance(value, Severity) else cls[str(value).upper()]


SeverityName = str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _severity_name(value: str) -> str:
    if value.upper() not in Severity.__members__:
        known = ", ".join(s.lower() for s in Severity.__members__)
        raise ValueError(f"{value!r} is not one of {known}")
    return value.lower()


class _ChannelConfig(_Model):
    min_severity: SeverityName = "warning"

    @field_validator("min_severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        return _severity_name(value)


class TelegramConfig(_ChannelConfig):
    """Telegram Bot API sendMessage."""

    chat_id: str = Field(min_length=1)
    token_env: str = "QUANTDESK_TELEGRAM_TOKEN"
    base_url: str = "https://api.telegram.org"


class EmailConfig(_ChannelConfig):
    """SMTP e-mail."""

    host: str = Field(min_length=1)
    port: int = Field(587, gt=0, lt=65536)
    sender: str = Field(min_length=3)
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password_env: str | None = "QUANTDESK_SMTP_PASSWORD"
    starttls: bool = True
    timeout_s: float = Field(10.0, gt=0)


class WebhookConfig(_ChannelConfig):
    """JSON POST to a URL (Slack-, Discord- or anything-compatible receiver)."""

    url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(10.0, gt=0)


class AlertsConfig(_Model):
    """`[alerts]`: channels (log is always on) plus de-duplication and throttling."""

    log_min_severity: SeverityName = "info"
    dedup_window_s: float = Field(300.0, ge=0, description="same key within it: suppressed")

    max_per_minute: int = Field(20, ge=1, description="per channel")
    queue_size: int = Field(1000, ge=1)
    telegram: TelegramConfig | None = None
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None

    @field_validator("log_min_severity")
    @classmethod
    def _log_severity(cls, value: str) -> str:
        # An unknown name used to pass here and raise KeyError once a session started.
        return _severity_name(value)


@dataclass(frozen=True)
class Alert:
    """One message for people."""

    severity: Severity
    message: str
    key: str  # what de-duplication compares (defaults to the message)
    ts: int  # ms UTC
    payload: Mapping[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """One-line rendering for chat and mail subjects."""
        return f"[{self.severity.name}] {self.message}"


class Channel(Protocol):
    """Something that delivers an alert (blocking is fine: it runs on its own thread)."""

    name: str
    min_severity: Severity

    def send(self, alert: Alert) -> None:
        """Deliver one alert or raise."""
        ...


class LogChannel:
    """Python logging."""

    def __init__(self, min_severity: Severity = Severity.INFO, logger: str = "quantdesk.alert"):
        self.name = "log"
        self.min_severity = min_severity
        self._log = logging.getLogger(logger)

    def send(self, alert: Alert) -> None:
        """Log at the matching level."""
        self._log.log(alert.severity.value, "%s", alert.text())


def _post_json(url: str, body: Mapping[str, Any], timeout: float) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


class WebhookChannel:
    """POST {"severity", "message", "key", "ts", "payload"} as JSON."""

    def __init__(self, config: WebhookConfig) -> None:
        self.name = "webhook"
        self.min_severity = Severity.parse(config.min_severity)
        self.config = config

    def send(self, alert: Alert) -> None:
        """POST the alert."""
        body = {
            "severity": alert.severity.name.lower(),
            "message": alert.message,
            "key": alert.key,
            "ts": alert.ts,
            "payload": dict(alert.payload),
        }
        _post_json(self.config.url, body, self.config.timeout_s)


class TelegramChannel:
    """Bot API sendMessage; the token (part of the URL) is read from the environment."""

    def __init__(self, config: TelegramConfig, env: Mapping[str, str] | None = None) -> None:
        self.name = "telegram"
        self.min_severity = Severity.parse(config.min_severity)
        self.config = config
        token = (os.environ if env is None else env).get(config.token_env, "")
        if not token:
            raise ConfigError(f"alerts.telegram: environment variable {config.token_env} is unset")
        self._token = token

    def send(self, alert: Alert) -> None:
        """POST sendMessage; errors are re-raised with the token masked."""
        url = f"{self.config.base_url.rstrip('/')}/bot{self._token}/sendMessage"
        try:
            _post_json(url, {"chat_id": self.config.chat_id, "text": alert.text()}, 10.0)
        except Exception as exc:
            raise RuntimeError(str(exc).replace(self._token, "***")) from None

    def __repr__(self) -> str:
        return f"TelegramChannel(chat_id={self.config.chat_id!r}, token=***)"


class EmailChannel:
    """SMTP via smtplib (STARTTLS and login when configured)."""

    def __init__(self, config: EmailConfig, env: Mapping[str, str] | None = None) -> None:
        self.name = "email"
        self.min_severity = Severity.parse(config.min_severity)
        self.config = config
        env = os.environ if env is None else env
        self._password = env.get(config.password_env or "", "") if config.username else ""

    def send(self, alert: Alert) -> None:
        """Send one mail."""
        c = self.config
        msg = EmailMessage()
        msg["Subject"] = f"quantdesk {alert.text()}"[:200]
        msg["From"] = c.sender
        msg["To"] = ", ".join(c.to)
        msg.set_content(
            f"{alert.message}\n\n{json.dumps(dict(alert.payload), default=str, indent=2)}"
        )
        with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
            if c.starttls:
                smtp.starttls()
            if c.username:
                smtp.login(c.username, self._password)
            smtp.send_message(msg)

    def __repr__(self) -> str:
        return f"EmailChannel(host={self.config.host!r}, password=***)"


class _Worker:
    """One channel's thread and queue, with its own throttle."""

    def __init__(self, channel: Channel, queue_size: int, max_per_minute: int) -> None:
        self.channel = channel
        self.queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self.max_per_minute = max_per_minute
        self.sent: deque[float] = deque()
        self.delivered = 0
        self.failed = 0
        self.throttled = 0
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, name=f"alerts-{channel.name}", daemon=True)
        self.thread.start()

    def offer(self, alert: Alert) -> None:
        if alert.severity < self.channel.min_severity:
            return
        try:
            self.queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            log.warning("alert channel %s: queue full, alert dropped", self.channel.name)

    def _run(self) -> None:
        while True:
            alert = self.queue.get()
            try:
                if alert is None:
                    return
                self._deliver(alert)
            finally:
                self.queue.task_done()

    def _deliver(self, alert: Alert) -> None:
        now = time.monotonic()
        while self.sent and now - self.sent[0] >= 60:
            self.sent.popleft()
        # Critical alerts are never throttled: they are the ones someone must see.
        if len(self.sent) >= self.max_per_minute and alert.severity < Severity.CRITICAL:
            self.throttled += 1
            return
        self.sent.append(now)
        try:
            self.channel.send(alert)
            self.delivered += 1
        except Exception as exc:
            self.failed += 1
            # Channels mask their own secrets; only the exception type and text are logged.
            log.warning(
                "alert channel %s failed: %s: %s", self.channel.name, type(exc).__name__, exc
            )

    def idle(self) -> bool:
        return self.queue.unfinished_tasks == 0


class AlertJournal(Protocol):
    """Where alerts are recorded (quantdesk.engine.journal.Journal implements it)."""

    def record_alert(
        self, level: str, message: str, timestamp: int, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Append an alert."""
        ...


class Alerter:
    """Fans alerts out to channels off the trading path, with de-duplication and throttling."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        dedup_window_s: float = 300.0,
        max_per_minute: int = 20,
        queue_size: int = 1000,
        journal: AlertJournal | None = None,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        """clock: ms UTC, for journal timestamps and the de-duplication window."""
        self.dedup_window_ms = int(dedup_window_s * 1000)
        self.journal = journal
        self.clock = clock
        self._last: dict[str, int] = {}
        self.suppressed = 0
        self.workers = [_Worker(c, queue_size, max_per_minute) for c in channels]

    @classmethod
    def from_config(
        cls,
        config: AlertsConfig,
        *,
        journal: AlertJournal | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> Alerter:
        """The log channel plus every configured one."""
        channels: list[Channel] = [LogChannel(Severity.parse(config.log_min_severity))]
        if config.telegram is not None:
            channels.append(TelegramChannel(config.telegram, env))
        if config.email is not None:
            channels.append(EmailChannel(config.email, env))
        if config.webhook is not None:
            channels.append(WebhookChannel(config.webhook))
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        return cls(
            channels,
            dedup_window_s=config.dedup_window_s,
            max_per_minute=config.max_per_minute,
            queue_size=config.queue_size,
            journal=journal,
            **kwargs,
        )

    def alert(
        self,
        severity: Severity | str,
        message: str,
        *,
        key: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Queue an alert for every channel; False if it repeated a recent one (suppressed)."""
        severity = Severity.parse(severity)
        now = self.clock()
        key = key or message
        last = self._last.get(key)
        if last is not None and now - last < self.dedup_window_ms:
            self.suppressed += 1
            return False
        self._last[key] = now
        alert = Alert(severity, message, key, now, dict(payload or {}))
        if self.journal is not None:
            self.journal.record_alert(severity.name.lower(), message, now, alert.payload)
        for worker in self.workers:
            worker.offer(alert)
        return True

    def wait_idle(self, timeout: float = 5.0, channels: Sequence[str] | None = None) -> bool:
        """Block until the channels (all, or those named) have handled their queue."""
        deadline = time.monotonic() + timeout
        workers = [w for w in self.workers if channels is None or w.channel.name in channels]
        while time.monotonic() < deadline:
            if all(w.idle() for w in workers):
                return True
            time.sleep(0.01)
        return False

    def stats(self) -> dict[str, dict[str, int]]:
        """Per channel: delivered, failed, throttled, dropped."""
        return {
            w.channel.name: {
                "delivered": w.delivered,
                "failed": w.failed,
                "throttled": w.throttled,
                "dropped": w.dropped,
            }
            for w in self.workers
        }

    def close(self, timeout: float = 2.0) -> None:
        """Let the channels finish what is queued (up to timeout; a hung one is abandoned)."""
        for w in self.workers:
            with contextlib.suppress(queue.Full):
                w.queue.put_nowait(None)
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.thread.join(max(0.0, deadline - time.monotonic()))
