"""Wiring: `build_kernel()` puts venue, risk, order manager and runners together for replay,
paper and live alike (system.kernel); the replay (system.replay) and the paper/live sessions
(system.live) are built on it. The only layer that knows engine, venues, risk and backtest."""
