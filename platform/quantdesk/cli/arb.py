"""`quantdesk arb backtest`: the funding-rate arbitrage pair backtest (quantdesk.arbitrage)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from quantdesk.cli import cli
from quantdesk.cli.checks import cash_amount, output_file, start_end_time
from quantdesk.cli.context import AppContext
from quantdesk.cli.output import announce, console, print_table
from quantdesk.errors import ConfigError

STRATEGY = "funding_arb"


def probability(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Click callback: a probability in [0, 1]."""
    if not 0 <= value <= 1:
        raise ConfigError(f"--{param.name.replace('_', '-')} must be in [0, 1], got {value:g}")
    return value


@cli.group()
def arb() -> None:
    """Funding-rate arbitrage between two perpetuals venues."""


@arb.command("backtest")
@click.option("--symbol", required=True, help="Perpetual to trade on both venues (BTC/USDT:USDT).")
@click.option(
    "--second-venue",
    default="synthetic",
    show_default=True,
    help="'synthetic' (seeded hourly venue) or an exchange folder of the store holding the "
    "symbol's recorded funding.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic parts.")
@click.option(
    "--param", "param_args", multiple=True, metavar="NAME=VALUE", help="A funding_arb param."
)
@click.option("--start", default=None, callback=start_end_time, help="First time (UTC).")
@click.option("--end", default=None, callback=start_end_time, help="Last time (UTC).")
@click.option(
    "--cash",
    type=float,
    default=10_000.0,
    callback=cash_amount,
    show_default=True,
    help="Starting capital (USDT), split between the two venues.",
)
@click.option(
    "--fail-prob",
    type=float,
    default=0.05,
    callback=probability,
    show_default=True,
    help="Chance a leg's order fails (seeded failure model).",
)
@click.option(
    "--partial-prob",
    type=float,
    default=0.10,
    callback=probability,
    show_default=True,
    help="Chance a leg's order fills only partly.",
)
@click.option("--report", "report_path", default=None, help="Write an HTML report (plotly) here.")
@click.option("--strategies-dir", default=None, help="Folder of strategies (default ./strategies).")
@click.pass_obj
def backtest_cmd(
    app: AppContext,
    symbol: str,
    second_venue: str,
    seed: int,
    param_args: tuple[str, ...],
    start: str | None,
    end: str | None,
    cash: float,
    fail_prob: float,
    partial_prob: float,
    report_path: str | None,
    strategies_dir: str | None,
) -> None:
    """Backtest funding_arb on real Binance funding against a second venue; print the stats."""
    from quantdesk.strategy import parse_param_args, strategy_class

    cls = strategy_class(STRATEGY, strategies_dir)
    fixed, grid = parse_param_args(cls, param_args)
    if grid:
        raise ConfigError("arb backtest runs one parameter set: give each --param a single value")
    if fail_prob + partial_prob > 1:
        raise ConfigError("--fail-prob plus --partial-prob must be at most 1")
    report = report_target(report_path)
    strategy = cls(**fixed)
    announce(f"arb backtest {symbol}: binance vs {second_venue}")
    from quantdesk.arbitrage.backtest import run_pair
    from quantdesk.arbitrage.execution import ExecConfig, FillModel
    from quantdesk.arbitrage.market import (
        binance_sample,
        binance_venue,
        build_market,
        recorded_venue,
        sample_market,
    )
    from quantdesk.arbitrage.rates import SYNTHETIC_HOURLY

    if second_venue == "synthetic":
        market = sample_market(symbol, seed, start=start, end=end)
    else:
        price, rates = binance_sample(symbol)
        rates_b, venue_b, price_b = recorded_venue(
            app.store, symbol, second_venue, SYNTHETIC_HOURLY
        )
        market = build_market(
            symbol,
            price,
            rates,
            binance_venue(rates),
            rates_b,
            venue_b,
            price_b,
            seed,
            start=start,
            end=end,
        )
    result = run_pair(
        strategy,
        market,
        capital=cash,
        execution=ExecConfig(slices=strategy.slices),
        fills=FillModel(fail_prob, partial_prob),
        seed=seed,
    )
    print_arb_stats(result)
    if report is not None:
        from quantdesk.arbitrage.report import write_report

        write_report(result, report)
        console().print(f"report: {report}")


