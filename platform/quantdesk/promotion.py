"""Promotion: a registry of strategy versions trusted for live trading.

`promote` takes the best trial of an optimization study, re-runs validation on the study's data
window, and - only when every check passes - appends an entry to a TOML registry (by default
`strategies/promoted.toml`, meant to be committed with the strategy code): strategy, params,
data window, metrics, verdicts, and the code version (git commit + SHA-256 of the strategy file).
`require_promoted` is the gate live mode calls before trading a strategy.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from quantdesk.errors import QuantdeskError
from quantdesk.strategy import Strategy, default_strategies_dir, strategy_class

if TYPE_CHECKING:  # validation (and vectorbt under it) loads only when promoting
    from quantdesk.backtest.validation import ReplayFn

REGISTRY_NAME = "promoted.toml"


class PromotionError(QuantdeskError):
    """Bad promotion input (unknown study, mismatched strategy, unreadable registry)."""


class PromotionRefused(QuantdeskError):
    """Validation failed: the strategy version is not promoted."""


class NotPromotedError(QuantdeskError):
    """Live mode asked for a strategy version that is not in the registry."""


def registry_path(path: str | Path | None = None, strategies_dir: str | Path | None = None) -> Path:
    """path, else promoted.toml next to the strategy modules."""
    if path:
        return Path(path)
    return Path(strategies_dir or default_strategies_dir()) / REGISTRY_NAME


def strategy_file(name: str, strategies_dir: str | Path | None = None) -> Path:
    """The module file of strategy NAME."""
    strategy_class(name, strategies_dir)  # unknown names fail with the usual message
    return Path(strategies_dir or default_strategies_dir()) / f"{name}.py"


def code_version(name: str, strategies_dir: str | Path | None = None) -> dict[str, Any]:
    """Git commit of the checkout holding the strategy, whether the file has uncommitted
    changes, and the SHA-256 of the strategy file (what require_promoted compares)."""
    path = strategy_file(name, strategies_dir).resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    commit, dirty = "unknown", True
    try:
        commit = _git(path.parent, "rev-parse", "HEAD")
        dirty = bool(_git(path.parent, "status", "--porcelain", "--", path.name))
    except (OSError, subprocess.CalledProcessError):
        pass  # not a git checkout: the file hash alone identifies the code
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "strategy_file": path.name,
        "strategy_sha256": digest,
    }


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
    )
    return out.stdout.strip()


def read_registry(path: Path) -> list[dict[str, Any]]:
    """The registry's entries (empty when the file does not exist)."""
    if not path.exists():
        return []
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise PromotionError(f"cannot read promotion registry {path}: {exc}") from None
    entries = doc.get("promoted", [])
    if not isinstance(entries, list):
        raise PromotionError(f"promotion registry {path}: 'promoted' must be an array of tables")
    return entries


def append_entry(path: Path, entry: Mapping[str, Any]) -> None:
    """Add an entry to the registry, atomically (temp file + rename)."""
    entries = [*read_registry(path), _toml_clean(entry)]
    text = "# Promoted strategy versions: written by `quantdesk promote`, read by live mode.\n"
    text += tomli_w.dumps({"promoted": entries})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _toml_clean(value: Any) -> Any:
    # TOML has no null and no numpy scalars.
    if isinstance(value, Mapping):
        return {str(k): _toml_clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_clean(v) for v in value if v is not None]
    if hasattr(value, "item"):
        return value.item()
    return value


@dataclass
class Promotion:
    """The outcome of a promotion: the registry entry written and the validation report."""

    entry: dict[str, Any]
    registry: Path
    report: Any


