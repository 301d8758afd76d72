"""`quantdesk kill [--flatten]` and `quantdesk resume`: kill-switch commands through the journal.

The commands only write a row into the journal's commands table; the running engine's
KillSwitch consumes it (cancel all open orders, optionally flatten, HALT; or re-arm).
The config is loaded first, so an invalid [risk] section is refused (exit 2) before anything
is written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.errors import ConfigError

if TYPE_CHECKING:
    from quantdesk.engine.journal import Journal

JOURNAL_HELP = "Engine journal (SQLite path or SQLAlchemy URL; default: the config's)."


def _journal(app: AppContext, option: str | None) -> Journal:
    from quantdesk.engine.journal import Journal, journal_url

    config = app.config  # validates quantdesk.toml, [risk] included
    target = option
    if target is None:
        # The engine's section names the journal once it exists in the config.
        engine = getattr(config, "engine", None)
        target = getattr(engine, "journal", None)
    if target is None:
        raise ConfigError("no journal given: pass --journal PATH (or set [engine] journal)")
    url = journal_url(str(target))
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise ConfigError(f"journal {target} does not exist (is the engine running there?)")
    return Journal(url)


@cli.command()
@click.option("--flatten", is_flag=True, help="Also close every open position at market.")
@click.option("--journal", "journal_path", default=None, help=JOURNAL_HELP)
@click.option("--reason", default="", help="Why (recorded with the command and the alert).")
@click.pass_obj
def kill(app: AppContext, flatten: bool, journal_path: str | None, reason: str) -> None:
    """Stop trading: cancel all open orders, optionally flatten, then HALT until resumed."""
    from quantdesk.risk.killswitch import queue_command

    with _journal(app, journal_path) as journal:
        payload = {"flatten": flatten, "reason": reason or "quantdesk kill"}
        command_id = queue_command(journal, "kill", int(time.time() * 1000), **payload)
    click.echo(f"kill command #{command_id} queued (flatten: {'yes' if flatten else 'no'})")


@cli.command()
@click.option("--journal", "journal_path", default=None, help=JOURNAL_HELP)
@click.option("--reason", default="", help="Why (recorded with the command).")
@click.pass_obj
def resume(app: AppContext, journal_path: str | None, reason: str) -> None:
    """Re-arm trading after a kill or an automatic halt."""
    from quantdesk.risk.killswitch import queue_command

    with _journal(app, journal_path) as journal:
        payload = {"reason": reason or "quantdesk resume"}
        command_id = queue_command(journal, "resume", int(time.time() * 1000), **payload)
    click.echo(f"resume command #{command_id} queued")
