"""`quantdesk run`: a strategy in paper or live mode against a venue from quantdesk.toml."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.options import execution_option
from quantdesk.cli.output import announce, console, print_table
from quantdesk.cli.runlock import holder, session_lock
from quantdesk.errors import QuantdeskError


def _decimal(name: str, value: str | None, allow_zero: bool = False) -> Decimal | None:
    if value is None:
        return None
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise QuantdeskError(f"--{name} must be a number, got {value!r}") from None
    if not out.is_finite() or out < 0 or (out == 0 and not allow_zero):
        kind = "a non-negative" if allow_zero else "a positive"
        raise QuantdeskError(f"--{name} must be {kind} number, got {value!r}")
    return out


@cli.command()
@click.option("--strategy", "strategy_name", required=True, help="Strategy (strategies/NAME.py).")
@click.option("--symbols", required=True, help="Comma-separated symbols, e.g. BTC/USDT.")
@click.option(
    "--mode",
    type=click.Choice(["paper", "live"]),
    required=True,
    help="paper: live data, simulated fills; live: orders at the venue.",
)
@click.option("--venue", "venue_name", required=True, help="A [venues.NAME] of quantdesk.toml.")
@click.option("--until", default=None, help="Stop after the bar opening at this time (UTC).")
@click.option("--param", "param_args", multiple=True, metavar="NAME=VALUE", help="Parameter.")
@execution_option()
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Journal file; rerunning with the same one resumes (default: "
    "reports/journals/run-STRATEGY-VENUE-MODE.sqlite).",
)
@click.option("--timeframe", default=None, help="Bar size (default: the strategy's).")
@click.option("--capital", default=None, help="Cash per symbol (default: 98% of free / symbols).")
@click.option("--poll", "poll_s", type=float, default=5.0, show_default=True, help="Seconds.")
@click.option(
    "--reconcile-every",
    "reconcile_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between reconciliations with the venue (live).",
)
@click.option(
    "--unknown-orders",
    type=click.Choice(["cancel", "adopt"]),
    default="cancel",
    show_default=True,
    help="What reconciliation does with open venue orders the engine did not place.",
)
@click.option("--cancel-on-exit", is_flag=True, help="Cancel open orders when stopping.")
@click.option("--slippage", default="0", show_default=True, help="Paper fills: fraction of price.")
@click.option("--strategies-dir", type=click.Path(file_okay=False), default=None)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.",
)
@click.option(
    "--registry",
    type=click.Path(dir_okay=False),
    default=None,
    help="Promotion registry (default: promoted.toml next to the strategies).",
)
@click.option(
    "--allow-unpromoted",
    is_flag=True,
    help="Paper mode only: trade parameters that were never promoted.",
)
@click.option(
    "--standby",
    is_flag=True,
    help="Start fully, then wait for the session on this journal to die and take over at once.",
)
@click.pass_obj
def run(
    app: AppContext,
    strategy_name: str,
    symbols: str,
    mode: str,
    venue_name: str,
    until: str | None,
    param_args: tuple[str, ...],
    execution: str,
    journal_path: str | None,
    timeframe: str | None,
    capital: str | None,
    poll_s: float,
    reconcile_s: float,
    unknown_orders: str,
    cancel_on_exit: bool,
    slippage: str,
    strategies_dir: str | None,
    registry: str | None,
    allow_unpromoted: bool,
    metrics_port: int | None,
    standby: bool,
) -> None:
    """Trade a strategy on live closed candles: paper (simulated fills) or live (real orders).

    Ctrl-C or SIGTERM stops gracefully; a restart with the same journal recovers, reconciles
    with the venue and carries on.
    """
    announce(f"{mode} run of {strategy_name} on {symbols} via {venue_name}")
    from quantdesk.data.symbols import parse_symbols
    from quantdesk.data.timeframes import timeframe_ms
    from quantdesk.data.times import parse_time, to_ms
    from quantdesk.engine.kernel import ExecutionMode
    from quantdesk.engine.reconcile import UnknownOrders
    from quantdesk.promotion import require_promoted
    from quantdesk.strategy import SignalStrategy, parse_param_args, strategy_class
    from quantdesk.system.live import (
        Mode,
        SessionResult,
        SessionSpec,
        install_signal_handlers,
        run_session,
        session_logging,
    )

    cls = strategy_class(strategy_name, strategies_dir)
    fixed, grid = parse_param_args(cls, param_args)
    if grid:
        raise QuantdeskError("run trades one parameter set: give each --param a single value")
    strategy = cls(**fixed)
    if not isinstance(strategy, SignalStrategy):
        raise QuantdeskError(f"{cls.label()} is not a SignalStrategy: run trades signal strategies")
    if timeframe is not None:
        timeframe_ms(timeframe)  # DataError (exit 2) for a bad one
    if poll_s <= 0 or reconcile_s <= 0:
        raise QuantdeskError("--poll and --reconcile-every must be positive")
    config = app.config
    venue = config.venue(venue_name)
    journal = Path(journal_path or f"reports/journals/run-{cls.label()}-{venue_name}-{mode}.sqlite")
    spec = SessionSpec(
        strategy=strategy,
        symbols=parse_symbols(symbols),
        mode=Mode(mode),
        venue_name=venue_name,
        venue=venue,
        journal=journal,
        execution=ExecutionMode(execution),
        timeframe=timeframe,
        until_ms=to_ms(parse_time(until)) if until else None,
        capital=_decimal("capital", capital),
        poll_s=poll_s,
        reconcile_every_s=reconcile_s,
        unknown_orders=UnknownOrders(unknown_orders),
        cancel_on_exit=cancel_on_exit,
        slippage=_decimal("slippage", slippage, allow_zero=True) or Decimal(0),
        risk=config.risk,
        config_path=config.source,
        store=app.store,
        alerts=config.alerts,
    )
    # Only validated, promoted versions trade real money. The waiver is for rehearsals: paper
    # mode, or live mode against a quantdesk sandbox (a venue with sandbox_url).
    if allow_unpromoted and mode == "live" and venue.sandbox_url is None:
        raise QuantdeskError(
            f"--allow-unpromoted is for paper mode or a sandbox venue; {venue_name} trades real "
            "money, which only promoted versions do"
        )
    if not allow_unpromoted:
        require_promoted(strategy, registry=registry, strategies_dir=strategies_dir)
    session_logging()
    out = console()

    async def main() -> SessionResult:
        stop = asyncio.Event()
        remove = install_signal_handlers(stop)
        try:
            return await run_session(spec, stop=stop, on_status=_print_status)
        finally:
            remove()

    seen = 0
    if standby:
        # Everything a cold start pays before trading (imports, the strategy's numba kernels)
        # is paid now, so taking over costs the session's own start-up only.
        _warm(strategy)
        seen = _last_lifecycle(journal)[0]
        out.print(f"standby: waiting for the session on {journal}{holder(journal)} to end")
    with session_lock(journal, wait=standby):  # a second run on this journal exits 2 here
        if standby:
            event_id, kind = _last_lifecycle(journal)
            if event_id > seen and kind == "session_stopped":
                out.print("standby: the session stopped cleanly, not a crash: nothing to take over")
                return
            out.print("standby: taking over")
        if metrics_port is not None:  # after the lock: a standby must not take the port first
            from quantdesk.dashboards.metrics import serve_metrics

            try:
                serve_metrics(str(journal), metrics_port)
            except OSError as exc:
                raise QuantdeskError(f"--metrics-port {metrics_port}: {exc.strerror}") from None
            out.print(f"metrics: http://127.0.0.1:{metrics_port}/metrics")
        out.print(f"{mode} session: {strategy!r} on {venue_name}, journal {journal.resolve()}")
        result = asyncio.run(main())
    rows = [[s, str(q)] for s, q in sorted(result.positions.items())]
    print_table(["symbol", "position"], rows or [["-", "flat"]], title="positions")
    stopped = " (stopped by signal)" if result.stopped_by_signal else ""
    if result.steps == 0 and spec.until_ms is not None and not result.stopped_by_signal:
        out.print("no bar closed before --until (times are the venue's)")
    out.print(
        f"bars {result.steps}, orders {result.orders}, fills {result.fills}, "
        f"equity {result.equity} (capital {result.capital}){stopped}"
    )
    if result.outside:
        held = ", ".join(f"{asset} {amount}" for asset, amount in sorted(result.outside.items()))
        out.print(f"the account's other holdings (not this session's): {held}")
    if result.figures is not None:
        out.print(result.figures.describe(result.quote))
    if result.state is not None and result.state != "active":
        out.print(f"trading is {result.state}: `quantdesk resume --journal {journal}` re-arms it")


def _warm(strategy: Any) -> None:
    """Evaluate the strategy once on made-up bars (loads its compiled kernels)."""
    import numpy as np
    import pandas as pd

    n = max(2 * int(strategy.warmup) + 2, 50)
    close = 100 + np.sin(np.arange(n) / 3.0)
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC")
    fields = ("open", "high", "low", "close", "volume")
    columns = pd.MultiIndex.from_tuples([(f, "WARM/UP") for f in fields])
    values = np.column_stack([close, close + 0.5, close - 0.5, close, np.ones(n)])
    strategy.signals(pd.DataFrame(values, index=index, columns=columns))


def _last_lifecycle(journal: Path) -> tuple[int, str]:
    """(id, kind) of the journal's last session start/resume/stop event; (0, "") if none."""
    if not journal.exists():
        return 0, ""
    from quantdesk.engine.journal import Journal

    with Journal(journal) as j:
        events = j.events()
    kinds = {"session_started", "session_resumed", "session_stopped"}
    events = events[events["kind"].isin(kinds)]
    if events.empty:
        return 0, ""
    last = events.iloc[-1]
    return int(last["id"]), str(last["kind"])


def _print_status(line: str) -> None:
    # flush at once: people (and tests) watch a running session through a pipe
    click.echo(line)
    sys.stdout.flush()
