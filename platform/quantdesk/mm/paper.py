"""Paper quoting: our limit orders matched locally against a live venue's touch and trades,
never sent to the venue, with the backtest's queue-position rules (mm/fills.py).

An order joins the queue behind the size at its price (`fills.join_queue`: nothing ahead
inside the spread, `deep_queue` behind the touch, refused when it would cross: post-only). A
market trade at its price consumes the queue ahead first, then the order; a trade through its
price, or the opposite touch reaching it, fills the rest at the order's price. A size decrease
at its level that is not a trade never advances it (the RiskAverse model: the safe bound).
Fills are maker fills at the order's own price, the fee a fraction of notional in the quote.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

from quantdesk.mm.fills import join_queue
from quantdesk.model import (
    ZERO,
    Fill,
    Order,
    OrderStatus,
    Side,
    VenueNotFound,
    VenueOrder,
    VenueRefused,
    dec,
    split_symbol,
)

S = OrderStatus


@dataclass
class _Resting:
    order: Order
    side: int  # +1 bid, -1 ask
    ptick: int
    remaining: Decimal
    queue: float  # size ahead of us at our price
    venue_id: str
    status: OrderStatus = S.NEW
    fills: list[Fill] = field(default_factory=list)


class PaperQuoteVenue:
    """A `Venue` that rests orders in memory and fills them from the market's own events."""

    def __init__(
        self,
        name: str,
        symbol: str,
        tick: Decimal,
        *,
        amount_step: Decimal = Decimal("1e-8"),
        maker_fee: Decimal = ZERO,
        deep_queue: float = 0.0,
    ) -> None:
        """tick: the price tick; amount_step: fills are whole steps; deep_queue: size assumed
        ahead behind the touch."""
        self.name = name
        self.symbol = symbol
        self.tick = tick
        self.maker_fee = maker_fee
        self.deep_queue = deep_queue
        self.quote_ccy = split_symbol(symbol)[1]
        self.amount_step = amount_step
        self.orders: dict[str, _Resting] = {}
        self.touch: tuple[int, int, float, float] | None = None  # bid, ask ticks and sizes
        self.time_ms = 0
        self._ids = itertools.count(1)

    def _ticks(self, price: Decimal | float) -> int:
        return int(dec(price) / self.tick + Decimal("0.5")) if price else 0

    # --- the Venue protocol ------------------------------------------------------------------

    async def create_order(self, order: Order) -> VenueOrder:
        """Rest a post-only limit order (refused when it would cross or without a touch)."""
        if order.price is None:
            raise VenueRefused("paper quoting takes limit orders only")
        if self.touch is None:
            raise VenueRefused("no touch seen yet")
        if order.client_order_id in self.orders:
            raise VenueRefused(f"duplicate client id {order.client_order_id}")
        side = 1 if order.side is Side.BUY else -1
        ptick = self._ticks(order.price)
        bid, ask, bsz, asz = self.touch
        queue = join_queue(side, ptick, bid, ask, bsz, asz, self.deep_queue)
        if queue < 0:
            raise VenueRefused(f"post-only {order.side} at {order.price} would cross")
        resting = _Resting(order, side, ptick, order.amount, float(queue), str(next(self._ids)))
        self.orders[order.client_order_id] = resting
        return self.report(order.client_order_id)

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder:
        """The order's state; VenueNotFound when never placed here."""
        if client_order_id not in self.orders:
            raise VenueNotFound(f"no order {client_order_id}")
        return self.report(client_order_id)

    async def cancel_order(self, order: Order) -> VenueOrder:
        """Cancel a resting order (a finished one is reported as it ended)."""
        resting = self.orders.get(order.client_order_id)
        if resting is None:
            raise VenueNotFound(f"no order {order.client_order_id}")
        if resting.status in (S.NEW, S.PARTIALLY_FILLED):
            resting.status = S.CANCELED
        return self.report(order.client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Orders still resting."""
        return [
            self.report(cid)
            for cid, r in self.orders.items()
            if r.status in (S.NEW, S.PARTIALLY_FILLED)
        ]

    def report(self, client_order_id: str) -> VenueOrder:
        """The VenueOrder of one paper order, every fill itemized."""
        r = self.orders[client_order_id]
        filled = r.order.amount - r.remaining
        notional = sum((f.notional for f in r.fills), ZERO)
        return VenueOrder(
            client_order_id=client_order_id,
            status=r.status,
            venue_order_id=r.venue_id,
            filled=filled,
            average_price=notional / filled if filled else None,
            fee=sum((f.fee for f in r.fills), ZERO),
            fee_currency=self.quote_ccy,
            fills=tuple(r.fills),
            timestamp=self.time_ms,
        )

    # --- matching ----------------------------------------------------------------------------

    def _fill(self, r: _Resting, qty: Decimal, time_ms: int) -> None:
        qty = min(qty, r.remaining)
        if qty <= 0:
            return
        price = r.ptick * self.tick
        r.fills.append(
            Fill(
                trade_id=f"{r.order.client_order_id}:{len(r.fills) + 1}",  # unique: client ids are
                client_order_id=r.order.client_order_id,
                symbol=self.symbol,
                side=r.order.side,
                amount=qty,
                price=price,
                fee=self.maker_fee * price * qty,
                fee_currency=self.quote_ccy,
                timestamp=time_ms,
                venue=self.name,
                venue_order_id=r.venue_id,
            )
        )
        r.remaining -= qty
        r.status = S.FILLED if r.remaining <= 0 else S.PARTIALLY_FILLED

    def _live(self) -> list[_Resting]:
        return [r for r in self.orders.values() if r.status in (S.NEW, S.PARTIALLY_FILLED)]

    def on_touch(
        self, bid: float, ask: float, bid_size: float, ask_size: float, time_ms: int
    ) -> list[str]:
        """A new touch: crossings fill, queues shrink to the level; the changed client ids."""
        b, a = self._ticks(bid), self._ticks(ask)
        self.time_ms = max(self.time_ms, time_ms)
        changed = []
        for r in self._live():
            mine, size, crossed = (
                (b, bid_size, r.ptick >= a) if r.side > 0 else (a, ask_size, r.ptick <= b)
            )
            inside = r.ptick > mine if r.side > 0 else r.ptick < mine
            if crossed:
                self._fill(r, r.remaining, time_ms)
                changed.append(r.order.client_order_id)
            elif inside:
                r.queue = 0.0
            elif r.ptick == mine:
                r.queue = min(r.queue, size)  # RiskAverse: cancels never move us up
        self.touch = (b, a, bid_size, ask_size)
        return changed

    def on_trade(self, side: int, price: float, size: float, time_ms: int) -> list[str]:
        """A market trade (aggressor side): the resting orders it reaches fill; changed ids."""
        tp = self._ticks(price)
        self.time_ms = max(self.time_ms, time_ms)
        changed = []
        for r in self._live():
            if r.side == side:
                continue  # a buyer lifts asks, a seller hits bids
            through = r.ptick < tp if side > 0 else r.ptick > tp
            if through:
                self._fill(r, r.remaining, time_ms)
            elif r.ptick == tp:
                got = max(size - r.queue, 0.0)
                r.queue = max(r.queue - size, 0.0)
                if got <= 0:
                    continue
                steps = int(dec(got) / self.amount_step)  # whole steps: the venue's grid
                if steps <= 0:
                    continue
                self._fill(r, steps * self.amount_step, time_ms)
            else:
                continue
            changed.append(r.order.client_order_id)
        return changed
