"""The pre-trade risk gate: trading states and the checks that need no history.

`model.RiskCheck` is the interface the engine calls before every order; `PreTradeRisk` implements
the stateless part: trading state, precision, market limits, max notional per order and free
balance.
Limits that need history (drawdown, exposure, VaR, rate of orders) belong to quantdesk.risk.

Order of checks: state -> reduce-only -> precision -> market limits -> max notional -> balance.
Later checks may shrink the amount (APPROVED_REDUCED); an amount shrunk below the market minimum
is denied with the reason of the check that shrank it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from quantdesk.model import (
    ZERO,
    Decision,
    Instrument,
    Order,
    Reason,
    RiskDecision,
    Side,
    TradingState,
    split_symbol,
    state_refusal,
)


class PreTradeRisk:
    """Stateless pre-trade checks against market rules, a notional cap and free balances."""

    def __init__(
        self,
        markets: Mapping[str, Instrument],
        *,
        max_order_notional: Decimal | None = None,
        fee_rate: Decimal = ZERO,
        leverage: Decimal = Decimal(1),
        state: TradingState = TradingState.ACTIVE,
        cash_margin: bool = False,
    ) -> None:
        """fee_rate reserves fees out of the free balance; leverage sizes derivative margin;
        cash_margin: derivatives on the backtest's cash model, as SimVenue(cash_margin=True)
        trades them: a sale (a short sale too) needs no balance, a buy its cost in cash."""
        self.cash_margin = cash_margin
        self.markets = dict(markets)
        self.max_order_notional = max_order_notional
        self.fee_rate = fee_rate
        self.leverage = leverage
        self.state = state
        self._currencies: dict[str, tuple[str, str]] = {}  # symbol -> (base, cash), parsed once

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
        amount: Decimal | None = None,
    ) -> RiskDecision:
        """Approve, reduce or deny a new order.

        reference_price: the price a market order is expected to fill near (last/mark);
        position: the signed current position in the symbol; free: free balance per asset;
        amount: the amount to check instead of order.amount (an amount already reduced).
        """
        free = free or {}
        asked = order.amount if amount is None else amount

        def deny(reason: Reason, message: str) -> RiskDecision:
            return RiskDecision(
                Decision.DENIED, asked, order.price, order.trigger_price, reason, message
            )

        if (refusal := state_refusal(self.state, order.reduce_only)) is not None:
            return deny(*refusal)
        rules = self.markets.get(order.symbol)
        if rules is None:
            return deny(Reason.UNKNOWN_MARKET, f"no market rules for {order.symbol}")

        reduced: Reason | None = None
        amount = asked
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
            f"amount reduced from {asked} to {amount}" if reduced else "",
        )

    def _affordable(
        self,
        order: Order,
        rules: Instrument,
        price: Decimal,
        position: Decimal,
        free: Mapping[str, Decimal],
    ) -> Decimal:
        """Largest amount the free balance pays for."""
        currencies = self._currencies.get(order.symbol)
        if currencies is None:
            currencies = self._currencies[order.symbol] = split_symbol(order.symbol)
        base, quote = currencies
        if rules.is_derivative:
            # Closing part of an opposite position needs no margin; only the excess does.
            closing = _reducible(order.side, position)
            if self.cash_margin:
                if order.side is Side.SELL:
                    return Decimal("Infinity")  # its proceeds are cash: nothing to pay for
                return closing + free.get(quote, ZERO) / (price * (1 + self.fee_rate))
            margin_per_unit = price / self.leverage + price * self.fee_rate  # fee on notional
            return closing + free.get(quote, ZERO) / margin_per_unit
        if order.side is Side.BUY:
            return free.get(quote, ZERO) / (price * (1 + self.fee_rate))
        return free.get(base, ZERO)


def _reducible(side: Side, position: Decimal) -> Decimal:
    """How much an order on `side` can reduce a signed position."""
    if side is Side.SELL and position > 0:
        return position
    if side is Side.BUY and position < 0:
        return -position
    return ZERO
