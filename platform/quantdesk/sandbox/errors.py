"""Binance error responses, with codes and messages chosen so ccxt raises the right class.

ccxt applies its per-market error tables (spot, linear) only to Binance's own hosts, so a plain
ccxt client pointed at the sandbox decides the class from the top-level `exceptions['exact']`
table and the body checks in `binance.handle_errors` (LOT_SIZE, PRICE_FILTER);
`quantdesk.venues.sandbox_client` adds the market-type tables back, so its clients raise what
they raise against Binance for every code here (tests/sandbox/test_error_classes.py). Notes:
- any HTTP 429 or 418 becomes ccxt DDoSProtection before the body is read;
- a 5xx with a non-JSON body becomes ExchangeNotAvailable (ambiguous: the order may exist).
"""

from __future__ import annotations

from quantdesk.venues.models import Reject


class BinanceError(Exception):
    """An error answer: HTTP status, Binance code, message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


PRECISION_OVER = BinanceError(400, -1111, "Precision is over the maximum defined for this asset.")
INSUFFICIENT = "Account has insufficient balance for requested action."

# (spot, futures) answers per core rejection.
_REJECTS: dict[Reject, tuple[tuple[int, str], tuple[int, str]]] = {
    # USD-M: Binance's code for a margin shortfall is -2019 ("Margin is insufficient."), which
    # ccxt maps to InsufficientFunds only for Binance's own hosts; with the spot wording it
    # raises InsufficientFunds against the sandbox as well, and the code stays Binance's.
    Reject.INSUFFICIENT_FUNDS: ((-2010, INSUFFICIENT), (-2019, INSUFFICIENT)),
    Reject.PRICE_FILTER: ((-1013, "Filter failure: PRICE_FILTER"),) * 2,
    Reject.LOT_SIZE: ((-1013, "Filter failure: LOT_SIZE"),) * 2,
    Reject.NOTIONAL: (
        (-1013, "Filter failure: NOTIONAL"),
        (-4164, "Order's notional must be no smaller than 5 (unless you choose reduce only)."),
    ),
    Reject.WOULD_TAKE: (
        (-2010, "Order would immediately match and take."),
        (
            -5022,
            "Due to the order could not be executed as maker, the Post Only order will be"
            " rejected.",
        ),
    ),
    Reject.FOK_UNFILLED: (
        (-2010, "Order would not be filled."),
        (
            -5021,
            "Due to the order could not be filled immediately, the FOK order has been rejected.",
        ),
    ),
    Reject.WOULD_TRIGGER: (
        (-2010, "Stop price would trigger immediately."),
        (-2021, "Order would trigger immediately."),
    ),
    Reject.DUPLICATE_ORDER: ((-2010, "Duplicate order sent."),) * 2,
    Reject.BAD_SYMBOL: ((-1121, "Invalid symbol."),) * 2,
    Reject.BAD_REQUEST: (
        (-1102, "Mandatory parameter was not sent, was empty/null, or malformed."),
    )
    * 2,
    Reject.REDUCE_ONLY: ((-2022, "ReduceOnly Order is rejected."),) * 2,
}


def from_reject(
    reason: Reject, futures: bool, cancel: bool = False, detail: str = ""
) -> BinanceError:
    """The Binance answer to a core rejection (unknown orders differ for cancel and query)."""
    if reason is Reject.UNKNOWN_ORDER:
        return BinanceError(400, -2011, "Unknown order sent.") if cancel else order_not_found()
    code, msg = _REJECTS[reason][1 if futures else 0]
    if reason is Reject.BAD_REQUEST and detail:
        msg = detail
    return BinanceError(400, code, msg)


def order_not_found() -> BinanceError:
    """-2013, ccxt OrderNotFound."""
    return BinanceError(400, -2013, "Order does not exist.")


def bad_param(msg: str) -> BinanceError:
    """-1102 (ccxt BadRequest) with a specific message."""
    return BinanceError(400, -1102, msg)


def bad_symbol() -> BinanceError:
    """-1121, ccxt BadSymbol."""
    return BinanceError(400, -1121, "Invalid symbol.")
