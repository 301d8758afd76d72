"""Market data: the Parquet store, synthetic markets, CSV import, ccxt download, quality checks."""

from quantdesk.data.store import FUNDING, OHLCV_COLUMNS, DataStore, SeriesKey

__all__ = ["FUNDING", "OHLCV_COLUMNS", "DataStore", "SeriesKey"]
