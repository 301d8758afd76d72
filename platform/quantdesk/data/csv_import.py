"""CSV import: Binance kline and funding files (archive and collected formats) and generic OHLCV.

Every file is parsed and validated before anything is written, so a bad file in a folder
leaves the store untouched. Recognized layouts:
- Binance klines with a header (`open_time,open,high,low,close,volume,...`) or the official
  archive's headerless 12 columns (open_time, open, high, low, close, volume, close_time, ...).
  Epoch times in s, ms or µs are told apart by magnitude.
- Binance funding (`funding_time,funding_interval_hours,funding_rate`, or the archive's
  `calc_time,...,last_funding_rate`). Funding times are recorded a few ms after the settlement;
  they are rounded to the nearest whole hour so funding aligns with bars and other symbols.
- Any OHLCV CSV with a time column, mapped with --columns or found by common names.
File names like `BTCUSDT-1d.csv`, `BTCUSDT-1h-2024-01.csv` or `BTCUSDT-funding.csv` give the
symbol and timeframe; otherwise pass them. Funding is always filed under the usdm perpetual
(`BTC/USDT:USDT`), since only perpetuals have it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from quantdesk.data.quality import Finding, check_frame
from quantdesk.data.store import FUNDING, OHLCV_COLUMNS, DataStore, SeriesKey
from quantdesk.data.symbols import symbol_from_id, validate_market, validate_symbol
from quantdesk.data.timeframes import validate_timeframe
from quantdesk.data.times import MAX_TIME, MIN_TIME, RANGE_TEXT
from quantdesk.errors import DataError
from quantdesk.model import perpetual_of

TIME = "time"
FIELDS = (TIME, *OHLCV_COLUMNS)
# Candidate header names per field, compared case-insensitively, best first.
_ALIASES: dict[str, tuple[str, ...]] = {
    TIME: ("timestamp", "time", "date", "datetime", "open_time", "opentime", "ts"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
_FUNDING_TIME = ("funding_time", "fundingtime", "calc_time", "calctime")
_FUNDING_RATE = ("funding_rate", "fundingrate", "last_funding_rate", "lastfundingrate")
# The official archive's headerless kline columns; the first six are the ones stored.
BINANCE_KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
_NAME = re.compile(
    r"^(?P<id>[A-Za-z0-9]+)-(?P<kind>\d+[smhdwM]|funding(?:rate)?)(?:-[\d-]+)?$", re.IGNORECASE
)
_NAN_TEXT = {"nan", "NaN", "NAN"}


def _quiet(progress: bool) -> bool | None:
    # None lets tqdm decide: bars on a terminal, silence in logs and pipes.
    return None if progress else True


@dataclass(frozen=True)
class ImportOptions:
    """Where imported series go, and overrides for what the file name would say."""

    exchange: str = "binance"
    market: str = "spot"
    symbol: str | None = None
    timeframe: str | None = None
    columns: Mapping[str, str] | None = None


@dataclass
class ParsedFile:
    """One CSV parsed into a raw frame (UTC index, as in the file: unsorted, maybe duplicated)."""

    path: Path
    key: SeriesKey
    frame: pd.DataFrame
    # File line of the frame's first row (2 below a header), for errors that name a line.
    first_line: int = 2


@dataclass
class ImportResult:
    """What one series received from an import."""

    key: SeriesKey
    files: list[Path]
    rows_read: int
    rows_added: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    findings: list[Finding] = field(default_factory=list)


def parse_column_map(text: str | None) -> dict[str, str] | None:
    """Parse '--columns time=Date,open=Open,...' into {field: csv column}."""
    if not text:
        return None
    mapping: dict[str, str] = {}
    for part in text.split(","):
        name, sep, column = part.partition("=")
        name, column = name.strip().lower(), column.strip()
        if not sep or not column:
            raise DataError(f"bad --columns entry {part.strip()!r}: use e.g. open=Open")
        if name not in FIELDS:
            raise DataError(f"unknown field {name!r} in --columns: use {', '.join(FIELDS)}")
        mapping[name] = column
    return mapping


def name_info(path: Path) -> tuple[str, str] | None:
    """(exchange id like 'BTCUSDT', timeframe or 'funding') from a file name, or None."""
    match = _NAME.match(path.stem)
    if not match:
        return None
    kind = match["kind"]
    return match["id"], FUNDING if kind.lower().startswith("funding") else kind


def market_symbol(symbol: str, market: str) -> str:
    """The validated symbol for a market: usdm perps settle in the quote ('BTC/USDT:USDT')."""
    symbol = validate_symbol(symbol)
    return perpetual_of(symbol) if market == "usdm" else symbol


def series_key(path: Path, options: ImportOptions, funding: bool) -> SeriesKey:
    """The store key for a file: symbol and timeframe from options, else from the file name."""
    # Funding only exists for perpetuals: it is filed under usdm whatever --market says,
    # next to the perp's bars, as download and the synthetic market do.
    market = "usdm" if funding else validate_market(options.market)
    info = name_info(path)
    symbol = options.symbol
    if symbol is None:
        if info is None:
            raise DataError(
                f"{path.name}: cannot tell the symbol from the file name: pass --symbol BASE/QUOTE"
            )
        symbol = symbol_from_id(info[0], market=market)
    symbol = market_symbol(symbol, market)
    if funding:
        timeframe = FUNDING
    elif options.timeframe is not None:
        timeframe = validate_timeframe(options.timeframe)
    elif info is not None and info[1] != FUNDING:
        timeframe = validate_timeframe(info[1])
    else:
        raise DataError(
            f"{path.name}: cannot tell the timeframe from the file name: pass --timeframe, e.g. 1h"
        )
    return SeriesKey(options.exchange, market, symbol, timeframe)


def _read_rows(path: Path) -> tuple[list[str] | None, pd.DataFrame]:
    """(header or None when headerless, all cells as strings)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            first = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not first or not any(cell.strip() for cell in first):
        raise DataError(f"{path.name}: empty file")
    headerless = _is_number(first[0])
    try:
        raw = pd.read_csv(
            path,
            header=None if headerless else 0,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            encoding="utf-8-sig",
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path.name}: not a readable CSV: {message}") from None
    if headerless:
        return None, raw
    raw.columns = [str(c).strip() for c in raw.columns]
    return list(raw.columns), raw


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick(header: list[str], names: Iterable[str]) -> str | None:
    lowered = {h.lower(): h for h in header}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _kline_columns(path: Path, header: list[str], explicit: Mapping[str, str] | None) -> dict:
    if explicit:
        absent = [f"{f}={c}" for f, c in explicit.items() if c not in header]
        if absent:
            have = ", ".join(header)
            raise DataError(f"{path.name}: no column(s) {', '.join(absent)} (has {have})")
    mapping = {}
    for name in FIELDS:
        column = (explicit or {}).get(name) or _pick(header, _ALIASES[name])
        if column is None:
            raise DataError(
                f"{path.name}: no {name} column (has {', '.join(header)}): "
                f"map it with --columns {name}=<Column>"
            )
        mapping[name] = column
    return mapping


