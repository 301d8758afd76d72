"""The full pre-trade RiskEngine: risk_gate's stateless checks plus the limits needing state.

Order of checks: trading state -> circuit breaker -> order rate -> cancel ratio -> price band ->
max open positions -> size rules (risk per trade, symbol exposure, gross exposure, leverage,
liquidation buffer) -> risk_gate (precision, market limits, max notional, free balance).
Size rules compute the largest amount they allow; a smaller order is APPROVED_REDUCED with the
reason of the tightest rule, or DENIED with it when the reduced amount falls below the market's
minimum. Reduce-only orders skip the size rules (they can only shrink risk).

Every denial and reduction is journaled as a risk event; state changes also raise an alert.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from itertools import takewhile
from typing import Any

from quantdesk.model import (
    ZERO,
    Decision,
    Instrument,
    Order,
    PortfolioView,
    Reason,
    RiskDecision,
    Side,
    TradingState,
    dec,
    parse_symbol,
    state_refusal,
)
from quantdesk.risk.breaker import CircuitBreaker
from quantdesk.risk.gate import PreTradeRisk
from quantdesk.risk.limits import RiskConfig, RiskLimits

_STATE_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def liquidation_price(
    quantity: Decimal, mark: Decimal, equity: Decimal, mmr: Decimal
) -> Decimal | None:
    """Cross-margin liquidation price of a position, other positions held constant.

    Solves equity + q (P - mark) = mmr |q| P for P; None when flat or when the account's
    equity covers the position at any price (a long liquidated at a price <= 0).
    """
    if quantity == 0:
        return None
    if quantity > 0:
        price = (quantity * mark - equity) / (quantity * (1 - mmr))
        return price if price > 0 else None
    return (quantity * mark - equity) / (quantity * (1 + mmr))


def max_position_for_buffer(
    long: bool, mark: Decimal, equity: Decimal, buffer: Decimal, mmr: Decimal
) -> Decimal:
    """Largest |position| whose liquidation price stays at least `buffer` away from the mark."""
    if equity <= 0:
        return ZERO
    if long:
        return equity / (mark * (1 - (1 - buffer) * (1 - mmr)))
    return equity / (mark * ((1 + buffer) * (1 + mmr) - 1))


class RiskEngine:
    """Approves, reduces or denies orders against every configured limit (engine's risk step)."""

    def __init__(
        self,
        markets: Mapping[str, Instrument],
        config: RiskConfig,
        portfolio: PortfolioView,
        *,
        clock: Callable[[], int],
        fee_rate: Decimal = ZERO,
        leverage: Decimal = Decimal(1),
        journal: Any = None,
        alerter: Any = None,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        state: TradingState = TradingState.ACTIVE,
    ) -> None:
        """clock: ms UTC; journal: record_risk_event(...); alerter: alert(severity, msg, ...);
        leverage: the margin leverage used to size derivative orders against free balance."""
        self.gate = PreTradeRisk(markets, fee_rate=fee_rate, leverage=leverage, state=state)
        self.portfolio = portfolio
        self.clock = clock
        self.journal = journal
        self.alerter = alerter
        self.breakers = dict(breakers or {})
        self.marks: dict[str, Decimal] = {}
        self._orders: deque[int] = deque()  # approval times, ms
        # approvals within the last second: a suffix of _orders, so its length is the per-second
        # count without walking up to a second's worth of approvals on every check
        self._second: deque[int] = deque()
        self._last_prune: int | None = None
        # set when the clock went back since _orders was last empty: _second's length may then
        # differ from the newest-first count the rate rule is defined by, so that count runs
        self._clock_back = False
        self._cancels: deque[int] = deque()
        self._orders_window: deque[int] = deque()  # approvals within the cancel-ratio window
        self.config = config
        self._limits: dict[str, RiskLimits] = {}
        self.decisions: dict[str, int] = {}  # "denied: price_band" -> count (reports, replays)

    # --- configuration and state ----------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        """The trading state (ACTIVE, REDUCING, HALTED)."""
        return self.gate.state

    @state.setter
    def state(self, value: TradingState) -> None:
        self.gate.state = value

    def set_config(self, config: RiskConfig) -> None:
        """Apply new limits (hot reload): the next check uses them."""
        self.config = config
        self._limits = {}

    def limits(self, strategy_id: str = "") -> RiskLimits:
        """The limits for one strategy (defaults + its overrides), cached until reload."""
        limits = self._limits.get(strategy_id)
        if limits is None:
            limits = self._limits[strategy_id] = self.config.limits_for(strategy_id)
        return limits

    def set_state(self, new: TradingState, reason: str, *, force: bool = False) -> bool:
        """Move the trading state; automatic moves only escalate (force: resume/operator).

        Returns whether the state changed. Journals a risk event and raises an alert.
        """
        old = self.state
        if new is old or (not force and _STATE_RANK[new] < _STATE_RANK[old]):
            return False
        self.state = new
        severity = {"active": "info", "reducing": "warning", "halted": "critical"}[new.value]
        message = f"trading state {old.value} -> {new.value}: {reason}"
        payload = {"old": old.value, "new": new.value, "reason": reason}
        self.event("state_change", message, severity, payload)
        self.alert(severity, message, key=f"state:{new.value}", payload=payload)
        return True

    def update_price(self, symbol: str, price: Decimal) -> None:
        """Record the last (mark) price of a symbol."""
        self.marks[symbol] = price

    def record_cancel(self, timestamp: int | None = None) -> None:
        """Count one cancel request (for the cancel-to-order ratio)."""
        self._cancels.append(self.clock() if timestamp is None else timestamp)

    def allows_cancel(self) -> bool:
        """Cancels reduce risk: always allowed, in every state."""
        return True

    # --- valuation ------------------------------------------------------------------------------

    def mark_of(self, symbol: str) -> Decimal | None:
        """Last known price of a symbol (None when never seen)."""
        return self.marks.get(symbol)

    def valuation_marks(self) -> dict[str, Decimal]:
        """Marks for every open position (entry price where no mark was seen yet)."""
        marks = dict(self.marks)
        for symbol, pos in self.portfolio.positions.items():
            if pos.quantity and symbol not in marks:
                marks[symbol] = pos.average_price
        return marks

    def equity(self) -> Decimal:
        """Portfolio equity at the current marks."""
        return self.portfolio.equity(self.valuation_marks())

    def exposures(self) -> dict[str, Decimal]:
        """Signed notional per open position at the current marks."""
        marks = self.valuation_marks()
        return {s: p.quantity * marks[s] for s, p in self.portfolio.positions.items() if p.quantity}

    # --- the check --------------------------------------------------------------------------------

    def check_order(
        self,
        order: Order,
        *,
        reference_price: Decimal | None = None,
        position: Decimal | None = None,
        free: Mapping[str, Decimal] | None = None,
        stop_price: Decimal | None = None,
    ) -> RiskDecision:
        """Approve, reduce or deny a new order.

        reference_price: expected fill price of a market order (default: the last mark);
        position: signed position in the symbol (default: the portfolio's); free: free balances
        (default: the portfolio's cash); stop_price: the protective stop the trade will carry
        (default: default_stop_loss away from the entry).
        """
        decision = self._check(order, reference_price, position, free, stop_price)
        key = decision.decision.value
        if decision.reason is not None:
            key += f": {decision.reason.value}"
        self.decisions[key] = self.decisions.get(key, 0) + 1
        if decision.decision is Decision.APPROVED:
            return decision
        payload = {
            "client_order_id": order.client_order_id,
            "strategy_id": order.strategy_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "amount": str(order.amount),
            "approved_amount": str(decision.amount),
            "reason": decision.reason.value if decision.reason else None,
        }
        if decision.decision is Decision.DENIED:
            self.event("order_denied", decision.message, "warning", payload)
            if decision.reason is Reason.CIRCUIT_OPEN:
                self.alert("error", decision.message, key=f"circuit:{order.venue}", payload=payload)
        else:
            self.event("order_reduced", decision.message, "info", payload)
        return decision

    def _check(
        self,
        order: Order,
        reference_price: Decimal | None,
        position: Decimal | None,
        free: Mapping[str, Decimal] | None,
        stop_price: Decimal | None,
    ) -> RiskDecision:
        now = self.clock()
        limits = self.limits(order.strategy_id)

        def deny(reason: Reason, message: str) -> RiskDecision:
            return RiskDecision(
                Decision.DENIED, order.amount, order.price, order.trigger_price, reason, message
            )

        if (refusal := state_refusal(self.state, order.reduce_only)) is not None:
            return deny(*refusal)
        breaker = self.breakers.get(order.venue)
        if breaker is not None and not breaker.allows_new_orders():
            return deny(Reason.CIRCUIT_OPEN, f"circuit breaker for {order.venue} is open")

        self._prune(now, limits)
        if self._clock_back:  # newest first: stop at the first a second old
            last_second = sum(
                1 for _ in takewhile(lambda t: now - t < 1000, reversed(self._orders))
            )
        else:
            last_second = len(self._second)  # times ascend: _second holds exactly those
        if last_second >= limits.max_orders_per_second:
            return deny(Reason.ORDER_RATE, f"{last_second} orders in the last second")
        if len(self._orders) >= limits.max_orders_per_minute:
            return deny(Reason.ORDER_RATE, f"{len(self._orders)} orders in the last minute")
        recent = len(self._orders_window)  # pruned to the window above
        if recent >= limits.cancel_ratio_min_orders:
            ratio = len(self._cancels) / recent
            if ratio > limits.max_cancel_ratio:
                return deny(Reason.CANCEL_RATIO, f"cancel-to-order ratio {ratio:.2f}")

        last = reference_price or self.marks.get(order.symbol)
        if order.price is not None and last:
            off = abs(order.price - last) / last
            if off > dec(limits.price_band):
                return deny(Reason.PRICE_BAND, f"price {order.price} is {off:.2%} from {last}")

        pos = self.portfolio.positions.get(order.symbol)
        current = position if position is not None else (pos.quantity if pos else ZERO)
        ref = order.price or order.trigger_price or reference_price or self.marks.get(order.symbol)
        amount = order.amount
        reduced: Reason | None = None
        if not order.reduce_only and ref is not None and ref > 0:
            if current == 0:
                open_count = sum(
                    1
                    for s, p in self.portfolio.positions.items()
                    if p.quantity and s != order.symbol
                )
                if open_count >= limits.max_open_positions:
                    return deny(Reason.MAX_POSITIONS, f"{open_count} positions already open")
            cap, reason, message = self._size_cap(order, limits, current, ref, stop_price)
            if reason is not None and cap < amount:
                rules = self.gate.markets.get(order.symbol)
                shrunk = rules.round_amount(cap) if rules else cap
                if (
                    shrunk <= 0
                    or (
                        reason is Reason.LIQUIDATION_BUFFER
                        and limits.liquidation_action == "reject"
                    )
                    or (rules is not None and shrunk < rules.min_amount)
                    or (rules is not None and shrunk * ref < rules.min_notional)
                ):
                    return deny(reason, message)
                amount, reduced = shrunk, reason

        self.gate.max_order_notional = limits.max_order_notional
        candidate = (
            order if amount == order.amount else replace(order, amount=amount, fill_ids=set())
        )
        decision = self.gate.check_order(
            candidate,
            reference_price=ref,
            position=current,
            free=free if free is not None else self._default_free(),
        )
        if decision.approved:
            self._orders.append(now)
            self._second.append(now)
            self._orders_window.append(now)
            if reduced is not None:
                return RiskDecision(
                    Decision.APPROVED_REDUCED,
                    decision.amount,
                    decision.price,
                    decision.trigger_price,
                    decision.reason or reduced,
                    f"amount reduced from {order.amount} to {decision.amount} "
                    f"({(decision.reason or reduced).value})",
                )
        return decision

    def _size_cap(
        self,
        order: Order,
        limits: RiskLimits,
        current: Decimal,
        ref: Decimal,
        stop_price: Decimal | None,
    ) -> tuple[Decimal, Reason | None, str]:
        """Largest amount every size rule allows, with the reason of the tightest."""
        equity = self.equity()
        if equity <= 0:
            return ZERO, Reason.NO_EQUITY, f"equity is {equity}"
        sign = 1 if order.side is Side.BUY else -1
        reducible = max(-sign * current, ZERO)  # part of the order that closes a position
        caps: list[tuple[Decimal, Reason, str]] = []

        # Risk per trade: the opening part times its stop distance.
        if stop_price is not None:
            distance = abs(ref - stop_price)
        elif limits.default_stop_loss is not None:
            distance = ref * dec(limits.default_stop_loss)
        else:
            distance = ref  # no stop: the whole notional is at risk
        budget = equity * dec(limits.risk_per_trade)
        if distance > 0:
            caps.append(
                (
                    reducible + budget / distance,
                    Reason.RISK_PER_TRADE,
                    f"risk {order.amount - reducible} x {distance} above {budget}",
                )
            )

        def position_cap(max_abs: Decimal) -> Decimal:
            # The order may take the position from `current` to at most max_abs on its side.
            return max(max_abs, ZERO) - sign * current

        symbol_max = equity * dec(limits.max_symbol_exposure) / ref
        caps.append(
            (
                position_cap(symbol_max),
                Reason.SYMBOL_EXPOSURE,
                f"{order.symbol} exposure above {limits.max_symbol_exposure:.0%} of equity",
            )
        )

        other_gross = sum((abs(v) for s, v in self.exposures().items() if s != order.symbol), ZERO)
        leverage_room = equity * dec(limits.max_leverage) - other_gross
        caps.append(
            (
                position_cap(leverage_room / ref),
                Reason.LEVERAGE,
                f"gross exposure above {limits.max_leverage}x equity",
            )
        )
        if limits.max_gross_exposure is not None:
            room = limits.max_gross_exposure - other_gross
            caps.append(
                (
                    position_cap(room / ref),
                    Reason.GROSS_EXPOSURE,
                    f"gross exposure above {limits.max_gross_exposure}",
                )
            )
        rules = self.gate.markets.get(order.symbol)
        if rules is not None and rules.is_derivative:
            liq_max = max_position_for_buffer(
                sign > 0,
                ref,
                equity,
                dec(limits.liquidation_buffer),
                dec(limits.maintenance_margin_rate),
            )
            caps.append(
                (
                    position_cap(liq_max),
                    Reason.LIQUIDATION_BUFFER,
                    f"liquidation price within {limits.liquidation_buffer:.0%} of the mark",
                )
            )
        cap, reason, message = min(caps, key=lambda c: c[0])
        if cap >= order.amount:
            return order.amount, None, ""
        return max(cap, ZERO), reason, message

    # --- helpers ----------------------------------------------------------------------------------

    def _default_free(self) -> dict[str, Decimal]:
        """Free balances from the portfolio: cash, plus spot holdings as base-asset balances."""
        free = dict(self.portfolio.cash)
        for symbol, pos in self.portfolio.positions.items():
            parsed = parse_symbol(symbol)
            if pos.quantity > 0 and not parsed.is_derivative:
                base = parsed.base
                free[base] = free.get(base, ZERO) + pos.quantity
        return free

    def _prune(self, now: int, limits: RiskLimits) -> None:
        if self._last_prune is not None and now < self._last_prune:
            self._clock_back = True
        self._last_prune = now
        while self._orders and now - self._orders[0] >= 60_000:
            self._orders.popleft()
        if not self._orders:
            self._clock_back = False  # nothing appended before the step back is left
        while self._second and now - self._second[0] >= 1000:
            self._second.popleft()
        window = limits.cancel_ratio_window_s * 1000
        while self._orders_window and now - self._orders_window[0] >= window:
            self._orders_window.popleft()
        while self._cancels and now - self._cancels[0] >= window:
            self._cancels.popleft()

    def event(self, kind: str, message: str, severity: str, payload: dict[str, Any]) -> None:
        """Journal a risk event (when a journal is attached)."""
        record = getattr(self.journal, "record_risk_event", None)  # MemoryJournal has none
        if record is not None:
            record(kind, message, self.clock(), severity, payload)

    def alert(self, severity: str, message: str, **kwargs: Any) -> None:
        """Raise an alert (when an alerter is attached); kwargs go to Alerter.alert."""
        if self.alerter is not None:
            self.alerter.alert(severity, message, **kwargs)
