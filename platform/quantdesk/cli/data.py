"""`quantdesk data ...`: synthetic markets, import, download, record, quality checks, listing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.options import venue_filter_options
from quantdesk.cli.output import console, print_table

if TYPE_CHECKING:
    from quantdesk.data.store import DataStore


@cli.group()
def data() -> None:
    """Market data in the local Parquet store."""


@data.command("list")
@venue_filter_options
@click.pass_obj
def list_(app: AppContext, exchange: str | None, market: str | None) -> None:
    """List stored series with their row counts and time spans."""
    store = app.store
    keys = store.keys(exchange=exchange, market=market)
    if not keys:
        console().print(f"no data under {store.root}")
        return
    rows = []
    for key in keys:
        frame = store.read(key)
        # book rows keep recorded order, so their first and last times are the extremes
        span = (frame.index.min(), frame.index.max()) if len(frame) else (None, None)
        rows.append(
            (
                key.exchange,
                key.market,
                key.symbol,
                key.timeframe,
                len(frame),
                f"{span[0]:%Y-%m-%d %H:%M}" if span[0] is not None else "",
                f"{span[1]:%Y-%m-%d %H:%M}" if span[1] is not None else "",
            )
        )
    print_table(("exchange", "market", "symbol", "timeframe", "rows", "first", "last"), rows)


@data.command()
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
@click.option(
    "--days",
    type=click.IntRange(1, 3660),
    default=180,
    show_default=True,
    help="Length of the history in days.",
)
@click.option("--start", default="2024-01-01", show_default=True, help="First bar (UTC).")
@click.option(
    "--exchange", default="synthetic", show_default=True, help="Exchange folder to write into."
)
@click.option(
    "--timeframes",
    default="1m,1h,1d",
    show_default=True,
    help="Comma-separated timeframes to store (1m is the base, others resample it).",
)
@click.pass_obj
def synth(
    app: AppContext, seed: int, days: int, start: str, exchange: str, timeframes: str
) -> None:
    """Generate a seeded synthetic market (spot + USD-M perps, funding) into the store."""
    from quantdesk.data.synthetic import SynthSpec, generate_market, write_market

    spec = SynthSpec(seed=seed, days=days, start=start)
    tfs = [t.strip() for t in timeframes.split(",") if t.strip()]
    market = generate_market(spec)
    paths = write_market(
        app.store, market, exchange=exchange, timeframes=tfs, progress=sys.stderr.isatty()
    )
    _remove_stale_temp_files(app.store)
    console().print(
        f"wrote {len(paths)} series for {len(spec.symbols)} symbols "
        f"({', '.join(tfs)} + funding, seed {seed}) under {app.store.root / exchange}"
    )


def _remove_stale_temp_files(store: DataStore) -> None:
    # An import or synth killed mid-write leaves its temp file; the next writer tidies up.
    removed = store.remove_stale_temp_files()
    if removed:
        console().print(
            f"removed {len(removed)} stale temp file(s) left by interrupted writes under "
            f"{store.root}"
        )


def _span(first: object, last: object) -> tuple[str, str]:
    fmt = "{:%Y-%m-%d %H:%M}"
    return (
        fmt.format(first) if first is not None else "",
        fmt.format(last) if last is not None else "",
    )


def _when(ts: object) -> str:
    return "" if ts is None else f"{ts:%Y-%m-%d %H:%M}"


def _print_findings(title: str, findings: list) -> None:
    if not findings:
        console().print(f"{title}: ok")
        return
    rows = [
        (
            f.rule,
            f.severity,
            f.count,
            "" if f.first is None else f"{f.first:%Y-%m-%d %H:%M}",
            f.detail,
        )
        for f in findings
    ]
    print_table(("rule", "severity", "count", "first", "detail"), rows, title=title)


@data.command("import")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option(
    "--sample",
    default=None,
    metavar="NAME",
    help="Import a sample shipped with quantdesk instead of PATH (binance-um: real Binance 1d).",
)
@click.option(
    "--exchange", default="binance", show_default=True, help="Exchange folder to file under."
)
@click.option(
    "--market",
    type=click.Choice(["spot", "usdm"]),
    default="spot",
    show_default=True,
    help="Market type; usdm files bars under BASE/QUOTE:QUOTE (funding always goes to usdm).",
)
@click.option(
    "--symbol", default=None, help="Symbol (default: from the file name, BTCUSDT-1d.csv)."
)
@click.option("--timeframe", default=None, help="Bar size (default: from the file name).")
@click.option(
    "--columns",
    default=None,
    help="Column map for generic CSVs, e.g. time=Date,open=Open,...,volume=Volume.",
)
@click.pass_obj
def import_(
    app: AppContext,
    path: Path | None,
    sample: str | None,
    exchange: str,
    market: str,
    symbol: str | None,
    timeframe: str | None,
    columns: str | None,
) -> None:
    """Import a CSV file, every SYMBOL-TIMEFRAME.csv in a folder, or a shipped sample."""
    from quantdesk.data.csv_import import (
        ImportOptions,
        import_csv,
        import_files,
        parse_column_map,
    )
    from quantdesk.data.samples import sample_path

    if (path is None) == (sample is None):
        raise click.UsageError("give a PATH or --sample NAME (one of them)")
    if sample is not None:
        path = sample_path(sample)
    options = ImportOptions(exchange, market, symbol, timeframe, parse_column_map(columns))
    _, skipped = import_files(path, options)
    results = import_csv(app.store, path, options, progress=True)
    _remove_stale_temp_files(app.store)
    if skipped:
        names = ", ".join(f.name for f in skipped)
        console().print(f"skipped (name is not SYMBOL-TIMEFRAME.csv): {names}")
    print_table(
        ("series", "files", "rows read", "rows added", "first", "last"),
        [
            (str(r.key), len(r.files), r.rows_read, r.rows_added, *_span(r.first, r.last))
            for r in results
        ],
        title=f"imported into {app.store.root}",
    )
    warnings = [(str(r.key), f) for r in results for f in r.findings]
    if warnings:
        print_table(
            ("series", "rule", "count", "first", "detail"),
            [(key, f.rule, f.count, _when(f.first), f.detail) for key, f in warnings],
            title="quality warnings (see 'quantdesk data check')",
        )


@data.command()
@click.option("--symbols", required=True, help="Comma-separated symbols, e.g. BTC/USDT,ETH/USDT.")
@click.option("--timeframe", default="1h", show_default=True, help="Bar size, e.g. 1m, 1h, 1d.")
@click.option("--since", default=None, help="First bar (UTC); default: resume after stored data.")
@click.option("--until", default=None, help="Stop before this time (UTC, exclusive).")
@click.option("--exchange", default="binance", show_default=True, help="ccxt exchange id.")
@click.option(
    "--market",
    type=click.Choice(["spot", "usdm"]),
    default=None,
    help="spot (default) or usdm perpetuals (these also get their funding history).",
)
@click.option(
    "--venue", default=None, help="A venue from quantdesk.toml (exchange, market, sandbox_url)."
)
@click.option("--funding", is_flag=True, help="Also download funding rates of the usdm perpetuals.")
@click.option(
    "--limit",
    type=click.IntRange(1, 1500),
    default=1000,
    show_default=True,
    help="Bars per request.",
)
@click.pass_obj
def download(
    app: AppContext,
    symbols: str,
    timeframe: str,
    since: str | None,
    until: str | None,
    exchange: str,
    market: str | None,
    venue: str | None,
    funding: bool,
    limit: int,
) -> None:
    """Download bars (and funding) with ccxt: paginated, resumable, only closed bars."""
    from quantdesk.data.csv_import import market_symbol
    from quantdesk.data.download import download as run_download
    from quantdesk.data.download import make_exchange
    from quantdesk.data.store import FUNDING, SeriesKey
    from quantdesk.data.symbols import parse_symbols
    from quantdesk.data.timeframes import validate_timeframe

    url = None
    if venue is not None:
        config = app.config.venue(venue)
        exchange, url = config.exchange, config.sandbox_url
        market = market or config.market
    market = market or "spot"
    validate_timeframe(timeframe)
    wanted = parse_symbols(symbols)
    bar_keys = [SeriesKey(exchange, market, market_symbol(s, market), timeframe) for s in wanted]
    funding_keys = [
        SeriesKey(exchange, "usdm", market_symbol(s, "usdm"), FUNDING)
        for s in wanted
        if funding or market == "usdm"
    ]
    client = make_exchange(exchange, market, url)
    results = run_download(client, app.store, bar_keys, since, until, limit)
    if funding_keys:
        perp_client = client if market == "usdm" else make_exchange(exchange, "usdm", url)
        results += run_download(perp_client, app.store, funding_keys, since, until, limit)
    _remove_stale_temp_files(app.store)
    print_table(
        ("series", "requests", "rows added", "first", "last"),
        [(str(r.key), r.requests, r.rows_added, *_span(r.first, r.last)) for r in results],
        title=f"downloaded into {app.store.root}",
    )


@data.command()
@click.option("--venue", required=True, help="A venue from quantdesk.toml (binance spot or usdm).")
@click.option("--symbols", required=True, help="Comma-separated symbols, e.g. BTC/USDT,ETH/USDT.")
@click.option(
    "--streams", default="trades,book", show_default=True, help="What to record: trades, book."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: until Ctrl-C / SIGTERM).",
)
@click.option(
    "--depth",
    type=click.IntRange(5, 5000),
    default=1000,
    show_default=True,
    help="Levels of each REST book snapshot.",
)
@click.option(
    "--flush-events",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Write to the store after this many events...",
)
@click.option(
    "--flush-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="...or this many seconds, whichever comes first (and always at stop).",
)
@click.pass_obj
def record(
    app: AppContext,
    venue: str,
    symbols: str,
    streams: str,
    duration: float | None,
    depth: int,
    flush_events: int,
    flush_seconds: float,
) -> None:
    """Record trades and L2 book snapshots + diffs from a venue's streams into the store."""
    import asyncio

    from quantdesk.data.csv_import import market_symbol
    from quantdesk.data.record import Recorder, RecordSpec, parse_streams
    from quantdesk.data.symbols import parse_symbols

    kinds = parse_streams(streams)
    config = app.config.venue(venue)
    wanted = tuple(market_symbol(s, config.market) for s in parse_symbols(symbols))
    spec = RecordSpec(wanted, kinds, duration, depth, flush_events, flush_seconds)
    client, ws_url = _stream_client(config.exchange, config.market, config.sandbox_url)
    recorder = Recorder(
        client, app.store, config.exchange, config.market, spec, ws_url, _status_printer()
    )

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await recorder.run(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await client.close()

    asyncio.run(main())
    stats = recorder.stats
    if sys.stderr.isatty():
        click.echo("", err=True)
    print_table(
        ("series", "rows"),
        [
            (str(recorder.key(s, k)), _rows(app.store, recorder.key(s, k)))
            for s in wanted
            for k in kinds
        ],
        title=f"recorded into {app.store.root}: {stats.line()}",
    )


def _rows(store: DataStore, key: object) -> int:
    return len(store.read(key)) if store.exists(key) else 0  # type: ignore[arg-type]


def _status_printer() -> object:
    import time

    tty = sys.stderr.isatty()
    last = [0.0]

    def show(stats: object) -> None:
        now = time.monotonic()
        if tty:
            click.echo(f"\r{stats.line()}", err=True, nl=False)  # type: ignore[attr-defined]
        elif now - last[0] >= 10:
            last[0] = now
            click.echo(stats.line(), err=True)  # type: ignore[attr-defined]

    return show


def _stream_client(exchange: str, market: str, url: str | None) -> tuple[object, str]:
    """A ccxt.pro client for the venue and the websocket base of its raw market streams."""
    from quantdesk.errors import ConfigError

    name = {"spot": "binance", "usdm": "binanceusdm"}[market]
    if exchange != "binance":
        raise ConfigError(
            f"data record speaks Binance's streams only (venue exchange is {exchange!r})"
        )
    if url is not None:
        from quantdesk.sandbox.streams import pro_client

        client = pro_client(name, url)
    else:
        import ccxt.pro

        client = getattr(ccxt.pro, name)(
            {"options": {"defaultType": "spot" if market == "spot" else "swap"}}
        )
    ws = client.urls["api"]["ws"]["spot" if market == "spot" else "linear"]
    return client, ws


@data.command()
@click.option(
    "--symbols", default=None, help="Comma-separated symbols (default: every stored one)."
)
@click.option("--timeframe", default=None, help="Only this timeframe (or 'funding').")
@venue_filter_options
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path),
    default=None,
    help="Check a raw CSV instead of the store.",
)
@click.option("--columns", default=None, help="Column map for --file, as in 'data import'.")
@click.option("--strict", is_flag=True, help="Exit 1 when anything is found.")
@click.option(
    "--max-zero-volume-run",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Report runs of at least this many zero-volume bars.",
)
@click.option(
    "--outlier-sigma",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Robust sigmas beyond which a return (or funding rate) is an outlier "
    "[default: 12 for bars, 30 for funding].",
)
@click.pass_context
def check(
    ctx: click.Context,
    symbols: str | None,
    timeframe: str | None,
    exchange: str | None,
    market: str | None,
    file: Path | None,
    columns: str | None,
    strict: bool,
    max_zero_volume_run: int,
    outlier_sigma: float | None,
) -> None:
    """Report gaps, duplicates, bad prices, zero-volume runs and outliers per series."""
    from quantdesk.data.csv_import import (
        ImportOptions,
        market_symbol,
        parse_column_map,
        parse_csv,
    )
    from quantdesk.data.quality import check_frame
    from quantdesk.data.symbols import parse_symbols
    from quantdesk.errors import NoDataError

    app: AppContext = ctx.obj
    limits = {"max_zero_volume_run": max_zero_volume_run, "outlier_sigma": outlier_sigma}
    found = 0
    if file is not None:
        symbol = parse_symbols(symbols)[0] if symbols else None
        options = ImportOptions(
            exchange or "binance", market or "spot", symbol, timeframe, parse_column_map(columns)
        )
        parsed = parse_csv(file, options)
        findings = check_frame(parsed.frame, parsed.key.timeframe, **limits)
        _print_findings(f"{file} ({parsed.key})", findings)
        found = len(findings)
    else:
        store = app.store
        wanted: list[str | None] = [None]
        if symbols:
            wanted = [market_symbol(s, market) if market else s for s in parse_symbols(symbols)]
        keys = [k for s in wanted for k in store.keys(exchange, market, s, timeframe)]
        if not keys:
            raise NoDataError(f"nothing to check in {store.root} for the given filters")
        for key in keys:
            findings = check_frame(store.read(key), key.timeframe, **limits)
            _print_findings(str(key), findings)
            found += len(findings)
    if strict and found:
        ctx.exit(1)
