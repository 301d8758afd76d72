"""Quality rules: each on crafted data at its threshold and just below, and on the real files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.data.csv_import import parse_csv
from quantdesk.data.quality import Finding, check_frame, gap_runs
from tests.conftest import SAMPLE_DATA, make_bars


def _rules(findings: list[Finding]) -> dict[str, Finding]:
    return {f.rule: f for f in findings}


@pytest.fixture
def clean() -> pd.DataFrame:
    return make_bars(60, freq="1h", seed=3)


def test_clean_bars_have_no_findings(clean: pd.DataFrame) -> None:
    assert check_frame(clean, "1h") == []


def test_gaps_count_runs_and_largest(clean: pd.DataFrame) -> None:
    holey = clean.drop(clean.index[[5, 20, 21, 22]])
    (gap,) = check_frame(holey, "1h")
    assert (gap.rule, gap.severity, gap.count) == ("gaps", "warning", 4)
    assert gap.first == clean.index[5]
    assert gap.detail.endswith(
        "in 2 run(s); 2024-01-01 05:00:00 .. 2024-01-01 05:00:00 (1), "
        "2024-01-01 20:00:00 .. 2024-01-01 22:00:00 (3)"
    )
    assert gap_runs(holey.index, "1h") == [
        (clean.index[5], clean.index[5]),
        (clean.index[20], clean.index[22]),
    ]


def test_off_grid_timestamps(clean: pd.DataFrame) -> None:
    shifted = clean.rename(index={clean.index[10]: clean.index[10] + pd.Timedelta(minutes=1)})
    rules = _rules(check_frame(shifted, "1h"))
    assert rules["off_grid"].count == 1
    assert rules["off_grid"].first == clean.index[10] + pd.Timedelta(minutes=1)
    # The misplaced bar leaves its own slot empty.
    assert rules["gaps"].count == 1


def test_duplicates_and_order_are_raw_rules(clean: pd.DataFrame) -> None:
    raw = pd.concat([clean.iloc[:30], clean.iloc[[12, 12]], clean.iloc[30:]])
    rules = _rules(check_frame(raw, "1h"))
    assert rules["duplicates"].count == 2
    assert rules["duplicates"].first == clean.index[12]
    assert rules["non_monotonic"].count == 1
    assert rules["non_monotonic"].first == clean.index[12]
    assert "gaps" not in rules
    swapped = clean.iloc[[0, 2, 1, *range(3, 60)]]
    rules = _rules(check_frame(swapped, "1h"))
    assert set(rules) == {"non_monotonic"}
    assert rules["non_monotonic"].first == clean.index[1]


def test_non_finite_values(clean: pd.DataFrame) -> None:
    bad = clean.copy()
    bad.iloc[7, bad.columns.get_loc("close")] = np.nan
    bad.iloc[9, bad.columns.get_loc("volume")] = np.inf
    rules = _rules(check_frame(bad, "1h"))
    finding = rules["non_finite"]
    assert (finding.count, finding.severity, finding.first) == (2, "error", clean.index[7])
    assert "close 1" in finding.detail and "volume 1" in finding.detail


def test_non_positive_prices(clean: pd.DataFrame) -> None:
    bad = clean.copy()
    bad.iloc[4, :4] = 0.0
    bad.iloc[8, :4] = -1.0
    finding = _rules(check_frame(bad, "1h"))["non_positive_price"]
    assert (finding.count, finding.first) == (2, clean.index[4])


@pytest.mark.parametrize(
    ("column", "value", "flagged"),
    [
        ("low", "min_body", False),  # low equal to the body's low is fine
        ("low", "above_min_body", True),
        ("high", "max_body", False),
        ("high", "below_max_body", True),
    ],
)
def test_inconsistent_ohlc(clean: pd.DataFrame, column: str, value: str, flagged: bool) -> None:
    bad = clean.copy()
    row = bad.iloc[11]
    body_low, body_high = min(row["open"], row["close"]), max(row["open"], row["close"])
    bad.iloc[11, bad.columns.get_loc(column)] = {
        "min_body": body_low,
        "above_min_body": body_low * 1.0001,
        "max_body": body_high,
        "below_max_body": body_high * 0.9999,
    }[value]
    rules = _rules(check_frame(bad, "1h"))
    assert ("inconsistent_ohlc" in rules) is flagged
    if flagged:
        assert rules["inconsistent_ohlc"].first == clean.index[11]


def test_low_above_high(clean: pd.DataFrame) -> None:
    bad = clean.copy()
    bad.iloc[3, :4] = [10.0, 9.0, 11.0, 10.0]  # open, high, low, close
    assert _rules(check_frame(bad, "1h"))["inconsistent_ohlc"].count == 1


@pytest.mark.parametrize(("run", "flagged"), [(4, True), (3, False)])
def test_zero_volume_run_threshold(clean: pd.DataFrame, run: int, flagged: bool) -> None:
    bad = clean.copy()
    bad.iloc[10 : 10 + run, bad.columns.get_loc("volume")] = 0.0
    bad.iloc[40:42, bad.columns.get_loc("volume")] = 0.0  # a short run never counts
    rules = _rules(check_frame(bad, "1h", max_zero_volume_run=4))
    assert ("zero_volume" in rules) is flagged
    if flagged:
        assert (rules["zero_volume"].count, rules["zero_volume"].first) == (1, clean.index[10])


def _walk(returns: np.ndarray) -> pd.DataFrame:
    close = 100 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    index = pd.date_range("2024-01-01", periods=len(close), freq="1D", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=index,
    )


@pytest.mark.parametrize(("factor", "flagged"), [(1.001, True), (0.999, False)])
def test_outlier_threshold_in_robust_sigmas(factor: float, flagged: bool) -> None:
    # Returns: 20 x +1%, 20 x -1%, one 0, and a jump each way. Median 0, MAD 1%, so one
    # robust sigma is 1.4826%; the jumps sit just beyond / just inside k sigmas.
    k = 6.0
    jump = k * 1.4826 * 0.01 * factor
    returns = np.array([0.01, -0.01] * 10 + [jump, 0.0, -jump] + [0.01, -0.01] * 10)
    frame = _walk(returns)
    rules = _rules(check_frame(frame, "1d", outlier_sigma=k))
    assert ("outliers" in rules) is flagged
    if flagged:
        assert rules["outliers"].count == 2
        assert rules["outliers"].first == frame.index[21]


def test_funding_rules() -> None:
    index = pd.date_range("2024-01-01", periods=30, freq="8h", tz="UTC")
    rates = np.tile([1e-4, 1.2e-4, 0.8e-4], 10)
    frame = pd.DataFrame({"funding_rate": rates}, index=index.rename("time"))
    assert check_frame(frame, "funding") == []
    bad = frame.drop(index[[4, 5]])
    bad.iloc[10, 0] = np.nan
    bad.iloc[20, 0] = 0.0075  # hundreds of robust sigmas away
    rules = _rules(check_frame(bad, "funding"))
    assert (rules["gaps"].count, rules["gaps"].first) == (2, index[4])
    assert rules["non_finite"].count == 1
    assert (rules["outliers"].count, rules["outliers"].first) == (1, bad.index[20])


def test_real_xrp_gaps_and_btc_none() -> None:
    xrp = parse_csv(SAMPLE_DATA / "XRPUSDT-1d.csv").frame
    gaps = _rules(check_frame(xrp, "1d"))["gaps"]
    assert gaps.count == 5 and "2 run(s)" in gaps.detail
    assert gap_runs(xrp.index, "1d") == [
        (pd.Timestamp("2022-02-26", tz="UTC"), pd.Timestamp("2022-02-28", tz="UTC")),
        (pd.Timestamp("2022-04-01", tz="UTC"), pd.Timestamp("2022-04-02", tz="UTC")),
    ]
    btc = parse_csv(SAMPLE_DATA / "BTCUSDT-1d.csv").frame
    rules = _rules(check_frame(btc, "1d"))
    assert "gaps" not in rules and "duplicates" not in rules and "non_monotonic" not in rules
    # The 2020-03-12 crash is a real outlier (about 25 robust sigmas).
    assert rules["outliers"].first == pd.Timestamp("2020-03-12", tz="UTC")


def test_real_funding_has_no_gaps() -> None:
    funding = parse_csv(SAMPLE_DATA / "BTCUSDT-funding.csv").frame
    rules = _rules(check_frame(funding, "funding"))
    assert "gaps" not in rules and "off_grid" not in rules and "non_finite" not in rules


def test_bad_thresholds(clean: pd.DataFrame) -> None:
    with pytest.raises(ValueError):
        check_frame(clean, "1h", max_zero_volume_run=0)
    with pytest.raises(ValueError):
        check_frame(clean, "1h", outlier_sigma=0)


def test_outliers_are_judged_against_local_volatility() -> None:
    # A calm stretch then a volatile one: a 3% move is ordinary in the volatile half (daily
    # sigma ~1.5%) but a clear outlier in the calm half (sigma ~0.1%). A series-wide scale
    # would flag the whole volatile half; the local scale flags the calm-period jump only.
    rng = np.random.default_rng(0)
    calm = rng.normal(0, 0.001, 1500)
    wild = rng.normal(0, 0.015, 1500)
    calm[700] = 0.03
    frame = _walk(np.concatenate([calm, wild]))
    rules = _rules(check_frame(frame, "1d", outlier_sigma=12))
    assert rules["outliers"].count == 1
    assert rules["outliers"].first == frame.index[701]


def test_pinned_funding_is_not_scaled_by_a_collapsed_mad() -> None:
    # Weeks at exactly the 0.01% base rate make the MAD zero; a move to 0.04% is ordinary
    # funding, while 0.75% (the exchange cap) is not.
    index = pd.date_range("2024-01-01", periods=600, freq="8h", tz="UTC", name="time")
    rates = np.full(600, 1e-4)
    rates[300:310] = 4e-4
    frame = pd.DataFrame({"funding_rate": rates}, index=index)
    assert check_frame(frame, "funding") == []
    frame.iloc[400, 0] = 0.0075
    rules = _rules(check_frame(frame, "funding"))
    assert (rules["outliers"].count, rules["outliers"].first) == (1, index[400])


def test_real_funding_flags_only_a_few_extremes_led_by_the_may_2021_crash() -> None:
    btc = parse_csv(SAMPLE_DATA / "BTCUSDT-funding.csv").frame
    assert check_frame(btc, "funding") == []
    eth = parse_csv(SAMPLE_DATA / "ETHUSDT-funding.csv").frame
    outliers = _rules(check_frame(eth, "funding"))["outliers"]
    assert outliers.count <= 5  # of 7,395 rates
    assert "largest -0.003563" in outliers.detail and "2021-05-19" in outliers.detail
