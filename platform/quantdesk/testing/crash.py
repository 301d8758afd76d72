"""Crash injection for tests: `python -m quantdesk.testing.crash ARGS` runs `quantdesk ARGS`
with QUANTDESK_CRASH_AT=point[:n] honoured: the process SIGKILLs itself the n-th time it reaches
`point`, which places a crash deterministically between two steps of the order path (see
CRASH_POINTS). Only live sessions are wrapped (paper orders never leave the process).

The production CLI never imports this module: the hook is installed from outside, around the
session's start, on the venue's ccxt client and the journal's fill writes of this process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

log = logging.getLogger(__name__)

CRASH_ENV = "QUANTDESK_CRASH_AT"
# before_send: the order is journaled SUBMITTED, the request not yet sent;
# after_send: the venue executed the order, its answer was never processed;
# before_fill_journal: the engine knows a fill, the journal does not hold it yet.
CRASH_POINTS = ("before_send", "after_send", "before_fill_journal")


class CrashHook:
    """SIGKILLs the process the n-th time a named point is reached (tests only)."""

    def __init__(self, spec: str | None) -> None:
        """spec: 'point' or 'point:n' (n >= 1), or None/'' for no crash."""
        self.point, self.n = None, 0
        if spec:
            point, _, n = spec.partition(":")
            if point not in CRASH_POINTS:
                raise ValueError(
                    f"{CRASH_ENV}: unknown point {point!r} (use {', '.join(CRASH_POINTS)})"
                )
            self.point, self.n = point, int(n or 1)
        self.seen = 0

    @classmethod
    def from_env(cls) -> CrashHook:
        """The hook named by QUANTDESK_CRASH_AT (inactive when unset)."""
        return cls(os.environ.get(CRASH_ENV))

    def reached(self, point: str) -> None:
        """Called at each point; dies here when this is the configured occurrence."""
        if point != self.point:
            return
        self.seen += 1
        if self.seen == self.n:
            log.warning("crash hook: SIGKILL at %s #%d", point, self.n)
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self, venue: Any, journal: Any) -> None:
        """Wrap the venue's order placement (at its ccxt client) and the journal's fill writes."""
        if self.point is None:
            return
        create = venue.exchange.create_order
        record_fill = journal.record_fill

        async def create_order(*args: Any, **kwargs: Any) -> Any:
            self.reached("before_send")
            result = await create(*args, **kwargs)
            self.reached("after_send")
            return result

        def record(fill: Any) -> bool:
            self.reached("before_fill_journal")
            return record_fill(fill)

        venue.exchange.create_order = create_order
        journal.record_fill = record


def install_from_env() -> CrashHook:
    """Wrap live sessions of this process with the hook QUANTDESK_CRASH_AT names."""
    from quantdesk.system import live

    hook = CrashHook.from_env()
    if hook.point is None:
        return hook
    run = live.Session._run

    async def session(self: live.Session, data: Any, journal: Any) -> Any:
        if self.spec.mode is live.Mode.LIVE:
            hook.install(data, journal)
        return await run(self, data, journal)

    live.Session._run = session  # type: ignore[method-assign]
    return hook


def main(argv: list[str] | None = None) -> None:
    """Run the quantdesk CLI with the crash hook installed."""
    install_from_env()
    from quantdesk.cli import main as cli

    cli(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
