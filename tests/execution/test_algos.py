"""TWAP, VWAP and iceberg schedules: times, sizes, make-up of short fills, and restarts that
never send a child twice."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from quantdesk.execution.algos import (
    AlgoState,
    cancel,
    due,
    iceberg,
    record,
    resume,
    slice_time,
    twap,
    vwap,
)
from quantdesk.execution.books import ExecutionError
from quantdesk.model import Side

STEP = D("0.001")


def run_schedule(state, times, fill_ratio=D(1)):
    """Step through times; every child fills fill_ratio of itself at once (a marketable
    order that the book or a cap cut short). Returns {client id: amount sent}."""
    sent = {}
    for now in times:
        for child in due(state, now):
            sent[child.client_id] = child.amount
            got = (child.amount * fill_ratio / STEP).to_integral_value() * STEP
            record(state, child.client_id, got, closed=True)
    return sent


def test_twap_sends_equal_children_at_even_times():
    state = twap("t1", Side.BUY, D("10"), 0, 60_000, 4, STEP)
    assert [slice_time(state, k) for k in range(4)] == [0, 15_000, 30_000, 45_000]
    assert [c.amount for c in due(state, 0)] == [D("2.5")]
    assert due(state, 14_999) == []  # the next is not due yet, and the first is not resent
    sent = run_schedule(state, [15_000, 30_000, 45_000])
    assert list(sent.values()) == [D("2.5")] * 3
    assert state.sent["t1-0"] == D("2.5")


def test_vwap_sizes_children_by_the_volume_profile():
    state = vwap("v1", Side.SELL, D("12"), 0, 40_000, [1, 3, 2, 0], STEP)
    sent = run_schedule(state, [0, 10_000, 20_000, 30_000])
    assert sent == {"v1-0": D("2"), "v1-1": D("6"), "v1-2": D("4")}  # the zero slice sends none
    assert state.filled_total == D("12") and state.finished


def test_a_short_fill_is_made_up_by_the_next_child_and_the_total_never_exceeded():
    state = twap("t2", Side.BUY, D("9"), 0, 30_000, 3, STEP)
    sent = run_schedule(state, [0, 10_000, 20_000], fill_ratio=D("0.5"))
    # 3 -> 1.5 filled; next tops up to 6: 4.5 -> 2.25; last to 9: 5.25
    assert list(sent.values()) == [D("3"), D("4.5"), D("5.25")]
    assert state.filled_total == D("1.5") + D("2.25") + D("2.625")  # short, never over 9
    assert state.finished


def test_a_late_start_sends_every_overdue_slice_at_once_once():
    state = twap("t3", Side.BUY, D("3"), 0, 30_000, 3, STEP)
    assert [c.client_id for c in due(state, 25_000)] == ["t3-0", "t3-1", "t3-2"]
    assert due(state, 60_000) == []


def test_iceberg_shows_one_child_at_a_time():
    state = iceberg("i1", Side.BUY, D("5"), D("2"), STEP)
    first = due(state, 0)
    assert [c.amount for c in first] == [D("2")]
    assert due(state, 1) == []  # still working
    record(state, "i1-0", D("1"), closed=False)
    assert due(state, 2) == []
    record(state, "i1-0", D("2"), closed=True)
    assert [(c.client_id, c.amount) for c in due(state, 3)] == [("i1-1", D("2"))]
    record(state, "i1-1", D("2"), closed=True)
    assert [(c.client_id, c.amount) for c in due(state, 4)] == [("i1-2", D("1"))]
    record(state, "i1-2", D("1"), closed=True)
    assert state.finished and due(state, 5) == []


def test_a_restart_resumes_from_the_journal_and_adopts_what_the_venue_has():
    state = twap("t4", Side.BUY, D("4"), 0, 40_000, 4, STEP)
    run_schedule(state, [0, 10_000])
    saved = json.dumps(state.to_dict())  # the journal's last save
    # after the save, child 2 was sent (and filled) and then the process died
    (lost,) = due(state, 20_000)
    assert lost.client_id == "t4-2"
    back = AlgoState.from_dict(json.loads(saved))
    assert back.sent == {"t4-0": D("1"), "t4-1": D("1")}
    venue = {
        "t4-0": (D("1"), D("1"), True),
        "t4-1": (D("1"), D("1"), True),
        "t4-2": (D("1"), D("0.4"), False),  # working, partly filled
        "other-0": (D("9"), D("9"), True),  # not ours
    }
    assert resume(back, venue) == ["t4-2"]
    assert due(back, 25_000) == []  # t4-2 is never sent again
    (last,) = due(back, 30_000)
    # t4-2 still working counts in full: the last child tops up to the total
    assert (last.client_id, last.amount) == ("t4-3", D("1"))
    record(back, "t4-2", D("1"), closed=True)
    record(back, "t4-3", D("1"), closed=True)
    assert back.filled_total == D("4") and back.finished


def test_cancel_lists_the_working_children_and_ends_the_schedule():
    state = twap("t5", Side.SELL, D("2"), 0, 20_000, 2, STEP)
    due(state, 0)
    assert cancel(state) == ["t5-0"]
    assert due(state, 20_000) == [] and state.finished and state.remaining == 0


def test_reports_are_idempotent_and_checked():
    state = iceberg("i2", Side.SELL, D("1"), D("1"), STEP)
    due(state, 0)
    record(state, "i2-0", D("0.5"), closed=False)
    record(state, "i2-0", D("0.3"), closed=False)  # an older report arriving late
    assert state.filled["i2-0"] == D("0.5")
    with pytest.raises(ExecutionError, match="more than"):
        record(state, "i2-0", D("2"), closed=True)
    with pytest.raises(ExecutionError, match="not a child"):
        record(state, "zz-0", D("1"), closed=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda: twap("a-b", Side.BUY, D("1"), 0, 10, 2, STEP),
        lambda: twap("a", Side.BUY, D("0"), 0, 10, 2, STEP),
        lambda: twap("a", Side.BUY, D("1"), 10, 10, 2, STEP),
        lambda: twap("a", Side.BUY, D("1"), 0, 10, 0, STEP),
        lambda: vwap("a", Side.BUY, D("1"), 0, 10, [0, 0], STEP),
        lambda: vwap("a", Side.BUY, D("1"), 0, 10, [1, -1], STEP),
        lambda: iceberg("a", Side.BUY, D("1"), D("2"), STEP),
    ],
)
def test_bad_terms_are_refused(make):
    with pytest.raises(ExecutionError):
        make()
