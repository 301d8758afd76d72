"""Hot reload of a quoting strategy's parameters from `[mm.params.STRATEGY]` of quantdesk.toml.

The file's mtime and size are polled; on a change the section is read and validated by the
strategy's own declaration (types, ranges, constraints). A valid change is applied to the
running strategy in place (its state, e.g. a volatility estimate, is kept); an invalid one (bad
TOML, an unknown name, a value out of range) is refused with an alert and the old params stay.
Parameters given on the command line win over the file, at start and on every reload.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from quantdesk.risk.reload import file_stamp
from quantdesk.strategy import ParamError, Strategy

log = logging.getLogger(__name__)


def section_params(raw: Mapping[str, Any], strategy: str) -> dict[str, Any]:
    """The [mm.params.STRATEGY] table of a parsed quantdesk.toml ({} when absent)."""
    mm = raw.get("mm") or {}
    params = (mm.get("params") or {}) if isinstance(mm, Mapping) else {}
    table = params.get(strategy) if isinstance(params, Mapping) else None
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        raise ParamError(f"[mm.params.{strategy}] must be a table")
    return dict(table)


def apply_params(strategy: Strategy, values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate values (defaults for the rest) and set them on the running strategy; returns
    the names whose value changed. ParamError leaves the strategy untouched."""
    checked = type(strategy).validate_params(values)
    changed = {k: v for k, v in checked.items() if strategy.values.get(k) != v}
    strategy.values = checked
    for key, value in checked.items():
        setattr(strategy, key, value)
    return changed


class ParamReloader:
    """Watches quantdesk.toml and re-applies one strategy's params when the file changes."""

    def __init__(
        self,
        path: str | Path,
        strategy: Strategy,
        overrides: Mapping[str, Any] | None = None,
        *,
        on_event: Callable[[str, str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        """overrides: the command line's params (they win); on_event(kind, severity, message,
        payload): params_reloaded / params_rejected (the session journals and alerts them)."""
        self.path = Path(path)
        self.strategy = strategy
        self.overrides = dict(overrides or {})
        self.on_event = on_event
        self._seen = self._stamp()
        self.applied = 0
        self.rejected = 0
        self.last_error: str | None = None

    def _stamp(self) -> tuple[int, int] | None:
        return file_stamp(self.path)

    def check(self) -> bool | None:
        """Reload if the file changed: True applied, False refused, None unchanged."""
        stamp = self._stamp()
        if stamp == self._seen:
            return None
        self._seen = stamp
        name = self.strategy.label()
        try:
            raw = tomllib.loads(self.path.read_text(encoding="utf-8"))
            values = {**section_params(raw, name), **self.overrides}
            old = dict(self.strategy.values)
            changed = apply_params(self.strategy, values)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ParamError) as exc:
            self.rejected += 1
            self.last_error = f"{self.path.name}: {exc}"
            log.warning("param reload refused, the old params stay: %s", self.last_error)
            self._emit(
                "params_rejected",
                "error",
                f"{name} params reload refused, the old params stay: {self.last_error}",
                {"error": self.last_error, "params": _plain(self.strategy.values)},
            )
            return False
        self.applied += 1
        self.last_error = None
        self._emit(
            "params_reloaded",
            "info",
            f"{name} params reloaded: "
            + (", ".join(f"{k}={v}" for k, v in changed.items()) or "no change"),
            {"old": _plain(old), "new": _plain(self.strategy.values)},
        )
        return True

    def _emit(self, kind: str, severity: str, message: str, payload: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, severity, message, payload)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in values.items()}
