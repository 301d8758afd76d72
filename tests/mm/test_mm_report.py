"""The mm report: the figure's panels and traces, the side-by-side table, an atomic write."""

from __future__ import annotations

import pytest

from quantdesk.errors import DataError
from quantdesk.mm.backtest import run_mm
from quantdesk.mm.flow import FlowConfig, generate_flow
from quantdesk.mm.report import figure, render, table_html, write_report
from quantdesk.strategy import load_strategy, repo_strategies_dir


@pytest.fixture(scope="module")
def results():
    flow = generate_flow(FlowConfig(hours=0.1), seed=4)
    return [
        run_mm(load_strategy("basic_mm", {"levels": n}, repo_strategies_dir()), flow)
        for n in (1, 3)
    ]


def test_figure_traces(results):
    fig = figure(results[0])
    names = [t.name for t in fig.data]
    assert names == [
        "mid",
        "quote bid",
        "quote ask",
        "buy fills",
        "sell fills",
        "inventory",
        "spread capture",
        "inventory PnL",
        "fees / rebates",
        "total",
    ]
    total = fig.data[-1]
    assert total.y[-1] == pytest.approx(results[0].stats["total_pnl"], abs=1e-6)


def test_table_has_a_column_per_set(results):
    table = table_html(results)
    assert table.count("basic_mm</th>") == 2 and "levels=3" in table and "spread capture" in table


def test_write_is_whole_or_nothing(results, tmp_path):
    target = write_report(results, tmp_path / "r.html")
    assert target.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(DataError, match="cannot write report"):
        write_report(results, tmp_path / "missing" / "r.html")
    with pytest.raises(DataError, match="at least one run"):
        render([])


def test_notebook_pieces_label_split_and_horizons(results):
    from quantdesk.mm.report import (
        adverse_figure,
        adverse_frame,
        orders_frame,
        paths_figure,
        set_labels,
        split_frame,
        stats_frame,
    )

    assert set_labels(results) == ["1: levels=1", "2: levels=3"]
    split = split_frame(results)
    parts = split[["spread capture", "inventory PnL", "fees / rebates"]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(split["total"].to_numpy(), abs=1e-9)
    adverse = adverse_frame(results)
    for r, label in zip(results, adverse.columns, strict=True):
        for h in (100, 1_000, 10_000):
            assert adverse.loc[h, label] == pytest.approx(r.stats[f"adverse_{h}ms_bps"])
    orders = orders_frame(results)
    assert orders["orders"].tolist() == [r.stats["orders"] for r in results]
    assert orders["fills / cancels"].iloc[1] == pytest.approx(
        results[1].stats["maker_fills"] / results[1].stats["cancels"]
    )
    assert stats_frame(results).loc["maker fills"].tolist() == [
        r.stats["maker_fills"] for r in results
    ]
    assert [t.name for t in paths_figure(results, "inventory", "inv").data] == set_labels(results)
    assert len(adverse_figure(results).data) == 2
