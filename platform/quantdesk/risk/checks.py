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


class _Resolved:
    """One strategy's limits in the forms a check uses, built once per config instead of per order
    (the Decimal conversions and the fixed parts of the reasons' messages)."""

    __slots__ = (
        "cancel_window_ms",
        "exposure_share",
        "gross_message",
        "leverage_message",
        "limits",
        "liquidation_buffer",
        "liquidation_message",
        "maintenance_margin_rate",
        "max_leverage",
        "max_symbol_exposure",
        "price_band",
        "risk_per_trade",
        "stop_loss",
    )

    def __init__(self, limits: RiskLimits) -> None:
        """Convert once what every check would otherwise convert again."""
        self.limits = limits
        self.price_band = dec(limits.price_band)
        sl = limits.default_stop_loss
        self.stop_loss = None if sl is None else dec(sl)
        self.risk_per_trade = dec(limits.risk_per_trade)
        self.max_symbol_exposure = dec(limits.max_symbol_exposure)
        self.max_leverage = dec(limits.max_leverage)
        self.liquidation_buffer = dec(limits.liquidation_buffer)
        self.maintenance_margin_rate = dec(limits.maintenance_margin_rate)
        self.cancel_window_ms = limits.cancel_ratio_window_s * 1000
        self.exposure_share = f"{limits.max_symbol_exposure:.0%}"
        self.leverage_message = f"gross exposure above {limits.max_leverage}x equity"
        self.gross_message = f"gross exposure above {limits.max_gross_exposure}"
        self.liquidation_message = (
            f"liquidation price within {limits.liquidation_buffer:.0%} of the mark"
        )


