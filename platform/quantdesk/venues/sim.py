"""SimVenue: the engine's async `Venue` over the shared matching core, driven bar by bar.

The fill convention of `quantdesk.model.fills`, as the engine sees it:
- `open_bar(symbol, bar)` starts a bar: market orders queued while the bar was closed execute
  at its open, and until `range_bar` a market order executes at once at the open. The orders
  at the open come first: an exit due at the open is not replaced by a stop the bar reaches.
- `range_bar(symbol)` then trades the bar through its range: resting stop-loss / take-profit
  orders are checked against its open/high/low (a stop-loss wins when both trigger), those
  placed at this open included, so a stop is live on its entry bar. Until `close_bar`, market
  orders still execute at the open (the engine sends none then).
- A market order executes in the matching core against a one-level book at the reference price
  (the open, or the last close between bars) moved by the slippage: asks at price * (1 + s),
  bids at price * (1 - s), deep enough for any size. Slippage is thus the half-spread a taker
  pays, applied by the core's own book walk.
- A triggered stop is a market order at its trigger price (or the open when the bar gapped
  through it), so it pays slippage too; triggers use `model.fills.stop_fill` / `take_profit_fill`,
  the same functions the core uses for its own conditional orders.
- Limit orders rest in the core and are matched against each closed bar there.
- Perpetuals trade at leverage 1 (`CrossAccount`): a new order needs the wallet plus
  unrealized PnL minus the positions' initial margin, valued at the lower of entry and mark,
  which for longs at a loss is the cash-flow cash the engine's portfolio holds.
- Fees are a fraction of notional paid in the quote (settle) currency, as in the vectorbt
  backtest; the core runs with zero fees and SimVenue debits the fee from the same account, so
  the core's balances stay the venue's truth.

Fills are stamped with the bar's open time. Everything is Decimal and deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from quantdesk.model import (
    ZERO,
    DuplicateOrder,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    SimBar,
    VenueError,
    VenueNotFound,
    VenueOrder,
    VenueRefused,
    check_transition,
    dec,
    fee,
    net_fill,
    slipped_price,
    split_symbol,
    stop_fill,
    take_profit_fill,
)
from quantdesk.venues.accounts import Account
from quantdesk.venues.matching import FeeSchedule, MatchingCore
from quantdesk.venues.models import Bar, MarketSpec, OrderRejected, OrderRequest
from quantdesk.venues.models import OrderStatus as CoreStatus
from quantdesk.venues.models import OrderType as CoreType

ACCOUNT = "sim"
DEPTH = Decimal("1e30")  # the reference book never runs dry: sizes are the strategy's choice
_NO_FEES = FeeSchedule(ZERO, ZERO)
_STATUS = {
    CoreStatus.NEW: OrderStatus.NEW,
    CoreStatus.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    CoreStatus.FILLED: OrderStatus.FILLED,
    CoreStatus.CANCELED: OrderStatus.CANCELED,
    CoreStatus.EXPIRED: OrderStatus.EXPIRED,
    CoreStatus.REJECTED: OrderStatus.REJECTED,
}


def market_spec(symbol: str, amount_step: Decimal, price_tick: Decimal) -> MarketSpec:
    """A market without exchange filters beyond the given steps (research venue)."""
    base, quote = split_symbol(symbol)
    return MarketSpec(
        symbol=symbol,
        id=f"{base}{quote}",
        base=base,
        quote=quote,
        perp=":" in symbol,
        tick_size=price_tick,
        step_size=amount_step,
        min_qty=amount_step,
        max_qty=DEPTH,
        min_notional=ZERO,
    )


@dataclass
class CrossAccount(Account):
    """The SimVenue's account: a position's initial margin is valued at the lower of its entry
    and the mark (the sandbox's core values it at the entry). At leverage 1 a long at a loss
    then frees exactly its cash-flow cash (wallet - qty x entry, what the engine's portfolio
    holds), as Binance's cross margin (margin at the mark) does, so a long's unrealized loss
    or a stale mark never refuses a buy the cash pays for; every other case keeps the core's
    margin (never less free balance than it: a short at a loss is valued as before).

    cash_margin: the backtest's cash model instead (vectorbt's from_orders without lock_cash,
    which the target-weight backtest runs): a perp sale needs no margin and its proceeds are
    cash, a buy needs its cost out of the cash-flow cash (wallet - the sum of signed qty x
    entry, a short's proceeds included), and nothing is liquidated. A real venue holds initial
    margin on shorts too; this mode exists so that a replay of target weights trades what the
    backtest trades (a short funding longs, sells first in the call sequence)."""

    cash_margin: bool = False

    def available(self, marks: dict[str, Decimal], asset: str = "USDT") -> Decimal:
        """wallet + unrealized - initial margin (at min(entry, mark)) - order margin."""
        free = self.wallet_balance(asset) - self.order_margin
        if self.cash_margin:
            flows = (pos.qty * pos.entry for pos in self.positions.values() if pos.qty)
            return free - sum(flows, ZERO)
        for symbol, pos in self.positions.items():
            if pos.qty:
                mark = marks[symbol]
                free += pos.unrealized(mark) - abs(pos.qty) * min(pos.entry, mark) / pos.leverage
        return free

    def margin_for(self, side: Side, opening: Decimal, price: Decimal, leverage: int) -> Decimal:
        """Cash margin: a sale (a short sale too) needs nothing, a buy its cost."""
        if self.cash_margin and side is Side.SELL:
            return ZERO
        return super().margin_for(side, opening, price, leverage)

    @property
    def liquidates(self) -> bool:
        """Cash margin has no liquidation (the backtest has none)."""
        return not self.cash_margin


@dataclass
class _Tracked:
    """An engine order as SimVenue holds it: queued market, pending stop, or in the core."""

    order: Order
    status: OrderStatus = OrderStatus.NEW
    core_id: int | None = None
    fills: tuple[Fill, ...] = ()
    reason: str = ""

    def move(self, status: OrderStatus, reason: str = "") -> None:
        """Change status only along the model's transition table."""
        check_transition(self.order.client_order_id, self.status, status)
        self.status = status
        self.reason = reason or self.reason


class SimVenue:
    """In-process venue for replay and paper trading, over `MatchingCore`."""

    def __init__(
        self,
        symbols: Iterable[str],
        balances: Mapping[str, Decimal],
        *,
        fee: Decimal = ZERO,
        maker_fee: Decimal | None = None,
        slippage: Decimal = ZERO,
        name: str = "sim",
        amount_step: Decimal = Decimal("1e-18"),
        price_tick: Decimal = Decimal("1e-12"),
        clock: Callable[[], int] | None = None,
        cash_margin: bool = False,
    ) -> None:
        """balances: starting spot balances (and USD-M wallet) per asset; fee/slippage fractions;
        cash_margin: perps on the backtest's cash model (CrossAccount), not initial margin."""
        self.name = name
        self.fee = Decimal(fee)
        self.maker_fee = self.fee if maker_fee is None else Decimal(maker_fee)
        self.slippage = Decimal(slippage)
        self.specs = {s: market_spec(s, amount_step, price_tick) for s in symbols}
        self.core = MatchingCore(self.specs.values(), spot_fees=_NO_FEES, perp_fees=_NO_FEES)
        self.account = CrossAccount(ACCOUNT, cash_margin=cash_margin)
        start = {k: Decimal(v) for k, v in balances.items()}
        self.core.set_balances(self.account, start, start)
        self.core.accounts[ACCOUNT] = self.account
        for symbol, spec in self.specs.items():
            if spec.perp:
                self.core.set_leverage(self.account, symbol, 1)
        self._clock = clock
        self._orders: dict[str, _Tracked] = {}
        self._stops: dict[str, list[_Tracked]] = {s: [] for s in self.specs}
        self._queued: dict[str, list[_Tracked]] = {s: [] for s in self.specs}
        self._open: dict[str, SimBar | None] = dict.fromkeys(self.specs)  # bar in progress
        self._last: dict[str, SimBar] = {}  # last closed bar

    # --- bars ---------------------------------------------------------------------------------

    def open_bar(self, symbol: str, bar: SimBar) -> list[str]:
        """A bar starts: run queued market orders at its open (stops wait for `range_bar`).

        Returns the client ids of orders that changed (for the engine to look up).
        """
        self._open[symbol] = bar
        changed: list[str] = []
        queued = self._queued[symbol]
        if queued:
            self._queued[symbol] = []
            for tracked in queued:
                self._execute_market(tracked, dec(bar.open))
                changed.append(tracked.order.client_order_id)
        return changed

    def range_bar(self, symbol: str) -> list[str]:
        """After the orders at the open: trigger stops on the bar's open/high/low.

        Returns the client ids of orders that changed.
        """
        bar = self._open.get(symbol)
        if bar is None or not self._stops[symbol]:
            return []
        return self._trigger_stops(symbol, bar)

    def close_bar(self, symbol: str, bar: SimBar) -> list[str]:
        """The bar closed: match resting limit orders against it in the core."""
        self._open[symbol] = None
        self._last[symbol] = bar
        if not any(o.symbol == symbol for o in self.core.open_orders.values()):
            return []
        count = len(self.core.fills)
        self.core.on_bar(symbol, self._core_bar(bar), bar.time)
        fills = self.core.fills[count:]
        self._charge(fills, bar.time)  # filled during the bar: stamped with its open time
        return sorted({self.core.orders[f.order_id].client_id for f in fills})

    def idle(self) -> bool:
        """Nothing working: no queued market order, no pending stop, no order in the core, so
        bars open and close here without effect but for the last bar seen (`skip_bar`)."""
        return (
            not self.core.open_orders
            and not any(self._queued.values())
            and not any(self._stops.values())
        )

    def skip_bar(self, symbol: str, bar: SimBar) -> None:
        """What open_bar, range_bar and close_bar of bars up to `bar` (the last) leave on an
        idle venue: `bar` is the last closed bar, none is in progress."""
        self._open[symbol] = None
        self._last[symbol] = bar

    def quote(self, symbol: str, side: Side) -> Decimal | None:
        """The price a market order of `side` would fill at now (None before any bar)."""
        ref = self._reference(symbol)
        if ref is None:
            return None
        return slipped_price(ref, side, self.slippage)

    def _reference(self, symbol: str) -> Decimal | None:
        bar = self._open.get(symbol)
        if bar is not None:
            return dec(bar.open)
        last = self._last.get(symbol)
        return dec(last.close) if last is not None else None

    def _core_bar(self, bar: SimBar) -> Bar:
        return Bar(
            bar.time, dec(bar.open), dec(bar.high), dec(bar.low), dec(bar.close), dec(bar.volume)
        )

    def _now(self, symbol: str) -> int:
        bar = self._open.get(symbol)
        if bar is not None:
            return bar.time
        return self._clock() if self._clock is not None else self.core.now

    # --- Venue protocol -------------------------------------------------------------------------

    async def create_order(self, order: Order) -> VenueOrder:
        """Place an order: market orders fill at the open (or queue for it), stops rest here,
        limits rest in the matching core."""
        cid = order.client_order_id
        if order.symbol not in self.specs:
            raise VenueRefused(f"{self.name}: unknown symbol {order.symbol}")
        if cid in self._orders:
            raise DuplicateOrder(f"{self.name}: duplicate client order id {cid}")
        if order.type not in (
            OrderType.MARKET,
            OrderType.LIMIT,
            OrderType.STOP,
            OrderType.TAKE_PROFIT,
        ):
            raise VenueRefused(f"{self.name}: {order.type} orders are not supported")
        tracked = _Tracked(order)
        self._orders[cid] = tracked
        try:
            if order.type is OrderType.MARKET:
                ref = self._open[order.symbol]
                if ref is None:
                    self._queued[order.symbol].append(tracked)
                else:
                    self._execute_market(tracked, dec(ref.open), raise_errors=True)
            elif order.type is OrderType.LIMIT:
                request = OrderRequest(
                    order.symbol,
                    order.side,
                    CoreType.LIMIT,
                    qty=order.amount,
                    price=order.price,
                    client_id=cid,
                    reduce_only=order.reduce_only,
                )
                self._submit_core(tracked, request)
            else:
                self._stops[order.symbol].append(tracked)
        except VenueError:
            del self._orders[cid]  # refused: the venue never had it
            raise
        return self._view(tracked)

    async def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str
    ) -> VenueOrder | None:
        """The order with this client id, or None."""
        tracked = self._orders.get(client_order_id)
        return None if tracked is None else self._view(tracked)

    async def cancel_order(self, order: Order) -> VenueOrder:
        """Cancel an open order; a finished one is returned as it is."""
        tracked = self._orders.get(order.client_order_id)
        if tracked is None:
            raise VenueNotFound(f"{self.name}: no order {order.client_order_id}")
        if tracked.core_id is not None:
            core = self.core.orders[tracked.core_id]
            if core.status.is_open:
                self.core.cancel(self.account, order.symbol, core.id, None)
        elif tracked.status.is_open:
            for pool in (self._stops[order.symbol], self._queued[order.symbol]):
                if tracked in pool:
                    pool.remove(tracked)
            tracked.move(OrderStatus.CANCELED)
        return self._view(tracked)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Open orders, oldest first."""
        views = [self._view(t) for t in self._orders.values()]
        return [
            v
            for v, t in zip(views, self._orders.values(), strict=True)
            if v.status.is_open and (symbol is None or t.order.symbol == symbol)
        ]

    def balances(self) -> dict[str, Decimal]:
        """Total spot balance per asset (free + locked)."""
        return {a: b.total for a, b in self.account.balances.items()}

    # --- execution ------------------------------------------------------------------------------

    def _trigger_stops(self, symbol: str, bar: SimBar) -> list[str]:
        o, h, low = dec(bar.open), dec(bar.high), dec(bar.low)
        hits = []
        for tracked in self._stops[symbol]:
            order = tracked.order
            rule = stop_fill if order.type is OrderType.STOP else take_profit_fill
            price = rule(order.side, order.trigger_price, o, h, low)
            if price is not None:
                hits.append((order.type is not OrderType.STOP, tracked, price))
        hits.sort(key=lambda hit: hit[0])  # stop-losses before take-profits
        for _, tracked, price in hits:
            self._stops[symbol].remove(tracked)
            self._execute_market(tracked, price)
        return [t.order.client_order_id for _, t, _ in hits]

    def _execute_market(
        self, tracked: _Tracked, price: Decimal, raise_errors: bool = False
    ) -> None:
        """Fill a market order against a one-level book at price moved by the slippage."""
        order = tracked.order
        symbol = order.symbol
        bid, ask = (slipped_price(price, s, self.slippage) for s in (Side.SELL, Side.BUY))
        self._seed_mark(symbol, price)
        self.core.set_book(symbol, [[bid, DEPTH]], [[ask, DEPTH]])
        request = OrderRequest(
            symbol,
            order.side,
            CoreType.MARKET,
            qty=order.amount,
            client_id=order.client_order_id,
            reduce_only=order.reduce_only and self.specs[symbol].perp,
        )
        try:
            self._submit_core(tracked, request)
        except VenueError as exc:
            if raise_errors:
                raise
            # Refused when it came to execute (e.g. a stop with nothing left to sell).
            tracked.move(OrderStatus.EXPIRED, str(exc))

    def _seed_mark(self, symbol: str, price: Decimal) -> None:
        # The core validates orders against its last bar; give it the price in force now.
        now = self._now(symbol)
        self.core.now = max(self.core.now, now)
        self.core.bars[symbol] = Bar(now, price, price, price, price, ZERO)

    def _submit_core(self, tracked: _Tracked, request: OrderRequest) -> None:
        if request.symbol not in self.core.bars:
            ref = self._reference(request.symbol)
            if ref is None:
                raise VenueRefused(f"{self.name}: no price yet for {request.symbol}")
            self._seed_mark(request.symbol, ref)
        if request.type is CoreType.LIMIT and request.symbol in self._last:
            ref = self._reference(request.symbol)
            assert ref is not None
            self.core.set_book(
                request.symbol,
                [[slipped_price(ref, Side.SELL, self.slippage), DEPTH]],
                [[slipped_price(ref, Side.BUY, self.slippage), DEPTH]],
            )
        count = len(self.core.fills)
        try:
            core = self.core.submit(self.account, request)
        except OrderRejected as exc:
            raise VenueRefused(f"{self.name}: {exc}") from None
        tracked.core_id = core.id
        self._charge(self.core.fills[count:])

    def _charge(self, fills: list, timestamp: int | None = None) -> None:
        """Debit fees in the quote currency and record engine fills on their orders."""
        for cf in fills:
            core = self.core.orders[cf.order_id]
            tracked = self._orders[core.client_id]
            spec = self.specs[cf.symbol]
            rate = self.maker_fee if cf.maker else self.fee
            fill = Fill(
                trade_id=f"{self.name}-{cf.trade_id}",
                client_order_id=core.client_id,
                symbol=cf.symbol,
                side=cf.side,
                amount=cf.qty,
                price=cf.price,
                fee=fee(cf.quote_qty, rate),
                fee_currency=spec.quote,
                timestamp=self._now(cf.symbol) if timestamp is None else timestamp,
                venue=self.name,
                venue_order_id=str(core.id),
            )
            # the core traded fee-free; the fee is booked here by the rule every account uses
            paid = net_fill(fill).fee_in_cash
            if paid:
                if spec.perp:
                    self.account.credit(spec.quote, -paid)
                else:
                    self.account.balance(spec.quote).free -= paid
            tracked.fills = (*tracked.fills, fill)

    def _view(self, tracked: _Tracked) -> VenueOrder:
        """The venue's report of one order, fills itemized."""
        order = tracked.order
        status, reason = tracked.status, tracked.reason
        if tracked.core_id is not None:
            core = self.core.orders[tracked.core_id]
            status = _STATUS[core.status]
            if status is OrderStatus.EXPIRED and core.filled == core.qty:
                status = OrderStatus.FILLED
        filled = sum((f.amount for f in tracked.fills), ZERO)
        return VenueOrder(
            client_order_id=order.client_order_id,
            status=status,
            venue_order_id=None if tracked.core_id is None else str(tracked.core_id),
            filled=filled,
            average_price=(
                sum((f.notional for f in tracked.fills), ZERO) / filled if filled else None
            ),
            fee=sum((f.fee for f in tracked.fills), ZERO),
            fee_currency=self.specs[order.symbol].quote,
            fills=tracked.fills,
            timestamp=self._now(order.symbol),
            reason=reason,
        )
