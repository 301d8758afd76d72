"""One `quantdesk run` per journal: an OS lock next to the journal, released when the run dies."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

from quantdesk.errors import QuantdeskError
from quantdesk.oslock import LockedError, hold_lock


class JournalInUseError(QuantdeskError):
    """Another live session is writing the journal."""


def lock_path(journal: Path) -> Path:
    """The lock file of a journal: `.NAME.lock` beside it."""
    return journal.with_name(f".{journal.name}.lock")


@contextlib.contextmanager
def session_lock(journal: str | os.PathLike[str], *, wait: bool = False) -> Iterator[None]:
    """Hold the journal's run lock for the session; JournalInUseError if another run holds it
    (wait: block until it is free instead, as a standby does).

    Two sessions on one journal would both reconcile and both trade, doubling orders. The lock
    is a flock, so a SIGKILLed run frees it at once and a restart never finds a stale lock.
    """
    journal = Path(journal)
    lock = lock_path(journal)
    stack = contextlib.ExitStack()
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = stack.enter_context(hold_lock(lock, wait_s=math.inf if wait else 0.0))
    except LockedError:
        holder = _holder(lock)
        raise JournalInUseError(
            f"journal {journal} is in use by another quantdesk run{holder}: stop it first, "
            "or pass another --journal"
        ) from None
    except OSError as exc:
        raise QuantdeskError(f"cannot lock journal {journal}: {exc.strerror or exc}") from None
    with stack:
        # The pid is only a hint for the message above; the flock is what excludes.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield


def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def holder(journal: str | os.PathLike[str]) -> str:
    """ " (pid N)" naming the run holding the journal's lock, or "" (a hint, not the lock)."""
    return _holder(lock_path(Path(journal)))
