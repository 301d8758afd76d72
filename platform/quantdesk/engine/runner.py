"""Strategy runners: turn closed bars into order intents, the same way in every mode.

`SignalRunner` runs a SignalStrategy with vectorbt's `from_signals` semantics, which the
backtest uses, so replay and backtest agree trade for trade:
- a signal decided on the close of bar t is acted on at the open of bar t+1, against the
  position held then, before that bar's stops (the order at the open comes first): entry when
  flat, exit of the side held, nothing when entry and exit of one side coincide or a long and
  a short entry do (vectorbt's conflict modes "ignore"); an entry against the position held
  reverses it (upon_opposite_entry="reversereduce" without accumulation): the position is
  closed and the opposite one opened with the cash the close leaves, which is what vectorbt's
  single reversal order buys or sells. A stop the open gapped through comes first in vectorbt
  (its open row checks stops before signals) and the signal of that bar is dropped, so a
  reversal then only closes (the stop does);
- shorts (short_entries / short_exits) need a perpetual (BTC/USDT:USDT); on a spot symbol they
  are refused (StrategyError). A short entry sells f x cash / (1 + fee) / bid, vectorbt's
  sell_nb for size=inf (f = 1) or a fraction f; vectorbt refuses a reversal with a fraction
  (SizeType.Percent), the engine then only closes;
- an entry spends `size` of the sleeve's cash (all of it when None, vectorbt's size=inf; a
  fraction f is vectorbt's size_type="percent"): amount = f x cash / (1 + fee) / ask, where ask
  is the venue's price for a market buy now (open plus slippage in replay);
- after an entry fill, stop-loss / take-profit orders (fractions of the fill price; above and
  below it for a short) are placed at once, so they are live for the rest of the entry bar
  (the venue's range_bar); when one fills the other is cancelled. A stop can only fill after
  the bar's open orders, so it never takes a signal's place (but see reversals above).

Each (strategy, symbol) is a sleeve with its own cash (`capital`), as each vectorbt column is
its own portfolio.

How signals are evaluated (the O(n^2) trap): a replay calls `prepare(bars)` once, which
computes `signals()` over the whole history in one vectorized call and then only looks rows up
(O(n) total). That is valid because strategies are causal by contract (tests/strategies check
that signals on history up to t equal full-history signals at t). Without `prepare` (paper,
live) the runner keeps the last `window` closed bars per symbol and evaluates `signals()` on
them at each close, taking the last row: history up to the last closed bar, never beyond.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

import numpy as np
import pandas as pd

from quantdesk.engine.feeds import BarEvent
from quantdesk.engine.portfolio import funding_payment
from quantdesk.model import (
    ZERO,
    BookTop,
    Fill,
    FundingEvent,
    OrderType,
    Side,
    dec,
    net_fill,
    parse_symbol,
    perpetual_of,
    stop_fill,
    take_profit_fill,
)
from quantdesk.strategy import QuoteStrategy, Signals, SignalStrategy, StrategyError

ENTRY, EXIT, STOP_LOSS, TAKE_PROFIT = 0, 3, 1, 2  # client id sequence numbers per bar
REBALANCE = 4  # a target-weight order (one per symbol and bar)
# vectorbt's tolerances (vectorbt.utils.math_): an order this small is no order
SIZE_ZERO = Decimal("1e-12")
CLOSE_REL = Decimal("1e-9")


@dataclass(frozen=True)
class Intent:
    """An order a runner wants sent; the kernel turns it into an engine Order."""

    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    bar_ms: int  # the bar the decision belongs to (part of the client order id)
    seq: int
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    tag: str = ""
    # the price decided on: the signal bar's close for a signal's market order; None lets the
    # kernel use the limit price, else the trigger, else the last close it knows
    decision_price: Decimal | None = None


@dataclass(frozen=True)
class Cancel:
    """A runner asks to cancel one of its orders."""

    client_order_id: str
    reason: str = ""


def signal_window(strategy: SignalStrategy) -> int:
    """Closed bars a paper or live runner keeps per symbol to evaluate the strategy on: twice
    its warm-up and more (at least 50), so the last row sees all the history it needs."""
    return max(2 * int(strategy.warmup) + 2, 50)


class Market(Protocol):
    """What runners may ask the kernel about the market when they decide."""

    def quote(self, symbol: str, side: Side) -> Decimal | None:
        """The price a market order of `side` would fill at now."""
        ...

    def amount_step(self, symbol: str) -> Decimal:
        """Order amounts are multiples of this."""
        ...

    def bar_open(self, symbol: str) -> Decimal | None:
        """The open of the bar whose open is being acted on (None when acting on a close)."""
        ...


@dataclass
class Sleeve:
    """One (strategy, symbol): its own cash and position, pending signal and protective orders."""

    symbol: str
    cash: Decimal
    qty: Decimal = ZERO
    entry: bool = False  # raw signals of the last close, not yet acted on
    exit: bool = False
    short_entry: bool = False
    short_exit: bool = False
    signal_ms: int | None = None
    signal_close: Decimal | None = None  # the close the pending signal was decided on
    protective: dict[str, Intent] = field(default_factory=dict)  # client id -> sl / tp intent
    virtual_qty: Decimal = ZERO  # signals-only mode: what we would hold
    # a reversal's close is working: once it leaves the sleeve flat, the opposite entry of
    # this signal (bar ms, decided close, amount step) goes out, sized from the cash it left
    reverse: tuple[int, Decimal | None, Decimal] | None = None


class Runner(Protocol):
    """What the kernel drives; SignalRunner and QuoteRunner implement it."""

    strategy_id: str
    symbols: list[str]

    def on_close(self, event: BarEvent) -> list[Intent | Cancel]:
        """A bar closed: record signals (or, for quote strategies, return orders)."""
        ...

    def on_open(self, symbol: str, bar_ms: int, market: Market) -> list[Intent | Cancel]:
        """Act on what the last close decided, at the price in force now."""
        ...

    def on_fill(self, fill: Fill, tag: str, bar_ms: int) -> list[Intent | Cancel]:
        """One of this runner's orders filled (bar_ms: the bar in progress)."""
        ...

    def assume(self, intent: Intent) -> None:
        """Signals-only mode: pretend the intent was executed."""
        ...


