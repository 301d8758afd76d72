"""`quantdesk dashboard NAME`: serve notebooks/dashboards/NAME.ipynb with Voila on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.output import console


@cli.command()
@click.argument("name")
@click.option("--port", type=click.IntRange(1, 65535), default=8866, show_default=True)
@click.option(
    "--notebooks",
    "notebooks_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder holding dashboards/ (default: ./notebooks).",
)
@click.pass_obj
def dashboard(app: AppContext, name: str, port: int, notebooks_dir: str | None) -> None:
    """Serve a Voila dashboard (e.g. strategy_explorer) on 127.0.0.1 until interrupted."""
    from quantdesk.reports import find_notebook
    from quantdesk.reports import notebooks_dir as default_notebooks
    from quantdesk.strategy import STRATEGIES_ENV

    path = find_notebook(name, default_notebooks(notebooks_dir) / "dashboards")
    env = dict(os.environ)
    # Voila runs the kernel in the notebook's folder: pass absolute data and strategy folders.
    env["QUANTDESK_DATA"] = str(app.store.root.resolve())
    if STRATEGIES_ENV not in env and (Path.cwd() / "strategies").is_dir():
        env[STRATEGIES_ENV] = str((Path.cwd() / "strategies").resolve())
    command = [
        sys.executable, "-m", "voila", str(path), f"--port={port}", "--no-browser",
        "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=False",
    ]  # fmt: skip
    console().print(f"serving {path.name} at http://127.0.0.1:{port}/ (Ctrl-C stops)")
    sys.exit(subprocess.call(command, env=env))
