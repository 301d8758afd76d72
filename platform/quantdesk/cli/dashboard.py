"""`quantdesk dashboard NAME`: serve notebooks/dashboards/NAME.ipynb with Voila on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.errors import QuantdeskError


@cli.command()
@click.argument("name")
@click.option("--port", type=click.IntRange(1, 65535), default=8866, show_default=True)
@click.option(
    "--ip",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback exposes the dashboard to the network.",
)
@click.option(
    "--notebooks",
    "notebooks_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder holding dashboards/ (default: ./notebooks).",
)
@click.option(
    "--journal",
    "journal",
    default=None,
    help="The session's journal (SQLite file or SQLAlchemy URL), for the session dashboard.",
)
@click.option(
    "--journals",
    "journals_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of session journals (*.sqlite), for the overview and its session links.",
)
@click.pass_obj
def dashboard(
    app: AppContext,
    name: str,
    port: int,
    ip: str,
    notebooks_dir: str | None,
    journal: str | None,
    journals_dir: str | None,
) -> None:
    """Serve a Voila dashboard (strategy_explorer, screener, session, overview, arb) until stopped.

    The page needs a token: $QUANTDESK_DASHBOARD_TOKEN, else a fresh one printed in the URL.
    """
    from quantdesk.dashboards.serve import TOKEN_ENV, new_token, run_child, voila_args
    from quantdesk.dashboards.sources import JOURNAL_ENV, JOURNALS_ENV
    from quantdesk.reports import find_notebook
    from quantdesk.reports import notebooks_dir as default_notebooks
    from quantdesk.strategy import STRATEGIES_ENV

    folder = default_notebooks(notebooks_dir) / "dashboards"
    path = find_notebook(name, folder)
    env = dict(os.environ)
    if name in ("session", "overview", "arb"):
        if journal is None and journals_dir is None:
            raise QuantdeskError(f"dashboard {name} needs --journal PATH or --journals DIR")
        if journal is not None:
            if "://" not in journal and not Path(journal).is_file():
                raise QuantdeskError(f"no journal at {journal}")
            env[JOURNAL_ENV] = journal if "://" in journal else str(Path(journal).resolve())
        if journals_dir is not None:
            if not Path(journals_dir).is_dir():
                raise QuantdeskError(f"no folder {journals_dir}")
            env[JOURNALS_ENV] = str(Path(journals_dir).resolve())
    else:
        # Voila runs the kernel in the notebook's folder: pass absolute data and strategy folders.
        env["QUANTDESK_DATA"] = str(app.store.root.resolve())
        if STRATEGIES_ENV not in env and (Path.cwd() / "strategies").is_dir():
            env[STRATEGIES_ENV] = str((Path.cwd() / "strategies").resolve())
    token = env.get(TOKEN_ENV) or new_token()
    env[TOKEN_ENV] = token
    # With a folder, Voila serves every dashboard in it: the overview links to sessions.
    target, page = (folder, f"voila/render/{path.name}") if name == "overview" else (path, "")
    shown = "" if os.environ.get(TOKEN_ENV) else f"?token={token}"
    click.echo(f"serving {path.name} at http://{ip}:{port}/{page}{shown} (Ctrl-C stops)")
    sys.exit(run_child(voila_args(target, port, ip), env))