def promote(
    strategy: str,
    study_name: str,
    storage: str | Path | None,
    store: Any,
    strategies_dir: str | None = None,
    registry: str | Path | None = None,
    checks: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    thresholds: Any = None,
    replay_fn: ReplayFn | None = None,
) -> Promotion:
    """Validate the study's best params on its data window; record them when all checks pass.

    Out-of-sample evidence is required whatever `checks` says: a walk-forward re-optimization
    of the same space on the same window must hold up (see walkforward_check).
    Raises PromotionRefused (with the failed checks) when validation fails, PromotionError on
    bad input. The report is attached to PromotionRefused as `.report`. replay_fn is the
    engine replay the parity check runs (quantdesk.system.replay.replay).
    """
    from quantdesk.backtest.optimize import best_trial, job_from_meta, load_result
    from quantdesk.backtest.validation import (
        CHECKS,
        StudyTrials,
        Thresholds,
        validate,
        walkforward_check,
    )

    thresholds = thresholds or Thresholds()
    checks = tuple(checks or CHECKS)
    if "parity" in checks and replay_fn is None:
        # a skipped check does not fail, so a missing replay would promote without parity
        raise PromotionError("the parity check needs the engine replay (replay_fn)")

    study, meta = load_result(study_name, storage)
    if meta["strategy"] != strategy:
        raise PromotionError(f"study {study_name!r} optimized {meta['strategy']}, not {strategy}")
    job = job_from_meta(meta, store, strategies_dir)
    best = best_trial(study)
    params = job.strategy_cls().validate_params({**job.fixed, **best.params})
    trials = StudyTrials.from_study(study, job.fixed)
    report = validate(
        job.strategy_cls()(**params),
        job.data,
        job.costs,
        space=job.space(),
        trials=trials,
        objective=job.objective if job.objective != "return_vs_drawdown" else "return_dd",
        dd_penalty=job.dd_penalty,
        checks=checks,
        progress=progress,
        thresholds=thresholds,
        funding=job.funding,
        replay_fn=replay_fn,
    )
    if progress:
        progress("walkforward")
    report.checks.append(walkforward_check(job, thresholds))
    if not report.passed:
        reasons = "; ".join(f"{c.name} ({c.value or c.detail})" for c in report.failures())
        refused = PromotionRefused(f"validation failed: {reasons}")
        refused.report = report  # type: ignore[attr-defined]
        raise refused
    path = registry_path(registry, strategies_dir)
    entry = {
        "strategy": strategy,
        "params": params,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "study": study_name,
        "storage": str(storage) if storage is not None else None,
        "trial": best.number,
        "data": {
            k: meta.get(k)
            for k in (
                "symbols",
                "timeframe",
                "start",
                "end",
                "bars",
                "exchange",
                "market",
                "fee",
                "slippage",
                "init_cash",
            )
        },
        "objective": {"name": meta["objective"], "values": list(best.values)},
        "metrics": dict(best.user_attrs),
        # what the figures assume an entry spends; "all-in" ones no live session could reach
        "sizing": {
            "fraction_per_entry": meta.get("size"),
            "kind": "all-in" if meta.get("size") is None else "fraction of equity",
        },
        "validation": report.to_dict(),
        "code": code_version(strategy, strategies_dir),
    }
    append_entry(path, entry)
    return Promotion(_toml_clean(entry), path, report)


def require_promoted(
    strategy: str | Strategy,
    params: Mapping[str, Any] | None = None,
    registry: str | Path | None = None,
    strategies_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The registry entry promoting this strategy with these params and this exact code.

    Raises NotPromotedError with the reason otherwise (no entry for these params, or the
    strategy file changed since promotion). Live mode calls this before trading.
    """
    if isinstance(strategy, Strategy):
        name, values = strategy.label(), dict(strategy.values)
    else:
        name = strategy
        values = strategy_class(name, strategies_dir).validate_params(dict(params or {}))
    path = registry_path(registry, strategies_dir)
    entries = [e for e in read_registry(path) if e.get("strategy") == name]
    if not entries:
        raise NotPromotedError(f"strategy {name} has never been promoted (registry {path})")
    matching = [e for e in entries if e.get("params") == values]
    if not matching:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        raise NotPromotedError(f"strategy {name} with {shown} is not a promoted version")
    digest = code_version(name, strategies_dir)["strategy_sha256"]
    current = [e for e in matching if e.get("code", {}).get("strategy_sha256") == digest]
    if not current:
        raise NotPromotedError(
            f"strategy {name}: its code changed since it was promoted; validate and promote again"
        )
    return current[-1]
