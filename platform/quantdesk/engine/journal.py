"""The journal: the engine's durable record, and what dashboards and reports read.

SQLAlchemy Core over any URL; a plain file path means SQLite, opened in WAL mode so readers in
other processes (dashboards, `quantdesk` commands) never block the engine's writes and never see
half-written transactions. Decimals are stored as text (lossless on every backend), timestamps as
integer milliseconds UTC. Payloads are JSON with secret-looking keys redacted.

Schema changes are additive: a column added since a journal was made is added to it when it is
opened (`MIGRATIONS`), so old journals keep opening; rows written before read it as empty.

Fills carry a unique (venue, trade id): `record_fill` of a trade already stored returns False,
which is how a replayed or re-reported fill is applied only once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from quantdesk.engine.portfolio import Position
from quantdesk.model import Fill, Order, OrderEvent, OrderStatus, OrderType, Side, TimeInForce


class DecimalText(TypeDecorator):
    """A Decimal stored as its exact string form."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        """Decimal -> text."""
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        """Text -> Decimal."""
        return None if value is None else Decimal(value)


# Table definitions are immutable schema descriptions; each Journal has its own engine.
metadata = MetaData()

orders_t = Table(
    "orders",
    metadata,
    Column("client_order_id", String(36), primary_key=True),
    Column("strategy_id", String(100), nullable=False, default=""),
    Column("venue", String(100), nullable=False, default=""),
    Column("symbol", String(50), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(20), nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("price", DecimalText),
    Column("trigger_price", DecimalText),
    Column("time_in_force", String(3), nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("venue_order_id", String(100)),
    Column("filled", DecimalText, nullable=False),
    Column("average_price", DecimalText),
    Column("fee", DecimalText, nullable=False),
    Column("fee_currency", String(20)),
    Column("submit_attempts", Integer, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("decision_price", DecimalText),  # added later: see MIGRATIONS
)

order_events_t = Table(
    "order_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_order_id", String(36), nullable=False, index=True),
    Column("old", String(20)),
    Column("new", String(20), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

fills_t = Table(
    "fills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("venue", String(100), nullable=False),
    Column("trade_id", String(100), nullable=False),
    Column("client_order_id", String(36), nullable=False, index=True),
    Column("venue_order_id", String(100)),
    Column("symbol", String(50), nullable=False),
    Column("side", String(4), nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("price", DecimalText, nullable=False),
    Column("fee", DecimalText, nullable=False),
    Column("fee_currency", String(20), nullable=False),
    Column("ts", BigInteger, nullable=False, index=True),
    UniqueConstraint("venue", "trade_id", name="uq_fills_venue_trade"),
)

positions_t = Table(
    "positions",
    metadata,
    Column("venue", String(100), primary_key=True),
    Column("symbol", String(50), primary_key=True),
    Column("quantity", DecimalText, nullable=False),
    Column("average_price", DecimalText, nullable=False),
    Column("realized_pnl", DecimalText, nullable=False),
    Column("fees", DecimalText, nullable=False),
    Column("funding", DecimalText, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

balances_t = Table(
    "balances",
    metadata,
    Column("venue", String(100), primary_key=True),
    Column("asset", String(20), primary_key=True),
    Column("total", DecimalText, nullable=False),
    Column("free", DecimalText, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

equity_t = Table(
    "equity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, index=True),
    Column("equity", DecimalText, nullable=False),
    Column("cash", DecimalText),
    Column("unrealized_pnl", DecimalText),
)

risk_events_t = Table(
    "risk_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, index=True),
    Column("kind", String(50), nullable=False, index=True),
    Column("severity", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("payload", Text, nullable=False, default="{}"),
)

commands_t = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("target", String(100), nullable=False, default=""),
    Column("payload", Text, nullable=False, default="{}"),
    Column("consumed", Boolean, nullable=False, default=False, index=True),
    Column("consumed_ms", BigInteger),
)

alerts_t = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, index=True),
    Column("level", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("payload", Text, nullable=False, default="{}"),
)

bars_t = Table(
    "bars",
    metadata,
    Column("symbol", String(50), primary_key=True),
    Column("ts", BigInteger, primary_key=True),  # open time, ms UTC
    Column("timeframe", String(10), nullable=False),
    Column("open", Double, nullable=False),
    Column("high", Double, nullable=False),
    Column("low", Double, nullable=False),
    Column("close", Double, nullable=False),
    Column("volume", Double, nullable=False),
)

# (table, column) added after journals already existed: added on open when missing
MIGRATIONS = (("orders", "decision_price"),)

# arb_open / arb_close: manual pair commands for `quantdesk arb run` (quantdesk arb open/close)
COMMAND_KINDS = ("kill", "resume", "approve", "reject", "cancel", "arb_open", "arb_close")
_SECRET_KEY = re.compile(r"secret|api_?key|password|passphrase|token|private|signature", re.I)


# Statements of a batch's flush, built once (immutable constructs; values come as parameters,
# so SQLAlchemy compiles each once and runs it as one executemany).
_UPDATE_ORDER = update(orders_t).where(orders_t.c.client_order_id == bindparam("_cid"))
_UPDATE_POSITION = update(positions_t).where(
    (positions_t.c.venue == bindparam("_venue")) & (positions_t.c.symbol == bindparam("_symbol"))
)
_FILL_EXISTS = select(fills_t.c.id).where(
    (fills_t.c.venue == bindparam("venue")) & (fills_t.c.trade_id == bindparam("trade_id"))
)


@dataclass
class _Pending:
    """Writes of an open batch not yet sent to the database: latest row per order and per
    position, appended events, fills and equity points, flushed in that order (orders
    first: the others name them) before any read, any other write and the commit."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    fill_keys: set[tuple[str, str]] = field(default_factory=set)
    positions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    equity: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.orders or self.events or self.fills or self.positions or self.equity)

    def flush(self, conn: Connection) -> None:
        """Send everything, as the unbatched writes would have (upserts by key)."""
        if self.orders:
            cids = list(self.orders)
            have: set[str] = set()
            for k in range(0, len(cids), 500):
                chunk = cids[k : k + 500]
                query = select(orders_t.c.client_order_id).where(
                    orders_t.c.client_order_id.in_(chunk)
                )
                have.update(conn.execute(query).scalars())
            new = [{"client_order_id": c, **r} for c, r in self.orders.items() if c not in have]
            old = [{"_cid": c, **r} for c, r in self.orders.items() if c in have]
            if new:
                conn.execute(insert(orders_t), new)
            if old:
                conn.execute(_UPDATE_ORDER, old)
        if self.events:
            conn.execute(insert(order_events_t), self.events)
        if self.fills:
            conn.execute(insert(fills_t), self.fills)
        for (venue, symbol), row in self.positions.items():
            params = {"_venue": venue, "_symbol": symbol, **row}
            if not conn.execute(_UPDATE_POSITION, params).rowcount:
                conn.execute(insert(positions_t), {"venue": venue, "symbol": symbol, **row})
        if self.equity:
            conn.execute(insert(equity_t), self.equity)
        self.orders, self.events, self.fills, self.fill_keys = {}, [], [], set()
        self.positions, self.equity = {}, []


