"""The matching core shared by the sandbox exchange and the in-process SimVenue.

Marketable orders execute against the current book (partial fills level by level, taker fee);
resting limit and stop orders are matched against each new bar with the fill convention of
`quantdesk.model.fills` (maker fee for resting limits, taker fee for triggered stops). Everything is
Decimal and driven only by bars, snapshots and requests: no wall clock, no randomness.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from quantdesk.model import Side, fee, limit_fill, stop_fill, take_profit_fill
from quantdesk.venues.accounts import Account, Balance, IncomeEntry
from quantdesk.venues.book import Book, BookConfig, book_from_bar
from quantdesk.venues.models import (
    ZERO,
    Bar,
    Fill,
    MarketSpec,
    Order,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Reject,
    TimeInForce,
)


@dataclass(frozen=True)
class FeeSchedule:
    """Maker and taker fee rates (fractions of notional)."""

    maker: Decimal
    taker: Decimal


@dataclass(frozen=True)
class CoreEvent:
    """Something an account's user data stream reports, emitted as it happens.

    kind: "NEW", "TRADE", "CANCELED", "EXPIRED" (an order's execution types, with `order` and
    for TRADE `fill`), "FUNDING" (a funding payment in `symbol`) or "BALANCES" (balances set
    from outside: `assets` spot, `futures` for the USD-M wallet).
    """

    kind: str
    account: Account
    order: Order | None = None
    fill: Fill | None = None
    symbol: str | None = None
    assets: tuple[str, ...] = ()
    futures: bool = False


FUNDING_QUANTUM = Decimal("1e-8")
SPOT_FEES = FeeSchedule(Decimal("0.001"), Decimal("0.001"))
PERP_FEES = FeeSchedule(Decimal("0.0002"), Decimal("0.0004"))


class MatchingCore:
    """Markets, books, accounts and orders of one venue."""

    def __init__(
        self,
        markets: Iterable[MarketSpec],
        book_config: BookConfig | None = None,
        spot_fees: FeeSchedule = SPOT_FEES,
        perp_fees: FeeSchedule = PERP_FEES,
    ) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.by_id = {(m.id, m.perp): m for m in self.markets.values()}
        self.book_config = book_config or BookConfig()
        self.spot_fees = spot_fees
        self.perp_fees = perp_fees
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self.open_orders: dict[int, Order] = {}  # insertion order = time priority
        self.fills: list[Fill] = []
        self.books: dict[str, Book] = {}
        self.bars: dict[str, Bar] = {}
        self.now = 0
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._income_ids = itertools.count(1)
        self._client_ids = itertools.count(1)
        # Called synchronously on every order, fill and balance change (the sandbox's user data
        # streams render events from it); None costs nothing for the in-process SimVenue.
        self.listener: Callable[[CoreEvent], None] | None = None

    def _emit(self, kind: str, account: Account, **what: object) -> None:
        if self.listener is not None:
            self.listener(CoreEvent(kind, account, **what))  # type: ignore[arg-type]

    # -- setup ----------------------------------------------------------------------------

    def add_account(
        self, name: str, balances: dict[str, Decimal], wallet: dict[str, Decimal] | None = None
    ) -> Account:
        """Create (or replace) an account with spot balances and a USD-M wallet."""
        account = Account(name)
        self.set_balances(account, balances, wallet if wallet is not None else balances)
        self.accounts[name] = account
        return account

    def set_balances(
        self, account: Account, balances: dict[str, Decimal], wallet: dict[str, Decimal] | None
    ) -> None:
        """Overwrite free spot balances (locked amounts stay) and optionally the USD-M wallet."""
        for asset, amount in balances.items():
            account.balances[asset] = Balance(amount, account.balance(asset).locked)
        if wallet is not None:
            account.wallet = dict(wallet)
        if balances:
            self._emit("BALANCES", account, assets=tuple(balances))
        if wallet is not None:
            self._emit("BALANCES", account, assets=tuple(wallet), futures=True)

    def market(self, symbol: str) -> MarketSpec:
        """The market spec of symbol, or BAD_SYMBOL."""
        try:
            return self.markets[symbol]
        except KeyError:
            raise OrderRejected(Reject.BAD_SYMBOL, f"unknown symbol {symbol}") from None

    def mark(self, symbol: str) -> Decimal:
        """Mark / last price: the current bar's close."""
        return self.bars[symbol].close

    def marks(self) -> dict[str, Decimal]:
        """Mark prices of every market with a bar."""
        return {s: b.close for s, b in self.bars.items()}

    def fees(self, spec: MarketSpec) -> FeeSchedule:
        """Fee schedule of the market's type."""
        return self.perp_fees if spec.perp else self.spot_fees

    # -- market data -------------------------------------------------------------------------

    def on_bar(self, symbol: str, bar: Bar, now: int) -> list[Fill]:
        """A new bar closed: match resting orders against it, then rebuild the book from it."""
        self.now = max(self.now, now)
        fills: list[Fill] = []
        if symbol in self.bars:  # the first bar only seeds the book
            for order in [o for o in self.open_orders.values() if o.symbol == symbol]:
                fills += self._match_bar(order, bar)
            if self.markets[symbol].perp:
                fills += self._liquidate(symbol, bar)
        self.bars[symbol] = bar
        self.books[symbol] = book_from_bar(bar, self.markets[symbol], self.book_config)
        return fills

    def set_book(self, symbol: str, bids: list[list[Decimal]], asks: list[list[Decimal]]) -> None:
        """Replace the book with a snapshot until the next bar."""
        self.market(symbol)
        self.books[symbol] = Book(
            sorted(([p, q] for p, q in bids), key=lambda lv: -lv[0]),
            sorted(([p, q] for p, q in asks), key=lambda lv: lv[0]),
        )

    def settle_funding(self, symbol: str, rate: Decimal, time: int) -> list[IncomeEntry]:
        """Pay funding on every open position: longs pay shorts when the rate is positive."""
        mark = self.mark(symbol)
        spec = self.markets[symbol]
        out = []
        for account in self.accounts.values():
            pos = account.positions.get(symbol)
            if pos is None or not pos.qty:
                continue
            # Settled to 8 decimals, as Binance books it.
            amount = (-pos.qty * mark * rate).quantize(FUNDING_QUANTUM)
            account.credit(spec.quote, amount)
            entry = IncomeEntry(
                next(self._income_ids), symbol, "FUNDING_FEE", amount, spec.quote, time
            )
            account.income.append(entry)
            out.append(entry)
            self._emit("FUNDING", account, symbol=symbol)
        return out

    # -- requests ---------------------------------------------------------------------------

    def submit(self, account: Account, req: OrderRequest) -> Order:
        """Validate, place and (when marketable) execute an order; raise OrderRejected."""
        spec = self.market(req.symbol)
        self._validate(account, spec, req)
        order = Order(
            id=next(self._order_ids),
            account=account.name,
            client_id=req.client_id or f"sandbox-{next(self._client_ids)}",
            symbol=spec.symbol,
            side=req.side,
            type=req.type,
            tif=req.tif,
            qty=req.qty if req.qty is not None else self._qty_for_quote(spec, req),
            price=req.price,
            stop_price=req.stop_price,
            quote_qty=req.quote_qty,
            reduce_only=req.reduce_only,
            time=self.now,
            update_time=self.now,
        )
        self._reserve(account, spec, order)
        self.orders[order.id] = order
        self.open_orders[order.id] = order
        self._emit("NEW", account, order=order)
        if not order.type.is_conditional:
            self._take(account, spec, order, order.price if order.type.has_limit else None)
            if order.type is OrderType.MARKET or order.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._close(account, spec, order, OrderStatus.EXPIRED)
        return order

    def cancel(
        self, account: Account, symbol: str, order_id: int | None, client_id: str | None
    ) -> Order:
        """Cancel an open order of account by id or client id."""
        order = self.find(account, symbol, order_id, client_id)
        if not order.status.is_open:
            raise OrderRejected(Reject.UNKNOWN_ORDER, "order is not open")
        self._close(account, self.markets[order.symbol], order, OrderStatus.CANCELED)
        return order

    def cancel_all(self, account: Account, symbol: str) -> list[Order]:
        """Cancel every open order of account in symbol."""
        spec = self.market(symbol)
        mine = [o for o in self.open_orders.values() if o.account == account.name]
        out = []
        for order in mine:
            if order.symbol == spec.symbol:
                self._close(account, spec, order, OrderStatus.CANCELED)
                out.append(order)
        return out

    def find(
        self, account: Account, symbol: str, order_id: int | None, client_id: str | None
    ) -> Order:
        """An order of account by id or client id (the latest one with that client id)."""
        spec = self.market(symbol)
        if order_id is not None:
            order = self.orders.get(order_id)
            if order and order.account == account.name and order.symbol == spec.symbol:
                return order
        elif client_id is not None:
            for order in reversed(self.orders.values()):
                if (order.account, order.symbol, order.client_id) == (
                    account.name,
                    spec.symbol,
                    client_id,
                ):
                    return order
        raise OrderRejected(Reject.UNKNOWN_ORDER, "order does not exist")

    def orders_of(self, account: Account, symbol: str | None, open_only: bool) -> list[Order]:
        """Orders of account (in one symbol or all), oldest first."""
        pool = self.open_orders.values() if open_only else self.orders.values()
        return [
            o for o in pool if o.account == account.name and (symbol is None or o.symbol == symbol)
        ]

    def trades_of(self, account: Account, symbol: str) -> list[Fill]:
        """Fills of account in symbol, oldest first."""
        return [f for f in self.fills if f.account == account.name and f.symbol == symbol]

    def set_leverage(self, account: Account, symbol: str, leverage: int) -> None:
        """Set the leverage of a perp for account (applies to the open position too)."""
        spec = self.market(symbol)
        if not spec.perp or not 1 <= leverage <= 125:
            raise OrderRejected(Reject.BAD_REQUEST, "leverage must be 1..125 on a perpetual")
        account.leverage[symbol] = leverage
        account.position(symbol).leverage = leverage

    # -- internals ----------------------------------------------------------------------------

    def _liquidate(self, symbol: str, bar: Bar) -> list[Fill]:
        """Close positions whose liquidation price the bar reached, at that price.

        Open orders of the account in that market are cancelled first, as Binance does; the
        closing order has client id `autoclose-<n>` and pays no fee (the model keeps it simple).
        """
        spec = self.markets[symbol]
        fills = []
        for account in self.accounts.values():
            pos = account.positions.get(symbol)
            if pos is None or not pos.qty or not account.liquidates:
                continue
            liq = spec.round_price(pos.liquidation_price, up=pos.qty > 0)
            if not (bar.low <= liq if pos.qty > 0 else bar.high >= liq):
                continue
            self.cancel_all(account, symbol)
            side = Side.SELL if pos.qty > 0 else Side.BUY
            order_id = next(self._order_ids)
            order = Order(
                id=order_id,
                account=account.name,
                client_id=f"autoclose-{order_id}",
                symbol=symbol,
                side=side,
                type=OrderType.MARKET,
                tif=TimeInForce.IOC,
                qty=abs(pos.qty),
                price=None,
                stop_price=None,
                quote_qty=None,
                reduce_only=True,
                time=self.now,
                update_time=self.now,
            )
            self.orders[order.id] = order
            self.open_orders[order.id] = order
            # the open price when the bar gapped through the liquidation price
            price = min(liq, bar.open) if pos.qty > 0 else max(liq, bar.open)
            fills.append(self._fill(account, spec, order, price, order.qty, maker=False, rate=ZERO))
        return fills

    def _validate(self, account: Account, spec: MarketSpec, req: OrderRequest) -> None:
        if req.type.has_limit and req.price is None:
            raise OrderRejected(Reject.BAD_REQUEST, "price is required")
        if req.type.is_conditional and req.stop_price is None:
            raise OrderRejected(Reject.BAD_REQUEST, "stopPrice is required")
        if req.qty is None and not (
            req.type is OrderType.MARKET and req.quote_qty and not spec.perp
        ):
            raise OrderRejected(Reject.BAD_REQUEST, "quantity is required")
        if req.client_id and any(
            o.client_id == req.client_id and o.account == account.name
            for o in self.open_orders.values()
        ):
            raise OrderRejected(Reject.DUPLICATE_ORDER, "Duplicate order sent.")
        for price in (req.price, req.stop_price):
            if price is not None and (price <= 0 or price % spec.tick_size):
                raise OrderRejected(Reject.PRICE_FILTER, "Filter failure: PRICE_FILTER")
        if req.qty is not None and (
            req.qty < spec.min_qty or req.qty > spec.max_qty or req.qty % spec.step_size
        ):
            raise OrderRejected(Reject.LOT_SIZE, "Filter failure: LOT_SIZE")
        book = self.books[spec.symbol]
        reference = req.price or req.stop_price or book.best(req.side) or self.mark(spec.symbol)
        notional = req.quote_qty if req.qty is None else req.qty * reference
        if notional < spec.min_notional and not req.reduce_only:
            raise OrderRejected(Reject.NOTIONAL, "Filter failure: NOTIONAL")
        if req.type.is_conditional:
            last = self.mark(spec.symbol)
            up = (req.side is Side.BUY) == req.type.is_stop  # triggers when price rises
            if (up and last >= req.stop_price) or (not up and last <= req.stop_price):
                raise OrderRejected(Reject.WOULD_TRIGGER, "Stop price would trigger immediately.")
        post_only = req.type is OrderType.LIMIT_MAKER or req.tif is TimeInForce.GTX
        if post_only and book.crosses(req.side, req.price):
            raise OrderRejected(Reject.WOULD_TAKE, "Order would immediately match and take.")
        if (
            req.tif is TimeInForce.FOK
            and spec.perp
            and book.available(req.side, req.price) < req.qty
        ):
            raise OrderRejected(Reject.FOK_UNFILLED, "FOK order could not be filled")
        if req.reduce_only:
            pos = account.position(spec.symbol)
            if not pos.qty or (pos.qty > 0) == (req.side is Side.BUY):
                raise OrderRejected(Reject.REDUCE_ONLY, "ReduceOnly Order is rejected.")

    def _reserve(self, account: Account, spec: MarketSpec, order: Order) -> None:
        """Lock what the order may spend: quote or base on spot, initial margin on perps."""
        book = self.books[spec.symbol]
        if spec.perp:
            if order.reduce_only:
                return
            price = (
                order.price or order.stop_price or book.best(order.side) or self.mark(spec.symbol)
            )
            pos = account.position(spec.symbol)
            # one-way mode: the part of the order that closes the opposite position needs no
            # margin (Binance's rule, which the pre-trade risk gate applies too), only the rest
            closing = ZERO
            if pos.qty and (pos.qty > 0) != (order.side is Side.BUY):
                closing = min(abs(pos.qty), order.qty)
            margin = account.margin_for(order.side, order.qty - closing, price, pos.leverage)
            if account.available(self.marks(), spec.quote) < margin:
                raise OrderRejected(
                    Reject.INSUFFICIENT_FUNDS,
                    "Account has insufficient balance for requested action.",
                )
            order.locked = margin
            account.order_margin += margin
            return
        if order.side is Side.SELL:
            account.lock(spec.base, order.qty)
            order.locked = order.qty
            return
        if order.type is OrderType.MARKET:
            # Market buys lock nothing; check the cost of walking the book now.
            cost = sum((p * q for p, q in _walk(book, order.side, order.qty)), ZERO)
            if cost > account.balance(spec.quote).free:
                raise OrderRejected(
                    Reject.INSUFFICIENT_FUNDS,
                    "Account has insufficient balance for requested action.",
                )
            return
        amount = order.qty * (order.price if order.type.has_limit else order.stop_price)
        account.lock(spec.quote, amount)
        order.locked = amount

    def _qty_for_quote(self, spec: MarketSpec, req: OrderRequest) -> Decimal:
        """Base quantity a quoteOrderQty market order buys or sells on the current book."""
        quote, qty = req.quote_qty or ZERO, ZERO
        levels = (
            self.books[spec.symbol].asks if req.side is Side.BUY else self.books[spec.symbol].bids
        )
        for price, size in levels:
            take = min(size, spec.round_qty(quote / price))
            if take <= 0:
                break
            qty += take
            quote -= price * take
        if qty <= 0:
            raise OrderRejected(Reject.LOT_SIZE, "Filter failure: LOT_SIZE")
        return qty

    def _take(
        self, account: Account, spec: MarketSpec, order: Order, limit: Decimal | None
    ) -> None:
        """Execute as taker against the book, level by level."""
        book = self.books[spec.symbol]
        if order.tif is TimeInForce.FOK and book.available(order.side, limit) < order.remaining:
            return  # spot FOK: nothing fills, the order expires
        want = min(order.remaining, self._reduce_cap(account, spec, order))
        for price, qty in book.take(order.side, want, limit):
            self._fill(account, spec, order, price, qty, maker=False)

    def _match_bar(self, order: Order, bar: Bar) -> list[Fill]:
        account = self.accounts[order.account]
        spec = self.markets[order.symbol]
        if order.type.is_conditional and not order.triggered:
            rule = stop_fill if order.type.is_stop else take_profit_fill
            trigger = rule(order.side, order.stop_price, bar.open, bar.high, bar.low)
            if trigger is None:
                return []
            order.triggered = True
            order.update_time = self.now
            limit = order.price if order.type.has_limit else None
            if limit is not None and not (
                (order.side is Side.BUY and limit >= trigger)
                or (order.side is Side.SELL and limit <= trigger)
            ):
                return []  # the limit rests from the next bar on
            return self._fill_all(account, spec, order, trigger, maker=False)
        if order.price is None:
            return []
        price = limit_fill(order.side, order.price, bar.open, bar.high, bar.low)
        if price is None:
            return []
        return self._fill_all(account, spec, order, price, maker=True)

    def _fill_all(
        self, account: Account, spec: MarketSpec, order: Order, price: Decimal, maker: bool
    ) -> list[Fill]:
        """Fill the rest of a resting or triggered order at price, if the account still can."""
        qty = min(order.remaining, self._reduce_cap(account, spec, order))
        short_of_quote = (
            not spec.perp
            and order.side is Side.BUY
            and price * qty > order.locked + account.balance(spec.quote).free
        )
        if qty <= 0 or short_of_quote:
            # A reduce-only order with nothing left to reduce, or a stop buy that gapped past
            # what the account can pay: it expires instead of overdrawing.
            self._close(account, spec, order, OrderStatus.EXPIRED)
            return []
        fill = self._fill(account, spec, order, price, qty, maker)
        if order.status.is_open:
            self._close(account, spec, order, OrderStatus.EXPIRED)
        return [fill]

    def _reduce_cap(self, account: Account, spec: MarketSpec, order: Order) -> Decimal:
        """How much a reduce-only order may still fill (the open position's size)."""
        if not (spec.perp and order.reduce_only):
            return order.remaining
        pos = account.position(spec.symbol)
        if not pos.qty or (pos.qty > 0) == (order.side is Side.BUY):
            return ZERO
        return abs(pos.qty)

    def _fill(
        self,
        account: Account,
        spec: MarketSpec,
        order: Order,
        price: Decimal,
        qty: Decimal,
        maker: bool,
        rate: Decimal | None = None,
    ) -> Fill:
        if rate is None:
            rates = self.fees(spec)
            rate = rates.maker if maker else rates.taker
        quote_qty = price * qty
        realized = ZERO
        if spec.perp:
            commission, asset = fee(quote_qty, rate), spec.quote
            pos = account.position(spec.symbol)
            realized = pos.apply(qty if order.side is Side.BUY else -qty, price)
            pos.update_time = self.now
            account.credit(asset, realized - commission)
            if order.locked:
                release = order.locked * qty / order.remaining
                order.locked -= release
                account.order_margin -= release
            for kind, amount in (("REALIZED_PNL", realized), ("COMMISSION", -commission)):
                if amount:
                    account.income.append(
                        IncomeEntry(
                            next(self._income_ids), spec.symbol, kind, amount, asset, self.now
                        )
                    )
        elif order.side is Side.BUY:
            commission, asset = fee(qty, rate), spec.base
            release = order.locked * qty / order.remaining if order.locked else ZERO
            order.locked -= release
            quote = account.balance(spec.quote)
            quote.locked -= release
            quote.free += release - quote_qty
            account.balance(spec.base).free += qty - commission
        else:
            commission, asset = fee(quote_qty, rate), spec.quote
            order.locked -= qty
            account.balance(spec.base).locked -= qty
            account.balance(spec.quote).free += quote_qty - commission
        order.filled += qty
        order.cum_quote += quote_qty
        order.update_time = self.now
        fill = Fill(
            trade_id=next(self._trade_ids),
            order_id=order.id,
            account=account.name,
            symbol=spec.symbol,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=quote_qty,
            commission=commission,
            commission_asset=asset,
            maker=maker,
            time=self.now,
            realized_pnl=realized,
        )
        order.fills.append(fill)
        self.fills.append(fill)
        if order.remaining <= 0:
            self._close(account, spec, order, OrderStatus.FILLED)
        else:
            order.apply(OrderStatus.PARTIALLY_FILLED)
        self._emit("TRADE", account, order=order, fill=fill)
        return fill

    def _close(self, account: Account, spec: MarketSpec, order: Order, status: OrderStatus) -> None:
        """End an order: release whatever it still holds."""
        if not order.status.is_open:
            return
        if order.locked:
            if spec.perp:
                account.order_margin -= order.locked
            else:
                account.unlock(spec.base if order.side is Side.SELL else spec.quote, order.locked)
            order.locked = ZERO
        order.apply(status)
        order.update_time = self.now
        self.open_orders.pop(order.id, None)
        if status is not OrderStatus.FILLED:  # a fill reports itself as TRADE
            self._emit(status.value.upper(), account, order=order)


def _walk(book: Book, side: Side, qty: Decimal) -> list[tuple[Decimal, Decimal]]:
    """What taking qty would execute, without consuming the book."""
    out = []
    for price, size in book.asks if side is Side.BUY else book.bids:
        if qty <= 0:
            break
        take = min(qty, size)
        out.append((price, take))
        qty -= take
    return out
