"""Sample market data shipped inside the package: real exchange files a new user can import."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from quantdesk.errors import DataError


def sample_names() -> list[str]:
    """Names of the shipped samples (folders next to this module)."""
    root = files(__name__)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


def sample_path(name: str) -> Path:
    """The folder of sample NAME; DataError naming the known samples when there is none."""
    if name not in sample_names():
        known = ", ".join(sample_names()) or "none"
        raise DataError(f"no sample named {name!r} (known: {known})")
    # The package is installed unzipped (pip, editable or not), so the resource is a real folder.
    return Path(str(files(__name__) / name))
