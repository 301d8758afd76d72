"""The portfolio in Decimal: cash, positions, PnL, fees, funding, equity and trade statistics.

Cash-flow accounting, the same as vectorbt's: a buy pays amount * price out of the quote (or
settle) currency, a sell receives it, fees are paid in their own currency, and equity is cash plus
the signed position quantities at their marks. This holds for spot and for perpetuals alike
(a short's market value is negative), so replay equity is comparable with the backtest.

Positions use the average-cost method: increases move the average entry price, reductions
realize (exit - entry) * closed quantity at an unchanged average, and a fill that crosses zero
closes the position and opens the remainder at the fill price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from quantdesk.model import ZERO, Fill, NetFill, Side, net_fill, split_symbol


def funding_payment(quantity: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """Funding received by a position (negative when paid): longs pay a positive rate."""
    return -quantity * mark * rate


@dataclass
class Position:
    """A signed position in one symbol (negative quantity = short)."""

    symbol: str
    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO  # gross of fees and funding
    fees: Decimal = ZERO  # in the cash currency (fees paid in other assets are valued at fill)
    funding: Decimal = ZERO
    updated_ms: int = 0

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """Profit of the open quantity at `mark`."""
        return (mark - self.average_price) * self.quantity


@dataclass
class RoundTrip:
    """One trade from flat to flat (a flip closes one and opens the next)."""

    symbol: str
    direction: int  # +1 long, -1 short
    entry_ms: int
    entry_amount: Decimal = ZERO
    entry_value: Decimal = ZERO
    exit_amount: Decimal = ZERO
    exit_value: Decimal = ZERO
    pnl: Decimal = ZERO  # gross realized
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    exit_ms: int | None = None

    @property
    def entry_price(self) -> Decimal:
        """Average entry price."""
        return self.entry_value / self.entry_amount

    @property
    def exit_price(self) -> Decimal | None:
        """Average exit price (None while nothing was closed)."""
        return self.exit_value / self.exit_amount if self.exit_amount else None

    @property
    def net_pnl(self) -> Decimal:
        """Realized PnL after fees and funding."""
        return self.pnl - self.fees + self.funding


@dataclass(frozen=True)
class TradeStats:
    """Statistics over closed round trips and the equity curve."""

    trades: int
    wins: int
    losses: int
    win_rate: Decimal
    average_win: Decimal
    average_loss: Decimal  # negative
    net_pnl: Decimal
    max_drawdown: Decimal  # fraction of the running peak, >= 0
    max_drawdown_value: Decimal


@dataclass
class Portfolio:
    """Cash per currency, positions and their history; `currency` is what equity is valued in."""

    cash: dict[str, Decimal] = field(default_factory=dict)
    currency: str = "USDT"
    positions: dict[str, Position] = field(default_factory=dict)
    fees: dict[str, Decimal] = field(default_factory=dict)
    funding: Decimal = ZERO
    closed_trips: list[RoundTrip] = field(default_factory=list)
    equity_curve: list[tuple[int, Decimal]] = field(default_factory=list)
    open_trips: dict[str, RoundTrip] = field(default_factory=dict)
    initial_equity: Decimal = ZERO

    def __post_init__(self) -> None:
        self.cash = {k: Decimal(v) for k, v in self.cash.items()}
        if not self.initial_equity:
            self.initial_equity = self.cash.get(self.currency, ZERO)

    # --- events -------------------------------------------------------------------------------

    def apply_fill(self, fill: Fill) -> Decimal:
        """Book one execution; returns the gross PnL it realized."""
        net = net_fill(fill)
        ccy = net.cash_currency
        pos = self.positions.setdefault(fill.symbol, Position(fill.symbol))
        self.cash[ccy] = self.cash.get(ccy, ZERO) + net.cash
        old = pos.quantity
        delta = net.quantity
        realized = ZERO
        closing = ZERO
        if old == 0 or (old > 0) == (delta > 0):
            cost = abs(old) * pos.average_price + fill.amount * fill.price
            pos.quantity = old + delta
            pos.average_price = cost / abs(pos.quantity)
        else:
            closing = min(fill.amount, abs(old))
            realized = (fill.price - pos.average_price) * closing * (1 if old > 0 else -1)
            pos.quantity = old + delta
            if pos.quantity == 0:
                pos.average_price = ZERO
            elif (pos.quantity > 0) != (old > 0):
                pos.average_price = fill.price  # flipped: the rest opened at this price
        fee_value = self._pay_fee(net, pos)
        pos.realized_pnl += realized
        pos.fees += fee_value
        pos.updated_ms = fill.timestamp
        self._book_trip(fill, old, closing, realized, fee_value)
        return realized

    def apply_funding(self, symbol: str, amount: Decimal, timestamp: int) -> None:
        """Book a funding payment (positive = received) for a position in `symbol`."""
        _, ccy = split_symbol(symbol)
        self.cash[ccy] = self.cash.get(ccy, ZERO) + amount
        self.funding += amount
        pos = self.positions.setdefault(symbol, Position(symbol))
        pos.funding += amount
        pos.updated_ms = timestamp
        trip = self.open_trips.get(symbol)
        if trip is not None:
            trip.funding += amount

    def _pay_fee(self, net: NetFill, pos: Position) -> Decimal:
        """Deduct the fee where it was charged; returns its value in the cash currency."""
        paid = net.fee_in_base + net.fee_in_cash + net.fee_in_other
        if not paid:
            return ZERO
        self.fees[net.fee_currency] = self.fees.get(net.fee_currency, ZERO) + paid
        # spot buys on Binance charge the fee in the asset bought: the position shrinks
        pos.quantity -= net.fee_in_base
        if net.fee_in_cash or net.fee_in_other:
            self.cash[net.fee_currency] = self.cash.get(net.fee_currency, ZERO) - paid
        return net.fee_value

    def _book_trip(
        self, fill: Fill, old: Decimal, closing: Decimal, realized: Decimal, fee: Decimal
    ) -> None:
        trip = self.open_trips.get(fill.symbol)
        opening = fill.amount - closing
        if closing and trip is None:
            # the residual a fee in the base asset left once its trip had closed (a spot short
            # covered by a buy that paid its fee in the asset bought): a trip of its own
            trip = RoundTrip(fill.symbol, 1 if old > 0 else -1, fill.timestamp)
            trip.entry_amount, trip.entry_value = abs(old), abs(old) * fill.price
            self.open_trips[fill.symbol] = trip
        if closing:
            trip.exit_amount += closing
            trip.exit_value += closing * fill.price
            trip.pnl += realized
            trip.fees += fee * closing / fill.amount
            if closing == abs(old):
                trip.exit_ms = fill.timestamp
                self.closed_trips.append(self.open_trips.pop(fill.symbol))
                trip = None
        if opening:
            if trip is None:
                direction = 1 if fill.side is Side.BUY else -1
                trip = RoundTrip(fill.symbol, direction, fill.timestamp)
                self.open_trips[fill.symbol] = trip
            trip.entry_amount += opening
            trip.entry_value += opening * fill.price
            trip.fees += fee * opening / fill.amount

    # --- valuation ----------------------------------------------------------------------------

    def unrealized_pnl(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Unrealized PnL of all open positions at `marks` (symbol -> price)."""
        return sum(
            (p.unrealized_pnl(marks[s]) for s, p in self.positions.items() if p.quantity),
            ZERO,
        )

    def realized_pnl(self) -> Decimal:
        """Gross realized PnL over all positions."""
        return sum((p.realized_pnl for p in self.positions.values()), ZERO)

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Mark-to-market value in `currency`; other cash needs a mark like 'BNB/USDT'."""
        total = ZERO
        for ccy, amount in self.cash.items():
            if ccy == self.currency:
                total += amount
            elif amount:
                pair = f"{ccy}/{self.currency}"
                if pair not in marks:
                    raise KeyError(f"no mark for {pair} to value {amount} {ccy}")
                total += amount * marks[pair]
        for symbol, pos in self.positions.items():
            if pos.quantity:
                total += pos.quantity * marks[symbol]
        return total

    def mark(self, timestamp: int, marks: Mapping[str, Decimal]) -> Decimal:
        """Append an equity snapshot to the equity curve and return it."""
        value = self.equity(marks)
        if self.equity_curve and timestamp < self.equity_curve[-1][0]:
            raise ValueError("equity snapshots must be in time order")
        self.equity_curve.append((timestamp, value))
        return value

    def daily_pnl(self) -> list[tuple[date, Decimal]]:
        """Change of the last equity of each UTC day versus the previous day (or the start)."""
        closes: dict[date, Decimal] = {}
        for ts, value in self.equity_curve:
            closes[datetime.fromtimestamp(ts / 1000, tz=UTC).date()] = value
        result = []
        previous = self.initial_equity
        for day, value in closes.items():
            result.append((day, value - previous))
            previous = value
        return result

    def max_drawdown(self) -> tuple[Decimal, Decimal]:
        """(largest fall from a running peak as a fraction of it, the same fall in currency)."""
        peak = self.initial_equity
        worst_frac = worst_value = ZERO
        for _, value in self.equity_curve:
            peak = max(peak, value)
            fall = peak - value
            if fall > worst_value:
                worst_value = fall
            if peak > 0 and fall / peak > worst_frac:
                worst_frac = fall / peak
        return worst_frac, worst_value

    def trade_stats(self) -> TradeStats:
        """Win rate, average win/loss (net of fees and funding) and max drawdown."""
        nets = [t.net_pnl for t in self.closed_trips]
        wins = [n for n in nets if n > 0]
        losses = [n for n in nets if n <= 0]
        dd, dd_value = self.max_drawdown()
        return TradeStats(
            trades=len(nets),
            wins=len(wins),
            losses=len(losses),
            win_rate=Decimal(len(wins)) / len(nets) if nets else ZERO,
            average_win=sum(wins, ZERO) / len(wins) if wins else ZERO,
            average_loss=sum(losses, ZERO) / len(losses) if losses else ZERO,
            net_pnl=sum(nets, ZERO),
            max_drawdown=dd,
            max_drawdown_value=dd_value,
        )
