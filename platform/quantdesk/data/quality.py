"""Data quality rules over one OHLCV or funding frame: gaps, duplicates, bad values, outliers.

The checks are pure: they take a frame (raw from a CSV, or as stored) and return findings;
nothing is fixed or dropped here. Raw frames may be unsorted or hold duplicate timestamps,
which is why duplicates and ordering are rules of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantdesk.data.store import FUNDING
from quantdesk.data.ticks import TICK_KINDS
from quantdesk.data.timeframes import timeframe_delta

PRICE_COLUMNS = ["open", "high", "low", "close"]
FUNDING_INTERVAL = "8h"
DEFAULT_MAX_ZERO_VOLUME_RUN = 3
DEFAULT_OUTLIER_SIGMA = 12.0
# Bars either side that set the local volatility scale for the outlier rule.
OUTLIER_WINDOW = 501
# Funding rates are fat-tailed by construction (long calm stretches at the 0.01% base rate,
# bursts up to the exchange cap), so the same scale would flag every busy week.
DEFAULT_FUNDING_OUTLIER_SIGMA = 30.0
# Funding often sits pinned at the 0.01% base rate for weeks, so its MAD collapses towards zero
# and any ordinary move would score hundreds of sigmas; one basis point is the smallest scale.
FUNDING_MIN_SIGMA = 1e-4
# MAD * 1.4826 estimates the standard deviation of normally distributed data.
_MAD_TO_SIGMA = 1.4826

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One broken rule: how often, where first, and a short human-readable detail."""

    rule: str
    severity: str
    count: int
    first: pd.Timestamp | None
    detail: str


def check_frame(
    frame: pd.DataFrame,
    timeframe: str,
    *,
    max_zero_volume_run: int = DEFAULT_MAX_ZERO_VOLUME_RUN,
    outlier_sigma: float | None = None,
    funding_interval: str = FUNDING_INTERVAL,
) -> list[Finding]:
    """Every finding for one series ('funding' checks funding rates, 'trades'/'book' ticks).

    outlier_sigma defaults to DEFAULT_OUTLIER_SIGMA for bars (applied to log returns) and
    DEFAULT_FUNDING_OUTLIER_SIGMA for funding (applied to the rates themselves).
    """
    if timeframe in TICK_KINDS:
        from quantdesk.data.quality_ticks import check_ticks

        return check_ticks(frame, timeframe)
    if max_zero_volume_run < 1:
        raise ValueError("max_zero_volume_run must be at least 1")
    if outlier_sigma is not None and outlier_sigma <= 0:
        raise ValueError("outlier_sigma must be positive")
    index = pd.DatetimeIndex(frame.index)
    findings = [*_duplicates(index), *_non_monotonic(index)]
    # The remaining rules look at the series as the store would keep it: sorted, last row wins.
    clean = frame[~index.duplicated(keep="last")].sort_index(kind="stable")
    if timeframe == FUNDING:
        rates = clean["funding_rate"].astype("float64")
        k = DEFAULT_FUNDING_OUTLIER_SIGMA if outlier_sigma is None else outlier_sigma
        findings += _gaps(clean.index, funding_interval)
        findings += _non_finite(clean[["funding_rate"]])
        findings += _outliers(rates, k, "rate", min_sigma=FUNDING_MIN_SIGMA)
        return findings
    prices = clean[PRICE_COLUMNS].astype("float64")
    findings += _gaps(clean.index, timeframe)
    findings += _non_finite(clean[[*PRICE_COLUMNS, "volume"]])
    findings += _non_positive(prices)
    findings += _inconsistent_ohlc(prices)
    findings += _zero_volume_runs(clean["volume"].astype("float64"), max_zero_volume_run)
    close = prices["close"].where(np.isfinite(prices["close"]) & (prices["close"] > 0))
    k = DEFAULT_OUTLIER_SIGMA if outlier_sigma is None else outlier_sigma
    findings += _outliers(np.log(close).diff(), k, "log return")
    return findings


def _stamp(ts: object) -> str:
    stamp = pd.Timestamp(ts)
    return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else f"{stamp:%Y-%m-%d %H:%M:%S}"


def _duplicates(index: pd.DatetimeIndex) -> list[Finding]:
    dup = index.duplicated(keep="first")
    if not dup.any():
        return []
    first = index[dup][0]
    return [
        Finding(
            "duplicates",
            WARNING,
            int(dup.sum()),
            first,
            f"{int(dup.sum())} repeated timestamp(s) ({len(set(index[dup]))} distinct); "
            "the last row of each wins on import",
        )
    ]


def _non_monotonic(index: pd.DatetimeIndex) -> list[Finding]:
    values = index.asi8
    backwards = np.flatnonzero(values[1:] < values[:-1]) + 1
    if not len(backwards):
        return []
    return [
        Finding(
            "non_monotonic",
            WARNING,
            len(backwards),
            index[backwards[0]],
            f"{len(backwards)} timestamp(s) earlier than the row before; sorted on import",
        )
    ]


