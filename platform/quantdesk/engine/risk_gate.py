"""The pre-trade risk gate: trading states and the checks that need no history.

`RiskEngine` is the interface the engine calls before every order; `PreTradeRisk` implements the
stateless part: trading state, precision, market limits, max notional per order and free balance.
Limits that need history (drawdown, exposure, VaR, rate of orders) belong to quantdesk.risk.

Order of checks: state -> reduce-only -> precision -> market limits -> max notional -> balance.
Later checks may shrink the amount (APPROVED_REDUCED); an amount shrunk below the market minimum
is denied with the reason of the check that shrank it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any, Protocol

from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

from quantdesk.engine.orders import ZERO, Order
from quantdesk.engine.portfolio import split_symbol
from quantdesk.fills import Side


class TradingState(StrEnum):
    """ACTIVE trades normally; REDUCING only lets exposure shrink; HALTED only cancels."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class Decision(StrEnum):
    """Outcome of a pre-trade check."""

    APPROVED = "approved"
    APPROVED_REDUCED = "approved_reduced"
    DENIED = "denied"


class Reason(StrEnum):
    """Why an order was denied or reduced."""

    HALTED = "halted"
    REDUCING_ONLY = "reducing_only"  # REDUCING state and the order is not reduce-only
    REDUCE_ONLY_INCREASES = "reduce_only_increases"  # reduce-only but no position to reduce
    REDUCE_ONLY_CLIPPED = "reduce_only_clipped"  # larger than the position it reduces
    UNKNOWN_MARKET = "unknown_market"
    NO_PRICE = "no_price"  # market order and no reference price
    MIN_AMOUNT = "min_amount"  # below the market minimum (or rounds to zero)
    MAX_AMOUNT = "max_amount"
    MIN_NOTIONAL = "min_notional"
    MAX_NOTIONAL = "max_notional"  # our per-order limit
    INSUFFICIENT_BALANCE = "insufficient_balance"
    # Limits that need portfolio state or history (quantdesk.risk.checks.RiskEngine):
    CIRCUIT_OPEN = "circuit_open"  # the venue's circuit breaker is open
    ORDER_RATE = "order_rate"  # too many orders per second or per minute
    CANCEL_RATIO = "cancel_ratio"  # too many cancels per order in the window
    PRICE_BAND = "price_band"  # limit price too far from the last price
    RISK_PER_TRADE = "risk_per_trade"  # stop distance x size above the share of equity
    MAX_POSITIONS = "max_positions"  # would open one position too many
    SYMBOL_EXPOSURE = "symbol_exposure"  # |position| x price above the share of equity
    GROSS_EXPOSURE = "gross_exposure"  # sum of |notional| above the currency cap
    LEVERAGE = "leverage"  # gross exposure / equity above the maximum
    LIQUIDATION_BUFFER = "liquidation_buffer"  # liquidation price too close to the mark
    NO_EQUITY = "no_equity"  # equity <= 0: nothing may be risked


@dataclass(frozen=True)
class MarketRules:
    """A market's filters: steps, ticks and limits (None = no limit)."""

    symbol: str
    amount_step: Decimal
    price_tick: Decimal
    min_amount: Decimal = ZERO
    max_amount: Decimal | None = None
    min_notional: Decimal = ZERO

    @property
    def is_derivative(self) -> bool:
        """A contract market (positions with margin), e.g. BTC/USDT:USDT."""
        return ":" in self.symbol

    @classmethod
    def from_ccxt(cls, market: Mapping[str, Any], precision_mode: int = TICK_SIZE) -> MarketRules:
        """Build from a ccxt market dict (binance uses TICK_SIZE precision mode)."""

        def step(value: Any) -> Decimal:
            if value is None:
                raise ValueError(f"market {market.get('symbol')} has no precision")
            if precision_mode == DECIMAL_PLACES:
                return Decimal(1).scaleb(-int(value))
            if precision_mode == TICK_SIZE:
                return Decimal(str(value))
            raise ValueError("only TICK_SIZE and DECIMAL_PLACES precision modes are supported")

        def dec(value: Any) -> Decimal | None:
            return None if value is None else Decimal(str(value))

        limits = market.get("limits") or {}
        amount = limits.get("amount") or {}
        cost = limits.get("cost") or {}
        return cls(
            symbol=market["symbol"],
            amount_step=step(market["precision"]["amount"]),
            price_tick=step(market["precision"]["price"]),
            min_amount=dec(amount.get("min")) or ZERO,
            max_amount=dec(amount.get("max")),
            min_notional=dec(cost.get("min")) or ZERO,
        )

    def round_amount(self, amount: Decimal) -> Decimal:
        """Amount down to the step grid (never more than asked)."""
        return (amount / self.amount_step).to_integral_value(ROUND_FLOOR) * self.amount_step

    def round_price(self, price: Decimal, side: Side | None = None) -> Decimal:
        """Price on the tick grid, rounded passively: buys down, sells up, else nearest."""
        if side is None:
            mode = ROUND_HALF_EVEN
        else:
            mode = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
        return (price / self.price_tick).to_integral_value(mode) * self.price_tick


@dataclass(frozen=True)
class RiskDecision:
    """The gate's answer: the amount/prices to use if approved, the reason if not (or reduced)."""

    decision: Decision
    amount: Decimal
    price: Decimal | None
    trigger_price: Decimal | None
    reason: Reason | None = None
    message: str = ""

    @property
    def approved(self) -> bool:
        """The order may be sent (possibly reduced)."""
        return self.decision is not Decision.DENIED

    def applied_to(self, order: Order) -> Order:
        """A fresh PENDING order with the approved amount and prices."""
        if not self.approved:
            raise ValueError(f"denied order cannot be applied: {self.reason}")
        return Order(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            amount=self.amount,
            created_ms=order.created_ms,
            price=self.price,
            trigger_price=self.trigger_price,
            time_in_force=order.time_in_force,
            reduce_only=order.reduce_only,
            strategy_id=order.strategy_id,
            venue=order.venue,
        )


