"""Funding-rate arbitrage between two perpetuals venues: long the leg paying less funding,
short the leg paying more, hedged in base quantity, so funding is earned and price cancels.

The rules are plain functions; the backtest (`quantdesk.arbitrage.backtest`) and later the
engine call them through the strategy's methods, so both decide alike:
- entry: the net APR of a direction (funding spread minus the annualized round-trip cost of both
  legs' fees and slippage over the expected hold) above entry_apr for `confirm` observations in a
  row. direction: "positive" trades only b - a > 0 (long A / short B), "negative" only the reverse,
  "both" either.
- exit, first that applies: liquidation buffer, combined stop-loss, combined take-profit, the
  held direction's gross APR below exit_apr, the timed exit at max_hold_hours.
"""

from __future__ import annotations

from quantdesk.strategy import Choice, Float, Int, QuoteStrategy

LONG_A = 1  # long venue A, short venue B: earns rate_b - rate_a
SHORT_A = -1  # short venue A, long venue B: earns rate_a - rate_b


def next_streak(streak: int, net_apr: float, entry_apr: float) -> int:
    """Observations in a row a direction's net APR has stayed above entry_apr."""
    return streak + 1 if net_apr > entry_apr else 0


def entry_direction(streak_long_a: int, streak_short_a: int, confirm: int, direction: str) -> int:
    """LONG_A, SHORT_A or 0: the direction confirmed for `confirm` observations and allowed."""
    if direction in ("both", "positive") and streak_long_a >= confirm:
        return LONG_A
    if direction in ("both", "negative") and streak_short_a >= confirm:
        return SHORT_A
    return 0


def exit_reason(
    held_gross_apr: float,
    hours_held: float,
    combined_return: float,
    near_liquidation: bool,
    exit_apr: float,
    max_hold_hours: float,
    stop_loss: float,
    take_profit: float,
) -> str | None:
    """Why an open pair closes now, or None: risk first, then the spread, then the clock."""
    if near_liquidation:
        return "liquidation_buffer"
    if combined_return <= -stop_loss:
        return "stop_loss"
    if combined_return >= take_profit:
        return "take_profit"
    if held_gross_apr < exit_apr:
        return "spread_exit"
    if hours_held >= max_hold_hours:
        return "max_hold"
    return None


class FundingArb(QuoteStrategy):
    """Funding-rate arbitrage of one perpetual across two venues (see the module)."""

    timeframe = "1h"
    params = {
        "entry_apr": Float(0.0, 10.0, 0.15),  # net annualized spread to open (0.15 = 15%)
        "exit_apr": Float(-10.0, 10.0, -0.10),  # close when the held gross spread falls below
        "confirm": Int(1, 1000, 12),  # observations in a row above entry_apr
        "hold_hours": Int(1, 8760, 168),  # expected hold the round-trip cost is spread over
        "max_hold_hours": Int(1, 87600, 720),  # timed exit
        "direction": Choice(["both", "positive", "negative"], "both"),
        "slices": Int(1, 100, 4),
        "leverage": Float(1.0, 20.0, 3.0),
        "stop_loss": Float(0.01, 1.0, 0.20),  # combined PnL / margin
        "take_profit": Float(0.01, 10.0, 0.20),
        "liq_buffer": Float(0.0, 0.5, 0.05),  # stop kept this fraction inside liquidation
        "size": Float(0.01, 1.0, 0.5),  # fraction of capital posted as margin per pair
        "slippage_bps": Float(0.0, 100.0, 2.0),
    }

    def streak(self, streak: int, net_apr: float) -> int:
        """next_streak with this strategy's entry threshold."""
        return next_streak(streak, net_apr, self.entry_apr)

    def entry(self, streak_long_a: int, streak_short_a: int) -> int:
        """entry_direction with this strategy's confirmation and allowed direction."""
        return entry_direction(streak_long_a, streak_short_a, self.confirm, self.direction)

    def exit(
        self,
        held_gross_apr: float,
        hours_held: float,
        combined_return: float,
        near_liquidation: bool,
    ) -> str | None:
        """exit_reason with this strategy's thresholds."""
        return exit_reason(
            held_gross_apr,
            hours_held,
            combined_return,
            near_liquidation,
            self.exit_apr,
            self.max_hold_hours,
            self.stop_loss,
            self.take_profit,
        )
