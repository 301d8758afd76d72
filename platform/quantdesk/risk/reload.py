"""Hot reload of the `[risk]` section: poll quantdesk.toml and apply validated changes.

The file's mtime (and size) is polled every `interval_s`; on a change the whole file is parsed
and the [risk] section validated with the same model the engine started with. A valid section
is applied at once (the next pre-trade check uses it); an invalid one (bad TOML, a negative
limit, an unknown key) is refused with an alert and the limits in force stay.
"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quantdesk.risk.limits import RiskConfig

log = logging.getLogger(__name__)


def file_stamp(path: Path) -> tuple[int, int] | None:
    """The file's mtime (ns) and size, what a reloader polls; None while it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


class RiskReloader:
    """Watches one config file and hands each new valid [risk] section to `apply`."""

    def __init__(
        self,
        path: str | Path,
        apply: Callable[[RiskConfig], None],
        *,
        interval_s: float = 2.0,
        alert: Callable[..., Any] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """apply: e.g. RiskEngine.set_config; alert(severity, message, ...): e.g. Alerter.alert."""
        self.path = Path(path)
        self.apply = apply
        self.interval_s = interval_s
        self.alert = alert
        self.sleep = sleep
        self._seen = self._stamp()
        self.applied = 0
        self.rejected = 0
        self.last_error: str | None = None

    def _stamp(self) -> tuple[int, int] | None:
        return file_stamp(self.path)

    def check(self) -> bool | None:
        """Reload if the file changed: True applied, False rejected, None unchanged."""
        stamp = self._stamp()
        if stamp == self._seen:
            return None
        self._seen = stamp
        try:
            raw = tomllib.loads(self.path.read_text(encoding="utf-8"))
            section = raw.get("risk", {})
            config = RiskConfig.model_validate(section)
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            return self._reject(f"{self.path}: not readable TOML: {exc}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in ("risk", *first["loc"]))
            return self._reject(f"{self.path}: {where}: {first['msg']}")
        self.apply(config)
        self.applied += 1
        self.last_error = None
        log.info("risk limits reloaded from %s", self.path)
        if self.alert is not None:
            self.alert("info", f"risk limits reloaded from {self.path.name}", key="risk-reload")
        return True

    def _reject(self, message: str) -> bool:
        self.rejected += 1
        self.last_error = message
        log.warning("risk reload rejected, previous limits stay: %s", message)
        if self.alert is not None:
            self.alert("error", f"risk reload rejected, previous limits stay: {message}")
        return False

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set (the engine runs this as a task)."""
        while not stop.is_set():
            self.check()
            await self.sleep(self.interval_s)
