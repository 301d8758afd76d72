"""Hand-computed backtests on tiny series: the fill convention, fees, slippage and stops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import BacktestError, Costs, run, to_bars
from quantdesk.model import Side, fee, slipped_price, stop_fill, take_profit_fill

CASH = 10_000.0

# bar:      0                        1                        2                        3
ROWS = [
    (100.0, 101.0, 99.0, 100.0),
    (100.0, 102.0, 99.0, 101.0),  # entry signal on this close
    (102.0, 104.0, 101.0, 103.0),  # -> fills at this open
    (103.0, 106.0, 102.0, 105.0),  # exit signal on this close
    (104.0, 105.0, 103.0, 104.5),  # -> fills at this open
    (104.5, 105.0, 104.0, 104.0),
]


def test_signal_at_close_fills_next_open_with_fees_and_slippage(ohlc, scripted):
    fee_rate, slip = 0.001, 0.0005
    result = run(scripted([1], [3]), ohlc(ROWS), Costs(fee=fee_rate, slippage=slip))

    buy = slipped_price(102.0, Side.BUY, slip)
    units = CASH / (buy * (1 + fee_rate))  # size=inf: all cash, fee included
    sell = slipped_price(104.0, Side.SELL, slip)
    proceeds = units * sell - fee(units * sell, fee_rate)

    trades = result.trades
    assert len(trades) == 1
    trade = trades.iloc[0]
    assert trade["entry_time"] == ohlc(ROWS).index[2]
    assert trade["exit_time"] == ohlc(ROWS).index[4]
    assert trade["entry_price"] == pytest.approx(buy, rel=1e-12)
    assert trade["exit_price"] == pytest.approx(sell, rel=1e-12)
    assert trade["size"] == pytest.approx(units, rel=1e-12)
    assert trade["entry_fees"] == pytest.approx(fee(units * buy, fee_rate), rel=1e-12)
    stats = result.summary()
    assert stats["total_return"] == pytest.approx(proceeds / CASH - 1, rel=1e-12)
    assert stats["fees_paid"] == pytest.approx(
        fee(units * buy, fee_rate) + fee(units * sell, fee_rate), rel=1e-12
    )
    assert stats["trades"] == 1
    # Equity is marked at each close: flat cash before the fill, units x close while long.
    equity = result.equity.iloc[:, 0]
    assert equity.iloc[1] == pytest.approx(CASH)
    assert equity.iloc[3] == pytest.approx(units * 105.0, rel=1e-12)
    assert equity.iloc[5] == pytest.approx(proceeds, rel=1e-12)
    # Long on bars 2 and 3 of 6.
    assert stats["exposure"] == pytest.approx(2 / 6)


def test_open_position_is_marked_to_the_last_close(ohlc, scripted):
    result = run(scripted([1]), ohlc(ROWS), Costs())
    units = CASH / 102.0
    assert result.summary()["end_value"] == pytest.approx(units * 104.0, rel=1e-12)
    assert result.trades.iloc[0]["status"] == "Open"


def test_stop_hit_inside_a_bar_fills_at_the_stop_price(ohlc, scripted):
    rows = [*ROWS[:3], (101.0, 101.5, 95.0, 96.0), (96.0, 97.0, 95.0, 96.0)]
    slip = 0.001
    result = run(scripted([1], sl_stop=0.03), ohlc(rows), Costs(slippage=slip))
    entry = slipped_price(102.0, Side.BUY, slip)
    trigger = entry * (1 - 0.03)  # stops are fractions of the price the trade paid
    assert stop_fill(Side.SELL, trigger, *rows[3][:3]) == pytest.approx(trigger)
    trade = result.trades.iloc[0]
    assert trade["exit_time"] == ohlc(rows).index[3]
    assert trade["exit_price"] == pytest.approx(slipped_price(trigger, Side.SELL, slip), rel=1e-12)
    units = CASH / entry
    expected = units * slipped_price(trigger, Side.SELL, slip)
    assert result.summary()["end_value"] == pytest.approx(expected, rel=1e-12)
    result.params = {"sl_stop": 0.03}  # shipped strategies declare their stops as params
    table = result.trades_table()
    assert (
        table.loc[0, "exit_reason"] == "stop-loss" and table.loc[0, "duration"] == "0 days 01:00:00"
    )
    result.params = {"sl_stop": 0.05}
    assert result.trades_table().loc[0, "exit_reason"] == "signal"


def test_trades_table_says_open_and_signal_exits_and_durations(ohlc, scripted):
    table = run(scripted([1], [3]), ohlc(ROWS), Costs()).trades_table()
    assert table.loc[0, ["exit_reason", "duration"]].tolist() == ["signal", "0 days 02:00:00"]
    table = run(scripted([1]), ohlc(ROWS), Costs()).trades_table()
    assert table.loc[0, ["exit_reason", "duration"]].tolist() == ["open", "0 days 03:00:00"]


def test_the_trades_view_formats_for_reading(ohlc, scripted):
    closed = run(scripted([1], [3]), ohlc(ROWS), Costs()).trades_view()
    cells = closed.data.iloc[0]
    html = closed.to_html()
    assert closed.caption == "1 trade; times in UTC"
    assert f">{cells['entry_time']:%Y-%m-%d %H:%M}<" in html and ">2h<" in html
    assert f">{cells['return'] * 100:.2f}%<" in html and ">exit reason<" in html
    still_open = run(scripted([1]), ohlc(ROWS), Costs()).trades_view()
    assert pd.isna(still_open.data.iloc[0]["exit_time"])  # no made-up exit time
    assert ">3h<" in still_open.to_html()


def test_gap_through_a_stop_fills_at_the_open(ohlc, scripted):
    rows = [*ROWS[:3], (92.0, 93.0, 91.0, 92.5), (92.5, 93.0, 92.0, 92.0)]
    result = run(scripted([1], sl_stop=0.03), ohlc(rows), Costs())
    trigger = 102.0 * 0.97
    assert stop_fill(Side.SELL, trigger, *rows[3][:3]) == 92.0
    trade = result.trades.iloc[0]
    assert trade["exit_time"] == ohlc(rows).index[3]
    assert trade["exit_price"] == pytest.approx(92.0, rel=1e-12)
    assert result.summary()["end_value"] == pytest.approx(CASH / 102.0 * 92.0, rel=1e-12)


def test_take_profit_fills_at_target_or_at_a_better_gap_open(ohlc, scripted):
    rows = [*ROWS[:3], (103.0, 113.0, 102.0, 110.0), (110.0, 111.0, 109.0, 110.0)]
    result = run(scripted([1], tp_stop=0.1), ohlc(rows), Costs())
    target = 102.0 * 1.1
    assert take_profit_fill(Side.SELL, target, *rows[3][:3]) == pytest.approx(target)
    assert result.trades.iloc[0]["exit_price"] == pytest.approx(target, rel=1e-12)

    gapped = [*ROWS[:3], (115.0, 116.0, 114.0, 115.0), (115.0, 116.0, 114.0, 115.0)]
    result = run(scripted([1], tp_stop=0.1), ohlc(gapped), Costs())
    assert result.trades.iloc[0]["exit_price"] == pytest.approx(115.0, rel=1e-12)


def test_stops_are_live_on_the_entry_bar(ohlc, scripted):
    # The entry fills at the bar's open; its low (95) trades after that and goes through the
    # stop at 102 * 0.97 = 98.94: stopped out in the entry bar (quantdesk.model.fills).
    rows = [*ROWS[:2], (102.0, 103.0, 95.0, 102.0), (102.0, 103.0, 101.0, 102.0)]
    result = run(scripted([1], sl_stop=0.03), ohlc(rows), Costs())
    trade = result.trades.iloc[0]
    assert trade["status"] == "Closed"
    assert trade["entry_time"] == trade["exit_time"] == result.bars.index[2]
    assert trade["exit_price"] == pytest.approx(102.0 * 0.97, rel=1e-12)
    assert result.stats["end_value"].iloc[0] == pytest.approx(CASH * 0.97, rel=1e-12)


def test_zero_stop_means_no_stop(ohlc, scripted):
    rows = [*ROWS[:3], (101.0, 101.5, 60.0, 96.0), (96.0, 97.0, 95.0, 96.0)]
    result = run(scripted([1], sl_stop=0.0), ohlc(rows), Costs())
    assert result.trades.iloc[0]["status"] == "Open"


def test_two_symbols_are_independent_accounts_of_init_cash(ohlc, scripted):
    a = ohlc(ROWS)
    b = ohlc([(o * 2, h * 2, lo * 2, c * 2) for o, h, lo, c in ROWS])
    result = run(scripted([1], [3]), {"A/USDT": a, "B/USDT": b}, Costs(fee=0.001))
    stats = result.stats
    assert list(stats.index) == ["A/USDT", "B/USDT"]
    # Same relative path -> same return on each 10,000 account.
    assert stats.loc["A/USDT", "total_return"] == pytest.approx(
        stats.loc["B/USDT", "total_return"], rel=1e-12
    )
    assert (stats["start_value"] == CASH).all()


def test_two_backtests_in_one_process_do_not_interfere(ohlc, scripted):
    bars = ohlc(ROWS)
    first = run(scripted([1], [3]), bars, Costs(fee=0.001))
    before = first.summary().copy()
    run(scripted([0], [2]), bars, Costs(fee=0.01, slippage=0.01))
    again = run(scripted([1], [3]), bars, Costs(fee=0.001))
    pd.testing.assert_series_equal(first.summary(), before)
    pd.testing.assert_series_equal(again.summary(), before)


def test_saved_results_round_trip(tmp_path, ohlc, scripted):
    result = run(scripted([1], [3]), ohlc(ROWS), Costs(fee=0.001))
    paths = result.save(tmp_path)
    import json

    payload = json.loads(paths["stats.json"].read_text())
    assert payload["stats"]["asset"]["trades"] == 1
    assert payload["stats"]["asset"]["total_return"] == pytest.approx(
        result.summary()["total_return"]
    )
    equity = pd.read_parquet(paths["equity.parquet"])
    np.testing.assert_allclose(equity["asset"].to_numpy(), result.equity["asset"].to_numpy())
    trades = pd.read_parquet(paths["trades.parquet"])
    assert len(trades) == 1
    leftovers = [p for p in (tmp_path / "backtests").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_bad_costs_and_empty_data_are_user_errors(ohlc, scripted):
    with pytest.raises(BacktestError, match="fee"):
        Costs(fee=0.5)
    with pytest.raises(BacktestError, match="no bars"):
        to_bars(ohlc(ROWS).iloc[:0])


def test_figures_show_equity_drawdown_and_trades(ohlc, scripted):
    result = run(scripted([1], [3]), ohlc(ROWS), Costs())
    fig = result.equity_figure()
    assert [t.name for t in fig.data] == ["equity", "buy and hold", "drawdown %"]
    np.testing.assert_allclose(fig.data[0].y, result.equity["asset"].to_numpy())
    close = result.bars["close"]["asset"].to_numpy()
    np.testing.assert_allclose(fig.data[1].y, result.equity["asset"].iloc[0] * close / close[0])
    assert fig.layout.yaxis.type == "linear"
    assert result.equity_figure(log_scale=True).layout.yaxis.type == "log"
    trades = result.trades_figure()
    entry = next(t for t in trades.data if t.name == "entry")
    assert list(entry.y) == pytest.approx([102.0])
    candles = trades.data[0]
    assert candles.type == "candlestick"  # the bars themselves, not only the close
    bars = result.bars.xs("asset", axis=1, level=1)
    np.testing.assert_allclose(candles.high, bars["high"].to_numpy())
    np.testing.assert_allclose(candles.low, bars["low"].to_numpy())
    exit_ = next(t for t in trades.data if t.name == "exit")
    closed = result.trades[result.trades["status"] == "Closed"]
    assert list(exit_.y) == pytest.approx(list(closed["exit_price"])) and len(exit_.y) == 1


def test_short_entries_sell_all_equity_at_the_next_open(ohlc):
    from quantdesk.strategy import Signals, SignalStrategy

    class ShortOnce(SignalStrategy):
        def signals(self, bars):
            close = bars["close"]
            none = pd.DataFrame(False, index=close.index, columns=close.columns)
            short_entries, short_exits = none.copy(), none.copy()
            short_entries.iloc[1] = True
            short_exits.iloc[3] = True
            return Signals(entries=none, exits=none, short_entries=short_entries,
                           short_exits=short_exits)  # fmt: skip

    fee_rate = 0.001
    result = run(ShortOnce(), ohlc(ROWS), Costs(fee=fee_rate))
    trade = result.trades.iloc[0]
    units = CASH / (102.0 * (1 + fee_rate))
    assert trade["direction"] == "Short"
    assert trade["size"] == pytest.approx(units, rel=1e-12)
    assert (trade["entry_price"], trade["exit_price"]) == (102.0, 104.0)
    expected = (
        CASH + units * (102.0 - 104.0) - fee(units * 102.0, fee_rate) - fee(units * 104.0, fee_rate)
    )
    assert result.summary()["end_value"] == pytest.approx(expected, rel=1e-12)


def test_target_weights_rebalance_at_the_next_open_with_shared_cash(ohlc):
    from quantdesk.strategy import Signals, SignalStrategy

    class Weights(SignalStrategy):
        def signals(self, bars):
            close = bars["close"]
            w = pd.DataFrame(np.nan, index=close.index, columns=close.columns)
            w.iloc[1] = [0.5, 0.5]  # decided on bar 1's close
            w.iloc[3] = [0.0, 0.0]  # flat on bar 3's close
            return Signals(weights=w)

    a = ohlc(ROWS)
    b = ohlc([(o / 2, h / 2, lo / 2, c / 2 + 1) for o, h, lo, c in ROWS])
    result = run(Weights(), {"A/USDT": a, "B/USDT": b}, Costs())
    assert list(result.equity.columns) == ["portfolio"]
    assert list(result.stats.index) == ["portfolio"]
    units_a, units_b = 5_000 / 102.0, 5_000 / 51.0  # bar 2 opens
    equity = result.equity["portfolio"]
    assert equity.iloc[2] == pytest.approx(units_a * 103.0 + units_b * 52.5, rel=1e-12)
    final = units_a * 104.0 + units_b * 52.0  # sold at bar 4's opens
    assert equity.iloc[-1] == pytest.approx(final, rel=1e-12)
    assert result.summary()["trades"] == 2
