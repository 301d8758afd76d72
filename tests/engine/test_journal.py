"""The journal on SQLite and on a real PostgreSQL server: lossless Decimals, fill
de-duplication, reads, commands, batches; plus SQLite's WAL behaviour."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import MetaData, select

from quantdesk.engine.journal import Journal, journal_url, redact
from quantdesk.engine.portfolio import Portfolio, Position
from quantdesk.model import Fill, Order, OrderEvent, OrderStatus, OrderType, Side

S = OrderStatus


@pytest.fixture(params=["sqlite", "postgresql"])
def new_target(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Hands out new empty journal databases of one backend (a file path or a server URL)."""
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
        return postgres.database
    paths = (str(tmp_path / "j" / f"journal{n}.db") for n in range(1, 100))
    return lambda: next(paths)


@pytest.fixture
def journal(new_target: Callable[[], str]):
    with Journal(new_target()) as j:
        yield j


def wal_or_none(journal: Journal) -> str | None:
    """What journal_mode() reports: WAL on SQLite files, nothing on other backends."""
    return "wal" if journal.url.get_backend_name() == "sqlite" else None


def all_stored_text(journal: Journal) -> str:
    """Every value of every table, as text: what a reader of the database could see."""
    tables = MetaData()
    tables.reflect(journal.engine)
    with journal.engine.connect() as conn:
        return " ".join(
            str(value)
            for table in tables.sorted_tables
            for row in conn.execute(select(table))
            for value in row
        )


def order(cid: str = "qd-1", created: int = 1_000, status: OrderStatus = S.PENDING) -> Order:
    o = Order(
        cid,
        "BTC/USDT",
        Side.BUY,
        OrderType.LIMIT,
        D("0.123456789012345678901234"),
        price=D("43210.12345678"),
        created_ms=created,
        strategy_id="sma_cross",
        venue="sandbox",
        status=status,
    )
    return o


def fill(trade_id: str, cid: str = "qd-1", amount: str = "0.1", ts: int = 2_000) -> Fill:
    return Fill(
        trade_id=trade_id,
        client_order_id=cid,
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=D(amount),
        price=D("100.5"),
        fee=D("0.01005"),
        fee_currency="USDT",
        timestamp=ts,
        venue="sandbox",
        venue_order_id="77",
    )


