"""Lookahead and recursive checks on real Binance daily bars: biases that fire on a few bars only.

Each planted strategy below passed the former checks (12 evenly spaced cuts, 4 evenly spaced
start offsets); the tests first show that with a plain loop, then that the checks catch it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from quantdesk.backtest.optimize import naive_utc
from quantdesk.backtest.runner import to_bars
from quantdesk.backtest.validation import (
    LOOKAHEAD_MAX_CUTS,
    LOOKAHEAD_RANDOM_CUTS,
    RECURSIVE_MAX_STARTS,
    RECURSIVE_RANDOM_STARTS,
    lookahead_check,
    recursive_check,
    rounding_ties,
    validate,
)
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.samples import sample_path
from quantdesk.data.store import OHLCV_COLUMNS, normalize
from quantdesk.model import Costs
from quantdesk.strategy import Signals, SignalStrategy, repo_strategies_dir, strategy_class

COINS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT", "LTCUSDT")


def load(name: str) -> dict[str, pd.DataFrame]:
    """One shipped Binance USD-M daily series, as the store would hold it."""
    parsed = parse_csv(sample_path("binance-um") / f"{name}-1d.csv", ImportOptions(market="usdm"))
    return {parsed.key.symbol: normalize(parsed.frame, OHLCV_COLUMNS)}


@pytest.fixture(scope="module")
def btc_data() -> dict[str, pd.DataFrame]:
    """BTCUSDT daily, 2020-01-01 .. 2026-09-30 (2,465 bars)."""
    return load("BTCUSDT")


@pytest.fixture(scope="module")
def btc(btc_data) -> pd.DataFrame:
    """BTCUSDT daily as validate() hands bars to the checks."""
    return naive_utc(to_bars(btc_data))


def crosses(fast: pd.DataFrame, slow: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fast crosses above slow, fast crosses below slow) on each bar's close."""
    up = (fast > slow) & (fast.shift(1) <= slow.shift(1))
    down = (fast < slow) & (fast.shift(1) >= slow.shift(1))
    return up, down


class PeekNextClose(SignalStrategy):
    """Bias (a): an SMA cross entry taken only when the NEXT close is higher."""

    warmup = 31

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Entries peek one bar ahead; exits are causal."""
        close = bars["close"]
        up, down = crosses(close.rolling(10).mean(), close.rolling(30).mean())
        return Signals(entries=up & (close.shift(-1) > close), exits=down)


class WeeklyBackfill(SignalStrategy):
    """Bias (b): the week's last close, back-filled onto each of its days."""

    warmup = 31

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Enter when the week will close 10% above today's close; exit on an SMA cross down."""
        close = bars["close"]
        weekly = close.resample("W").last().reindex(close.index, method="bfill")
        _, down = crosses(close.rolling(10).mean(), close.rolling(30).mean())
        return Signals(entries=weekly > close * 1.10, exits=down)


