"""Funding-rate arbitrage research: two venues' funding series, the net opportunity, a paired
backtest with sliced execution, leg repair, liquidation buffer and a PnL split.

rates (venues, normalization, the synthetic second venue, alignment), opportunity (costs and
the net annualized spread), execution (matched slices, failed legs, imbalance repair), risk
(liquidation prices, buffer, combined stop-loss / take-profit) and backtest (the hourly loop and
its result). The entry/exit rules are the strategy's (strategies/funding_arb.py).
"""
