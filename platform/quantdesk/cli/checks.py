"""Option values checked while the command line is parsed, before any work or write."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import click

from quantdesk.errors import ConfigError, DataError

# More cash than this is a typo (or inf), and float money math loses cents well before it.
MAX_CASH = 1e12


def finite_number(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Click callback: refuse NaN and infinities (click's float type accepts them)."""
    if value is not None and not math.isfinite(value):
        raise ConfigError(f"--{param.name.replace('_', '-')} must be a finite number, got {value}")
    return value


def cash_amount(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Click callback: starting cash is finite, positive and at most MAX_CASH."""
    if not (math.isfinite(value) and 0 < value <= MAX_CASH):
        raise ConfigError(f"--cash must be a positive amount up to {MAX_CASH:g}, got {value:g}")
    return value


def start_end_time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: --start/--end parse as times in range (the text is passed on as given)."""
    if value is not None:
        from quantdesk.data.times import parse_time

        try:
            parse_time(value)
        except DataError as exc:
            raise ConfigError(f"--{param.name}: {exc}") from None
    return value


def writable_folder(path: str | os.PathLike[str], option: str) -> Path:
    """The folder if it exists or could be created and written to; ConfigError otherwise.

    Nothing is left behind: the probe is a temp folder made and removed in the nearest
    existing ancestor, so a bad --out fails before a backtest runs instead of after.
    """
    folder = Path(path)
    probe_in = folder
    while not probe_in.exists():
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if probe_in.exists() and not probe_in.is_dir():
        raise ConfigError(f"{option} {folder}: {probe_in} is not a folder")
    try:
        Path(tempfile.mkdtemp(prefix=".quantdesk-probe-", dir=probe_in)).rmdir()
    except OSError as exc:
        raise ConfigError(f"{option} {folder} cannot be written: {exc.strerror or exc}") from None
    return folder


def output_file(path: str | None, option: str, suffixes: tuple[str, ...], what: str) -> Path | None:
    """Refuse an output file path with another suffix or in a missing folder, before any work.

    what: the file kind for the message, e.g. "an .html file"."""
    if path is None:
        return None
    target = Path(path)
    if target.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} must name {what}, got {path}")
    if not target.parent.is_dir():
        raise ConfigError(f"{option}: folder {target.parent} does not exist")
    return target


def out_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback for --out: a writable (or creatable) folder."""
    if value is not None:
        writable_folder(value, "--out")
    return value


def journal_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback for --journal: a file in a writable (or creatable) folder."""
    if value is not None:
        path = Path(value)
        if path.is_dir():
            raise ConfigError(f"--journal {path} is a folder, not a file")
        writable_folder(path.parent, "--journal")
    return value