def test_sqlite_runs_in_wal_mode_with_pragmas(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j" / "journal.db")
    assert journal.journal_mode() == "wal"
    with journal.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    assert journal.url.drivername == "sqlite" and journal.url.database.endswith("journal.db")
    journal.close()


def test_urls_and_memory_databases(tmp_path: Path) -> None:
    assert journal_url("sqlite:///x.db").database == "x.db"
    assert journal_url(tmp_path / "a.db").database == str(tmp_path / "a.db")
    with Journal("sqlite://") as mem:
        mem.record_order(order())
        assert len(mem.orders()) == 1  # every connection sees the same in-memory database
        assert mem.journal_mode() == "memory"


def test_orders_round_trip_losslessly_and_update_in_place(journal: Journal) -> None:
    o = order()
    journal.record_order(o)
    o.transition(S.SUBMITTED, 1_500)
    o.submit_attempts = 1
    journal.record_order(o)
    done = order("qd-2", created=900, status=S.FILLED)
    journal.record_order(done)
    frame = journal.orders()
    assert list(frame["client_order_id"]) == ["qd-1", "qd-2"]  # newest first
    row = frame.iloc[0]
    assert row["amount"] == D("0.123456789012345678901234") and row["price"] == D("43210.12345678")
    assert (row["status"], row["updated_ms"], row["submit_attempts"]) == ("submitted", 1_500, 1)
    assert list(journal.orders(open_only=True)["client_order_id"]) == ["qd-1"]
    [loaded] = journal.load_orders()
    assert (loaded.client_order_id, loaded.status, loaded.amount) == ("qd-1", S.SUBMITTED, o.amount)
    assert loaded.strategy_id == "sma_cross" and loaded.venue == "sandbox"


def test_order_events_in_order(journal: Journal) -> None:
    journal.record_event(OrderEvent("qd-1", None, S.PENDING, 1))
    journal.record_event(OrderEvent("qd-1", S.PENDING, S.SUBMITTED, 2, "attempt 1"))
    journal.record_event(OrderEvent("qd-2", None, S.PENDING, 3))
    events = journal.order_events("qd-1")
    assert list(events["new"]) == ["pending", "submitted"]
    assert pd.isna(events.iloc[0]["old"]) and events.iloc[1]["reason"] == "attempt 1"


def test_fill_inserted_twice_is_applied_once(journal: Journal) -> None:
    portfolio = Portfolio(cash={"USDT": D(1000)})
    for f in [fill("T1"), fill("T2"), fill("T1")]:
        if journal.record_fill(f):
            portfolio.apply_fill(f)
    assert journal.count("fills") == 2
    assert portfolio.positions["BTC/USDT"].quantity == D("0.2")
    # the same trade id at another venue is a different trade
    assert journal.record_fill(Fill(**{**vars(fill("T1")), "venue": "other"}))
    frame = journal.fills(since=0)
    assert list(frame["trade_id"]) == ["T1", "T2", "T1"] and frame.iloc[0]["fee"] == D("0.01005")
    assert journal.fills(since=2_001).empty


def test_load_orders_rebuilds_progress_from_fills(journal: Journal) -> None:
    # Crash between writing a fill and updating its order: the fills table wins.
    journal.record_order(order(status=S.NEW))
    journal.record_fill(fill("T1", amount="0.1"))
    journal.record_fill(fill("T2", amount="0.02"))
    [o] = journal.load_orders()
    assert o.filled == D("0.12") and o.average_price == D("100.5")
    assert o.fee == D("0.02010") and o.fill_ids == {"T1", "T2"}
    assert journal.load_fills("qd-1")[1].trade_id == "T2"


def test_positions_balances_equity_events_alerts(journal: Journal) -> None:
    journal.record_position(Position("BTC/USDT", D("0.5"), D(100), updated_ms=5), venue="v")
    journal.record_position(Position("ETH/USDT", D(0), D(0), updated_ms=5), venue="v")
    journal.record_position(Position("BTC/USDT", D("0.7"), D(101), updated_ms=6), venue="v")
    pos = journal.positions()
    assert list(pos["symbol"]) == ["BTC/USDT"] and pos.iloc[0]["quantity"] == D("0.7")
    assert len(journal.positions(include_flat=True)) == 2

    journal.record_balance("v", "USDT", D("1000.5"), D("900.25"), 7)
    journal.record_balance("v", "USDT", D("1001"), D("901"), 8)
    bal = journal.balances()
    assert len(bal) == 1 and bal.iloc[0]["free"] == D(901)

    journal.record_equity(1_704_067_200_000, D("1000.1"))
    journal.record_equity(1_704_070_800_000, D("1001.3"), cash=D(1), unrealized_pnl=D(2))
    curve = journal.equity_curve()
    assert list(curve["equity"]) == [D("1000.1"), D("1001.3")]
    assert curve.index[1] == pd.Timestamp("2024-01-01 01:00", tz="UTC")

    journal.record_risk_event("limit_breach", "max notional", 9, payload={"limit": "100"})
    journal.record_risk_event("state", "HALTED", 10, severity="critical")
    events = journal.events("limit_breach")
    assert len(events) == 1 and events.iloc[0]["payload"] == {"limit": "100"}
    assert len(journal.events()) == 2
    first = int(journal.events().iloc[0]["id"])
    assert list(journal.events(after_id=first)["message"]) == ["HALTED"]  # only the newer
    journal.record_alert("error", "venue down", 11, {"venue": "v"})
    assert journal.alerts().iloc[0]["message"] == "venue down"


def test_control_commands_are_consumed_once(journal: Journal) -> None:
    kill = journal.add_command("kill", 1, payload={"cancel_open": True})
    approve = journal.add_command("approve", 2, target="qd-1")
    assert [c.kind for c in journal.pending_commands()] == ["kill", "approve"]
    assert journal.pending_commands("kill")[0].payload == {"cancel_open": True}
    assert journal.consume_command(kill, 3) is True
    assert journal.consume_command(kill, 4) is False
    assert [c.id for c in journal.pending_commands()] == [approve]
    with pytest.raises(ValueError, match="unknown command"):
        journal.add_command("launch", 5)


def test_secrets_are_never_stored(journal: Journal, tmp_path: Path) -> None:
    payload = {"venue": "v", "apiKey": "AKIA123", "nested": [{"secret": "s3cr3t", "n": 1}]}
    assert redact(payload) == {"venue": "v", "apiKey": "***", "nested": [{"secret": "***", "n": 1}]}
    journal.record_alert("info", "config loaded", 1, payload)
    journal.record_risk_event("k", "m", 1, payload={"password": "hunter2"})
    journal.add_command("resume", 1, payload={"token": "tok-abc"})
    stored = all_stored_text(journal)
    assert "config loaded" in stored and "***" in stored  # the rows are there, redacted
    for secret in ("AKIA123", "s3cr3t", "hunter2", "tok-abc"):
        assert secret not in stored
    journal.close()
    if journal.url.get_backend_name() == "sqlite":  # nor in the file's free pages or WAL
        raw = b"".join(p.read_bytes() for p in (tmp_path / "j").iterdir())
        assert not any(s in raw for s in (b"AKIA123", b"s3cr3t", b"hunter2", b"tok-abc"))


def test_two_journals_in_one_process_do_not_interfere(new_target: Callable[[], str]) -> None:
    with Journal(new_target()) as a, Journal(new_target()) as b:
        a.record_order(order("qd-a"))
        b.record_order(order("qd-b"))
        b.record_fill(fill("T1", "qd-b"))
        assert list(a.orders()["client_order_id"]) == ["qd-a"]
        assert list(b.orders()["client_order_id"]) == ["qd-b"]
        assert a.count("fills") == 0 and b.count("fills") == 1
        assert a.journal_mode() == b.journal_mode() == wal_or_none(a)


READER = textwrap.dedent(
    """
    import sys
    from quantdesk.engine.journal import Journal
    j = Journal(sys.argv[1])
    with j.engine.connect() as conn, conn.begin():
        count = lambda: conn.exec_driver_sql("SELECT count(*) FROM equity").scalar()
        print(count(), flush=True)          # holds a read snapshot from here on
        sys.stdin.readline()                # ... while the parent writes and commits
        print(count(), flush=True)          # same snapshot: the parent's row is invisible
    print(len(j.equity_curve()), flush=True)  # a fresh read sees it
    """
)


def test_reader_process_does_not_block_writer_and_sees_consistent_snapshots(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    with Journal(path) as writer:
        writer.record_equity(1, D(1))
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert reader.stdout.readline().strip() == "1"
            # In rollback-journal mode this commit would wait for the reader's shared lock
            # and fail with "database is locked"; WAL lets it through.
            writer.record_equity(2, D(2))
            assert writer.count("equity") == 2
            reader.stdin.write("go\n")
            reader.stdin.flush()
            assert reader.stdout.readline().strip() == "1"
            assert reader.stdout.readline().strip() == "2"
            assert reader.wait(timeout=60) == 0
        finally:
            reader.kill()


def test_a_command_is_consumed_by_one_of_two_readers(new_target: Callable[[], str]) -> None:
    path = new_target()
    with Journal(path) as cli, Journal(path) as engine_a, Journal(path) as engine_b:
        cid = cli.add_command("approve", 1, target="qd-9")
        [seen_a] = engine_a.pending_commands()
        [seen_b] = engine_b.pending_commands()
        assert seen_a == seen_b and seen_a.target == "qd-9"
        results = [engine_a.consume_command(cid, 2), engine_b.consume_command(cid, 3)]
        assert results == [True, False] and cli.pending_commands() == []


def test_batch_is_one_transaction(new_target: Callable[[], str]) -> None:
    path = new_target()
    with Journal(path) as j, Journal(path) as other:
        with j.batch():
            j.record_equity(1, D(1))
            assert j.record_fill(fill("T1"))
            assert not j.record_fill(fill("T1"))  # the duplicate does not spoil the batch
            with j.batch():  # nested: joins
                j.record_equity(2, D(2))
            assert j.count("equity") == 2  # the batch sees its own writes
            assert other.count("equity") == 0  # nobody else sees them before the commit
        assert other.count("equity") == 2 and other.count("fills") == 1

        with pytest.raises(RuntimeError), j.batch():
            j.record_equity(3, D(3))
            raise RuntimeError("crash mid-batch")
        assert other.count("equity") == 2  # all or nothing


def test_batch_on_an_in_memory_database() -> None:
    with Journal("sqlite://") as j:
        with j.batch():
            j.record_order(order())
            assert len(j.orders()) == 1
        assert len(j.orders()) == 1


def test_decision_price_round_trips(journal: Journal) -> None:
    o = order()
    o.decision_price = D("43210.12")
    journal.record_order(o)
    assert journal.orders().loc[0, "decision_price"] == D("43210.12")
    assert journal.load_orders()[0].decision_price == D("43210.12")
    journal.record_order(order("qd-2"))
    assert journal.orders().set_index("client_order_id").loc["qd-2", "decision_price"] is None


def test_an_old_journal_gets_the_new_columns_on_open(tmp_path: Path) -> None:
    """A journal made before orders had decision_price opens, keeps its rows (read as no
    decision price) and takes new orders with one."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    with Journal(path) as j:
        j.record_order(order("qd-old"))
    with sqlite3.connect(path) as db:
        db.execute("alter table orders drop column decision_price")
    with Journal(path) as j:
        [old] = j.load_orders()
        assert old.client_order_id == "qd-old" and old.decision_price is None
        new = order("qd-new")
        new.decision_price = D("1.5")
        j.record_order(new)
        assert j.orders().set_index("client_order_id").loc["qd-new", "decision_price"] == D("1.5")
    with Journal(path) as j:  # opening again changes nothing
        assert j.count("orders") == 2


def test_bars_are_kept_once_per_symbol_and_time(journal: Journal) -> None:
    from quantdesk.model import SimBar

    bars = [SimBar(60_000 * i, 1.0 + i, 2.0 + i, 0.5 + i, 1.25 + i, 10.0) for i in range(3)]
    assert journal.record_bars("BTC/USDT", "1m", bars) == 3
    assert journal.record_bars("BTC/USDT", "1m", bars[1:]) == 0  # a restart sends them again
    assert journal.record_bars("ETH/USDT", "1m", bars[:1]) == 1
    frame = journal.bars("BTC/USDT")
    assert list(frame["ts"]) == [0, 60_000, 120_000]
    assert list(frame["close"]) == [1.25, 2.25, 3.25] and set(frame["timeframe"]) == {"1m"}
    assert len(journal.bars()) == 4
