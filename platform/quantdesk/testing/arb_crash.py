"""Crash injection for `quantdesk arb run` tests: `python -m quantdesk.testing.arb_crash ARGS`
runs `quantdesk ARGS` with QUANTDESK_CRASH_AT=point[:n] honoured on both venues' order
placements (the points and their meaning are `quantdesk.testing.crash`'s: before_send,
after_send; before_fill_journal on the journal's fill writes). The n counts across both venues.
"""

from __future__ import annotations

import sys
from typing import Any

from quantdesk.testing.crash import CrashHook


def install_from_env() -> CrashHook:
    """Wrap arb sessions of this process with the hook QUANTDESK_CRASH_AT names."""
    from quantdesk.system import arb_live

    hook = CrashHook.from_env()
    if hook.point is None:
        return hook
    run = arb_live.ArbSession._run

    async def session(self: arb_live.ArbSession) -> Any:
        for venue in self.venues.values():
            create = venue.exchange.create_order

            async def create_order(*args: Any, _create: Any = create, **kwargs: Any) -> Any:
                hook.reached("before_send")
                result = await _create(*args, **kwargs)
                hook.reached("after_send")
                return result

            venue.exchange.create_order = create_order
        record_fill = self.journal.record_fill

        def record(fill: Any) -> bool:
            hook.reached("before_fill_journal")
            return record_fill(fill)

        self.journal.record_fill = record  # type: ignore[method-assign]
        return await run(self)

    arb_live.ArbSession._run = session  # type: ignore[method-assign]
    return hook


def main(argv: list[str] | None = None) -> None:
    """Run the quantdesk CLI with the crash hook installed."""
    install_from_env()
    from quantdesk.cli import main as cli

    cli(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
