"""`quantdesk mm run`: a quoting strategy in paper or live mode against a configured venue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from quantdesk.cli.context import AppContext
from quantdesk.cli.mm import mm, quote_strategy_class
from quantdesk.cli.output import announce, console
from quantdesk.cli.run import _decimal, _print_status
from quantdesk.cli.runlock import session_lock
from quantdesk.errors import QuantdeskError


@mm.command("run")
@click.option("--strategy", "name", required=True, help="Quote strategy (strategies/NAME.py).")
@click.option("--symbol", required=True, help="One symbol, e.g. BTC/USDT (a USD-M venue: perp).")
@click.option(
    "--mode",
    type=click.Choice(["paper", "live"]),
    required=True,
    help="paper: quotes matched locally on the venue's book; live: orders at the venue.",
)
@click.option("--venue", "venue_name", required=True, help="A [venues.NAME] of quantdesk.toml.")
@click.option("--param", "param_args", multiple=True, metavar="NAME=VALUE", help="Parameter.")
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Journal file; rerunning with the same one resumes (default: "
    "reports/journals/mm-STRATEGY-VENUE-MODE.sqlite).",
)
@click.option("--until", default=None, help="Stop once the venue's clock reaches this (UTC).")
@click.option("--capital", default=None, help="Quote cash (default: 98% of the free balance).")
@click.option("--max-inventory", type=float, default=None, help="|position| cap (base units).")
@click.option("--strategies-dir", type=click.Path(file_okay=False), default=None)
@click.option(
    "--real-money",
    is_flag=True,
    help="Required for live mode on a venue that is not a quantdesk sandbox.",
)
@click.pass_obj
def mm_run(
    app: AppContext,
    name: str,
    symbol: str,
    mode: str,
    venue_name: str,
    param_args: tuple[str, ...],
    journal_path: str | None,
    until: str | None,
    capital: str | None,
    max_inventory: float | None,
    strategies_dir: str | None,
    real_money: bool,
) -> None:
    """Quote a market: the backtest's strategy code on the venue's live book.

    Parameters come from [mm.params.STRATEGY] of the config, overlaid with --param; the
    session re-reads that section while it runs (an invalid change is refused, the old params
    stay). Ctrl-C or SIGTERM stops gracefully (every quote is cancelled); a restart with the
    same journal recovers, reconciles and carries on.
    """
    announce(f"{mode} market making with {name} on {symbol} via {venue_name}")
    import math

    from quantdesk.data.symbols import parse_symbols
    from quantdesk.data.times import parse_time, to_ms
    from quantdesk.mm.reload import section_params
    from quantdesk.strategy import parse_param_args
    from quantdesk.system.live import Mode, install_signal_handlers, session_logging
    from quantdesk.system.mm_live import MMSessionResult, MMSessionSpec, run_mm_session

    cls = quote_strategy_class(name, strategies_dir)
    overrides, grid = parse_param_args(cls, param_args)
    if grid:
        raise QuantdeskError("mm run quotes one parameter set: give each --param a single value")
    config = app.config
    venue = config.venue(venue_name)
    if mode == "live" and venue.sandbox_url is None and not real_money:
        raise QuantdeskError(
            f"{venue_name} is not a sandbox: live market making there needs --real-money"
        )
    symbols = parse_symbols(symbol)
    if len(symbols) != 1:
        raise QuantdeskError("mm run quotes one --symbol")
    if max_inventory is not None and not (math.isfinite(max_inventory) and max_inventory > 0):
        raise QuantdeskError(f"--max-inventory must be a positive number, got {max_inventory:g}")
    raw = {"mm": {"params": config.mm.params}}
    strategy = cls(**{**section_params(raw, cls.label()), **overrides})
    journal = Path(journal_path or f"reports/journals/mm-{cls.label()}-{venue_name}-{mode}.sqlite")
    spec = MMSessionSpec(
        strategy=strategy,
        symbol=symbols[0],
        mode=Mode(mode),
        venue_name=venue_name,
        venue=venue,
        journal=journal,
        settings=config.mm,
        overrides=overrides,
        until_ms=to_ms(parse_time(until)) if until else None,
        capital=_decimal("capital", capital),
        max_inventory=max_inventory,
        risk=config.risk,
        config_path=config.source,
        alerts=config.alerts,
    )
    session_logging()
    out = console()

    async def main() -> MMSessionResult:
        stop = asyncio.Event()
        remove = install_signal_handlers(stop)
        try:
            return await run_mm_session(spec, stop=stop, on_status=_print_status)
        finally:
            remove()

    with session_lock(journal):  # a second session on this journal exits 2 here
        out.print(
            f"{mode} market making: {strategy!r} on {venue_name}, journal {journal.resolve()}"
        )
        result = asyncio.run(main())
    stopped = " (stopped by signal)" if result.stopped_by_signal else ""
    out.print(
        f"orders {result.orders}, fills {result.fills}, position {result.position}, "
        f"equity {result.equity} (capital {result.capital}){stopped}"
    )
    if result.state != "active":
        out.print(f"trading is {result.state}: `quantdesk resume --journal {journal}` re-arms it")