class SignalRunner:
    """Runs a SignalStrategy (long and short entries/exits, optional stops) on closed bars."""

    def __init__(
        self,
        strategy: SignalStrategy,
        symbols: list[str],
        *,
        capital: Decimal,
        fee: Decimal,
        strategy_id: str | None = None,
        window: int | None = None,
        min_amounts: Mapping[str, Decimal] | None = None,
        size: Decimal | None = None,
    ) -> None:
        """capital: cash per symbol sleeve; fee: fraction the venue charges (for sizing);
        size: fraction of the sleeve's cash an entry spends (None: all of it, vectorbt's inf);
        min_amounts: per symbol, the smallest amount the venue accepts (what an exit leaves
        below it is dust, and the sleeve counts as flat)."""
        if not isinstance(strategy, SignalStrategy):
            raise StrategyError(f"{strategy.label()} is not a SignalStrategy")
        self.strategy = strategy
        self.strategy_id = strategy_id or strategy.label()
        self.symbols = list(symbols)
        self.fee = Decimal(fee)
        self.min_amounts = dict(min_amounts or {})
        self.size = None if size is None else Decimal(size)
        self.sleeves = {s: Sleeve(s, Decimal(capital)) for s in self.symbols}
        self.window = window or signal_window(strategy)
        # entries, exits, short entries, short exits over the prepared history (replay)
        self._signals: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._col = {s: j for j, s in enumerate(self.symbols)}
        self._sl: dict[str, Decimal] = {}
        self._tp: dict[str, Decimal] = {}
        self._history: dict[str, deque[tuple[int, float, float, float, float, float]]] = {
            s: deque(maxlen=self.window) for s in self.symbols
        }
        self._closes: dict[str, float] = {}  # last close per symbol: funding's mark

    @property
    def capital(self) -> Decimal:
        """Starting cash over all sleeves."""
        return sum((s.cash for s in self.sleeves.values()), ZERO)

    # --- signals --------------------------------------------------------------------------------

    def prepare(self, bars: pd.DataFrame, signals: Signals | None = None) -> None:
        """Replay: compute signals once over the whole (causal) history; rows looked up later
        (signals: already computed on these bars, e.g. by the replay choosing its runner)."""
        if signals is None:
            signals = self.strategy.signals(bars[[c for c in bars.columns if c[1] in self._col]])
        if signals.weights is not None:
            raise StrategyError(
                f"{self.strategy.label()}: target weights run on one shared cash pool: "
                "use WeightRunner (quantdesk.system.replay picks it)"
            )
        entries = np.asarray(signals.entries, dtype=bool)
        shape = entries.shape
        self._signals = (
            entries,
            np.asarray(signals.exits, dtype=bool),
            _flags(signals.short_entries, shape),
            _flags(signals.short_exits, shape),
        )
        self._check_shorts(self._signals[2])
        self._set_stops(signals)

    def _check_shorts(self, short_entries: np.ndarray) -> None:
        """Shorts need a market that can sell what it does not hold: a perpetual."""
        for symbol, j in self._col.items():
            if short_entries[:, j].any():
                self._check_shorts_on(symbol)

    def _checked_weights(self, signals: Signals, rows: int, missing: str) -> np.ndarray:
        """signals' weights as a (rows, symbols) array; missing: the refusal when it has none."""
        if signals.weights is None:
            raise StrategyError(f"{self.strategy.label()}: {missing}")
        weights = np.asarray(signals.weights, dtype=np.float64)
        if weights.shape != (rows, len(self.symbols)):
            raise StrategyError(
                f"signals.weights has shape {weights.shape}, expected {(rows, len(self.symbols))}"
            )
        return weights

    def _check_shorts_on(self, symbol: str) -> None:
        if not parse_symbol(symbol).is_derivative:
            raise StrategyError(
                f"{self.strategy.label()}: short entries on {symbol}, a spot market: "
                f"shorts need a perpetual ({perpetual_of(symbol)})"
            )

    def _set_stops(self, signals: Any) -> None:
        for name, target in (("sl_stop", self._sl), ("tp_stop", self._tp)):
            value = getattr(signals, name)
            if value is None:
                continue
            values = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(self.symbols),))
            for symbol, v in zip(self.symbols, values, strict=True):
                if v > 0:
                    target[symbol] = dec(v)

    def remember(self, event: BarEvent) -> None:
        """Keep a closed bar in the symbol's signal window without evaluating the strategy
        (warm-up: only the newest bar's signals are ever acted on)."""
        b = event.bar
        self._history[event.symbol].append((b.time, b.open, b.high, b.low, b.close, b.volume))

    def _live_signals(self, event: BarEvent) -> tuple[bool, bool, bool, bool]:
        """Evaluate on the last `window` closed bars of the symbol; the last row decides."""
        self.remember(event)
        hist = self._history[event.symbol]
        if len(hist) < min(self.window, int(self.strategy.warmup) + 1):
            return False, False, False, False
        rows = np.asarray(hist, dtype=np.float64)
        index = pd.DatetimeIndex(pd.to_datetime(rows[:, 0].astype(np.int64), unit="ms", utc=True))
        fields = ("open", "high", "low", "close", "volume")
        columns = pd.MultiIndex.from_tuples([(f, event.symbol) for f in fields])
        frame = pd.DataFrame(rows[:, 1:], index=index, columns=columns)
        signals = self.strategy.signals(frame)
        if signals.weights is not None:
            raise StrategyError(
                f"{self.strategy.label()}: target weights need the whole universe at each close "
                "on one cash pool (WeightRunner): declare target_weights = True on the strategy"
            )
        if not self._sl and not self._tp:
            self._set_stops(signals)
        shape = np.shape(signals.entries)
        last = [
            np.asarray(signals.entries, dtype=bool)[-1],
            np.asarray(signals.exits, dtype=bool)[-1],
            _flags(signals.short_entries, shape)[-1],
            _flags(signals.short_exits, shape)[-1],
        ]
        if last[2][0]:
            self._check_shorts_on(event.symbol)
        return bool(last[0][0]), bool(last[1][0]), bool(last[2][0]), bool(last[3][0])

    # --- quiet rows (replay) --------------------------------------------------------------------

    def signal_rows(self) -> np.ndarray | None:
        """The prepared rows whose close decides something (any flag of any symbol), in order;
        None without `prepare` (each close is then evaluated). The kernel skips the other rows
        in bulk while the runner is `idle`, telling it only each symbol's last close (`skip`)."""
        if self._signals is None:
            return None
        return np.flatnonzero(np.logical_or.reduce([f.any(axis=1) for f in self._signals]))

    def idle(self) -> bool:
        """No signal waits for an open, no reversal for a fill: a bar without signals at its
        close changes nothing here but the last close."""
        return all(s.signal_ms is None and s.reverse is None for s in self.sleeves.values())

    def skip(self, symbol: str, close: float) -> None:
        """Closes without signals went by; `close` was the last (funding's mark)."""
        self._closes[symbol] = close

    # --- events ---------------------------------------------------------------------------------

    def on_close(self, event: BarEvent) -> list[Intent | Cancel]:
        """Record the signals decided on this close; they are acted on by on_open."""
        self._closes[event.symbol] = event.bar.close
        if self._signals is not None and event.index >= 0:
            i, j = event.index, self._col[event.symbol]
            flags = tuple(bool(frame[i, j]) for frame in self._signals)
        else:
            flags = self._live_signals(event)
        if any(flags):
            sleeve = self.sleeves[event.symbol]
            sleeve.entry, sleeve.exit, sleeve.short_entry, sleeve.short_exit = flags
            sleeve.signal_ms, sleeve.signal_close = event.bar.time, dec(event.bar.close)
        return []

    def on_open(self, symbol: str, bar_ms: int, market: Market) -> list[Intent | Cancel]:
        """Turn the pending signal into orders against the position held now."""
        sleeve = self.sleeves[symbol]
        if sleeve.signal_ms is None:
            return []
        long_in, long_out = sleeve.entry, sleeve.exit
        short_in, short_out = sleeve.short_entry, sleeve.short_exit
        signal_ms, decided = sleeve.signal_ms, sleeve.signal_close
        sleeve.entry = sleeve.exit = sleeve.short_entry = sleeve.short_exit = False
        sleeve.signal_ms = sleeve.signal_close = None
        if long_in or short_in:
            # vectorbt's conflict modes, all "ignore": an entry and an exit of one side, or a
            # long and a short entry, cancel each other
            if long_in and long_out:
                long_in = long_out = False
            if short_in and short_out:
                short_in = short_out = False
            if long_in and short_in:
                long_in = short_in = False
        held = sleeve.qty if sleeve.qty else sleeve.virtual_qty
        if held > 0:
            if short_in:
                return self._reverse(sleeve, held, signal_ms, decided, market)
            return self._close(sleeve, held, signal_ms, decided) if long_out else []
        if held < 0:
            if long_in:
                return self._reverse(sleeve, held, signal_ms, decided, market)
            return self._close(sleeve, held, signal_ms, decided) if short_out else []
        if long_in or short_in:
            side = Side.BUY if long_in else Side.SELL
            price = market.quote(symbol, side)
            step = market.amount_step(symbol)
            return self._entry(sleeve, side, price, step, signal_ms, decided)
        return []

    def _close(
        self,
        sleeve: Sleeve,
        held: Decimal,
        signal_ms: int,
        decided: Decimal | None,
        tag: str = "exit",
    ) -> list[Intent | Cancel]:
        """Cancel the protective orders and close the whole position at the market."""
        out: list[Intent | Cancel] = [Cancel(cid, f"{tag} signal") for cid in sleeve.protective]
        sleeve.protective.clear()
        out.append(
            Intent(
                sleeve.symbol,
                Side.SELL if held > 0 else Side.BUY,
                OrderType.MARKET,
                abs(held),
                signal_ms,
                EXIT,
                reduce_only=True,
                tag=tag,
                decision_price=decided,
            )
        )
        return out

    def _reverse(
        self,
        sleeve: Sleeve,
        held: Decimal,
        signal_ms: int,
        decided: Decimal | None,
        market: Market,
    ) -> list[Intent | Cancel]:
        """An opposite entry: close, then open the other side with the cash the close leaves
        (vectorbt's one reversal order buys or sells exactly that much)."""
        opening = market.bar_open(sleeve.symbol)
        if opening is not None and any(
            _triggers_at(intent, opening) for intent in sleeve.protective.values()
        ):
            return []  # vectorbt: the stop the open gapped through takes this bar's signal
        if self.size is not None:
            # vectorbt refuses to reverse with a fraction (SizeType.Percent): close only
            return self._close(sleeve, held, signal_ms, decided)
        step = market.amount_step(sleeve.symbol)
        out = self._close(sleeve, held, signal_ms, decided, tag="reverse")
        if sleeve.qty:
            sleeve.reverse = (signal_ms, decided, step)  # the entry follows the close's fill
            return out
        # signals-only: nothing fills, the entry is sized from the cash as it stands
        side = Side.SELL if held > 0 else Side.BUY
        price = market.quote(sleeve.symbol, side)
        return out + self._entry(sleeve, side, price, step, signal_ms, decided)

    def _entry(
        self,
        sleeve: Sleeve,
        side: Side,
        price: Decimal | None,
        step: Decimal,
        signal_ms: int,
        decided: Decimal | None,
    ) -> list[Intent | Cancel]:
        """Open a position spending f x cash: f x cash / (1 + fee) / price of the asset, a buy
        paying the ask, a short selling at the bid (vectorbt's buy_nb / sell_nb)."""
        if price is None or price <= 0 or sleeve.cash <= 0:
            return []
        spend = sleeve.cash if self.size is None else sleeve.cash * self.size
        amount = (spend / (1 + self.fee) / price / step).to_integral_value(ROUND_DOWN)
        if amount <= 0:
            return []
        return [
            Intent(
                sleeve.symbol,
                side,
                OrderType.MARKET,
                amount * step,
                signal_ms,
                ENTRY,
                tag="entry",
                decision_price=decided,
            )
        ]

    def on_funding(self, event: FundingEvent) -> list[Intent | Cancel]:
        """A funding settlement: the sleeve pays or receives it on its own position, marked at
        the last close as the kernel marks it, so later entries are sized from the cash left
        (the vectorbt backtest sizes them alike: quantdesk.backtest.runner._funded)."""
        sleeve = self.sleeves.get(event.symbol)
        close = self._closes.get(event.symbol)
        if sleeve is not None and sleeve.qty and close is not None:
            sleeve.cash += funding_payment(sleeve.qty, dec(close), event.rate)
        return []

    def on_fill(self, fill: Fill, tag: str, bar_ms: int) -> list[Intent | Cancel]:
        """Book the fill on the sleeve; place or cancel protective orders."""
        sleeve = self.sleeves[fill.symbol]
        net = net_fill(fill)  # a fee in the asset bought shrinks the quantity, not the cash
        before = sleeve.qty
        sleeve.qty += net.net_quantity
        if fill.side is Side.BUY:
            sleeve.cash -= fill.amount * fill.price + net.fee_in_cash
        else:
            sleeve.cash += fill.amount * fill.price - net.fee_in_cash
        reduced = before and (before > 0) != (net.net_quantity > 0)
        if reduced and 0 < abs(sleeve.qty) < self.min_amounts.get(fill.symbol, ZERO):
            sleeve.qty = ZERO  # dust below the venue's minimum cannot be traded: flat
        out: list[Intent | Cancel] = []
        if tag in ("sl", "tp"):
            sleeve.protective.pop(fill.client_order_id, None)
            if not sleeve.qty:
                out += [Cancel(cid, f"{tag} filled") for cid in sleeve.protective]
                sleeve.protective.clear()
                sleeve.reverse = None
        elif tag == "entry" and sleeve.qty:
            out += self._protective(fill, sleeve, bar_ms)
        elif tag == "reverse" and not sleeve.qty and sleeve.reverse is not None:
            signal_ms, decided, step = sleeve.reverse
            sleeve.reverse = None
            # the opposite entry trades on the close's side at the same open: its fill price
            # is the price the entry pays
            out += self._entry(sleeve, fill.side, fill.price, step, signal_ms, decided)
        return out

    def _protective(self, fill: Fill, sleeve: Sleeve, bar_ms: int) -> list[Intent | Cancel]:
        """Stop-loss / take-profit for the whole position, priced off the entry fill: below
        and above it for a long, above and below it for a short."""
        out: list[Intent | Cancel] = []
        sl, tp = self._sl.get(fill.symbol), self._tp.get(fill.symbol)
        sign = 1 if sleeve.qty > 0 else -1
        side = Side.SELL if sleeve.qty > 0 else Side.BUY
        amount = abs(sleeve.qty)
        if sl:
            out.append(
                Intent(
                    fill.symbol,
                    side,
                    OrderType.STOP,
                    amount,
                    bar_ms,
                    STOP_LOSS,
                    trigger_price=fill.price * (1 - sign * sl),
                    reduce_only=True,
                    tag="sl",
                )
            )
        if tp:
            out.append(
                Intent(
                    fill.symbol,
                    side,
                    OrderType.TAKE_PROFIT,
                    amount,
                    bar_ms,
                    TAKE_PROFIT,
                    trigger_price=fill.price * (1 + sign * tp),
                    reduce_only=True,
                    tag="tp",
                )
            )
        return out

    def placed(self, intent: Intent, client_order_id: str) -> None:
        """The kernel placed a protective order under this client id."""
        if intent.tag in ("sl", "tp"):
            self.sleeves[intent.symbol].protective[client_order_id] = intent

    def assume(self, intent: Intent) -> None:
        """Signals-only: track the position the intents would have built."""
        sleeve = self.sleeves[intent.symbol]
        if intent.tag == "entry":
            sleeve.virtual_qty = intent.amount if intent.side is Side.BUY else -intent.amount
        elif intent.tag in ("exit", "reverse"):
            sleeve.virtual_qty = ZERO


