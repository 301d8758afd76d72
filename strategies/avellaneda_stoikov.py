"""Avellaneda-Stoikov (2008) market maker: quotes around a reservation price that leans
against the inventory, with the model's optimal total spread.

- reservation price r = s - q x gamma x sigma^2 x (T - t)
- optimal spread delta = gamma x sigma^2 x (T - t) + (2 / gamma) x ln(1 + gamma / kappa)
- quotes r -/+ delta / 2, bids rounded down and asks up to the tick, not through the touch.
s is the mid, q the inventory, sigma^2 the mid's variance per second (EWMA, or `sigma` if
given), gamma the risk aversion, kappa the decay of fill intensity with distance (per unit of
price). T - t is `horizon` seconds (a rolling horizon), or the time to the run's end when 0.
"""

from __future__ import annotations

import math

from quantdesk.mm.quotes import ASK, BID, Quote
from quantdesk.mm.space import Range
from quantdesk.mm.volatility import ewma_variance
from quantdesk.strategy import Float, Int, QuoteStrategy


def reservation_price(
    mid: float, inventory: float, gamma: float, sigma2: float, tau: float
) -> float:
    """r = s - q gamma sigma^2 tau."""
    return mid - inventory * gamma * sigma2 * tau


def optimal_spread(gamma: float, sigma2: float, tau: float, kappa: float) -> float:
    """delta = gamma sigma^2 tau + (2 / gamma) ln(1 + gamma / kappa)."""
    return gamma * sigma2 * tau + (2.0 / gamma) * math.log1p(gamma / kappa)


def as_quotes(
    r: float, delta: float, tick: float, size: float, best_bid: float, best_ask: float
) -> tuple[float, float]:
    """(bid, ask) prices: r -/+ delta/2 on the tick grid, at most at the touch."""
    bid = min(math.floor((r - delta / 2) / tick + 1e-9), int(best_bid / tick + 0.5)) * tick
    ask = max(math.ceil((r + delta / 2) / tick - 1e-9), int(best_ask / tick + 0.5)) * tick
    return bid, ask


class AvellanedaStoikov(QuoteStrategy):
    """Reservation price and optimal spread of Avellaneda-Stoikov (see the module)."""

    timeframe = "event"
    params = {
        "gamma": Float(1e-4, 100.0, 0.1),  # risk aversion
        "kappa": Float(1e-3, 1e6, 100.0),  # fill intensity decay per unit of price
        "sigma": Float(0.0, 1e3, 0.0),  # mid volatility per sqrt(second); 0 = EWMA estimate
        "horizon": Float(0.0, 1e6, 300.0),  # seconds of T - t; 0 = until the run's end
        "size": Float(0.001, 1e6, 1.0),
        "vol_halflife": Float(0.1, 86400.0, 60.0),
        "refresh_ticks": Int(1, 100, 2),  # replace an order only once its price moved this far
    }
    # what `quantdesk mm optimize` searches (gamma and kappa span decades: log scale)
    search_space = {
        "gamma": Range(0.01, 2.0, log=True),
        "kappa": Range(10.0, 1000.0, log=True),
        "horizon": Range(10.0, 1000.0, log=True),
    }

    def reset(self) -> None:
        """Forget the volatility estimate (a new run)."""
        self.var = 0.0
        self.last_mid = math.nan
        self.last_ns = 0

    def sigma2(self, mid: float, now_ns: int) -> float:
        """Variance per second: the given sigma squared, else the EWMA estimate."""
        if not hasattr(self, "var"):
            self.reset()
        if self.last_mid == self.last_mid:
            dt = (now_ns - self.last_ns) / 1e9
            self.var = ewma_variance(self.var, mid - self.last_mid, dt, self.vol_halflife)
        self.last_mid, self.last_ns = mid, now_ns
        return self.sigma**2 if self.sigma > 0 else self.var

    def on_book(self, book, ctx):
        """Bid and ask around the reservation price; the side beyond the inventory cap is off."""
        sigma2 = self.sigma2(book.mid, book.time_ns)
        tau = self.horizon if self.horizon > 0 else max(ctx.end_ns - book.time_ns, 0) / 1e9
        r = reservation_price(book.mid, ctx.inventory, self.gamma, sigma2, tau)
        delta = optimal_spread(self.gamma, sigma2, tau, self.kappa)
        bid, ask = as_quotes(r, delta, ctx.tick, self.size, book.bid, book.ask)
        quotes = []
        if ctx.inventory < ctx.max_inventory:
            quotes.append(Quote(BID, bid, self.size))
        if ctx.inventory > -ctx.max_inventory:
            quotes.append(Quote(ASK, ask, self.size))
        return quotes

    def on_timer(self, now, ctx):
        """Requote on the clock too (T - t shrinks; the estimate decays)."""
        return self.on_book(ctx.book, ctx)
