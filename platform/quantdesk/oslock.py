"""Exclusive locks on lock files that the OS releases when the holder dies (flock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from quantdesk.errors import QuantdeskError

_POLL_S = 0.05


class LockedError(QuantdeskError):
    """Another process (or another open handle) holds the lock."""


@contextlib.contextmanager
def hold_lock(path: str | os.PathLike[str], *, wait_s: float = 0.0) -> Iterator[int]:
    """Hold an exclusive flock on path (created if absent), waiting up to wait_s for it.

    The lock belongs to the open file, so it is released on exit, on close, and when the
    process dies (even by SIGKILL): nothing stale is ever left to clean up.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(f"{path} is locked by another process") from None
                time.sleep(_POLL_S)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(path: str | os.PathLike[str]) -> bool:
    """True when some process holds the lock on path right now (False if it does not exist)."""
    if not Path(path).exists():
        return False
    try:
        with hold_lock(path):
            return False
    except LockedError:
        return True