class WeightRunner:
    """Runs a SignalStrategy's target weights on one cash pool shared by all its symbols, as
    the backtest simulates them (vectorbt `from_orders` with size_type="targetpercent",
    cash_sharing=True, call_seq="auto", val_price = the order price, update_value=False):

    - the weights decided on the close of bar t are traded at the open of bar t+1 (`rebalance`,
      called by the kernel once per step); a NaN weight holds the position (no order);
    - the value is cash + the sum of qty x open over the symbols held, taken once before any
      order of the bar; a symbol with weight w gets the target w x value / open, its order is
      target - held (none when it is at most 1e-12, vectorbt's zero size);
    - orders go out in vectorbt's automatic call sequence: ascending by w x value - qty x open
      (sells first, ties in column order, symbols without a weight last); each is placed and
      filled (the open plus slippage, synchronously in replay) before the next is sized;
    - a buy is min(order, cash / ((1 + fee) x ask)) with the cash the orders before it left,
      so cash never goes negative. vectorbt buys the whole order when its cost is within 1e-9
      relative above the cash (its is_close) and holds a cash a hair below zero; the engine
      buys the cash-limited amount then: at most 1e-9 of that order apart;
    - funding settled on a perpetual is the portfolio's (its cash and equity), not the pool's:
      orders are sized from the trading cash, as the backtest adds the funding on top of an
      unfunded simulation and as SimVenue's account (which books no funding) holds it;
    - a negative weight is a short (direction="both"), on perpetuals only (a spot symbol is
      refused): a sale needs no cash and may go below zero, in one order when it crosses from a
      long (vectorbt's single order, not a close and an open), and its proceeds join the cash
      that pays for the buys after it; a buy to cover is a buy, capped by the cash. The
      backtest holds no margin for a short: the replay runs its venue and risk gate on that
      cash model (SimVenue / PreTradeRisk cash_margin); a real venue asks initial margin.
    """

    def __init__(
        self,
        strategy: SignalStrategy,
        symbols: Sequence[str],
        *,
        capital: Decimal,
        fee: Decimal,
        strategy_id: str | None = None,
        window: int | None = None,
    ) -> None:
        """capital: the one starting cash of the whole universe; fee: the venue's fraction;
        window: closed bars kept per symbol in paper and live (default: signal_window)."""
        if not isinstance(strategy, SignalStrategy):
            raise StrategyError(f"{strategy.label()} is not a SignalStrategy")
        self.strategy = strategy
        self.strategy_id = strategy_id or strategy.label()
        self.symbols = list(symbols)
        self.fee = Decimal(fee)
        self.capital = Decimal(capital)
        self.cash = Decimal(capital)
        self.qty: dict[str, Decimal] = dict.fromkeys(self.symbols, ZERO)
        self._col = {s: j for j, s in enumerate(self.symbols)}
        self._weights: np.ndarray | None = None
        # symbol -> (weight, bar ms of the close it was decided on, that close): not NaN only
        self._pending: dict[str, tuple[Decimal, int, Decimal]] = {}
        self._opens: dict[str, Decimal] = {}  # last open per symbol: its valuation price
        self.window = window or signal_window(strategy)
        self._history: dict[str, deque[tuple[int, float, float, float, float, float]]] = {
            s: deque(maxlen=self.window) for s in self.symbols
        }
        self._closed_ms: int | None = None  # paper / live: the last close not yet evaluated
        # orders sent and not filled yet (a live venue reports fills later): client id ->
        # the cash each unit moves at the price it was sized at, so that the buys after a sale
        # are sized from the cash the sale will bring, as the backtest's sequence does
        self._unfilled: dict[str, tuple[Decimal, Decimal]] = {}
        self._quoted: dict[str, Decimal] = {}  # symbol -> the price its last order was sized at

    def prepare(self, bars: pd.DataFrame, signals: Signals | None = None) -> None:
        """Compute the weights once over the whole (causal) history; rows looked up later."""
        if signals is None:
            signals = self.strategy.signals(bars[[c for c in bars.columns if c[1] in self._col]])
        weights = self._checked_weights(
            signals, len(bars), "no target weights (entries/exits run in SignalRunner)"
        )
        for symbol, j in self._col.items():
            if (weights[:, j] < 0).any():
                self._check_shorts_on(symbol)
        self._weights = weights

    def _checked_weights(self, signals: Signals, rows: int, missing: str) -> np.ndarray:
        """signals' weights as a (rows, symbols) array; missing: the refusal when it has none."""
        if signals.weights is None:
            raise StrategyError(f"{self.strategy.label()}: {missing}")
        weights = np.asarray(signals.weights, dtype=np.float64)
        if weights.shape != (rows, len(self.symbols)):
            raise StrategyError(
                f"signals.weights has shape {weights.shape}, expected {(rows, len(self.symbols))}"
            )
        return weights

    def _check_shorts_on(self, symbol: str) -> None:
        """A negative weight sells what is not held: it needs a perpetual."""
        if not parse_symbol(symbol).is_derivative:
            raise StrategyError(
                f"{self.strategy.label()}: a negative target weight (a short) on {symbol}, a "
                f"spot market: shorts need a perpetual ({perpetual_of(symbol)})"
            )

    def value(self) -> Decimal:
        """Cash plus the holdings at the last opens (the value a rebalance sizes from)."""
        held = (q * self._opens[s] for s, q in self.qty.items() if q)
        return self.cash + sum(held, ZERO)

    def remember(self, event: BarEvent) -> None:
        """Keep a closed bar in the symbol's window without deciding on it (warm-up)."""
        b = event.bar
        self._history[event.symbol].append((b.time, b.open, b.high, b.low, b.close, b.volume))

    def on_close(self, event: BarEvent) -> list[Intent | Cancel]:
        """Record the weight decided on this close (a NaN weight: hold, nothing recorded).
        Paper and live: the bar joins the window; the universe's weights are evaluated once
        all of the step's closes are in, when the kernel asks for the rebalance."""
        if self._weights is not None and event.index >= 0:
            weight = float(self._weights[event.index, self._col[event.symbol]])
            if weight == weight:
                self._pending[event.symbol] = (dec(weight), event.bar.time, dec(event.bar.close))
            return []
        self.remember(event)
        self._closed_ms = max(self._closed_ms or event.bar.time, event.bar.time)
        return []

    def _live_weights(self) -> None:
        """Evaluate the strategy on the universe's window (each symbol's last `window` closed
        bars, aligned on their times) and take the last close's row as the pending weights of
        the symbols that closed a bar then: history up to the last close, never beyond."""
        at, self._closed_ms = self._closed_ms, None
        if at is None:
            return
        have = [s for s in self.symbols if self._history[s]]
        warm = min(self.window, int(self.strategy.warmup) + 1)
        if not any(len(self._history[s]) >= warm for s in have):
            return
        fields = ("open", "high", "low", "close", "volume")
        parts = {}
        for symbol in self.symbols:
            rows = np.asarray(self._history[symbol], dtype=np.float64).reshape(-1, 6)
            index = pd.DatetimeIndex(
                pd.to_datetime(rows[:, 0].astype(np.int64), unit="ms", utc=True), name="time"
            )
            parts[symbol] = pd.DataFrame(rows[:, 1:], index=index, columns=list(fields))
        frame = pd.concat(parts, axis=1).swaplevel(axis=1).sort_index(axis=1)
        frame = frame.reindex(
            columns=pd.MultiIndex.from_product([fields, self.symbols])
        ).sort_index()
        signals = self.strategy.signals(frame)
        weights = self._checked_weights(
            signals, len(frame), "declares target_weights but returned entries/exits"
        )
        last = int(frame.index[-1].value // 1_000_000)
        if last != at:
            return
        for symbol, j in self._col.items():
            hist = self._history[symbol]
            weight = float(weights[-1, j])
            if not hist or hist[-1][0] != at or weight != weight:
                continue
            if weight < 0:
                self._check_shorts_on(symbol)
            self._pending[symbol] = (dec(weight), at, dec(hist[-1][4]))

    def on_open(self, symbol: str, bar_ms: int, market: Market) -> list[Intent | Cancel]:
        """Nothing per symbol: the kernel calls `rebalance` once for the whole step."""
        return []

    def rebalance(
        self, events: Sequence[BarEvent], market: Market
    ) -> Iterator[list[Intent | Cancel]]:
        """At a step's open: the orders of the last close's weights, one at a time in
        vectorbt's call sequence; the caller carries out (and fills) each before the next.

        Acting on a close (a live venue: the next open is unknown) the holdings are valued
        and the orders sized at the step's closes; paper (a bar venue) and replay act at the
        open that follows."""
        if self._weights is None:
            self._live_weights()
        self._unfilled.clear()  # an order of an earlier step that never filled brings nothing
        opens = {}
        for ev in events:
            if ev.symbol in self._col:
                price = market.bar_open(ev.symbol)
                opens[ev.symbol] = price if price is not None else dec(ev.bar.close)
        self._opens.update(opens)
        pending, self._pending = self._pending, {}
        if not pending:
            return
        value = self.value()  # fixed for the whole row, as vectorbt's update_value=False
        if value <= 0:
            return
        rows = []
        for symbol in self.symbols:
            if symbol not in pending or symbol not in opens:
                continue
            weight, decided_ms, close = pending[symbol]
            price = opens[symbol]
            order_value = weight * value - self.qty[symbol] * price
            rows.append((order_value, symbol, weight * value / price, decided_ms, close))
        rows.sort(key=lambda row: row[0])  # stable: ties keep the column order
        for _, symbol, target, decided_ms, close in rows:
            intent = self._order(symbol, target, decided_ms, close, market)
            if intent is not None:
                yield [intent]

    def _order(
        self, symbol: str, target: Decimal, decided_ms: int, close: Decimal, market: Market
    ) -> Intent | None:
        """The market order taking symbol from its holding to target (None: nothing to do)."""
        held = self.qty[symbol]
        delta = target - held
        if abs(delta) <= SIZE_ZERO:
            return None
        step = market.amount_step(symbol)
        if delta < 0:
            # a sale needs no cash (vectorbt's sell_nb without lock_cash): a long is sold down,
            # and what goes below zero is a short sale whose proceeds join the cash
            side = Side.SELL
            self._quoted[symbol] = market.quote(symbol, Side.SELL) or self._opens[symbol]
            amount = (-delta / step).to_integral_value() * step
            if target > 0:
                amount = min(held, amount)
            elif not target and held > 0:
                amount = held  # to flat exactly, as vectorbt's target 0 - position
            reduce_only = target >= 0
        else:
            # a buy (or a buy to cover) is paid for by the cash: capped by what it affords
            side = Side.BUY
            ask = market.quote(symbol, Side.BUY)
            cash = self.cash + self._unfilled_cash()
            if ask is None or ask <= 0 or cash <= 0:
                return None
            self._quoted[symbol] = ask
            affordable = cash / (1 + self.fee) / ask
            amount = (min(delta, affordable) / step).to_integral_value(ROUND_DOWN) * step
            if not target and held < 0 and affordable >= -held:
                amount = -held
            reduce_only = target <= 0
        if amount <= 0:
            return None
        return Intent(
            symbol,
            side,
            OrderType.MARKET,
            amount,
            decided_ms,
            REBALANCE,
            reduce_only=reduce_only,
            tag="rebalance",
            decision_price=close,
        )

    def _unfilled_cash(self) -> Decimal:
        """What the orders sent and not filled yet will add to (or take from) the cash."""
        return sum((left * per_unit for left, per_unit in self._unfilled.values()), ZERO)

    def on_fill(self, fill: Fill, tag: str, bar_ms: int) -> list[Intent | Cancel]:
        """Book the fill on the shared cash and the symbol's holding."""
        net = net_fill(fill)
        self.qty[fill.symbol] = self.qty.get(fill.symbol, ZERO) + net.net_quantity
        if fill.side is Side.BUY:
            self.cash -= fill.amount * fill.price + net.fee_in_cash
        else:
            self.cash += fill.amount * fill.price - net.fee_in_cash
        # the first fill replaces the estimate (a partial fill's rest is not counted on)
        self._unfilled.pop(fill.client_order_id, None)
        return []

    def placed(self, intent: Intent, client_order_id: str) -> None:
        """A rebalance order went out: until it fills, the cash it moves is an estimate at
        the price it was sized at (fills in replay and paper come before the next order)."""
        price = self._quoted.get(intent.symbol)
        if intent.tag != "rebalance" or price is None:
            return
        if intent.side is Side.BUY:
            self._unfilled[client_order_id] = (intent.amount, -price * (1 + self.fee))
        else:
            self._unfilled[client_order_id] = (intent.amount, price * (1 - self.fee))

    def assume(self, intent: Intent) -> None:
        """Signals-only: nothing fills, each rebalance is sized from the holdings as they are."""


def _flags(frame: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean signal frame as an array (all False when the strategy gave none)."""
    if frame is None:
        return np.zeros(shape, dtype=bool)
    return np.asarray(frame, dtype=bool)


def _triggers_at(intent: Intent, price: Decimal) -> bool:
    """Would this stop-loss / take-profit fill at a bar opening at `price` (gapped through)?"""
    rule = stop_fill if intent.type is OrderType.STOP else take_profit_fill
    assert intent.trigger_price is not None
    return rule(intent.side, intent.trigger_price, price, price, price) is not None


class QuoteRunner:
    """Drives a QuoteStrategy's hooks; the strategy returns Intents (or Cancels)."""

    def __init__(self, strategy: QuoteStrategy, symbols: list[str], strategy_id: str | None = None):
        """symbols: the markets whose bars reach the strategy's on_bar."""
        self.strategy = strategy
        self.strategy_id = strategy_id or strategy.label()
        self.symbols = list(symbols)
        self.context: Any = None  # the kernel, set by it: .clock, .portfolio, .om.orders

    def on_close(self, event: BarEvent) -> list[Intent | Cancel]:
        """on_bar hook."""
        return list(self.strategy.on_bar(event, self.context) or [])

    def on_open(self, symbol: str, bar_ms: int, market: Market) -> list[Intent | Cancel]:
        """Quote strategies act in their hooks only."""
        return []

    def on_fill(self, fill: Fill, tag: str, bar_ms: int) -> list[Intent | Cancel]:
        """on_fill hook."""
        return list(self.strategy.on_fill(fill, self.context) or [])

    def on_book(self, book: BookTop) -> list[Intent | Cancel]:
        """on_book hook: the best bid/ask at a bar's open."""
        return list(self.strategy.on_book(book, self.context) or [])

    def on_funding(self, event: FundingEvent) -> list[Intent | Cancel]:
        """on_funding hook: a funding settlement on one of its markets."""
        return list(self.strategy.on_funding(event, self.context) or [])

    def placed(self, intent: Intent, client_order_id: str) -> None:
        """Nothing to remember: the strategy sees its orders through the context."""

    def assume(self, intent: Intent) -> None:
        """Signals-only: nothing to track."""
