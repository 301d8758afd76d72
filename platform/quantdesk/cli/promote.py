"""`quantdesk promote`: validate a study's best params and record them in the registry."""

from __future__ import annotations

from typing import Any

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.output import announce, console
from quantdesk.cli.validate import parse_checks, print_report, threshold_options, thresholds_from


@cli.command()
@click.option("--strategy", "strategy_name", required=True, help="Strategy name.")
@click.option("--from-study", "study_name", required=True, help="Optuna study to promote from.")
@click.option(
    "--storage", default=None, help="Optuna storage of the study (default: reports/optuna.sqlite3)."
)
@click.option(
    "--registry",
    type=click.Path(dir_okay=False),
    default=None,
    help="Registry file (default: promoted.toml in the strategies folder).",
)
@click.option("--checks", default=None, help="Subset of checks (default: all).")
@click.option("--strategies-dir", type=click.Path(file_okay=False), default=None)
@threshold_options
@click.pass_obj
def promote(app: AppContext, strategy_name: str, **kw: Any) -> None:
    """Promote the best trial of a study when every validation check passes (else exit 1)."""
    announce(f"promote {strategy_name} from study {kw['study_name']}: validating")
    from quantdesk.promotion import PromotionRefused, promote
    from quantdesk.system.replay import replay

    thresholds = thresholds_from(kw)
    try:
        done = promote(
            strategy_name,
            kw["study_name"],
            kw["storage"],
            app.store,
            strategies_dir=kw["strategies_dir"],
            registry=kw["registry"],
            checks=parse_checks(kw["checks"]),
            thresholds=thresholds,
            replay_fn=replay,
        )
    except PromotionRefused as exc:
        print_report(exc.report, f"promote {strategy_name} from {kw['study_name']}")  # type: ignore[attr-defined]
        click.echo(f"refused: {exc}", err=True)
        click.get_current_context().exit(1)
    print_report(done.report, f"promote {strategy_name} from {kw['study_name']}")
    params = ", ".join(f"{k}={v}" for k, v in done.entry["params"].items())
    code = done.entry["code"]
    console().print(
        f"promoted {strategy_name}({params}) at {code['git_commit'][:10]} "
        f"(file sha256 {code['strategy_sha256'][:12]}) -> {done.registry}"
    )
