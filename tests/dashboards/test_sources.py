"""A page's ?journal= picks a journal in the served folder by name, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantdesk.dashboards.sources import JOURNAL_ENV, JOURNALS_ENV, resolve_journal
from quantdesk.errors import QuantdeskError


def test_query_picks_a_journal_in_the_folder_only(tmp_path: Path) -> None:
    (tmp_path / "a.sqlite").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    env = {JOURNALS_ENV: str(tmp_path)}
    assert resolve_journal("journal=a.sqlite", env) == str(tmp_path / "a.sqlite")
    for bad in ("../a.sqlite", "/etc/passwd", "notes.txt", "sqlite:///x.db"):
        with pytest.raises(QuantdeskError, match="no journal"):
            resolve_journal(f"journal={bad}", env)
    with pytest.raises(QuantdeskError, match="not allowed"):
        resolve_journal("journal=a.sqlite", {JOURNAL_ENV: "/x.sqlite"})
    assert resolve_journal("", {JOURNAL_ENV: "/x.sqlite"}) == "/x.sqlite"
    with pytest.raises(QuantdeskError, match="no journal"):
        resolve_journal(None, {})