class RiskEngine(Protocol):
    """What the engine asks before sending an order or a cancel."""

    state: TradingState

    def check_order(
        self,
        order: Order,
        *,
        reference_price: Decimal | None,
        position: Decimal,
        free: Mapping[str, Decimal],
    ) -> RiskDecision:
        """Approve, reduce or deny a new order."""
        ...

    def allows_cancel(self) -> bool:
        """Whether cancels may be sent (always, in every state)."""
        ...


class PreTradeRisk:
    """Stateless pre-trade checks against market rules, a notional cap and free balances."""

    def __init__(
        self,
        markets: Mapping[str, MarketRules],
        *,
        max_order_notional: Decimal | None = None,
        fee_rate: Decimal = ZERO,
        leverage: Decimal = Decimal(1),
        state: TradingState = TradingState.ACTIVE,
    ) -> None:
        """fee_rate reserves fees out of the free balance; leverage sizes derivative margin."""
        self.markets = dict(markets)
        self.max_order_notional = max_order_notional
        self.fee_rate = fee_rate
        self.leverage = leverage
        self.state = state

    def allows_cancel(self) -> bool:
        """Cancels reduce risk: always allowed."""
        return True

    def check_order(
        self,
        order: Order,
        *,
        reference_price: Decimal | None,
        position: Decimal = ZERO,
        free: Mapping[str, Decimal] | None = None,
    ) -> RiskDecision:
        """Approve, reduce or deny a new order.

        reference_price: the price a market order is expected to fill near (last/mark);
        position: the signed current position in the symbol; free: free balance per asset.
        """
        free = free or {}
        deny = self._deny(order)
        if self.state is TradingState.HALTED:
            return deny(Reason.HALTED, "trading is halted: only cancels are allowed")
        if self.state is TradingState.REDUCING and not order.reduce_only:
            return deny(Reason.REDUCING_ONLY, "trading is reducing: only reduce-only orders")
        rules = self.markets.get(order.symbol)
        if rules is None:
            return deny(Reason.UNKNOWN_MARKET, f"no market rules for {order.symbol}")

        reduced: Reason | None = None
        amount = order.amount
        if order.reduce_only:
            reducible = _reducible(order.side, position)
            if reducible <= 0:
                return deny(
                    Reason.REDUCE_ONLY_INCREASES, "reduce-only order with nothing to reduce"
                )
            if amount > reducible:
                amount, reduced = reducible, Reason.REDUCE_ONLY_CLIPPED

        price = rules.round_price(order.price, order.side) if order.price is not None else None
        trigger = rules.round_price(order.trigger_price) if order.trigger_price else None
        ref = price or trigger or reference_price
        if ref is None or ref <= 0:
            return deny(Reason.NO_PRICE, "no price to value a market order")

        amount = rules.round_amount(amount)
        if rules.max_amount is not None and amount > rules.max_amount:
            amount, reduced = rules.round_amount(rules.max_amount), Reason.MAX_AMOUNT
        if self.max_order_notional is not None and amount * ref > self.max_order_notional:
            amount, reduced = rules.round_amount(self.max_order_notional / ref), Reason.MAX_NOTIONAL
        if not order.reduce_only:
            affordable = self._affordable(order, rules, ref, position, free)
            if amount > affordable:
                amount, reduced = rules.round_amount(affordable), Reason.INSUFFICIENT_BALANCE

        if amount <= 0 or amount < rules.min_amount:
            return deny(reduced or Reason.MIN_AMOUNT, f"amount {amount} below {rules.min_amount}")
        # Binance exempts reduce-only orders from the minimum notional (they close positions).
        if not order.reduce_only and amount * ref < rules.min_notional:
            return deny(
                reduced or Reason.MIN_NOTIONAL,
                f"notional {amount * ref} below {rules.min_notional}",
            )
        return RiskDecision(
            Decision.APPROVED_REDUCED if reduced else Decision.APPROVED,
            amount,
            price,
            trigger,
            reduced,
            f"amount reduced from {order.amount} to {amount}" if reduced else "",
        )

    def _affordable(
        self,
        order: Order,
        rules: MarketRules,
        price: Decimal,
        position: Decimal,
        free: Mapping[str, Decimal],
    ) -> Decimal:
        """Largest amount the free balance pays for."""
        base, quote = split_symbol(order.symbol)
        if rules.is_derivative:
            # Closing part of an opposite position needs no margin; only the excess does.
            closing = _reducible(order.side, position)
            margin_per_unit = price / self.leverage + price * self.fee_rate  # fee on notional
            return closing + free.get(quote, ZERO) / margin_per_unit
        if order.side is Side.BUY:
            return free.get(quote, ZERO) / (price * (1 + self.fee_rate))
        return free.get(base, ZERO)

    @staticmethod
    def _deny(order: Order) -> Callable[[Reason, str], RiskDecision]:
        def deny(reason: Reason, message: str) -> RiskDecision:
            return RiskDecision(
                Decision.DENIED, order.amount, order.price, order.trigger_price, reason, message
            )

        return deny


def _reducible(side: Side, position: Decimal) -> Decimal:
    """How much an order on `side` can reduce a signed position."""
    if side is Side.SELL and position > 0:
        return position
    if side is Side.BUY and position < 0:
        return -position
    return ZERO