def redact(payload: Any) -> Any:
    """A copy of a JSON-like payload with the values of secret-looking keys replaced."""
    if isinstance(payload, Mapping):
        return {k: "***" if _SECRET_KEY.search(str(k)) else redact(v) for k, v in payload.items()}
    if isinstance(payload, list | tuple):
        return [redact(v) for v in payload]
    return payload


def _dumps(payload: Mapping[str, Any] | None) -> str:
    return json.dumps(redact(dict(payload or {})), default=str, sort_keys=True)


@dataclass(frozen=True)
class Command:
    """A control command from the CLI or a dashboard, waiting for the engine."""

    id: int
    ts: int
    kind: str
    target: str
    payload: dict[str, Any]


def journal_url(target: str | Path | URL) -> URL:
    """A SQLAlchemy URL from a URL or a plain SQLite file path."""
    if isinstance(target, URL):
        return target
    text = str(target)
    if "://" in text:
        return make_url(text)
    return make_url(f"sqlite:///{Path(text).expanduser().resolve()}")


def _sqlite_setup(engine: Engine, busy_timeout_ms: int, wal: bool) -> None:
    """WAL, NORMAL sync and a busy timeout per connection; real BEGIN for transactions.

    Python's sqlite3 module does not emit BEGIN before SELECTs, so without taking over
    transaction control a "transaction" would not read from one consistent snapshot.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


class Journal:
    """One journal database: writes from the engine, reads for dashboards and reports."""

    def __init__(
        self, target: str | Path | URL, *, busy_timeout_ms: int = 5_000, wal: bool = True
    ) -> None:
        """target: a SQLAlchemy URL or a SQLite file path (created if missing)."""
        url = journal_url(target)
        kwargs: dict[str, Any] = {}
        is_sqlite = url.get_backend_name() == "sqlite"
        memory = is_sqlite and url.database in (None, "", ":memory:")
        if memory:
            kwargs["poolclass"] = StaticPool  # one shared connection, or each sees its own DB
            kwargs["connect_args"] = {"check_same_thread": False}
        elif is_sqlite and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self._batch: Connection | None = None
        self._pending = _Pending()  # writes of the open batch, sent in bulk (see batch)
        self.engine = create_engine(url, **kwargs)
        if is_sqlite:
            _sqlite_setup(self.engine, busy_timeout_ms, wal=wal and not memory)
        metadata.create_all(self.engine)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns of MIGRATIONS a journal made before them lacks."""
        tables = inspect(self.engine)
        for table, column in MIGRATIONS:
            present = {c["name"] for c in tables.get_columns(table)}
            if column in present:
                continue
            col = metadata.tables[table].c[column]
            kind = col.type.compile(dialect=self.engine.dialect)
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}')

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """The open batch's connection, or a transaction of its own."""
        if self._batch is not None:
            self._flush()
            yield self._batch
            return
        with self.engine.begin() as conn:
            yield conn

    def _flush(self) -> None:
        """Send the open batch's pending writes (before reads and other writes see it)."""
        if self._batch is not None and self._pending:
            self._pending.flush(self._batch)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """The open batch's connection (to see its own writes), or a fresh connection."""
        if self._batch is not None:
            self._flush()
            yield self._batch
            return
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside into one transaction: all or nothing, and far fewer
        commits (what a fast replay wants). Nested batches join the outer one. Order, event,
        fill, position and equity writes inside are gathered and sent in bulk (one executemany
        per table) before any read, any other write, and the commit; outside a batch (live
        sessions) every write is its own committed transaction, as before."""
        if self._batch is not None:
            yield
            return
        with self.engine.begin() as conn:
            self._batch = conn
            try:
                yield
                self._flush()  # the commit takes every write of the batch
            finally:
                self._batch = None
                self._pending = _Pending()

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def journal_mode(self) -> str | None:
        """SQLite's journal mode as reported by the database (None for other backends)."""
        if self.url.get_backend_name() != "sqlite":
            return None
        with self._read() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())

    # --- order manager writes (OrderJournal protocol) -----------------------------------------

    def record_order(self, order: Order) -> None:
        """Insert or update the order's current state."""
        row = {
            "strategy_id": order.strategy_id,
            "venue": order.venue,
            "symbol": order.symbol,
            "side": order.side.value,
            "type": order.type.value,
            "amount": order.amount,
            "price": order.price,
            "trigger_price": order.trigger_price,
            "time_in_force": order.time_in_force.value,
            "reduce_only": order.reduce_only,
            "status": order.status.value,
            "venue_order_id": order.venue_order_id,
            "filled": order.filled,
            "average_price": order.average_price,
            "fee": order.fee,
            "fee_currency": order.fee_currency,
            "submit_attempts": order.submit_attempts,
            "reason": order.reason,
            "created_ms": order.created_ms,
            "updated_ms": order.updated_ms,
            "decision_price": order.decision_price,
        }
        if self._batch is not None:
            self._pending.orders[order.client_order_id] = row
            return
        with self._tx() as conn:
            done = conn.execute(
                update(orders_t)
                .where(orders_t.c.client_order_id == order.client_order_id)
                .values(**row)
            ).rowcount
            if not done:
                conn.execute(insert(orders_t).values(client_order_id=order.client_order_id, **row))

    def record_event(self, event: OrderEvent) -> None:
        """Append one order state transition."""
        row = {
            "client_order_id": event.client_order_id,
            "old": event.old.value if event.old else None,
            "new": event.new.value,
            "ts": event.timestamp,
            "reason": event.reason,
        }
        if self._batch is not None:
            self._pending.events.append(row)
            return
        with self._tx() as conn:
            conn.execute(insert(order_events_t).values(**row))

    def record_fill(self, fill: Fill) -> bool:
        """Store a fill; False (and nothing written) if (venue, trade id) is already stored."""
        row = {
            "venue": fill.venue,
            "trade_id": fill.trade_id,
            "client_order_id": fill.client_order_id,
            "venue_order_id": fill.venue_order_id,
            "symbol": fill.symbol,
            "side": fill.side.value,
            "amount": fill.amount,
            "price": fill.price,
            "fee": fill.fee,
            "fee_currency": fill.fee_currency,
            "ts": fill.timestamp,
        }
        if self._batch is not None:
            key = (fill.venue, fill.trade_id)
            pending = self._pending
            if key in pending.fill_keys:
                return False
            found = self._batch.execute(_FILL_EXISTS, {"venue": key[0], "trade_id": key[1]})
            if found.first() is not None:
                return False
            pending.fill_keys.add(key)
            pending.fills.append(row)
            return True
        try:
            with self._tx() as conn, conn.begin_nested():
                conn.execute(insert(fills_t).values(**row))
        except IntegrityError:
            return False
        return True

    def record_bars(self, symbol: str, timeframe: str, bars: Iterable[Any]) -> int:
        """Store closed bars (SimBar-like: time, open, high, low, close, volume) a session
        processed, so its day can be replayed offline; bars already stored are kept. Returns
        how many were new."""
        rows = [
            {
                "symbol": symbol, "ts": int(b.time), "timeframe": timeframe, "open": b.open,
                "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
            }
            for b in bars
        ]  # fmt: skip
        if not rows:
            return 0
        key = (bars_t.c.symbol == symbol) & bars_t.c.ts.in_([r["ts"] for r in rows])
        with self._tx() as conn:
            have = set(conn.execute(select(bars_t.c.ts).where(key)).scalars())
            new = [r for r in rows if r["ts"] not in have]
            if new:
                conn.execute(insert(bars_t), new)
        return len(new)

    # --- portfolio and monitoring writes --------------------------------------------------------

    def record_position(self, position: Position, venue: str = "") -> None:
        """Insert or update one position."""
        row = {
            "quantity": position.quantity,
            "average_price": position.average_price,
            "realized_pnl": position.realized_pnl,
            "fees": position.fees,
            "funding": position.funding,
            "updated_ms": position.updated_ms,
        }
        if self._batch is not None:
            self._pending.positions[(venue, position.symbol)] = row
            return
        key = (positions_t.c.venue == venue) & (positions_t.c.symbol == position.symbol)
        with self._tx() as conn:
            if not conn.execute(update(positions_t).where(key).values(**row)).rowcount:
                conn.execute(insert(positions_t).values(venue=venue, symbol=position.symbol, **row))

    def record_balance(
        self, venue: str, asset: str, total: Decimal, free: Decimal, timestamp: int
    ) -> None:
        """Insert or update one asset balance at a venue."""
        row = {"total": total, "free": free, "updated_ms": timestamp}
        key = (balances_t.c.venue == venue) & (balances_t.c.asset == asset)
        with self._tx() as conn:
            if not conn.execute(update(balances_t).where(key).values(**row)).rowcount:
                conn.execute(insert(balances_t).values(venue=venue, asset=asset, **row))

    def record_equity(
        self,
        timestamp: int,
        equity: Decimal,
        cash: Decimal | None = None,
        unrealized_pnl: Decimal | None = None,
    ) -> None:
        """Append one equity snapshot."""
        row = {"ts": timestamp, "equity": equity, "cash": cash, "unrealized_pnl": unrealized_pnl}
        if self._batch is not None:
            self._pending.equity.append(row)
            return
        with self._tx() as conn:
            conn.execute(insert(equity_t).values(**row))

    def record_risk_event(
        self,
        kind: str,
        message: str,
        timestamp: int,
        severity: str = "warning",
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Append a risk event (limit breach, state change, reconciliation difference...)."""
        with self._tx() as conn:
            conn.execute(
                insert(risk_events_t).values(
                    ts=timestamp,
                    kind=kind,
                    severity=severity,
                    message=message,
                    payload=_dumps(payload),
                )
            )

    def record_alert(
        self, level: str, message: str, timestamp: int, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Append an alert as sent to people."""
        with self._tx() as conn:
            conn.execute(
                insert(alerts_t).values(
                    ts=timestamp, level=level, message=message, payload=_dumps(payload)
                )
            )

    # --- control commands ---------------------------------------------------------------------

    def add_command(
        self,
        kind: str,
        timestamp: int,
        target: str = "",
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue a control command for the engine; returns its id."""
        if kind not in COMMAND_KINDS:
            raise ValueError(f"unknown command {kind!r}: use one of {', '.join(COMMAND_KINDS)}")
        with self._tx() as conn:
            result = conn.execute(
                insert(commands_t).values(
                    ts=timestamp, kind=kind, target=target, payload=_dumps(payload), consumed=False
                )
            )
            return int(result.inserted_primary_key[0])

    def consume_command(self, command_id: int, timestamp: int) -> bool:
        """Mark a command consumed; False if it already was (another consumer won)."""
        with self._tx() as conn:
            return bool(
                conn.execute(
                    update(commands_t)
                    .where((commands_t.c.id == command_id) & commands_t.c.consumed.is_(False))
                    .values(consumed=True, consumed_ms=timestamp)
                ).rowcount
            )

    def pending_commands(self, kind: str | None = None) -> list[Command]:
        """Commands not yet consumed, oldest first."""
        query = select(commands_t).where(commands_t.c.consumed.is_(False))
        if kind is not None:
            query = query.where(commands_t.c.kind == kind)
        with self._read() as conn:
            rows = conn.execute(query.order_by(commands_t.c.id)).mappings().all()
        return [
            Command(r["id"], r["ts"], r["kind"], r["target"], json.loads(r["payload"]))
            for r in rows
        ]

    # --- reads (dashboards, reports, recovery) ----------------------------------------------------

    def _frame(self, query: Any, columns: list[str]) -> pd.DataFrame:
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=columns)

    def orders(self, open_only: bool = False) -> pd.DataFrame:
        """Orders (current state), newest first; money columns hold Decimals."""
        query = select(orders_t)
        if open_only:
            open_states = [s.value for s in OrderStatus if s.is_open or s is OrderStatus.PENDING]
            query = query.where(orders_t.c.status.in_(open_states))
        query = query.order_by(orders_t.c.created_ms.desc(), orders_t.c.client_order_id)
        return self._frame(query, [c.name for c in orders_t.columns])

    def order_events(self, client_order_id: str | None = None) -> pd.DataFrame:
        """State transitions in the order they happened."""
        query = select(order_events_t).order_by(order_events_t.c.id)
        if client_order_id is not None:
            query = query.where(order_events_t.c.client_order_id == client_order_id)
        return self._frame(query, [c.name for c in order_events_t.columns])

    def fills(self, since: int | None = None) -> pd.DataFrame:
        """Fills with ts >= since (ms), in journal order."""
        query = select(fills_t).order_by(fills_t.c.id)
        if since is not None:
            query = query.where(fills_t.c.ts >= since)
        return self._frame(query, [c.name for c in fills_t.columns])

    def bars(self, symbol: str | None = None) -> pd.DataFrame:
        """Journaled closed bars (open, high, low, close, volume) on a UTC index, per symbol
        (column symbol), oldest first."""
        query = select(bars_t).order_by(bars_t.c.symbol, bars_t.c.ts)
        if symbol is not None:
            query = query.where(bars_t.c.symbol == symbol)
        frame = self._frame(query, [c.name for c in bars_t.columns])
        frame.index = pd.DatetimeIndex(
            pd.to_datetime(frame["ts"].astype("int64"), unit="ms", utc=True), name="time"
        )
        return frame

    def equity_curve(self) -> pd.DataFrame:
        """Equity snapshots indexed by UTC time (column ts keeps the milliseconds)."""
        frame = self._frame(
            select(
                equity_t.c.ts, equity_t.c.equity, equity_t.c.cash, equity_t.c.unrealized_pnl
            ).order_by(equity_t.c.ts, equity_t.c.id),
            ["ts", "equity", "cash", "unrealized_pnl"],
        )
        frame.index = pd.DatetimeIndex(
            pd.to_datetime(frame["ts"].astype("int64"), unit="ms", utc=True), name="time"
        )
        return frame

    def positions(self, include_flat: bool = False) -> pd.DataFrame:
        """Current positions per venue and symbol."""
        frame = self._frame(
            select(positions_t).order_by(positions_t.c.venue, positions_t.c.symbol),
            [c.name for c in positions_t.columns],
        )
        if not include_flat and len(frame):
            frame = frame[frame["quantity"] != 0].reset_index(drop=True)
        return frame

    def balances(self) -> pd.DataFrame:
        """Current balances per venue and asset."""
        return self._frame(
            select(balances_t).order_by(balances_t.c.venue, balances_t.c.asset),
            [c.name for c in balances_t.columns],
        )

    def events(self, kind: str | None = None, after_id: int = 0) -> pd.DataFrame:
        """Risk events, oldest first; payload decoded. after_id: only the newer ones (a
        status line per bar reads what is new, not the whole table)."""
        query = select(risk_events_t).order_by(risk_events_t.c.id)
        if after_id:
            query = query.where(risk_events_t.c.id > after_id)
        if kind is not None:
            query = query.where(risk_events_t.c.kind == kind)
        frame = self._frame(query, [c.name for c in risk_events_t.columns])
        frame["payload"] = [json.loads(p) for p in frame["payload"]]
        return frame

    def alerts(self) -> pd.DataFrame:
        """Alerts, oldest first; payload decoded."""
        frame = self._frame(
            select(alerts_t).order_by(alerts_t.c.id), [c.name for c in alerts_t.columns]
        )
        frame["payload"] = [json.loads(p) for p in frame["payload"]]
        return frame

    def count(self, table: str) -> int:
        """Number of rows in one journal table."""
        t = metadata.tables[table]
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(t)).scalar_one())

    def load_fills(self, client_order_id: str | None = None) -> list[Fill]:
        """Fills as objects in journal order (to rebuild a portfolio after a restart)."""
        query = select(fills_t).order_by(fills_t.c.id)
        if client_order_id is not None:
            query = query.where(fills_t.c.client_order_id == client_order_id)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Fill(
                trade_id=r["trade_id"],
                client_order_id=r["client_order_id"],
                symbol=r["symbol"],
                side=Side(r["side"]),
                amount=r["amount"],
                price=r["price"],
                fee=r["fee"],
                fee_currency=r["fee_currency"],
                timestamp=r["ts"],
                venue=r["venue"],
                venue_order_id=r["venue_order_id"],
            )
            for r in rows
        ]

    def load_orders(self, open_only: bool = True) -> list[Order]:
        """Orders as objects for recovery; filled/average/fees are rebuilt from the fills table,
        which is written first, so a crash between a fill and its order update loses nothing."""
        query = select(orders_t).order_by(orders_t.c.created_ms, orders_t.c.client_order_id)
        if open_only:
            query = query.where(
                orders_t.c.status.in_([s.value for s in OrderStatus if not s.is_terminal])
            )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        fills_by_order: dict[str, list[Fill]] = {}
        for f in self.load_fills():
            fills_by_order.setdefault(f.client_order_id, []).append(f)
        orders = []
        for r in rows:
            order = Order(
                client_order_id=r["client_order_id"],
                symbol=r["symbol"],
                side=Side(r["side"]),
                type=OrderType(r["type"]),
                amount=r["amount"],
                created_ms=r["created_ms"],
                price=r["price"],
                trigger_price=r["trigger_price"],
                time_in_force=TimeInForce(r["time_in_force"]),
                reduce_only=r["reduce_only"],
                strategy_id=r["strategy_id"],
                venue=r["venue"],
                status=OrderStatus(r["status"]),
                venue_order_id=r["venue_order_id"],
                fee_currency=r["fee_currency"],
                updated_ms=r["updated_ms"],
                submit_attempts=r["submit_attempts"],
                reason=r["reason"],
                decision_price=r["decision_price"],
            )
            fills = fills_by_order.get(order.client_order_id, [])
            if fills:
                order.filled = sum((f.amount for f in fills), Decimal(0))
                order.average_price = sum((f.notional for f in fills), Decimal(0)) / order.filled
                order.fee = sum((f.fee for f in fills), Decimal(0))
                order.fill_ids = {f.trade_id for f in fills}
            orders.append(order)
        return orders
