"""A live or paper session settles only funding still to come: the stored history was paid on
the positions held then, never on the position a restart restores."""

from __future__ import annotations

from decimal import Decimal as D

from quantdesk.system.live import _upcoming


def test_only_settlements_after_the_start_are_kept() -> None:
    schedule = {
        "BTC/USDT:USDT": [(1_000, D("0.0001")), (2_000, D("0.0002")), (3_000, D("-0.0001"))],
        "ETH/USDT:USDT": [(500, D("0.0003"))],
    }
    kept = _upcoming(schedule, 2_000)
    assert kept == {"BTC/USDT:USDT": [(3_000, D("-0.0001"))], "ETH/USDT:USDT": []}
    assert _upcoming(schedule, 0) == schedule
