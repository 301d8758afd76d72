"""Accounts: spot balances with locked amounts, and a USD-M wallet with one-way positions.

Position margin is isolated-style and simple (documented, not Binance's tiered formula):
initial margin = |qty| * entry / leverage; with maintenance rate m the liquidation price is
long: entry * (1 - 1/leverage) / (1 - m), short: entry * (1 + 1/leverage) / (1 + m),
i.e. where margin + unrealized PnL equals the maintenance margin at that price. The matching
core closes a position when a bar reaches it (MatchingCore._liquidate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from quantdesk.venues.models import ZERO, OrderRejected, Reject, Side

MAINT_MARGIN_RATE = Decimal("0.004")
DEFAULT_LEVERAGE = 20


@dataclass
class Balance:
    """Free and locked amounts of one asset."""

    free: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        """Free plus locked."""
        return self.free + self.locked


@dataclass
class Position:
    """A one-way USD-M position: signed quantity, average entry, leverage."""

    symbol: str
    qty: Decimal = ZERO
    entry: Decimal = ZERO
    leverage: int = DEFAULT_LEVERAGE
    update_time: int = 0

    def unrealized(self, mark: Decimal) -> Decimal:
        """Unrealized PnL at the mark price."""
        return self.qty * (mark - self.entry)

    @property
    def margin(self) -> Decimal:
        """Initial margin held by the position."""
        return abs(self.qty) * self.entry / self.leverage

    @property
    def liquidation_price(self) -> Decimal:
        """Isolated-style liquidation price (0 when flat)."""
        if not self.qty:
            return ZERO
        inv = Decimal(1) / self.leverage
        if self.qty > 0:
            return self.entry * (1 - inv) / (1 - MAINT_MARGIN_RATE)
        return self.entry * (1 + inv) / (1 + MAINT_MARGIN_RATE)

    def apply(self, signed_qty: Decimal, price: Decimal) -> Decimal:
        """Add a fill (signed quantity at price); return the realized PnL it produced."""
        realized = ZERO
        if self.qty == 0 or (self.qty > 0) == (signed_qty > 0):
            total = abs(self.qty) + abs(signed_qty)
            self.entry = (self.entry * abs(self.qty) + price * abs(signed_qty)) / total
            self.qty += signed_qty
            return realized
        closed = min(abs(signed_qty), abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        realized = closed * (price - self.entry) * direction
        self.qty += signed_qty
        if self.qty == 0:
            self.entry = ZERO
        elif (self.qty > 0) != (direction > 0):
            self.entry = price  # flipped: the remainder opened at this price
        return realized


@dataclass
class IncomeEntry:
    """A futures wallet movement (funding fee, realized PnL, commission)."""

    id: int
    symbol: str
    kind: str  # FUNDING_FEE, REALIZED_PNL, COMMISSION
    amount: Decimal
    asset: str
    time: int
    info: str = ""


@dataclass
class Account:
    """One API key's spot balances, USD-M wallet, positions and leverage settings."""

    name: str
    balances: dict[str, Balance] = field(default_factory=dict)
    wallet: dict[str, Decimal] = field(default_factory=dict)  # USD-M wallet balances
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    order_margin: Decimal = ZERO  # margin held by open perp orders
    income: list[IncomeEntry] = field(default_factory=list)

    def balance(self, asset: str) -> Balance:
        """The (possibly new, empty) balance of asset."""
        return self.balances.setdefault(asset, Balance())

    def lock(self, asset: str, amount: Decimal) -> None:
        """Move amount from free to locked, or reject when free is short."""
        bal = self.balance(asset)
        if amount > bal.free:
            raise OrderRejected(
                Reject.INSUFFICIENT_FUNDS, f"{asset} free {bal.free} < required {amount}"
            )
        bal.free -= amount
        bal.locked += amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        """Move amount from locked back to free."""
        bal = self.balance(asset)
        bal.locked -= amount
        bal.free += amount

    def position(self, symbol: str) -> Position:
        """The (possibly flat) position in symbol, carrying the symbol's leverage."""
        pos = self.positions.get(symbol)
        if pos is None:
            pos = Position(symbol, leverage=self.leverage.get(symbol, DEFAULT_LEVERAGE))
            self.positions[symbol] = pos
        return pos

    def wallet_balance(self, asset: str = "USDT") -> Decimal:
        """USD-M wallet balance of asset."""
        return self.wallet.get(asset, ZERO)

    def credit(self, asset: str, amount: Decimal) -> None:
        """Add (or with a negative amount, take) from the USD-M wallet."""
        self.wallet[asset] = self.wallet_balance(asset) + amount

    def available(self, marks: dict[str, Decimal], asset: str = "USDT") -> Decimal:
        """USD-M balance free for new orders: wallet + unrealized - position and order margin."""
        upnl = sum((p.unrealized(marks[s]) for s, p in self.positions.items() if p.qty), ZERO)
        margin = sum((p.margin for p in self.positions.values()), ZERO)
        return self.wallet_balance(asset) + upnl - margin - self.order_margin

    def margin_for(self, side: Side, opening: Decimal, price: Decimal, leverage: int) -> Decimal:
        """Initial margin a perp order opening `opening` (beyond what it closes) must find."""
        return opening * price / leverage

    @property
    def liquidates(self) -> bool:
        """Whether the venue closes this account's positions at their liquidation price."""
        return True