def _numbers(path: Path, raw: pd.Series, what: str, line_offset: int) -> np.ndarray:
    text = raw.str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
    bad = np.isnan(values) & ~text.isin(_NAN_TEXT).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f"{path.name} line {i + line_offset}"
        if not text.iloc[i]:
            raise DataError(f"{where}: {what} is empty")
        raise DataError(f"{where}: {what} value {raw.iloc[i]!r} is not a number")
    return values


def _epoch_scale(values: np.ndarray) -> np.ndarray:
    # Present-day epochs: s ~1.7e9, ms ~1.7e12, µs ~1.7e15, ns ~1.7e18.
    magnitude = np.abs(values)
    return np.select(
        [magnitude < 1e11, magnitude < 1e14, magnitude < 1e17], [1e9, 1e6, 1e3], default=1.0
    )


def epoch_to_times(values: np.ndarray) -> pd.DatetimeIndex:
    """UTC times from epoch numbers, each read as s, ms, µs or ns by its magnitude.

    DataError when a value is not finite or lands outside MIN_TIME .. MAX_TIME.
    """
    values = np.asarray(values, dtype="float64")
    bad = _epoch_out_of_range(values)
    if bad.any():
        value = float(values[int(np.flatnonzero(bad)[0])])
        raise DataError(f"epoch time {value!r} is out of range: use {RANGE_TEXT}")
    nanos = np.round(values * _epoch_scale(values)).astype("int64")
    return pd.DatetimeIndex(pd.to_datetime(nanos, unit="ns", utc=True))


