"""`quantdesk mm backtest`: a market maker on seeded synthetic order flow (quantdesk.mm)."""

from __future__ import annotations

import itertools
import math

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


@cli.group()
def mm() -> None:
    """Market making research on synthetic order flow."""


@mm.command("backtest")
@click.option(
    "--strategy",
    "name",
    default="basic_mm",
    show_default=True,
    help="basic_mm or avellaneda_stoikov.",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed of the synthetic order flow."
)
@click.option(
    "--hours",
    type=float,
    default=6.0,
    callback=hours_range,
    show_default=True,
    help="Hours of flow.",
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
@click.option(
    "--informed",
    type=float,
    default=0.2,
    callback=probability,
    show_default=True,
    help="Share of informed trades.",
)
@click.option(
    "--vol",
    type=float,
    default=0.6,
    callback=non_negative,
    show_default=True,
    help="Annualized mid volatility.",
)
@click.option("--max-inventory", type=float, default=10.0, callback=positive, show_default=True)
@click.option("--cash", type=float, default=10_000.0, callback=cash_amount, show_default=True)
@click.option("--report", "report_path", default=None, help="Write an HTML report (plotly) here.")
@click.option("--strategies-dir", default=None, help="Folder of strategies (default ./strategies).")
@click.pass_obj
def backtest_cmd(
    app: AppContext,
    name: str,
    seed: int,
    hours: float,
    param_args: tuple[str, ...],
    venue: str,
    queue: str,
    feed_latency_ms: float,
    entry_latency_ms: float,
    requote_ms: float,
    informed: float,
    vol: float,
    max_inventory: float,
    cash: float,
    report_path: str | None,
    strategies_dir: str | None,
) -> None:
    """Backtest a quoting strategy on seeded order flow; print the stats (and PnL split)."""
    from quantdesk.strategy import QuoteStrategy, parse_param_args, strategy_class

    cls = strategy_class(name, strategies_dir)
    if not issubclass(cls, QuoteStrategy):
        raise ConfigError(f"strategy {name} is not a QuoteStrategy: it cannot quote")
    fixed, grid = parse_param_args(cls, param_args, max_combinations=MAX_SETS)
    names = list(grid)
    combos = [dict(zip(names, c, strict=True)) for c in itertools.product(*grid.values())] or [{}]
    strategies = [cls(**{**fixed, **combo}) for combo in combos]
    if vol > 10:
        raise ConfigError(f"--vol must be at most 10 (1000% a year), got {vol:g}")
    report = _report_target(report_path)
    announce(f"mm backtest {name}: {hours:g} h of synthetic flow, seed {seed}")
    from quantdesk.mm.backtest import MMConfig, run_mm
    from quantdesk.mm.fills import QUEUE_MODELS, VENUES, Latency
    from quantdesk.mm.flow import FlowConfig, generate_flow

    flow = generate_flow(FlowConfig(hours=hours, informed_prob=informed, vol=vol), seed=seed)
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