def report_target(path: str | None) -> Path | None:
    """Refuse a --report path that is not an .html file in an existing folder, before any work."""
    return output_file(path, "--report", (".html", ".htm"), "an .html file")


def print_arb_stats(result: object) -> None:
    """The stats table of one pair backtest."""
    s = result.stats  # type: ignore[attr-defined]
    m = result.market  # type: ignore[attr-defined]
    money = [
        ("total PnL", s["total_pnl"]),
        ("price PnL (A + B)", s["price_pnl"]),
        (f"  price PnL {m.venue_a.name}", s["price_pnl_a"]),
        (f"  price PnL {m.venue_b.name}", s["price_pnl_b"]),
        ("funding PnL (A + B)", s["funding_pnl"]),
        (f"  funding {m.venue_a.name}", s["funding_pnl_a"]),
        (f"  funding {m.venue_b.name}", s["funding_pnl_b"]),
        ("fees", -s["fees"]),
        ("slippage", -s["slippage"]),
    ]
    rows = [("trades", f"{int(s['trades'])}")]
    rows += [(name, f"{value:,.2f}") for name, value in money]
    rows += [
        ("APR (on capital)", f"{s['apr'] * 100:.2f}%"),
        ("sharpe", f"{s['sharpe']:.2f}"),
        ("max drawdown", f"{s['max_drawdown'] * 100:.2f}%"),
        ("legs repaired", f"{int(s['legs_repaired'])}"),
        ("failed legs", f"{int(s['failed_legs'])}"),
        ("partial fills", f"{int(s['partial_fills'])}"),
    ]
    frame = m.frame
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())  # type: ignore[attr-defined]
    print_table(["stat", "value"], rows, title=f"funding_arb {m.symbol}")
    exits = Counter(t.reason for t in result.trades)  # type: ignore[attr-defined]
    out = console()
    out.print(
        f"venues: {m.venue_a.name} ({m.venue_a.interval_hours}h) vs {m.venue_b.name} "
        f"({m.venue_b.interval_hours}h), {frame.index[0]:%Y-%m-%d} .. {frame.index[-1]:%Y-%m-%d}"
    )
    out.print(f"in market: {s['exposure'] * 100:.1f}% of hours")
    out.print("exits: " + (", ".join(f"{k} {n}" for k, n in exits.most_common()) or "none"))
    out.print(f"params: {params}")


DIRECTIONS = {"long-a": 1, "short-a": -1}


@arb.command("run")
@click.option("--journal", "journal_path", required=True, help="The session's journal (SQLite).")
@click.option("--until", default=None, callback=start_end_time, help="Stop at this venue time.")
@click.option(
    "--param", "param_args", multiple=True, metavar="NAME=VALUE", help="Overrides [arb.params]."
)
@click.option("--strategies-dir", default=None, help="Folder of strategies (default ./strategies).")
@click.pass_obj
def run_cmd(
    app: AppContext,
    journal_path: str,
    until: str | None,
    param_args: tuple[str, ...],
    strategies_dir: str | None,
) -> None:
    """Trade funding_arb live on the two venues of [arb] (quantdesk.toml), one pair at a time.

    Ctrl-C or SIGTERM stops; a restart with the same journal recovers the orders in flight,
    reconciles both venues and carries the pair on from the venues' positions.
    """
    import asyncio

    from quantdesk.cli.runlock import session_lock
    from quantdesk.data.times import parse_time, to_ms
    from quantdesk.strategy import parse_param_args, strategy_class
    from quantdesk.system.arb_live import ArbResult, ArbSession, ArbSpec
    from quantdesk.system.live import install_signal_handlers, session_logging

    config = app.config
    if config.arb is None:
        raise ConfigError("quantdesk.toml has no [arb] section: name venue_a, venue_b, capital")
    cls = strategy_class(STRATEGY, strategies_dir)
    fixed, grid = parse_param_args(cls, param_args)
    if grid:
        raise ConfigError("arb run trades one parameter set: give each --param a single value")
    strategy = cls(**{**config.arb.params, **fixed})
    venues = {name: config.venue(name) for name in (config.arb.venue_a, config.arb.venue_b)}
    journal = Path(journal_path)
    if not journal.parent.is_dir():
        raise ConfigError(f"--journal: folder {journal.parent} does not exist")
    spec = ArbSpec(
        strategy,
        config.arb,
        venues,
        journal,
        risk=config.risk,
        alerts=config.alerts,
        until_ms=to_ms(parse_time(until)) if until else None,
    )
    session_logging()
    announce(f"arb run {config.arb.symbol}: {config.arb.venue_a} vs {config.arb.venue_b}")

    async def main() -> ArbResult:
        stop = asyncio.Event()
        remove = install_signal_handlers(stop)
        try:
            return await ArbSession(spec, stop=stop, on_status=_print_status).run()
        finally:
            remove()

    with session_lock(journal):
        result = asyncio.run(main())
    out = console()
    rows = [[venue, str(qty)] for venue, qty in result.positions.items()]
    print_table(["venue", "position"], rows, title=f"{config.arb.symbol} positions")
    held = "none" if result.open_pair is None else f"pair {result.open_pair.pair_id} open"
    out.print(f"pairs {len(result.pairs)} ({held}), orders {result.orders}, journal {journal}")