class EwmCross(SignalStrategy):
    """Bias (c): an ewm(adjust=False) crossover whose values depend on where history starts."""

    warmup = 31  # the slow span: far too short for the seed (the first close) to fade

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Entries / exits where the 10-span EMA crosses the 30-span EMA."""
        close = bars["close"]
        up, down = crosses(
            close.ewm(span=10, adjust=False).mean(), close.ewm(span=30, adjust=False).mean()
        )
        return Signals(entries=up, exits=down)


class EwmCrossLongWarmup(EwmCross):
    """The same crossover, declaring a warm-up after which the seed has faded (0.935**400)."""

    warmup = 400


def differs(a: Signals, b: Signals, rows_a: slice, rows_b: slice) -> bool:
    """True when the entries or exits of a[rows_a] and b[rows_b] differ anywhere."""
    return any(
        not np.array_equal(getattr(a, n).to_numpy()[rows_a], getattr(b, n).to_numpy()[rows_b])
        for n in ("entries", "exits")
    )


def old_lookahead_catches(strategy: SignalStrategy, bars: pd.DataFrame) -> bool:
    """The former lookahead check, as a loop: 12 evenly spaced cuts."""
    n, full = len(bars), strategy.signals(bars)
    cuts = sorted(set(np.linspace(strategy.warmup + 2, n - 1, num=12, dtype=int).tolist()))
    return any(
        differs(full, strategy.signals(bars.iloc[:c]), slice(0, c), slice(0, c)) for c in cuts
    )


def old_recursive_catches(strategy: SignalStrategy, bars: pd.DataFrame) -> bool:
    """The former recursive check, as a loop: 4 evenly spaced start offsets."""
    n, w, full = len(bars), strategy.warmup, strategy.signals(bars)
    starts = sorted(set(np.linspace(1, n - w - 3, num=4, dtype=int).tolist()))
    return any(
        differs(full, strategy.signals(bars.iloc[s:]), slice(s + w, None), slice(w, None))
        for s in starts
    )


def fired_rows(signals: Signals) -> list[int]:
    """Rows where some entry or exit turns True (it was False on the bar before), by a loop."""
    entries, exits = signals.entries.to_numpy(), signals.exits.to_numpy()
    rows = []
    for r in range(1, len(entries)):
        for frame in (entries, exits):
            if any(frame[r, c] and not frame[r - 1, c] for c in range(frame.shape[1])):
                rows.append(r)
                break
    return rows


@pytest.mark.parametrize("cls", [PeekNextClose, WeeklyBackfill], ids=["shift-1", "weekly-bfill"])
def test_sparse_lookahead_is_caught(cls, btc, btc_data):
    strategy = cls()
    full = strategy.signals(btc)
    assert 0 < full.entries.to_numpy().sum() <= 100  # fires on a few bars of 2,465
    assert old_lookahead_catches(strategy, btc) is False  # what the issue found
    report = validate(strategy, btc_data, Costs(), checks=("lookahead", "recursive"))
    check = report.checks[0]
    assert check.name == "lookahead" and check.passed is False
    assert "changes once bars after" in check.detail
    # the failing cut really differs from the full history on the bar it names
    cut = btc.index.get_loc(pd.Timestamp(check.data["failed_bar"])) + 1
    assert differs(full, strategy.signals(btc.iloc[:cut]), slice(0, cut), slice(0, cut))


def test_ewm_warmup_dependence_is_caught_on_btc_alone(btc, btc_data):
    strategy = EwmCross()
    assert old_recursive_catches(strategy, btc) is False  # what the issue found
    report = validate(strategy, btc_data, Costs(), checks=("lookahead", "recursive"))
    lookahead, recursive = report.checks
    assert lookahead.passed is True  # causal...
    assert recursive.passed is False  # ...but not independent of where history starts
    assert "depends on history before" in recursive.detail
    start = btc.index.get_loc(pd.Timestamp(recursive.data["failed_start"]))
    part = strategy.signals(btc.iloc[start:])
    w = strategy.warmup
    assert differs(strategy.signals(btc), part, slice(start + w, None), slice(w, None))


def test_ewm_with_a_long_enough_warmup_passes(btc):
    assert recursive_check(EwmCrossLongWarmup(), btc).passed is True


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion"])
def test_bundled_strategies_pass_on_real_btc(name, btc):
    strategy = strategy_class(name, repo_strategies_dir())()
    lookahead, recursive = lookahead_check(strategy, btc), recursive_check(strategy, btc)
    assert lookahead.passed is True and recursive.passed is True
    # both fire on more bars than the default caps take: the caps bound the work
    assert lookahead.data["bars_checked"] == LOOKAHEAD_MAX_CUTS
    assert lookahead.data["random_bars"] == LOOKAHEAD_RANDOM_CUTS
    assert recursive.data["starts_checked"] == RECURSIVE_MAX_STARTS
    assert recursive.data["random_starts"] == RECURSIVE_RANDOM_STARTS


def test_momentum_rotation_passes_on_five_real_coins():
    data = {}
    for coin in COINS:
        data.update(load(coin))
    bars = naive_utc(to_bars(data))
    strategy = strategy_class("momentum_rotation", repo_strategies_dir())()
    assert lookahead_check(strategy, bars).passed is True
    assert recursive_check(strategy, bars).passed is True


def test_bars_checked_is_every_firing_bar_plus_the_random_ones(btc):
    # The last 450 days: fewer firing bars than the caps, so every one of them is checked.
    bars = btc.iloc[-450:]
    strategy = strategy_class("sma_cross", repo_strategies_dir())()
    n, w = len(bars), strategy.warmup
    fired = fired_rows(strategy.signals(bars))
    cuts = [r + 1 for r in fired if w + 2 <= r + 1 <= n - 1]
    starts = [r - w for r in fired if 1 <= r - w <= n - w - 3]
    assert 0 < len(cuts) <= LOOKAHEAD_MAX_CUTS - LOOKAHEAD_RANDOM_CUTS
    assert 0 < len(starts) <= RECURSIVE_MAX_STARTS - RECURSIVE_RANDOM_STARTS

    lookahead = lookahead_check(strategy, bars)
    assert lookahead.passed is True
    assert lookahead.data["signal_bars"] == len(cuts)
    assert lookahead.data["bars_checked"] == len(cuts) + LOOKAHEAD_RANDOM_CUTS
    assert lookahead.value == f"{len(cuts) + LOOKAHEAD_RANDOM_CUTS} bars"
    assert f"{len(cuts)} where a signal fires + {LOOKAHEAD_RANDOM_CUTS} random" in lookahead.detail

    recursive = recursive_check(strategy, bars)
    assert recursive.passed is True
    assert recursive.data["signal_bars"] == len(starts)
    assert recursive.data["starts_checked"] == len(starts) + RECURSIVE_RANDOM_STARTS
    assert recursive.value == f"{len(starts) + RECURSIVE_RANDOM_STARTS} starts, warmup {w}"


def test_a_decision_on_a_rounding_tie_is_not_a_history_dependence():
    # LTC's 14-bar RSI on 2021-07-16 is 30.0 up to rounding: rsi_reversion's `rsi < 30` there
    # tips with the rounding of vectorbt's running sums, which depends on where history starts.
    bars = naive_utc(to_bars(load("LTCUSDT")))
    strategy = strategy_class("rsi_reversion", repo_strategies_dir())()
    day = bars.index.get_loc(pd.Timestamp("2021-07-16"))
    rsi = vbt.RSI.run(bars["close"], 14).rsi.to_numpy()[day, 0]
    assert rsi == pytest.approx(30.0, abs=1e-9)
    start = bars.index.get_loc(pd.Timestamp("2021-04-14"))
    full, part = strategy.signals(bars), strategy.signals(bars.iloc[start:])
    a, b = full.entries.to_numpy()[start:, 0], part.entries.to_numpy()[:, 0]
    assert np.flatnonzero(a != b).tolist() == [day - start]  # that bar and no other
    ties = rounding_ties(strategy, bars, full)
    assert np.flatnonzero(ties["entries"][:, 0]).tolist() == [day]
    assert not ties["exits"].any()
