"""Target weights in replay (engine.runner.WeightRunner): one cash pool for the universe,
rebalanced at each open from the last close's weights as vectorbt's from_orders simulates it
(targetpercent, cash sharing, automatic call sequence: sells first), so the replay gives the
backtest's trades, orders, positions and grouped equity."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal, localcontext

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, run
from quantdesk.backtest.runner import to_bars
from quantdesk.backtest.validation import parity_check
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.store import OHLCV_COLUMNS, normalize
from quantdesk.engine.feeds import BarEvent
from quantdesk.engine.runner import SignalRunner, WeightRunner
from quantdesk.model import Side, SimBar
from quantdesk.strategy import Signals, SignalStrategy, StrategyError, load_strategy
from quantdesk.system.replay import replay
from tests.conftest import SAMPLE_DATA
from tests.engine.parity import assert_same_trades

REL = 1e-9
COSTS = Costs(fee=0.001, slippage=0.0005)
COINS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "LTCUSDT", "XRPUSDT")


@pytest.fixture(scope="module")
def coins() -> dict[str, pd.DataFrame]:
    """The shipped Binance USD-M daily bars of five coins (~2,450 each; BNB listed later)."""
    out = {}
    for name in COINS:
        parsed = parse_csv(SAMPLE_DATA / f"{name}-1d.csv", ImportOptions(market="usdm"))
        out[parsed.key.symbol] = normalize(parsed.frame, OHLCV_COLUMNS)
    return out


class FixedWeights(SignalStrategy):
    """Target weights given as a table (rows = bars, columns = symbols, NaN = hold)."""

    params: dict = {}
    timeframe = "1d"
    table: list[list[float]] = []

    def signals(self, bars: pd.DataFrame) -> Signals:
        """The table on the bars' index."""
        close = bars["close"]
        return Signals(weights=pd.DataFrame(self.table, index=close.index, columns=close.columns))


def weights_strategy(table: list[list[float]]) -> FixedWeights:
    """A FixedWeights instance with its own table."""
    cls = type("FixedWeights", (FixedWeights,), {"table": table})
    return cls()


def frame(opens: list[float], closes: list[float]) -> pd.DataFrame:
    """Daily bars with these opens and closes (high / low around them)."""
    index = pd.date_range("2024-01-01", periods=len(opens), freq="1D", tz="UTC", name="time")
    o, c = np.asarray(opens, dtype=float), np.asarray(closes, dtype=float)
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c) * 1.01,
            "low": np.minimum(o, c) * 0.99,
            "close": c,
            "volume": 1.0,
        },
        index=index,
    )


def cash_path(fills: list, start: Decimal) -> list[Decimal]:
    """The cash after each fill, in the order the engine applied them."""
    cash, out = start, []
    for f in fills:
        flow = f.amount * f.price
        cash += -flow - f.fee if f.side is Side.BUY else flow - f.fee
        out.append(cash)
    return out


@pytest.mark.parametrize(
    "params",
    [{}, {"top": 1, "every": 3}, {"top": 2, "weighting": "score", "lookback": 20}],
    ids=["default", "top1", "score"],
)
def test_momentum_rotation_replay_matches_the_backtest(coins: dict, params: dict) -> None:
    """On the five shipped coins: the same trades, the same orders (side, size, price, fee)
    in the same sequence, the same holdings at the end and the same grouped final value."""
    strategy = load_strategy("momentum_rotation", params)
    bt = run(strategy, coins, COSTS)
    rp = replay(strategy, coins, COSTS)
    assert_same_trades(bt.trades, rp.trades, REL)
    orders = bt.portfolio.orders.records_readable
    assert len(orders) == len(rp.fills) > 100
    assert rp.order_stats.by_status == {"filled": len(rp.fills)}  # nothing refused
    # vectorbt lists its orders by bar and call sequence within a bar; so did the engine
    assert [str(c) for c in orders["Column"]] == [f.symbol for f in rp.fills]
    assert [str(s).lower() for s in orders["Side"]] == [f.side.value for f in rp.fills]
    for column, attr in (("Size", "amount"), ("Price", "price"), ("Fees", "fee")):
        np.testing.assert_allclose(
            [float(getattr(f, attr)) for f in rp.fills], orders[column], rtol=REL
        )
    held = bt.portfolio.assets().iloc[-1]
    for symbol in coins:
        position = rp.portfolio.positions.get(symbol)
        quantity = float(position.quantity) if position else 0.0
        assert quantity == pytest.approx(held[symbol], rel=REL, abs=1e-12)
    # one equity curve for the cash-sharing group, equal to the backtest's
    assert list(bt.equity.columns) == list(rp.backtest.equity.columns) == ["portfolio"]
    final = float(bt.equity.iloc[-1, 0])
    assert float(rp.final_equity) == pytest.approx(final, rel=1e-12)
    assert list(rp.stats["trades"]) == list(bt.stats["trades"])
    pd.testing.assert_series_equal(rp.stats["end_value"], bt.stats["end_value"], rtol=1e-12)
    assert min(cash_path(rp.fills, Decimal(COSTS.init_cash))) >= 0


