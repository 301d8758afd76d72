"""The pair backtest: an hourly loop over a PairMarket, deciding with the strategy's rules.

Each hour, in this order: both legs are marked at the hour's prices (price PnL); settlements due
that hour are booked on the positions held (funding PnL); an open pair is checked against the
liquidation buffer, the combined stop-loss / take-profit, the spread exit and the timed exit;
a flat book updates the entry streaks and may open. Decisions use only the rates already
settled (`rates.known_per_hour`) and the last completed daily bar: nothing from the future.

Prices are daily, so at each day's end the liquidation buffer is also checked against that day's
low (long leg) or high (short leg), even if the pair opened during the day (the safe side); the
pair is then closed at the close, and a day whose extreme passed the liquidation price itself is
logged as a `beyond_liquidation` event (the venue may have liquidated that leg first).

Sizing: a pair posts size x capital as margin, half on each venue; each leg's notional is its
margin x leverage, in equal base quantities (the hedge). Money is float (research backtest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from quantdesk.arbitrage.execution import (
    LEGS,
    Book,
    Event,
    ExecConfig,
    Filler,
    FillModel,
    execute_pair,
)
from quantdesk.arbitrage.market import PairMarket
from quantdesk.arbitrage.opportunity import direction_aprs, leg_fee, round_trip_cost
from quantdesk.arbitrage.rates import HOURS_PER_YEAR
from quantdesk.arbitrage.risk import breaches, liquidation_price, pair_return, stop_price

PNL_PARTS = ("price_a", "price_b", "funding_a", "funding_b", "fees", "slippage")


class ArbRules(Protocol):
    """What the backtest asks of the strategy (strategies/funding_arb.py's FundingArb)."""

    values: dict[str, Any]

    def streak(self, streak: int, net_apr: float) -> int: ...

    def entry(self, streak_long_a: int, streak_short_a: int) -> int: ...

    def exit(
        self,
        held_gross_apr: float,
        hours_held: float,
        combined_return: float,
        near_liquidation: bool,
    ) -> str | None: ...


@dataclass(frozen=True)
class PairTrade:
    """One pair held from open to close, with its PnL split (sums to total)."""

    direction: int
    opened: pd.Timestamp
    closed: pd.Timestamp
    reason: str
    qty: float
    price_pnl: float
    funding_pnl: float
    fees: float
    slippage: float

    @property
    def total(self) -> float:
        """price + funding - fees - slippage."""
        return self.price_pnl + self.funding_pnl - self.fees - self.slippage


@dataclass
class ArbResult:
    """What a pair backtest exposes: equity, the PnL split over time, trades, events, stats."""

    market: PairMarket
    params: dict[str, Any]
    capital: float
    equity: pd.Series
    pnl: pd.DataFrame  # cumulative, columns PNL_PARTS
    trades: list[PairTrade]
    events: list[Event]
    book: Book
    stats: dict[str, float] = field(default_factory=dict)

    def events_frame(self) -> pd.DataFrame:
        """The execution event log as a table (time, kind, leg, qty, detail)."""
        columns = ["time", "kind", "leg", "qty", "detail"]
        rows = [(e.time, e.kind, e.leg, e.qty, e.detail) for e in self.events]
        return pd.DataFrame(rows, columns=columns)

    def trades_frame(self) -> pd.DataFrame:
        """One row per pair: direction, times, exit reason, quantity and its PnL split."""
        rows = [
            {
                "direction": "long A / short B" if t.direction > 0 else "short A / long B",
                "opened": t.opened,
                "closed": t.closed,
                "reason": t.reason,
                "qty": t.qty,
                "price_pnl": t.price_pnl,
                "funding_pnl": t.funding_pnl,
                "fees": t.fees,
                "slippage": t.slippage,
                "total": t.total,
            }
            for t in self.trades
        ]
        return pd.DataFrame(rows)


@dataclass
class _Open:
    direction: int
    opened: pd.Timestamp
    at_open: tuple[float, ...]
    margin: float
    stops: dict[str, tuple[float, int, float]]  # leg -> (stop price, side, liquidation price)


def _parts(book: Book) -> tuple[float, ...]:
    return (
        book.price_pnl["a"],
        book.price_pnl["b"],
        book.funding["a"],
        book.funding["b"],
        sum(book.fees.values()),
        sum(book.slip_cost.values()),
    )


def _trade_pnl(now: tuple[float, ...], then: tuple[float, ...]) -> float:
    d = [x - y for x, y in zip(now, then, strict=True)]
    return d[0] + d[1] + d[2] + d[3] - d[4] - d[5]


def run_pair(
    strategy: ArbRules,
    market: PairMarket,
    capital: float = 10_000.0,
    execution: ExecConfig | None = None,
    fills: FillModel | Filler | None = None,
    seed: int = 0,
) -> ArbResult:
    """Backtest the strategy's rules on market; see the module for the hourly order of events."""
    p = strategy.values
    execution = execution or ExecConfig(slices=int(p["slices"]))
    if isinstance(fills, FillModel) or fills is None:
        fill = (fills or FillModel()).filler(np.random.default_rng([seed, 2]))
    else:
        fill = fills
    va, vb = market.venue_a, market.venue_b
    slippage = p["slippage_bps"] * 1e-4
    book = Book({"a": leg_fee(va), "b": leg_fee(vb)}, slippage, cash=capital)
    maintenance = {"a": va.maintenance_margin, "b": vb.maintenance_margin}
    round_trip = round_trip_cost(va, vb, p["slippage_bps"])
    frame = market.frame
    times = frame.index
    price = {"a": frame["price_a"].to_numpy(), "b": frame["price_b"].to_numpy()}
    settled = {"a": frame["settled_a"].to_numpy(), "b": frame["settled_b"].to_numpy()}
    nan = np.full(len(frame), np.nan)
    # a long leg is checked against the low of the day just ended, a short one its high
    worst = {
        (leg, side): frame[col].to_numpy() if col in frame else nan
        for leg in LEGS
        for side, col in ((1, f"low_{leg}"), (-1, f"high_{leg}"))
    }
    spread_apr = frame["spread_apr"].to_numpy()
    equity = np.empty(len(times))
    in_market = np.zeros(len(times), dtype=bool)
    parts = np.empty((len(times), len(PNL_PARTS)))
    events: list[Event] = []
    trades: list[PairTrade] = []
    streak_long = streak_short = 0
    held: _Open | None = None

    def close(t: pd.Timestamp, reason: str) -> None:
        nonlocal held
        assert held is not None
        qty = book.qty["a"]
        execute_pair(book, dict.fromkeys(LEGS, 0.0), fill, execution, t, events)
        d = [x - y for x, y in zip(_parts(book), held.at_open, strict=True)]
        trades.append(
            PairTrade(
                held.direction, held.opened, t, reason, qty, d[0] + d[1], d[2] + d[3], d[4], d[5]
            )
        )
        held = None

    for i, t in enumerate(times):
        for leg in LEGS:
            book.set_mark(leg, price[leg][i])
        for leg in LEGS:
            if settled[leg][i] != 0.0 and book.qty[leg] != 0.0:
                book.settle(leg, settled[leg][i])
        net_long, net_short = direction_aprs(spread_apr[i], round_trip, p["hold_hours"])
        if held is not None:
            near = False
            for leg, (stop, side, liq) in held.stops.items():
                extreme = worst[leg, side][i]
                seen = book.mark[leg]
                if not np.isnan(extreme):  # the day's low (long) or high (short) is worse
                    seen = min(seen, extreme) if side > 0 else max(seen, extreme)
                near = near or breaches(seen, stop, side)
                if breaches(seen, liq, side):
                    # daily bars cannot tell whether the stop filled first: say so, loudly
                    events.append(Event(t, "beyond_liquidation", leg, book.qty[leg], f"{seen:g}"))
            ret = pair_return(_trade_pnl(_parts(book), held.at_open), held.margin)
            hours = (t - held.opened) / pd.Timedelta(hours=1)
            reason = strategy.exit(held.direction * spread_apr[i], hours, ret, near)
            if reason is not None:
                close(t, reason)
                streak_long = streak_short = 0
        elif not np.isnan(spread_apr[i]):
            streak_long = strategy.streak(streak_long, net_long)
            streak_short = strategy.streak(streak_short, net_short)
            direction = strategy.entry(streak_long, streak_short)
            if direction:
                qty = p["size"] * book.equity() / 2 * p["leverage"] / price["a"][i]
                targets = {"a": direction * qty, "b": -direction * qty}
                before = _parts(book)
                execute_pair(book, targets, fill, execution, t, events)
                if abs(book.qty["a"]) > 0:
                    stops = {}
                    for leg in LEGS:
                        side = int(np.sign(book.qty[leg]))
                        liq = liquidation_price(
                            book.avg_price[leg], side, p["leverage"], maintenance[leg]
                        )
                        stops[leg] = (stop_price(liq, side, p["liq_buffer"]), side, liq)
                    # the margin actually posted: an open short of its target posts less
                    margin = sum(abs(book.qty[leg]) * book.mark[leg] for leg in LEGS)
                    held = _Open(direction, t, before, margin / p["leverage"], stops)
                else:
                    events.append(
                        Event(t, "open_failed", "pair", 0.0, "no slice filled on both legs")
                    )
                streak_long = streak_short = 0
        equity[i] = book.equity()
        parts[i] = _parts(book)
        in_market[i] = held is not None
    if held is not None:
        close(times[-1], "end_of_data")
        equity[-1] = book.equity()
        parts[-1] = _parts(book)
    result = ArbResult(
        market,
        dict(p),
        capital,
        pd.Series(equity, index=times, name="equity"),
        pd.DataFrame(parts, index=times, columns=list(PNL_PARTS)),
        trades,
        events,
        book,
    )
    result.stats = pair_stats(result)
    result.stats["exposure"] = float(in_market.mean())
    return result


def pair_stats(result: ArbResult) -> dict[str, float]:
    """Trades, the PnL split, APR on capital, Sharpe (daily, x sqrt 365), max drawdown, events."""
    end = result.pnl.iloc[-1]
    equity = result.equity
    hours = max((equity.index[-1] - equity.index[0]) / pd.Timedelta(hours=1), 1.0)
    total = float(equity.iloc[-1] - result.capital)
    daily = pd.concat(
        [pd.Series([result.capital], index=[equity.index[0]]), equity.resample("1D").last()]
    )
    rets = daily.pct_change().dropna()
    sd = rets.std()
    sharpe = float(rets.mean() / sd * np.sqrt(365)) if sd > 0 else 0.0
    drawdown = float((equity / equity.cummax() - 1).min())
    kinds = pd.Series([e.kind for e in result.events], dtype=object).value_counts()
    return {
        "trades": float(len(result.trades)),
        "total_pnl": total,
        "price_pnl_a": float(end["price_a"]),
        "price_pnl_b": float(end["price_b"]),
        "price_pnl": float(end["price_a"] + end["price_b"]),
        "funding_pnl_a": float(end["funding_a"]),
        "funding_pnl_b": float(end["funding_b"]),
        "funding_pnl": float(end["funding_a"] + end["funding_b"]),
        "fees": float(end["fees"]),
        "slippage": float(end["slippage"]),
        "apr": total / result.capital * HOURS_PER_YEAR / hours,
        "sharpe": sharpe,
        "max_drawdown": drawdown,
        "legs_repaired": float(kinds.get("repaired", 0)),
        "failed_legs": float(kinds.get("leg_failed", 0)),
        "partial_fills": float(kinds.get("partial_fill", 0)),
    }
