"""`quantdesk data ...`: synthetic markets, import, download, quality checks, listing."""

from __future__ import annotations

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.output import console, print_table
from quantdesk.cli.options import venue_filter_options


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
        span = (frame.index[0], frame.index[-1]) if len(frame) else (None, None)
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
    paths = write_market(app.store, market, exchange=exchange, timeframes=tfs, progress=True)
    console().print(
        f"wrote {len(paths)} series for {len(spec.symbols)} symbols "
        f"({', '.join(tfs)} + funding, seed {seed}) under {app.store.root / exchange}"
    )
