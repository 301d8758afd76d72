"""`quantdesk select`: ranked table from the store; bad input is one line and exit 2."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.selection.factors import compute_factors
from quantdesk.selection.models import (
    ModelError,
    SavedModel,
    build_dataset,
    fit,
    load_model,
    make_pipeline,
    save_model,
)
from quantdesk.selection.panel import Panel
from quantdesk.selection.screener import rank_by_model
from quantdesk.selection.screens import Screen
from tests.conftest import run_cli as run

DRIFTS = {"AAA/USDT": 0.010, "BBB/USDT": 0.005, "CCC/USDT": 0.0, "DDD/USDT": -0.005}


def trending(drift: float, n: int = 90, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(drift + rng.normal(0, 0.001, n)))
    index = pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC", name="time")
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": np.full(n, 1_000.0),
        },
        index=index,
    )


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> DataStore:
    store = DataStore(tmp_path / "md")
    for i, (symbol, drift) in enumerate(DRIFTS.items()):
        store.write(SeriesKey("binance", "usdm", symbol, "1d"), trending(drift, seed=i))
    monkeypatch.setenv("QUANTDESK_DATA", str(store.root))
    return store


def ranked_symbols(out: str) -> list[str]:
    return re.findall(r"│\s*\d+\s*│\s*(\S+/USDT)", out)


def test_select_ranks_by_momentum(data_root, capsys) -> None:
    code, out, err = run(
        ["select", "--universe", ",".join(DRIFTS), "--top", "3", "--weights", "momentum_30=1"],
        capsys,
    )
    assert code == 0, err
    assert ranked_symbols(out) == ["AAA/USDT", "BBB/USDT", "CCC/USDT"]
    assert "as of 2024-03-31" in out  # the last bar (opened 03-30) closed then
    assert "momentum_30" in out


def test_negative_weight_reverses_and_screens_leave_out(data_root, capsys) -> None:
    code, out, err = run(
        [
            "select",
            "--weights",
            "momentum_30=-1",
            "--exclude",
            "DDD/USDT",
            "--as-of",
            "2024-02-15",
        ],
        capsys,
    )
    assert code == 0, err
    assert ranked_symbols(out) == ["CCC/USDT", "BBB/USDT", "AAA/USDT"]
    assert "as of 2024-02-15" in out
    assert "left out DDD/USDT: excluded" in out


def test_min_history_before_enough_bars(data_root, capsys) -> None:
    code, out, _ = run(["select", "--as-of", "2024-01-20", "--min-history", "30"], capsys)
    assert code == 0
    assert ranked_symbols(out) == []
    assert out.count("listing_age 19 < 30") == 4  # closed by 01-20: the 19 bars 01-01..01-19


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--weights", "momentum_30=1,beta=2"], "unknown factor 'beta'"),
        (["--as-of", "2023-06-01"], "before the data"),
        (["--universe", ","], "universe is empty"),
        (["--universe", "ZZZ/USDT"], "no 1d data for ZZZ/USDT"),
        (["--top", "0"], "--top must be at least 1"),
        (["--weights", "momentum_30"], "factor=number"),
    ],
)
def test_bad_input_is_one_line_exit_2(data_root, capsys, args, message) -> None:
    code, out, err = run(["select", *args], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err + out


def test_empty_store_is_an_empty_universe(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "nothing"))
    code, _, err = run(["select"], capsys)
    assert code == 2 and "universe is empty" in err


def test_select_on_real_data(real_bars, tmp_path, monkeypatch, capsys) -> None:
    store = DataStore(tmp_path / "real")
    for symbol, frame in real_bars.items():
        store.write(SeriesKey("binance", "usdm", symbol, "1d"), frame)
    monkeypatch.setenv("QUANTDESK_DATA", str(store.root))
    code, out, err = run(
        ["select", "--universe", ",".join(real_bars), "--as-of", "2025-06-01", "--top", "5"],
        capsys,
    )
    assert code == 0, err
    picks = ranked_symbols(out)
    assert sorted(picks) == sorted(real_bars)
    assert "as of 2025-06-01" in out


def test_supply_table_enables_market_cap(data_root, tmp_path, capsys) -> None:
    supply = tmp_path / "supply.csv"
    supply.write_text(
        "symbol,circulating_supply\nAAA/USDT,1\nBBB/USDT,1000\nCCC/USDT,10\nDDD/USDT,100\n"
    )
    code, out, err = run(
        ["select", "--weights", "market_cap=1", "--supply", str(supply), "--top", "4"], capsys
    )
    assert code == 0, err
    assert ranked_symbols(out) == ["BBB/USDT", "DDD/USDT", "CCC/USDT", "AAA/USDT"]
    code, _, err = run(["select", "--weights", "market_cap=1"], capsys)
    assert code == 2 and "needs a supply table" in err


def test_select_by_saved_model(data_root, tmp_path, capsys) -> None:
    panel = Panel.from_bars({s: data_root.load(s, "1d") for s in DRIFTS})
    features = ["momentum_7", "volatility"]
    # fit on bars up to 2024-02-15 only: its last label is the return of 02-15 -> 02-16
    early = compute_factors(panel.loc(end="2024-02-15"), features)
    model = fit(make_pipeline("ridge"), build_dataset(early, features))
    assert model.train_end == pd.Timestamp("2024-02-13", tz="UTC")
    path = save_model(model, tmp_path / "ridge.joblib")
    assert load_model(path).train_start == model.train_start

    factors = compute_factors(panel, features)
    code, out, err = run(["select", "--model", str(path), "--as-of", "2024-03-01"], capsys)
    assert code == 0, err
    snapshot = factors.as_of("2024-02-29")  # the last bar closed by 03-01
    predicted = model.predict(snapshot).sort_values(ascending=False)
    assert ranked_symbols(out) == list(predicted.index)
    assert "momentum_7" in out and "volatility" in out
    assert "model trained on 2024-01-31 .. 2024-02-13" in out

    # inside the training window (or before it): refused unless asked for
    for when in ("2024-02-14", "2024-01-20"):
        code, _, err = run(["select", "--model", str(path), "--as-of", when], capsys)
        assert code == 2 and "inside the model's training window" in err, err
        assert err.strip().count("\n") == 0
    code, out, err = run(
        ["select", "--model", str(path), "--as-of", "2024-02-01", "--allow-in-sample"], capsys
    )
    assert code == 0, err
    # the first clean decision is one horizon after the last training date: the bar of
    # 02-14, known once it closed, at 02-15
    assert rank_by_model(panel, model, "2024-02-15", Screen(min_history=5)).table.shape[0] == 4
    with pytest.raises(ModelError, match="inside the model's training window"):
        rank_by_model(panel, model, "2024-02-14 23:59", Screen(min_history=5))

    table = rank_by_model(panel, model, "2024-03-01", Screen(min_history=30)).table
    parts = table[["w:momentum_7", "w:volatility"]].sum(axis=1)
    intercept = model.pipeline[-1].intercept_
    np.testing.assert_allclose(parts + intercept, table["score"], rtol=1e-9)

    code, _, err = run(["select", "--model", str(path), "--weights", "rsi=1"], capsys)
    assert code == 2 and "leave out --weights" in err
    peek = SavedModel(model.pipeline, ["peek", "volatility"], 1, model.train_start, model.train_end)
    alien = save_model(peek, tmp_path / "a.jl")
    code, _, err = run(["select", "--model", str(alien)], capsys)
    assert code == 2 and "unknown factor 'peek'" in err
    code, _, err = run(["select", "--model", str(tmp_path / "missing.joblib")], capsys)
    assert code == 2 and "cannot load model" in err


def test_spreads_feed_the_max_spread_screen(data_root, tmp_path, capsys) -> None:
    spreads = tmp_path / "spreads.csv"
    spreads.write_text(
        "time,symbol,spread\n"
        "2024-02-01,AAA/USDT,0.0005\n2024-02-01,BBB/USDT,0.004\n"
        "2024-02-01,CCC/USDT,0.001\n2024-03-01,CCC/USDT,0.003\n"
    )
    argv = ["select", "--spreads", str(spreads), "--max-spread", "0.001", "--weights"]
    code, out, err = run([*argv, "momentum_30=1", "--as-of", "2024-02-20"], capsys)
    assert code == 0, err
    assert ranked_symbols(out) == ["AAA/USDT", "CCC/USDT"]  # CCC at exactly the bound passes
    assert "left out BBB/USDT: spread 0.004 > 0.001" in out
    assert "left out DDD/USDT: spread unknown" in out
    code, out, _ = run([*argv, "momentum_30=1", "--as-of", "2024-03-05"], capsys)
    assert ranked_symbols(out) == ["AAA/USDT"]  # CCC's spread widened on 03-01
    code, _, err = run(["select", "--max-spread", "0.01"], capsys)
    assert code == 2 and "needs a spread table" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("time,symbol\n2024-01-01,AAA/USDT\n")
    code, _, err = run(["select", "--spreads", str(bad)], capsys)
    assert code == 2 and "lacks column(s) spread" in err
