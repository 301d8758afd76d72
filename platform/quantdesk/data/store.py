"""Parquet store of OHLCV, funding and recorded tick series (trades, book):
{exchange}/{market}/{symbol}/{timeframe}.parquet."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quantdesk.data.symbols import dir_to_symbol, symbol_to_dir, validate_market, validate_symbol
from quantdesk.data.ticks import TICK_KINDS, normalize_ticks, tick_columns
from quantdesk.data.timeframes import validate_timeframe
from quantdesk.data.times import parse_time
from quantdesk.errors import DataError, NoDataError
from quantdesk.model import parse_symbol
from quantdesk.oslock import LockedError, hold_lock

OHLCV_COLUMNS = ["open", "high", "low", "close", "volume"]
FUNDING_COLUMNS = ["funding_rate"]
FUNDING = "funding"
INDEX_NAME = "time"
# Exchange folder of generated markets; any real exchange's data is preferred over it.
SYNTHETIC_EXCHANGE = "synthetic"
_SUFFIX = ".parquet"
# How long a writer waits for another process writing the same series (a big import).
LOCK_WAIT_S = 300.0
# A temp file is only removed when no writer holds its series and it is at least this old,
# so a writer that does not lock (an older quantdesk on the same store) keeps its file.
STALE_TEMP_S = 60.0
_TEMP_GLOB = f"*/*/*/.*{_SUFFIX}.*.tmp"


@dataclass(frozen=True, order=True)
class SeriesKey:
    """Identifies one stored series; timeframe is a bar size like '1h', 'funding', 'trades'
    or 'book'."""

    exchange: str
    market: str
    symbol: str
    timeframe: str

    def __post_init__(self) -> None:
        if not self.exchange or not self.exchange.replace("_", "").isalnum():
            raise DataError(f"invalid exchange name {self.exchange!r}")
        validate_market(self.market)
        object.__setattr__(self, "symbol", validate_symbol(self.symbol))
        if self.timeframe != FUNDING and self.timeframe not in TICK_KINDS:
            validate_timeframe(self.timeframe)

    @property
    def is_ticks(self) -> bool:
        """True for a recorded trades or book series."""
        return self.timeframe in TICK_KINDS

    @property
    def is_funding(self) -> bool:
        """True for a funding-rate series, False for OHLCV bars."""
        return self.timeframe == FUNDING

    @property
    def columns(self) -> list[str]:
        """The value columns this kind of series holds."""
        if self.is_ticks:
            return tick_columns(self.timeframe)
        return FUNDING_COLUMNS if self.is_funding else OHLCV_COLUMNS

    def __str__(self) -> str:
        return f"{self.exchange}/{self.market}/{self.symbol} {self.timeframe}"


def normalize(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Return the frame with a sorted, de-duplicated UTC index named 'time' and float64 columns."""
    columns = list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"data lacks column(s) {', '.join(missing)}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError("data must be indexed by time (a DatetimeIndex)")
    index = frame.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    out = pd.DataFrame(
        {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64) for c in columns},
        index=index.as_unit("ns").rename(INDEX_NAME),
    )
    # Later rows win: a re-downloaded bar replaces the earlier, possibly unfinished one.
    out = out[~out.index.duplicated(keep="last")]
    return out.sort_index(kind="stable")


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write a frame to path through a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