def test_parity_check_passes_for_target_weights(coins: dict) -> None:
    """validation.parity_check given the engine's replay runs and passes target weights."""
    strategy = load_strategy("momentum_rotation", {"top": 2})
    check = parity_check(strategy, coins, COSTS, replay_fn=replay)
    assert check.passed is True, check.detail


@pytest.mark.parametrize("risk", [True, False], ids=["risk-gate", "no-gate"])
def test_two_symbols_three_bars_by_hand(risk: bool) -> None:
    """Cash 1,000, fee 1%, no slippage. Close 0: all in Y; close 1: all in X. At open 2 the
    call sequence sells Y first (X is the first column, a column-order loop would buy X with
    no cash) and X is bought with what the sale left, cash-limited: never below zero."""
    data = {
        "X/USDT": frame([10, 10, 12], [10, 11, 12]),
        "Y/USDT": frame([20, 20, 25], [20, 22, 25]),
    }
    strategy = weights_strategy([[0.0, 1.0], [1.0, 0.0], [np.nan, np.nan]])
    costs = Costs(init_cash=1_000, fee=0.01, slippage=0.0)
    rp = replay(strategy, data, costs, risk=risk)  # without the gate: the runner's own cap
    assert rp.order_stats.by_status == {"filled": 3}
    one = Decimal(1)
    fee = Decimal("0.01")
    y_bought = Decimal(1_000) / (one + fee) / 20  # 100% of 1,000 at 20 costs 1,010: capped
    proceeds = y_bought * 25 * (one - fee)
    x_bought = proceeds / (one + fee) / 12  # target 1.0 x (y_bought x 25) / 12, capped
    got = [(f.symbol, f.side, f.amount, f.price) for f in rp.fills]
    assert [g[:2] for g in got] == [
        ("Y/USDT", Side.BUY),
        ("Y/USDT", Side.SELL),
        ("X/USDT", Side.BUY),
    ]
    for (_, _, amount, price), (want_amount, want_price) in zip(
        got, [(y_bought, 20), (y_bought, 25), (x_bought, 12)], strict=True
    ):
        assert price == want_price
        assert abs(amount - want_amount) <= Decimal("1e-17")
    cash = cash_path(rp.fills, Decimal(1_000))
    assert min(cash) >= 0
    assert cash[0] < Decimal("1e-12") and cash[-1] < Decimal("1e-12")  # all in, never below
    # X's value at the last close: the whole portfolio
    assert float(rp.final_equity) == pytest.approx(float(x_bought * 12), rel=1e-15)
    bt = run(strategy, data, costs)
    assert float(rp.final_equity) == pytest.approx(float(bt.equity.iloc[-1, 0]), rel=1e-12)
    assert_same_trades(bt.trades, rp.trades, REL)


