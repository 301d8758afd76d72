"""Risk: limits and pre-trade checks, monitors, VaR/CVaR, circuit breaker, kill switch, reload."""
