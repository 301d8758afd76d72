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