def _epoch_out_of_range(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        nanos = values * _epoch_scale(values)
        ok = np.isfinite(nanos) & (nanos >= MIN_TIME.value) & (nanos < MAX_TIME.value)
    return ~ok


def _time_error(path: Path, raw: pd.Series, i: int, line_offset: int) -> DataError:
    text = str(raw.iloc[i])
    shown = repr(text if len(text) <= 40 else text[:37] + "...")
    return DataError(
        f"{path.name} line {i + line_offset}: time {shown} is out of range: use {RANGE_TEXT}"
    )


def _times(path: Path, raw: pd.Series, line_offset: int) -> pd.DatetimeIndex:
    text = raw.str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().sum() * 2 >= len(numeric):
        # Mostly epoch numbers: the first row that is not one is the bad row.
        not_number = numeric.isna().to_numpy()
        if not_number.any():
            i = int(np.flatnonzero(not_number)[0])
            raise DataError(
                f"{path.name} line {i + line_offset}: time {raw.iloc[i]!r} is neither an ISO "
                "date nor an epoch number"
            )
        values = numeric.to_numpy(dtype="float64")
        bad = _epoch_out_of_range(values)
        if bad.any():
            raise _time_error(path, raw, int(np.flatnonzero(bad)[0]), line_offset)
        return epoch_to_times(values)
    times = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    if times.isna().any():
        times = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    if times.isna().any():
        i = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(
            f"{path.name} line {i + line_offset}: time {raw.iloc[i]!r} is neither an ISO date "
            "nor an epoch number"
        )
    # Years pandas parses but cannot store in nanoseconds (1000, 3000, 9999) end here.
    bad = ((times < MIN_TIME) | (times >= MAX_TIME)).to_numpy()
    if bad.any():
        raise _time_error(path, raw, int(np.flatnonzero(bad)[0]), line_offset)
    return pd.DatetimeIndex(times).as_unit("ns")


def parse_csv(path: str | Path, options: ImportOptions = ImportOptions()) -> ParsedFile:
    """Read and validate one CSV into a raw frame and its store key; DataError if it is bad."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    header, raw = _read_rows(path)
    if raw.empty:
        raise DataError(f"{path.name}: no data rows")
    line_offset = 1 if header is None else 2
    if header is None:
        if raw.shape[1] < 6:
            raise DataError(
                f"{path.name}: headerless file with {raw.shape[1]} columns; expected Binance "
                "klines (open_time, open, high, low, close, volume, ...)"
            )
        raw.columns = list(BINANCE_KLINE_COLUMNS[: raw.shape[1]]) + [
            f"extra_{i}" for i in range(max(0, raw.shape[1] - len(BINANCE_KLINE_COLUMNS)))
        ]
        header = list(raw.columns)
    funding_time = _pick(header, _FUNDING_TIME)
    funding_rate = _pick(header, _FUNDING_RATE)
    funding = funding_time is not None and funding_rate is not None and not options.columns
    key = series_key(path, options, funding)
    if funding:
        # Settlement is on the hour; the archive stamps it 0-50 ms late.
        index = _times(path, raw[funding_time], line_offset).round("h")
        values = {"funding_rate": _numbers(path, raw[funding_rate], "funding_rate", line_offset)}
    else:
        if key.is_funding:
            raise DataError(f"{path.name}: no funding_time/funding_rate columns")
        mapping = _kline_columns(path, header, options.columns)
        index = _times(path, raw[mapping[TIME]], line_offset)
        values = {
            name: _numbers(path, raw[mapping[name]], name, line_offset) for name in OHLCV_COLUMNS
        }
    frame = pd.DataFrame(values, index=index.rename(TIME))
    return ParsedFile(path, key, frame, line_offset)


def refuse_invalid_rows(parsed: ParsedFile) -> None:
    """DataError naming the first row an import must not store: NaN/inf, price <= 0, volume < 0.

    `data check --file` reports such rows; an import refuses them, since merging them would
    replace good stored values with bad ones.
    """
    frame = parsed.frame
    values = frame.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values)
        if not parsed.key.is_funding:
            prices = [frame.columns.get_loc(c) for c in ("open", "high", "low", "close")]
            bad[:, prices] |= values[:, prices] <= 0
            volume = frame.columns.get_loc("volume")
            bad[:, volume] |= values[:, volume] < 0
    if not bad.any():
        return
    row, col = (int(i[0]) for i in np.nonzero(bad))
    name, value = frame.columns[col], values[row, col]
    rows = int(bad.any(axis=1).sum())
    raise DataError(
        f"{parsed.path.name} line {row + parsed.first_line}: {name} is {value:g}: refusing "
        f"{rows} invalid row(s) (NaN, infinite, price <= 0 or volume < 0); nothing was written"
    )


def find_csv_files(path: str | Path) -> list[Path]:
    """The CSV file itself, or every *.csv directly inside a folder, sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
        if not files:
            raise DataError(f"no .csv files in {path}")
        return files
    raise DataError(f"no such file or folder: {path}")


def import_files(path: str | Path, options: ImportOptions) -> tuple[list[Path], list[Path]]:
    """(files an import of path reads, CSVs in the folder it skips for their names)."""
    files = find_csv_files(path)
    if not Path(path).is_dir() or (options.symbol is not None and options.timeframe is not None):
        return files, []
    # In a folder, files whose names say nothing are someone else's: leave them out.
    named = [f for f in files if name_info(f) is not None]
    if not named:
        raise DataError(
            f"no file in {path} is named like SYMBOL-TIMEFRAME.csv (e.g. BTCUSDT-1d.csv): "
            "pass --symbol and --timeframe"
        )
    return named, [f for f in files if f not in named]


def import_csv(
    store: DataStore,
    path: str | Path,
    options: ImportOptions = ImportOptions(),
    *,
    progress: bool = False,
    check: bool = True,
) -> list[ImportResult]:
    """Import a CSV file or a folder of them; all files are validated before any is written."""
    files, _ = import_files(path, options)
    parsed = [parse_csv(f, options) for f in tqdm(files, desc="reading", disable=_quiet(progress))]
    for item in parsed:
        refuse_invalid_rows(item)
    groups: dict[SeriesKey, list[ParsedFile]] = {}
    for item in parsed:
        groups.setdefault(item.key, []).append(item)
    results = []
    for key, items in tqdm(groups.items(), desc="writing", disable=_quiet(progress)):
        frame = pd.concat([item.frame for item in items])
        findings = check_frame(frame, key.timeframe) if check else []
        added = store.append(key, frame)
        index = frame.index
        results.append(
            ImportResult(
                key,
                [item.path for item in items],
                len(frame),
                added,
                index.min() if len(index) else None,
                index.max() if len(index) else None,
                findings,
            )
        )
    return results