class DataStore:
    """Market data under one root folder; safe to use from several objects at once."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DataStore({str(self.root)!r})"

    def path(self, key: SeriesKey) -> Path:
        """Where the series lives on disk."""
        return (
            self.root / key.exchange / key.market / symbol_to_dir(key.symbol) / f"{key.timeframe}"
        ).with_suffix(_SUFFIX)

    def exists(self, key: SeriesKey) -> bool:
        """True when the series has a file."""
        return self.path(key).is_file()

    def lock_path(self, key: SeriesKey) -> Path:
        """The lock file writers of the series hold (hidden, next to the series)."""
        path = self.path(key)
        return path.with_name(f".{path.name}.lock")

    @contextlib.contextmanager
    def locked(self, key: SeriesKey, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
        """Hold the series' write lock: one writer at a time, across processes."""
        lock = self.lock_path(key)
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            with hold_lock(lock, wait_s=wait_s):
                yield
        except LockedError:
            raise DataError(
                f"{key} is still being written by another process after {wait_s:g} s "
                f"(lock {lock}): try again when it is done"
            ) from None
        except OSError as exc:
            raise DataError(f"cannot write {key} under {self.root}: {exc}") from None

    def write(self, key: SeriesKey, frame: pd.DataFrame) -> Path:
        """Replace the series with frame (normalized), atomically."""
        path = self.path(key)
        data = _normalize(key, frame)
        with self.locked(key):
            atomic_write_parquet(path, data)
        return path

    def append(self, key: SeriesKey, frame: pd.DataFrame) -> int:
        """Merge frame into the series (new rows win on equal timestamps); return rows added.

        Read, merge and write happen under the series lock, so concurrent appends (two
        imports at once) serialize instead of one silently dropping the other's rows.
        """
        new = _normalize(key, frame)
        with self.locked(key):
            if not self.exists(key):
                atomic_write_parquet(self.path(key), new)
                return len(new)
            old = self.read(key)
            merged = _normalize(key, pd.concat([old, new]))
            if len(merged) != len(old) or not merged.equals(old):
                atomic_write_parquet(self.path(key), merged)
            return len(merged) - len(old)

    def remove_stale_temp_files(self, min_age_s: float = STALE_TEMP_S) -> list[Path]:
        """Delete temp files an interrupted write left behind; return what was removed.

        Only files whose series no writer holds (its lock is free) and that are older than
        min_age_s are stale: a running writer's temp file is never touched.
        """
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for tmp in sorted(self.root.glob(_TEMP_GLOB)):
            series_name = tmp.name[1:].split(_SUFFIX + ".", 1)[0] + _SUFFIX
            lock = tmp.with_name(f".{series_name}.lock")
            try:
                if now - tmp.stat().st_mtime < min_age_s:
                    continue
                with hold_lock(lock):
                    tmp.unlink()
                removed.append(tmp)
            except (LockedError, FileNotFoundError):
                continue  # a writer is active, or someone else cleaned it first
            except OSError as exc:
                raise DataError(f"cannot remove stale temp file {tmp}: {exc}") from None
        return removed

    def read(
        self,
        key: SeriesKey,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """The stored series between start and end (both inclusive); NoDataError if absent."""
        path = self.path(key)
        if not path.is_file():
            raise NoDataError(f"no data for {key} (looked in {path})")
        try:
            frame = pq.read_table(path).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read {path}: {exc}") from exc
        frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC").as_unit("ns")
        frame.index.name = INDEX_NAME
        lo = parse_time(start) if start is not None else None
        hi = parse_time(end) if end is not None else None
        if lo is not None and hi is not None and lo > hi:
            raise DataError(f"start {lo:%Y-%m-%d %H:%M} is after end {hi:%Y-%m-%d %H:%M}")
        if key.is_ticks:  # book rows keep recorded order, so the index need not be sorted
            keep = np.ones(len(frame), dtype=bool)
            if lo is not None:
                keep &= frame.index >= lo
            if hi is not None:
                keep &= frame.index <= hi
            return frame[keep]
        return frame.loc[lo:hi]

    def last_timestamp(self, key: SeriesKey) -> pd.Timestamp | None:
        """Time of the newest stored row, or None when the series does not exist."""
        if not self.exists(key):
            return None
        index = self.read(key).index
        return (index.max() if key.is_ticks else index[-1]) if len(index) else None

    def keys(
        self,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
        timeframe: str | None = None,
    ) -> list[SeriesKey]:
        """Every stored series matching the given fields, sorted."""
        found: list[SeriesKey] = []
        if not self.root.is_dir():
            return found
        for path in self.root.glob(f"*/*/*/*{_SUFFIX}"):
            if path.name.startswith("."):
                continue
            ex, mk, sym_dir = path.parts[-4:-1]
            try:
                key = SeriesKey(ex, mk, dir_to_symbol(sym_dir), path.stem)
            except DataError:
                continue  # not ours: a stray file in the data root
            if (
                (exchange is None or key.exchange == exchange)
                and (market is None or key.market == market)
                and (symbol is None or key.symbol == validate_symbol(symbol))
                and (timeframe is None or key.timeframe == timeframe)
            ):
                found.append(key)
        return sorted(found)

    def resolve(
        self,
        symbol: str,
        timeframe: str,
        exchange: str | None = None,
        market: str | None = None,
    ) -> SeriesKey:
        """Find the one stored series for symbol and timeframe; error when none or ambiguous."""
        symbol = validate_symbol(symbol)
        if timeframe != FUNDING and timeframe not in TICK_KINDS:
            validate_timeframe(timeframe)
        matches = self.keys(exchange, market, symbol, timeframe)
        if len(matches) > 1:
            # Synthetic data is the stand-in for when nothing real exists: real data wins.
            real = [k for k in matches if k.exchange != SYNTHETIC_EXCHANGE]
            matches = real if len(real) == 1 else matches
        if len(matches) == 1:
            return matches[0]
        where = " ".join(f"--{n} {v}" for n, v in (("exchange", exchange), ("market", market)) if v)
        if not matches:
            others = sorted({k.timeframe for k in self.keys(exchange, market, symbol)})
            hint = f" (it has: {', '.join(others)})" if others else ""
            raise NoDataError(
                f"no {timeframe} data for {symbol}{' with ' + where if where else ''} "
                f"in {self.root}{hint}; run 'quantdesk data synth' or 'quantdesk data import'"
            )
        places = ", ".join(f"{k.exchange}/{k.market}" for k in matches)
        raise DataError(
            f"{symbol} {timeframe} is stored in several places ({places}): "
            "pass --exchange and/or --market"
        )

    def load(
        self,
        symbol: str,
        timeframe: str,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        exchange: str | None = None,
        market: str | None = None,
    ) -> pd.DataFrame:
        """Bars (or funding rates) of one symbol between start and end; error if none."""
        key = self.resolve(symbol, timeframe, exchange, market)
        frame = self.read(key, start, end)
        if frame.empty:
            whole = self.read(key)
            span = f"{whole.index[0]:%Y-%m-%d} .. {whole.index[-1]:%Y-%m-%d}" if len(whole) else ""
            raise NoDataError(
                f"no {symbol} {timeframe} data between {start or 'the start'} and "
                f"{end or 'the end'}; the store holds {span or 'no rows'}"
            )
        return frame

    def load_many(
        self,
        symbols: Iterable[str],
        timeframe: str,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        exchange: str | None = None,
        market: str | None = None,
    ) -> dict[str, pd.DataFrame]:
        """load() for several symbols, keyed by symbol in the given order."""
        return {s: self.load(s, timeframe, start, end, exchange, market) for s in symbols}


def _normalize(key: SeriesKey, frame: pd.DataFrame) -> pd.DataFrame:
    return normalize_ticks(frame, key.timeframe) if key.is_ticks else normalize(frame, key.columns)


def stored_funding(
    store: DataStore,
    symbols: Iterable[str],
    start: str | None = None,
    end: str | None = None,
    exchange: str | None = None,
    market: str | None = None,
) -> dict[str, pd.DataFrame]:
    """The stored funding rates of the perpetuals among symbols (those the store holds)."""
    out = {}
    for symbol in symbols:
        if not parse_symbol(symbol).is_derivative:
            continue
        try:
            out[symbol] = store.load(symbol, FUNDING, start, end, exchange, market)
        except NoDataError:
            continue  # no funding recorded: nothing to settle
    return out
