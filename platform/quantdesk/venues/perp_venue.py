"""PerpVenue: a CcxtVenue that also reads what funding arbitrage needs from a perpetuals venue.

Settled funding rates (the venue's history endpoint), the account's funding payments (income),
the mark (last price and the venue's clock) and the leverage setting. Like every CcxtVenue call,
ccxt's errors leave these as `model.VenueError` (through the same mapping).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from quantdesk.model import Operation
from quantdesk.venues.ccxt_venue import CcxtVenue, _mapped, dec


@dataclass(frozen=True)
class Settlement:
    """One settled funding rate of a perpetual (a fraction of notional per interval)."""

    time_ms: int
    rate: Decimal


@dataclass(frozen=True)
class FundingPayment:
    """One funding payment of the account (positive: received), with the venue's id."""

    id: str
    symbol: str
    time_ms: int
    amount: Decimal


class PerpVenue(CcxtVenue):
    """A USD-M venue with funding reads (implements the engine's Venue like CcxtVenue)."""

    @_mapped(Operation.FETCH)
    async def fetch_settlements(self, symbol: str, limit: int = 50) -> list[Settlement]:
        """The last `limit` settled funding rates of symbol, oldest first."""
        rows = await self.exchange.fetch_funding_rate_history(symbol, None, limit)
        out = [Settlement(int(r["timestamp"]), dec(r["fundingRate"])) for r in rows]
        return sorted(out, key=lambda s: s.time_ms)

    @_mapped(Operation.FETCH)
    async def fetch_funding_payments(
        self, symbol: str, since_ms: int | None = None
    ) -> list[FundingPayment]:
        """Funding the account paid or received in symbol at or after since_ms, oldest first."""
        rows = await self.exchange.fetch_funding_history(symbol, since_ms or None)
        return [
            FundingPayment(str(r["id"]), symbol, int(r["timestamp"]), dec(r["amount"]))
            for r in rows
        ]

    @_mapped(Operation.FETCH)
    async def fetch_mark(self, symbol: str) -> tuple[int, Decimal]:
        """(venue time ms, last price) of symbol; also kept as the market-order reference."""
        ticker = await self.exchange.fetch_ticker(symbol)
        price = dec(ticker.get("last") or ticker.get("close"))
        self.marks[symbol] = price
        return int(ticker.get("timestamp") or 0), price

    @_mapped(Operation.FETCH)
    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the account's leverage on symbol (the margin each leg posts)."""
        await self.exchange.set_leverage(leverage, symbol)
