"""Market-making research: a seeded order-flow simulator, a queue-position fill model, the
desired-vs-working quote diff, an event-driven backtest with a PnL split, and its HTML report.

flow (synthetic trades and book updates: Hawkes arrivals, heavy-tailed sizes, a reacting book,
informed flow), fills (queue position, latency, fees: the numba matching kernel), quotes (Quote,
the place/cancel diff with refresh threshold, timeout and rate limits), volatility (EWMA
estimate the strategies share), backtest (the event loop, risk stops, result and stats),
report (HTML, and the pieces of notebooks/mm_report.ipynb), recorded (trades and L2 book from
the data store as a flow), optimize (walk-forward optuna search of quoting params) and space
(the searched ranges a strategy declares). The quoting rules are the strategies'
(strategies/basic_mm.py, avellaneda_stoikov.py).
"""