def test_a_nan_weight_holds_the_position() -> None:
    """Half and half at open 1; NaN on close 1 (hold both); close 2 re-weights Y only, to
    0.2: at open 3 only Y trades (sells to 0.2 of the value) and X keeps its quantity although
    its price doubled (a NaN taken as 0 would sell it, one taken as "the last weight" would
    trim it back to half)."""
    data = {
        "X/USDT": frame([10, 10, 20, 20], [10, 20, 20, 20]),
        "Y/USDT": frame([10, 10, 10, 10], [10, 10, 10, 10]),
    }
    table = [[0.5, 0.5], [np.nan, np.nan], [np.nan, 0.2], [np.nan, np.nan]]
    strategy = weights_strategy(table)
    costs = Costs(init_cash=1_000, fee=0.0, slippage=0.0)
    rp = replay(strategy, data, costs)
    ms = [int(t.value // 1_000_000) for t in data["X/USDT"].index]
    assert sorted({f.timestamp for f in rp.fills}) == [ms[1], ms[3]]  # nothing at open 2
    at_open_3 = [(f.symbol, f.side, f.amount) for f in rp.fills if f.timestamp == ms[3]]
    # value at open 3: 50 x 20 + 50 x 10 = 1,500; Y's target 0.2 x 1,500 / 10 = 30
    assert at_open_3 == [("Y/USDT", Side.SELL, 20)]
    assert rp.portfolio.positions["X/USDT"].quantity == 50
    assert rp.portfolio.positions["Y/USDT"].quantity == 30
    bt = run(strategy, data, costs)
    assert_same_trades(bt.trades, rp.trades, REL)
    assert float(rp.final_equity) == pytest.approx(float(bt.equity.iloc[-1, 0]), rel=1e-12)


def test_two_replays_in_one_process_do_not_interfere(coins: dict) -> None:
    """Replays one after the other and at the same time on two threads: each run's fills
    depend on its own strategy only (no state shared between runners, venues, portfolios),
    not on the calling thread's decimal context."""
    one = load_strategy("momentum_rotation", {"top": 1})
    two = load_strategy("momentum_rotation", {"top": 3, "every": 5})
    with localcontext() as ambient:  # what ccxt's rounding helpers leave on a thread
        ambient.rounding, ambient.prec = ROUND_HALF_UP, 12
        first = replay(one, coins, COSTS)
        other = replay(two, coins, COSTS)
        again = replay(one, coins, COSTS)
    assert first.fills == again.fills and first.final_equity == again.final_equity
    assert first.fills != other.fills
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(lambda s: replay(s, coins, COSTS), [one, two])
    assert a.fills == first.fills and b.fills == other.fills
    assert b.final_equity == other.final_equity


def test_weights_are_refused_where_the_engine_cannot_run_them() -> None:
    """Shorts (negative weights) on a spot market need its perpetual; a SignalRunner points to
    WeightRunner, in paper and live to the strategy's target_weights declaration (which picks
    the runner there); a WeightRunner refuses a strategy that returns entries/exits."""
    data = {"X/USDT": frame([10, 10], [10, 10]), "Y/USDT": frame([10, 10], [10, 10])}
    with pytest.raises(StrategyError, match=r"X/USDT, a spot market: .*\(X/USDT:USDT\)"):
        replay(weights_strategy([[-0.5, 0.5], [np.nan, np.nan]]), data, COSTS)
    strategy = weights_strategy([[0.5, 0.5], [np.nan, np.nan]])
    signal_runner = SignalRunner(strategy, ["X/USDT"], capital=Decimal(1), fee=Decimal(0))
    with pytest.raises(StrategyError, match="use WeightRunner"):
        signal_runner.prepare(pd.DataFrame(), strategy.signals(to_bars(data)))
    event = BarEvent("X/USDT", SimBar(0, 10.0, 10.0, 10.0, 10.0, 1.0), -1)
    undeclared = SignalRunner(
        weights_strategy([[0.5]]), ["X/USDT"], capital=Decimal(1), fee=Decimal(0)
    )
    with pytest.raises(StrategyError, match="declare target_weights = True"):
        undeclared.on_close(event)

    class Entries(SignalStrategy):
        params: dict = {}
        target_weights = True

        def signals(self, bars: pd.DataFrame) -> Signals:
            flags = bars["close"] > 0
            return Signals(entries=flags, exits=~flags)

    live = WeightRunner(Entries(), ["X/USDT"], capital=Decimal(1), fee=Decimal(0))
    assert live.on_close(event) == []  # the close joins the window, decided at the rebalance
    with pytest.raises(StrategyError, match="declares target_weights but returned entries"):
        list(live.rebalance([event], Quotes()))


class Quotes:
    """A market acting on a close at 10 (no open in progress)."""

    def quote(self, symbol: str, side: Side) -> Decimal | None:
        """Every market order at 10."""
        return Decimal(10)

    def amount_step(self, symbol: str) -> Decimal:
        """Fine amounts."""
        return Decimal("1e-18")

    def bar_open(self, symbol: str) -> Decimal | None:
        """Acting on a close."""
        return None


def test_funding_is_the_portfolios_not_the_pools() -> None:
    """momentum_rotation on the BTC and ETH perpetuals with their shipped funding: orders are
    sized from the trading cash (the backtest's unfunded simulation; SimVenue books no
    funding), the funding lands in the portfolio. Without the risk gate (which clips buys to
    the cash net of the funding paid) the replay is the backtest, funding included."""
    data, funding = {}, {}
    for name in ("BTCUSDT", "ETHUSDT"):
        parsed = parse_csv(SAMPLE_DATA / f"{name}-1d.csv", ImportOptions(market="usdm"))
        data[parsed.key.symbol] = normalize(parsed.frame, OHLCV_COLUMNS)
        rates = parse_csv(SAMPLE_DATA / f"{name}-funding.csv", ImportOptions(market="usdm"))
        funding[rates.key.symbol] = rates.frame
    strategy = load_strategy("momentum_rotation", {"top": 1})
    bt = run(strategy, data, COSTS, funding=funding)
    rp = replay(strategy, data, COSTS, funding=funding, risk=False)
    assert rp.order_stats.by_status == {"filled": len(rp.fills)}
    assert_same_trades(bt.trades, rp.trades, REL)
    paid = float(bt.stats["funding"].sum())
    assert paid < -10_000
    assert float(rp.extra["funding"]) == pytest.approx(paid, rel=REL)
    assert float(rp.final_equity) == pytest.approx(float(bt.equity.iloc[-1, 0]), rel=1e-12)
