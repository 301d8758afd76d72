"""Which journals a dashboard may read: the one `--journal` named, or the `--journals` folder's.

A page's query string (`?journal=NAME`) only picks a file inside that folder by name: a
visitor can never point the kernel at an arbitrary path or database URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs

from quantdesk.errors import QuantdeskError

JOURNAL_ENV = "QUANTDESK_JOURNAL"
JOURNALS_ENV = "QUANTDESK_JOURNALS"
JOURNAL_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def journal_files(folder: str | Path) -> list[Path]:
    """The journals in a folder, by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix in JOURNAL_SUFFIXES)


def resolve_journal(
    query: str | None = None, env: Mapping[str, str] | None = None, explicit: str | None = None
) -> str:
    """The journal a session page shows: explicit, else ?journal=NAME in the folder, else
    $QUANTDESK_JOURNAL."""
    env = os.environ if env is None else env
    if explicit:
        return explicit
    name = parse_qs(query or "").get("journal", [""])[0]
    if name:
        folder = env.get(JOURNALS_ENV)
        if not folder:
            raise QuantdeskError("this server has no journal folder: ?journal= is not allowed")
        known = {p.name: p for p in journal_files(folder)}
        if name not in known:
            raise QuantdeskError(f"no journal {name!r} in the served folder")
        return str(known[name])
    if env.get(JOURNAL_ENV):
        return env[JOURNAL_ENV]
    raise QuantdeskError("no journal: start with `quantdesk dashboard session --journal PATH`")