def _gaps(index: pd.DatetimeIndex, timeframe: str) -> list[Finding]:
    if len(index) < 2:
        return []
    step = timeframe_delta(timeframe)
    index = index.as_unit("ns")
    offsets = index - index[0]
    off_grid = (offsets % step) != pd.Timedelta(0)
    findings = []
    if off_grid.any():
        findings.append(
            Finding(
                "off_grid",
                WARNING,
                int(off_grid.sum()),
                index[off_grid][0],
                f"{int(off_grid.sum())} timestamp(s) not on the {timeframe} grid of the first row",
            )
        )
    runs = gap_runs(index[~off_grid], timeframe)
    if not runs:
        return findings
    sizes = [(hi - lo) // step + 1 for lo, hi in runs]
    widest = int(np.argmax(sizes))
    shown = runs if len(runs) <= 3 else [runs[widest]]
    where = ", ".join(f"{_stamp(lo)} .. {_stamp(hi)} ({(hi - lo) // step + 1})" for lo, hi in shown)
    label = "" if len(runs) <= 3 else "largest "
    findings.append(
        Finding(
            "gaps",
            WARNING,
            sum(sizes),
            runs[0][0],
            f"{sum(sizes)} missing bar(s) in {len(runs)} run(s); {label}{where}",
        )
    )
    return findings


def gap_runs(index: pd.DatetimeIndex, timeframe: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(first missing, last missing) bar time of each gap in an index on the timeframe's grid."""
    step = timeframe_delta(FUNDING_INTERVAL if timeframe == FUNDING else timeframe)
    index = pd.DatetimeIndex(index).unique().sort_values().as_unit("ns")
    if len(index) < 2:
        return []
    steps = np.diff(index.asi8) // step.value
    holes = np.flatnonzero(steps > 1)
    return [(index[i] + step, index[i + 1] - step) for i in holes]


def _non_finite(values: pd.DataFrame) -> list[Finding]:
    array = values.to_numpy(dtype="float64")
    bad = ~np.isfinite(array)
    rows = bad.any(axis=1)
    if not rows.any():
        return []
    per_column = ", ".join(
        f"{col} {int(n)}" for col, n in zip(values.columns, bad.sum(axis=0), strict=True) if n
    )
    return [
        Finding(
            "non_finite",
            ERROR,
            int(rows.sum()),
            values.index[rows][0],
            f"{int(rows.sum())} row(s) with NaN or infinite values ({per_column})",
        )
    ]


def _non_positive(prices: pd.DataFrame) -> list[Finding]:
    rows = (prices <= 0).any(axis=1).to_numpy()
    if not rows.any():
        return []
    return [
        Finding(
            "non_positive_price",
            ERROR,
            int(rows.sum()),
            prices.index[rows][0],
            f"{int(rows.sum())} row(s) with a price of zero or less",
        )
    ]


def _inconsistent_ohlc(prices: pd.DataFrame) -> list[Finding]:
    o, h, lo, c = (prices[col] for col in PRICE_COLUMNS)
    body_low = np.minimum(o, c)
    body_high = np.maximum(o, c)
    rows = ((lo > body_low) | (h < body_high) | (lo > h)).to_numpy()
    if not rows.any():
        return []
    return [
        Finding(
            "inconsistent_ohlc",
            ERROR,
            int(rows.sum()),
            prices.index[rows][0],
            f"{int(rows.sum())} bar(s) where low/high do not bracket open and close",
        )
    ]


def _zero_volume_runs(volume: pd.Series, min_run: int) -> list[Finding]:
    zero = (volume == 0).to_numpy().astype(np.int8)
    if not zero.any():
        return []
    edges = np.diff(np.concatenate([[0], zero, [0]]))
    starts = np.flatnonzero(edges == 1)
    lengths = np.flatnonzero(edges == -1) - starts
    long_runs = lengths >= min_run
    if not long_runs.any():
        return []
    first = starts[long_runs][0]
    return [
        Finding(
            "zero_volume",
            WARNING,
            int(long_runs.sum()),
            volume.index[first],
            f"{int(long_runs.sum())} run(s) of >= {min_run} zero-volume bars; "
            f"longest {int(lengths.max())}",
        )
    ]


def _outliers(changes: pd.Series, k: float, what: str, min_sigma: float = 0.0) -> list[Finding]:
    finite = changes[np.isfinite(changes)]
    if len(finite) < 3:
        return []
    center: pd.Series | float = float(np.median(finite))
    sigma: pd.Series | float = _MAD_TO_SIGMA * float(np.median(np.abs(finite - center)))
    if len(finite) > OUTLIER_WINDOW:
        # Judge each change against the volatility around it (a centred rolling MAD), not the
        # series-wide one: under volatility clustering a global scale flags every busy week.
        local = finite.rolling(OUTLIER_WINDOW, center=True, min_periods=OUTLIER_WINDOW // 2)
        local_center = local.median()
        local_dev = (
            (finite - local_center)
            .abs()
            .rolling(OUTLIER_WINDOW, center=True, min_periods=OUTLIER_WINDOW // 2)
        )
        local_sigma = _MAD_TO_SIGMA * local_dev.median()
        usable = local_sigma > 0
        center = local_center.where(usable, center)
        sigma = local_sigma.where(usable, sigma)
    if min_sigma:
        sigma = np.maximum(sigma, min_sigma)
    if not np.any(np.asarray(sigma) > 0):
        # Most values are identical (e.g. a capped funding rate): MAD cannot scale anything.
        return []
    sigma = sigma.where(sigma > 0) if isinstance(sigma, pd.Series) else sigma
    score = ((finite - center).abs() / sigma).dropna()
    flagged = score[score > k]
    if flagged.empty:
        return []
    worst = flagged.idxmax()
    return [
        Finding(
            "outliers",
            WARNING,
            len(flagged),
            flagged.index[0],
            f"{len(flagged)} {what}(s) beyond {k:g} robust sigmas; largest "
            f"{float(changes[worst]):+.4g} ({float(flagged.max()):.1f} sigma) at {_stamp(worst)}",
        )
    ]
