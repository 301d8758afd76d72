"""The desired-vs-working diff: refresh threshold, amend in place, timeout, and the message
rate and cancel-ratio limits (deferred, counted, a replace never half-sent)."""

from __future__ import annotations

from quantdesk.mm.quotes import ASK, BID, Quote, QuoteLimits, RateLimiter, Working, diff_quotes

TICK = 0.01
S = 1_000_000_000


def diff(desired, working, now=10 * S, **limits):
    lim = QuoteLimits(**limits)
    return diff_quotes(desired, working, now, TICK, lim, RateLimiter(lim))


def kinds(result):
    return [a.kind for a in result.actions]


def test_new_quotes_are_placed():
    result = diff([Quote(BID, 99.99, 1), Quote(ASK, 100.01, 1)], [])
    assert kinds(result) == ["place", "place"]


def test_refresh_threshold_keeps_a_quote_that_moved_less():
    working = [Working(1, BID, 100.00, 1.0, 0, 9 * S)]
    assert diff([Quote(BID, 100.01, 1.0)], working, refresh_ticks=2).actions == []
    moved = diff([Quote(BID, 100.02, 1.0)], working, refresh_ticks=2)
    assert kinds(moved) == ["cancel", "place"] and moved.actions[0].order_id == 1


def test_amend_only_for_same_price_smaller_size():
    working = [Working(1, BID, 100.00, 2.0, 0, 9 * S)]
    smaller = diff([Quote(BID, 100.00, 1.0)], working)
    assert kinds(smaller) == ["amend"] and smaller.actions[0].quote.size == 1.0
    assert diff([Quote(BID, 100.00, 3.0)], working).actions == []  # larger: keep the queue


def test_stale_orders_are_cancelled_and_replaced():
    working = [Working(1, BID, 100.00, 1.0, 0, 4 * S)]
    assert diff([Quote(BID, 100.00, 1.0)], working, now=9 * S - 1).actions == []
    assert kinds(diff([Quote(BID, 100.00, 1.0)], working, now=9 * S)) == ["cancel", "place"]


def test_unwanted_orders_are_cancelled_and_in_flight_cancels_ignored():
    working = [Working(1, BID, 100.00, 1.0, 0, 9 * S), Working(2, ASK, 100.02, 1.0, 0, 9 * S, True)]
    result = diff([], working)
    assert kinds(result) == ["cancel"] and result.actions[0].order_id == 1


def test_message_rate_limit_defers_and_counts():
    desired = [Quote(BID, 99.0 - i * TICK, 1.0, i) for i in range(30)]
    lim = QuoteLimits(max_orders_per_s=10)
    limiter = RateLimiter(lim)
    first = diff_quotes(desired, [], 10 * S, TICK, lim, limiter)
    assert len(first.actions) == 10 and first.deferred == 20
    again = diff_quotes(desired, [], 10 * S + S // 2, TICK, lim, limiter)
    assert again.actions == [] and again.deferred == 30  # still within the same second
    later = diff_quotes(desired, [], 11 * S, TICK, lim, limiter)
    assert len(later.actions) == 10


def test_cancel_ratio_limit_defers_the_replace_as_a_pair():
    lim = QuoteLimits(max_cancel_ratio=1.0, ratio_min_orders=4, max_orders_per_s=100)
    limiter = RateLimiter(lim)
    limiter.record(10 * S, places=4, cancels=4)  # ratio at the cap already
    working = [Working(1, BID, 100.00, 1.0, 0, 10 * S)]
    pure_cancel = diff_quotes([], working, 10 * S, TICK, lim, limiter)
    assert pure_cancel.actions == [] and pure_cancel.deferred == 1
    # a replace adds one place and one cancel: 5 / 5 stays at the cap
    replace = diff_quotes([Quote(BID, 100.05, 1.0)], working, 10 * S, TICK, lim, limiter)
    assert kinds(replace) == ["cancel", "place"]
    tight = QuoteLimits(max_cancel_ratio=0.5, ratio_min_orders=4, max_orders_per_s=100)
    blocked = RateLimiter(tight)
    blocked.record(10 * S, places=4, cancels=2)
    result = diff_quotes([Quote(BID, 100.05, 1.0)], working, 10 * S, TICK, tight, blocked)
    assert result.actions == [] and result.deferred == 2  # neither half of the replace
