"""`quantdesk mm backtest` / `mm optimize`: a market maker on seeded synthetic order flow, or on
trades and L2 book recorded into the data store (quantdesk.mm)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from quantdesk.cli import cli
from quantdesk.cli.arb import probability, report_target
from quantdesk.cli.checks import cash_amount, output_file
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


def config_options(command: F) -> F:
    """The options of the simulated venue: fees, queue model, latency, limits and cash."""
    options = [
        click.option(
            "--venue",
            type=click.Choice(["rebate", "binance-um", "zero"]),
            default="rebate",
            show_default=True,
            help="Fee schedule (maker / taker).",
        ),
        click.option(
            "--queue",
            type=click.Choice(["risk_averse", "prob"]),
            default="risk_averse",
            show_default=True,
        ),
        click.option(
            "--feed-latency-ms", type=float, default=5.0, callback=non_negative, show_default=True
        ),
        click.option(
            "--entry-latency-ms",
            type=float,
            default=10.0,
            callback=non_negative,
            show_default=True,
        ),
        click.option(
            "--requote-ms",
            type=float,
            default=0.0,
            callback=non_negative,
            show_default=True,
            help="Touch changes this soon after a requote wait (fills never do).",
        ),
        click.option(
            "--max-inventory", type=float, default=10.0, callback=positive, show_default=True
        ),
        click.option(
            "--cash", type=float, default=10_000.0, callback=cash_amount, show_default=True
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


CONFIG_ARGS = (
    "venue",
    "queue",
    "feed_latency_ms",
    "entry_latency_ms",
    "requote_ms",
    "max_inventory",
    "cash",
)


def make_config(args: dict) -> object:
    """The MMConfig the venue options describe."""
    from quantdesk.mm.backtest import MMConfig
    from quantdesk.mm.fills import QUEUE_MODELS, VENUES, Latency

    return MMConfig(
        venue=VENUES[args["venue"]],
        latency=Latency(args["feed_latency_ms"], args["entry_latency_ms"]),
        queue=QUEUE_MODELS[args["queue"]],
        capital=args["cash"],
        max_inventory=args["max_inventory"],
        requote_ms=args["requote_ms"],
    )


def _split(args: dict) -> tuple[dict, dict]:
    config = {k: args.pop(k) for k in CONFIG_ARGS}
    return config, args


def quote_strategy_class(name: str, strategies_dir: str | None) -> type:
    """The QuoteStrategy class of strategies/NAME.py; ConfigError for another kind."""
    from quantdesk.strategy import QuoteStrategy, strategy_class

    cls = strategy_class(name, strategies_dir)
    if not issubclass(cls, QuoteStrategy):
        raise ConfigError(f"strategy {name} is not a QuoteStrategy: it cannot quote")
    return cls


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
@click.option("--report", "report_path", default=None, help="Write an HTML report (plotly) here.")
@click.option("--strategies-dir", default=None, help="Folder of strategies (default ./strategies).")
@config_options
@flow_options
@click.pass_obj
def backtest_cmd(
    app: AppContext,
    name: str,
    param_args: tuple[str, ...],
    report_path: str | None,
    strategies_dir: str | None,
    **args: object,
) -> None:
    """Backtest a quoting strategy on seeded or recorded order flow; print the stats."""
    from quantdesk.strategy import parse_param_args

    config_args, flow_args = _split(args)
    cls = quote_strategy_class(name, strategies_dir)
    fixed, grid = parse_param_args(cls, param_args, max_combinations=MAX_SETS)
    names = list(grid)
    combos = [dict(zip(names, c, strict=True)) for c in itertools.product(*grid.values())] or [{}]
    strategies = [cls(**{**fixed, **combo}) for combo in combos]
    report = report_target(report_path)
    flow = load_flow(app, flow_args)
    announce(f"mm backtest {name}: {describe_flow(flow_args)}")
    from quantdesk.mm.backtest import run_mm

    config = make_config(config_args)
    results = [run_mm(s, flow, config) for s in strategies]
    print_mm_stats(results)
    if report is not None:
        from quantdesk.mm.report import write_report

        write_report(results, report)
        console().print(f"report: {report}")


@mm.command("optimize")
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
    help="Fix a strategy param (left out of the search).",
)
@click.option(
    "--search",
    "search_args",
    multiple=True,
    metavar="NAME=LOW:HIGH[:log]",
    help="Search this range (default: the strategy's search_space).",
)
@click.option(
    "--folds",
    type=click.IntRange(2, 50),
    default=4,
    show_default=True,
    help="Equal time windows; each step optimizes on one and scores the next.",
)
@click.option(
    "--trials",
    type=click.IntRange(1, 10_000),
    default=30,
    show_default=True,
    help="optuna trials per in-sample window.",
)
@click.option(
    "--objective",
    type=click.Choice(["sharpe", "total_pnl", "daily_return"]),
    default="sharpe",
    show_default=True,
)
@click.option("--anchored", is_flag=True, help="In-sample windows grow from the flow's start.")
@click.option(
    "--study-seed", type=int, default=0, show_default=True, help="Seed of the TPE sampler."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--out", "out_path", default=None, help="Write the per-fold table as CSV here.")
@click.option("--strategies-dir", default=None, help="Folder of strategies (default ./strategies).")
@config_options
@flow_options
@click.pass_obj
def optimize_cmd(
    app: AppContext,
    name: str,
    param_args: tuple[str, ...],
    search_args: tuple[str, ...],
    folds: int,
    trials: int,
    objective: str,
    anchored: bool,
    study_seed: int,
    progress: bool,
    out_path: str | None,
    strategies_dir: str | None,
    **args: object,
) -> None:
    """Walk-forward optuna (TPE) search of quoting params: in-sample vs out-of-sample per fold."""
    from quantdesk.mm.optimize import parse_range, search_space, walk_forward
    from quantdesk.strategy import parse_param_args

    config_args, flow_args = _split(args)
    cls = quote_strategy_class(name, strategies_dir)
    fixed, grid = parse_param_args(cls, param_args, max_combinations=MAX_SETS)
    if grid:
        raise ConfigError(f"--param {next(iter(grid))}: give one value (ranges go in --search)")
    ranges = dict(parse_range(text) for text in search_args)
    space = search_space(cls, ranges or None, fixed)
    out = output_file(out_path, "--out", (".csv",), "a .csv file")
    flow = load_flow(app, flow_args)
    announce(
        f"mm optimize {name}: {describe_flow(flow_args)}; {folds} folds, {trials} trials each, "
        f"searching {', '.join(space)}"
    )
    result = walk_forward(
        cls,
        flow,
        space,
        fixed,
        folds=folds,
        trials=trials,
        objective=objective,
        config=make_config(config_args),
        seed=study_seed,
        anchored=anchored,
        progress=progress,
    )
    print_walk_forward(result)
    if out is not None:
        from quantdesk.reports import write_text_atomic

        write_text_atomic(out, result.frame().to_csv())
        console().print(f"folds: {out}")


def print_walk_forward(result: object) -> None:
    """Per fold: windows, in- and out-of-sample Sharpe / PnL / drawdown, then the params."""
    rows = []
    for f in result.folds:  # type: ignore[attr-defined]
        ins, oos = f.in_sample_stats, f.out_of_sample_stats
        rows.append(
            (
                str(f.index),
                f"{f.in_sample.start_ns / 3.6e12:.2f}-{f.in_sample.end_ns / 3.6e12:.2f} h",
                f"{f.out_of_sample.start_ns / 3.6e12:.2f}-{f.out_of_sample.end_ns / 3.6e12:.2f} h",
                f"{ins['sharpe']:.2f}",
                f"{oos['sharpe']:.2f}",
                f"{ins['total_pnl']:,.2f}",
                f"{oos['total_pnl']:,.2f}",
                f"{ins['max_drawdown']:.3%}",
                f"{oos['max_drawdown']:.3%}",
                str(f.trials),
            )
        )
    heads = ["fold", "in-sample", "out-of-sample", "IS sharpe", "OOS sharpe", "IS PnL"]
    heads += ["OOS PnL", "IS max dd", "OOS max dd", "trials"]
    print_table(heads, rows, title=f"walk-forward {result.strategy}: {result.objective}")  # type: ignore[attr-defined]
    out = console()
    for f in result.folds:  # type: ignore[attr-defined]
        out.print(f"fold {f.index}: " + ", ".join(f"{k}={_num(v)}" for k, v in f.params.items()))
    s = result.summary()  # type: ignore[attr-defined]
    out.print(
        f"mean {result.objective} in-sample {s['is_objective']:.3f}, "  # type: ignore[attr-defined]
        f"out-of-sample {s['oos_objective']:.3f}; out-of-sample PnL {s['oos_total_pnl']:,.2f}"
    )


def _num(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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
