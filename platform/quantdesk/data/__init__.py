"""Market data: the Parquet store, synthetic markets, CSV import, ccxt download, quality checks."""

from __future__ import annotations

from typing import Any

__all__ = ["FUNDING", "OHLCV_COLUMNS", "DataStore", "SeriesKey"]


def __getattr__(name: str) -> Any:
    # Lazy: importing quantdesk.data.symbols (the CLI does) must not pull in pandas and pyarrow.
    if name in __all__:
        from quantdesk.data import store

        return getattr(store, name)
    raise AttributeError(f"module 'quantdesk.data' has no attribute {name!r}")