def _denied(order: Order, reason: Reason, message: str) -> RiskDecision:
    """The denial of an order, with its amount and prices as asked."""
    return RiskDecision(
        Decision.DENIED, order.amount, order.price, order.trigger_price, reason, message
    )


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
        cash_margin: bool = False,
    ) -> None:
        """clock: ms UTC; journal: record_risk_event(...); alerter: alert(severity, msg, ...);
        leverage: the margin leverage used to size derivative orders against free balance;
        cash_margin: derivatives on the backtest's cash model (PreTradeRisk)."""
        self.gate = PreTradeRisk(
            markets, fee_rate=fee_rate, leverage=leverage, state=state, cash_margin=cash_margin
        )
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
        self._limits: dict[str, RiskLimits] = {}
        self._resolved: dict[str, _Resolved] = {}
        self.config = config  # the setter empties the two caches above
        self._spot_bases: dict[str, str | None] = {}  # symbol -> base asset (None: derivative)
        self._keys: dict[tuple[Decision, Reason | None], str] = {}  # decision -> counter key
        self.decisions: dict[str, int] = {}  # "denied: price_band" -> count (reports, replays)

    # --- configuration and state ----------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        """The trading state (ACTIVE, REDUCING, HALTED)."""
        return self.gate.state

    @state.setter
    def state(self, value: TradingState) -> None:
        self.gate.state = value

    @property
    def config(self) -> RiskConfig:
        """The [risk] section in force."""
        return self._config

    @config.setter
    def config(self, config: RiskConfig) -> None:
        # The resolved limits are cached per config: a new config drops them however it comes in
        # (set_config on reload, or plain assignment), so no check runs on stale limits.
        self._config = config
        self._limits = {}
        self._resolved = {}

    def set_config(self, config: RiskConfig) -> None:
        """Apply new limits (hot reload): the next check uses them."""
        self.config = config

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

    def valuation_marks(self) -> Mapping[str, Decimal]:
        """Marks for every open position (entry price where no mark was seen yet), read-only:
        the engine's own marks when every open position has one (the norm: no copy per check)."""
        marks: dict[str, Decimal] | None = None
        for symbol, pos in self.portfolio.positions.items():
            if pos.quantity and symbol not in self.marks:
                if marks is None:
                    marks = dict(self.marks)
                marks[symbol] = pos.average_price
        return self.marks if marks is None else marks

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
        key = self._keys.get((decision.decision, decision.reason))
        if key is None:  # a handful of distinct keys: formatted once each, not per check
            key = decision.decision.value
            if decision.reason is not None:
                key += f": {decision.reason.value}"
            self._keys[(decision.decision, decision.reason)] = key
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
        resolved = self._resolved.get(order.strategy_id)
        if resolved is None:
            resolved = _Resolved(self.limits(order.strategy_id))
            self._resolved[order.strategy_id] = resolved
        limits = resolved.limits

        if (refusal := state_refusal(self.state, order.reduce_only)) is not None:
            return _denied(order, *refusal)
        breaker = self.breakers.get(order.venue)
        if breaker is not None and not breaker.allows_new_orders():
            return _denied(order, Reason.CIRCUIT_OPEN, f"circuit breaker for {order.venue} is open")

        self._prune(now, resolved.cancel_window_ms)
        if self._clock_back:  # newest first: stop at the first a second old
            last_second = sum(
                1 for _ in takewhile(lambda t: now - t < 1000, reversed(self._orders))
            )
        else:
            last_second = len(self._second)  # times ascend: _second holds exactly those
        if last_second >= limits.max_orders_per_second:
            return _denied(order, Reason.ORDER_RATE, f"{last_second} orders in the last second")
        if len(self._orders) >= limits.max_orders_per_minute:
            return _denied(
                order, Reason.ORDER_RATE, f"{len(self._orders)} orders in the last minute"
            )
        recent = len(self._orders_window)  # pruned to the window above
        if recent >= limits.cancel_ratio_min_orders:
            ratio = len(self._cancels) / recent
            if ratio > limits.max_cancel_ratio:
                return _denied(order, Reason.CANCEL_RATIO, f"cancel-to-order ratio {ratio:.2f}")

        last = reference_price or self.marks.get(order.symbol)
        if order.price is not None and last:
            off = abs(order.price - last) / last
            if off > resolved.price_band:
                return _denied(
                    order, Reason.PRICE_BAND, f"price {order.price} is {off:.2%} from {last}"
                )

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
                    return _denied(
                        order, Reason.MAX_POSITIONS, f"{open_count} positions already open"
                    )
            rules = self.gate.markets.get(order.symbol)
            cap, reason, message = self._size_cap(order, resolved, rules, current, ref, stop_price)
            if reason is not None and cap < amount:
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
                    return _denied(order, reason, message)
                amount, reduced = shrunk, reason

        self.gate.max_order_notional = limits.max_order_notional
        decision = self.gate.check_order(
            order,
            reference_price=ref,
            position=current,
            free=free if free is not None else self._default_free(),
            amount=amount,  # the gate checks the reduced size without a copy of the order
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
        resolved: _Resolved,
        rules: Instrument | None,
        current: Decimal,
        ref: Decimal,
        stop_price: Decimal | None,
    ) -> tuple[Decimal, Reason | None, str]:
        """Largest amount every size rule allows, with the reason of the tightest."""
        marks = self.valuation_marks()
        equity = self.portfolio.equity(marks)
        if equity <= 0:
            return ZERO, Reason.NO_EQUITY, f"equity is {equity}"
        sign = 1 if order.side is Side.BUY else -1
        reducible = max(-sign * current, ZERO)  # part of the order that closes a position
        # The order may take the position from `current` to at most max_abs on its side:
        # each position rule's cap is max(max_abs, 0) - held.
        held = sign * current
        # Rules in a fixed order; a later one wins only when strictly tighter (as min() would
        # pick), and only the winner's message is formatted.

        # Risk per trade: the opening part times its stop distance.
        if stop_price is not None:
            distance = abs(ref - stop_price)
        elif resolved.stop_loss is not None:
            distance = ref * resolved.stop_loss
        else:
            distance = ref  # no stop: the whole notional is at risk
        budget = equity * resolved.risk_per_trade
        symbol_cap = max(equity * resolved.max_symbol_exposure / ref, ZERO) - held
        if distance > 0 and (risk_cap := reducible + budget / distance) <= symbol_cap:
            cap, reason = risk_cap, Reason.RISK_PER_TRADE
        else:
            cap, reason = symbol_cap, Reason.SYMBOL_EXPOSURE

        other_gross = ZERO
        for symbol, pos in self.portfolio.positions.items():
            if pos.quantity and symbol != order.symbol:
                other_gross += abs(pos.quantity * marks[symbol])
        leverage_room = equity * resolved.max_leverage - other_gross
        if (c := max(leverage_room / ref, ZERO) - held) < cap:
            cap, reason = c, Reason.LEVERAGE
        limits = resolved.limits
        if limits.max_gross_exposure is not None:
            room = limits.max_gross_exposure - other_gross
            if (c := max(room / ref, ZERO) - held) < cap:
                cap, reason = c, Reason.GROSS_EXPOSURE
        if rules is not None and rules.is_derivative:
            liq_max = max_position_for_buffer(
                sign > 0, ref, equity, resolved.liquidation_buffer, resolved.maintenance_margin_rate
            )
            if (c := max(liq_max, ZERO) - held) < cap:
                cap, reason = c, Reason.LIQUIDATION_BUFFER
        if cap >= order.amount:
            return order.amount, None, ""
        if reason is Reason.RISK_PER_TRADE:
            message = f"risk {order.amount - reducible} x {distance} above {budget}"
        elif reason is Reason.SYMBOL_EXPOSURE:
            message = f"{order.symbol} exposure above {resolved.exposure_share} of equity"
        elif reason is Reason.LEVERAGE:
            message = resolved.leverage_message
        elif reason is Reason.GROSS_EXPOSURE:
            message = resolved.gross_message
        else:
            message = resolved.liquidation_message
        return max(cap, ZERO), reason, message

    # --- helpers ----------------------------------------------------------------------------------

    def _default_free(self) -> dict[str, Decimal]:
        """Free balances from the portfolio: cash, plus spot holdings as base-asset balances."""
        free = dict(self.portfolio.cash)
        bases = self._spot_bases  # a symbol's parse never changes: parsed once per engine
        for symbol, pos in self.portfolio.positions.items():
            try:
                base = bases[symbol]
            except KeyError:
                parsed = parse_symbol(symbol)
                base = bases[symbol] = None if parsed.is_derivative else parsed.base
            if pos.quantity > 0 and base is not None:
                free[base] = free.get(base, ZERO) + pos.quantity
        return free

    def _prune(self, now: int, cancel_window_ms: float) -> None:
        if self._last_prune is not None and now < self._last_prune:
            self._clock_back = True
        self._last_prune = now
        while self._orders and now - self._orders[0] >= 60_000:
            self._orders.popleft()
        if not self._orders:
            self._clock_back = False  # nothing appended before the step back is left
        while self._second and now - self._second[0] >= 1000:
            self._second.popleft()
        while self._orders_window and now - self._orders_window[0] >= cancel_window_ms:
            self._orders_window.popleft()
        while self._cancels and now - self._cancels[0] >= cancel_window_ms:
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
