"""`quantdesk mm backtest` / `mm optimize`: a market maker on seeded synthetic order flow, or on
trades and L2 book recorded into the data store (quantdesk.mm)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from quantdesk.cli import cli
from quantdesk.cli.arb import _report_target, probability
from quantdesk.cli.checks import cash_amount
from quantdesk.cli.context import AppContext
from quantdesk.cli.output import announce, console, print_table
from quantdesk.errors import ConfigError

MAX_SETS = 8  # parameter sets side by side: more is a sweep, for `quantdesk optimize`


def positive(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Click callback: a finite number > 0."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"--{param.name.replace('_', '-')} must be a positive number, got {value:g}"
        )
    return value


def non_negative(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Click callback: a finite number >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"--{param.name.replace('_', '-')} must be a number >= 0, got {value:g}")
    return value


def hours_range(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Click callback: hours of flow in (0, 168]."""
    if not (math.isfinite(value) and 0 < value <= 168):
        raise ConfigError(f"--hours must be in (0, 168], got {value:g}")
    return value


SOURCES = ("synthetic", "store")
F = TypeVar("F", bound=Callable[..., Any])


def flow_options(command: F) -> F:
    """The options choosing the event flow: synthetic (seed, hours, ...) or recorded (store)."""
    options = [
        click.option(
            "--source",
            type=click.Choice(SOURCES),
            default="synthetic",
            show_default=True,
            help="Seeded synthetic flow, or trades and book recorded into the data store.",
        ),
        click.option(
            "--seed",
            type=int,
            default=7,
            show_default=True,
            help="Seed of the synthetic order flow.",
        ),
        click.option(
            "--hours",
            type=float,
            default=6.0,
            callback=hours_range,
            show_default=True,
            help="Hours of synthetic flow.",
        ),
        click.option(
            "--informed",
            type=float,
            default=0.2,
            callback=probability,
            show_default=True,
            help="Share of informed trades (synthetic).",
        ),
        click.option(
            "--vol",
            type=float,
            default=0.6,
            callback=non_negative,
            show_default=True,
            help="Annualized mid volatility (synthetic).",
        ),
        click.option("--symbol", default=None, help="Recorded symbol (--source store)."),
        click.option("--exchange", default=None, help="Recorded exchange (--source store)."),
        click.option("--market", default=None, help="Recorded market (--source store)."),
        click.option("--start", default=None, help="Replay from (--source store)."),
        click.option("--end", default=None, help="Replay until (--source store)."),
        click.option(
            "--tick",
            type=float,
            default=None,
            help="Tick size of the recorded symbol (default: the smallest price gap).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_flow(app: AppContext, flow_args: dict) -> object:
    """The Flow the flow options describe (synthetic, or replayed from the store)."""
    source = flow_args["source"]
    recorded = ("symbol", "exchange", "market", "start", "end", "tick")
    if source == "synthetic":
        given = [n for n in recorded if flow_args[n] is not None]
        if given:
            raise ConfigError(f"--{given[0]} needs --source store")
        if flow_args["vol"] > 10:
            raise ConfigError(f"--vol must be at most 10 (1000% a year), got {flow_args['vol']:g}")
        from quantdesk.mm.flow import FlowConfig, generate_flow

        config = FlowConfig(
            hours=flow_args["hours"], informed_prob=flow_args["informed"], vol=flow_args["vol"]
        )
        return generate_flow(config, seed=flow_args["seed"])
    if not flow_args["symbol"]:
        raise ConfigError("--source store needs --symbol")
    tick = flow_args["tick"]
    if tick is not None and not (math.isfinite(tick) and tick > 0):
        raise ConfigError(f"--tick must be a positive number, got {tick:g}")
    from quantdesk.mm.recorded import store_flow

    return store_flow(
        app.store,
        flow_args["symbol"],
        flow_args["exchange"],
        flow_args["market"],
        flow_args["start"],
        flow_args["end"],
        tick,
    )


def describe_flow(flow_args: dict) -> str:
    """What the run replays, for the announcement line."""
    if flow_args["source"] == "store":
        span = f" {flow_args['start'] or 'start'} .. {flow_args['end'] or 'end'}"
        return f"recorded {flow_args['symbol']}{span}"
    return f"{flow_args['hours']:g} h of synthetic flow, seed {flow_args['seed']}"


FLOW_ARGS = (
    "source",
    "seed",
    "hours",
    "informed",
    "vol",
    "symbol",
    "exchange",
    "market",
    "start",
    "end",
    "tick",
)


@cli.group()
def mm() -> None:
    """Market making research on synthetic or recorded order flow."""


@mm.command("backtest")
@click.option(
    "--strategy",
    "name",
    default="basic_mm",
    show_default=True,
    help="basic_mm or avellaneda_stoikov.",
)
@click.option(
    "--param",
    "param_args",
    multiple=True,
    metavar="NAME=VALUE",
    help="A strategy param; NAME=a,b runs each value side by side (at most 8 sets).",
)
@click.option(
    "--venue",
    type=click.Choice(["rebate", "binance-um", "zero"]),
    default="rebate",
    show_default=True,
)
@click.option(
    "--queue", type=click.Choice(["risk_averse", "prob"]), default="risk_averse", show_default=True
)
@click.option(
    "--feed-latency-ms", type=float, default=5.0, callback=non_negative, show_default=True
)
@click.option(
    "--entry-latency-ms", type=float, default=10.0, callback=non_negative, show_default=True
)
@click.option(
    "--requote-ms",
    type=float,
    default=0.0,
    callback=non_negative,
    show_default=True,
    help="Touch changes this soon after a requote wait (fills never do).",
)
@click.option("--max-inventory", type=float, default=10.0, callback=positive, show_default=True)
@click.option("--cash", type=float, default=10_000.0, callback=cash_amount, show_default=True)
@click.option("--report", "report_path", default=None, help="Write an HTML report (plotly) here.")
@click.option("--strategies-dir", default=None, help="Folder of strategies (default ./strategies).")
@flow_options
@click.pass_obj
def backtest_cmd(
    app: AppContext,
    name: str,
    param_args: tuple[str, ...],
    venue: str,
    queue: str,
    feed_latency_ms: float,
    entry_latency_ms: float,
    requote_ms: float,
    max_inventory: float,
    cash: float,
    report_path: str | None,
    strategies_dir: str | None,
    **flow_args: object,
) -> None:
    """Backtest a quoting strategy on seeded or recorded order flow; print the stats."""
    from quantdesk.strategy import QuoteStrategy, parse_param_args, strategy_class

    cls = strategy_class(name, strategies_dir)
    if not issubclass(cls, QuoteStrategy):
        raise ConfigError(f"strategy {name} is not a QuoteStrategy: it cannot quote")
    fixed, grid = parse_param_args(cls, param_args, max_combinations=MAX_SETS)
    names = list(grid)
    combos = [dict(zip(names, c, strict=True)) for c in itertools.product(*grid.values())] or [{}]
    strategies = [cls(**{**fixed, **combo}) for combo in combos]
    report = _report_target(report_path)
    flow = load_flow(app, flow_args)
    announce(f"mm backtest {name}: {describe_flow(flow_args)}")
    from quantdesk.mm.backtest import MMConfig, run_mm
    from quantdesk.mm.fills import QUEUE_MODELS, VENUES, Latency

    config = MMConfig(
        venue=VENUES[venue],
        latency=Latency(feed_latency_ms, entry_latency_ms),
        queue=QUEUE_MODELS[queue],
        capital=cash,
        max_inventory=max_inventory,
        requote_ms=requote_ms,
    )
    results = [run_mm(s, flow, config) for s in strategies]
    print_mm_stats(results)
    if report is not None:
        from quantdesk.mm.report import write_report

        write_report(results, report)
        console().print(f"report: {report}")


def print_mm_stats(results: list) -> None:
    """One table, a column per parameter set, then each set's params."""
    from quantdesk.mm.report import TABLE

    rows = [(label, *(fmt.format(r.stats[key]) for r in results)) for key, label, fmt in TABLE]
    first = results[0]
    rows.append(("events/s", *(f"{r.stats['events_per_s']:,.0f}" for r in results)))
    heads = ["stat", *(f"set {i + 1}" for i in range(len(results)))]
    print_table(heads, rows, title=f"{first.strategy} on {len(first.flow):,} events")
    out = console()
    for i, r in enumerate(results):
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        out.print(
            f"set {i + 1}: {params}" + (f" (stopped: {r.stop_reason})" if r.stop_reason else "")
        )