def _print_status(line: str) -> None:
    """One status line, flushed (the session may run under a supervisor reading its output)."""
    click.echo(line)


def _queue(journal_path: str, kind: str, payload: dict[str, object]) -> int:
    """Queue a command in an existing arb journal."""
    from quantdesk.engine.journal import Journal

    journal = Path(journal_path)
    if not journal.is_file():
        raise ConfigError(f"no journal at {journal}: start `quantdesk arb run` with it first")
    import time

    with Journal(journal) as j:
        if not len(j.events("arb_session")):
            raise ConfigError(f"{journal} is not the journal of a `quantdesk arb run` session")
        return j.add_command(kind, int(time.time() * 1000), payload=payload)


@arb.command("open")
@click.option("--journal", "journal_path", required=True, help="The arb session's journal.")
@click.option(
    "--direction",
    type=click.Choice(sorted(DIRECTIONS)),
    default="long-a",
    show_default=True,
    help="long-a: long venue A, short venue B (earns B's rate minus A's); short-a: the reverse.",
)
def open_cmd(journal_path: str, direction: str) -> None:
    """Open a pair now (the running session acts on it); resumes automatic entries."""
    command = _queue(journal_path, "arb_open", {"direction": DIRECTIONS[direction]})
    console().print(f"queued arb open {direction} (command {command})")


@arb.command("close")
@click.option("--journal", "journal_path", required=True, help="The arb session's journal.")
def close_cmd(journal_path: str) -> None:
    """Close the open pair now; no automatic entry until `quantdesk arb open`."""
    command = _queue(journal_path, "arb_close", {})
    console().print(f"queued arb close (command {command})")


@arb.command("status")
@click.option("--journal", "journal_path", required=True, help="The arb session's journal.")
def status_cmd(journal_path: str) -> None:
    """The last funding spread and every pair with its PnL, from an arb journal."""
    import time

    from quantdesk.dashboards.arb_view import arb_view
    from quantdesk.dashboards.session import age
    from quantdesk.reports_format import money, pct

    journal = Path(journal_path)
    if not journal.is_file():
        raise ConfigError(f"no journal at {journal}")
    view = arb_view([journal])
    if view.errors:
        raise ConfigError(view.errors[0])
    now = int(time.time() * 1000)
    rows = [
        [
            s.symbol, f"{s.venue_a} / {s.venue_b}", pct(s.apr_a), pct(s.apr_b), pct(s.spread_apr),
            f"{pct(s.best_net_apr)} {s.best_direction}", pct(s.entry_apr),
            "above" if s.above else "below", age(s.read_ms, now),
        ]
        for s in view.spreads
    ]  # fmt: skip
    print_table(
        ["pair", "venues", "APR A", "APR B", "spread", "best net", "entry", "", "read"],
        rows or [["-"] * 9],
        title="funding",
    )
    pairs = [
        [
            str(p.pair_id), p.status, "long A / short B" if p.direction > 0 else "short A / long B",
            str(p.qty), money(p.price), money(p.funding), money(-p.fees), money(p.total),
            "n/a" if p.ret is None else pct(p.ret), p.reason,
        ]
        for p in view.pairs
    ]  # fmt: skip
    print_table(
        ["pair", "status", "side", "qty", "price", "funding", "fees", "total", "return", "reason"],
        pairs or [["-"] * 10],
        title="pairs",
    )
