"""The `quantdesk` command: every subcommand hangs off `cli`; user errors exit 2 in one line."""

from __future__ import annotations

import importlib
import sys

import click

from quantdesk.cli.context import AppContext
from quantdesk.errors import QuantdeskError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Path to quantdesk.toml (default: ./quantdesk.toml when present).",
)
@click.version_option(package_name="quantdesk")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """quantdesk: research, backtest and trade crypto strategies from one code base."""
    ctx.obj = AppContext(config_path)


# Each module adds its commands to `cli` when imported (it imports `cli` from this package).
COMMAND_MODULES = (
    "approve",
    "arb",
    "backtest",
    "dashboard",
    "data",
    "mm",
    "mm_run",
    "optimize",
    "promote",
    "replay",
    "report",
    "risk",
    "run",
    "sandbox",
    "select",
    "validate",
)


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"quantdesk.cli.{name}")


_register()


def usage_line(exc: click.UsageError) -> str:
    """A usage error as one line: click's message plus where to find the command's help."""
    message = " ".join(exc.format_message().split())
    command = exc.ctx.command_path if exc.ctx is not None else "quantdesk"
    return f"{message} (see '{command} --help')"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning user errors into one line and exit 2."""
    try:
        code = cli.main(args=argv, prog_name="quantdesk", standalone_mode=False)
    except QuantdeskError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"error: {usage_line(exc)}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
