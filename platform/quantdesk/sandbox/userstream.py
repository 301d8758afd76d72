"""Binance user data streams: listenKeys, and the events the matching core's changes produce.

listenKeys (spot `/api/v3/userDataStream`, USD-M `/fapi/v1/listenKey`; POST create, PUT keep
alive, DELETE close; API key only, no signature) live 60 minutes from the last keepalive; POST
while one is active returns it and extends it, as on Binance. The matching core calls
`UserEvents.on_core_event` on every order, fill, funding payment and admin balance change,
and it renders Binance's events at that moment (spot `executionReport` plus
`outboundAccountPosition` when free/locked changed; USD-M `ORDER_TRADE_UPDATE` plus
`ACCOUNT_UPDATE` for fills, funding and deposits). The stream hub (streams.py) sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quantdesk.sandbox import formats as fmt
from quantdesk.sandbox.auth import DEFAULT_RECV_WINDOW, MAX_RECV_WINDOW
from quantdesk.sandbox.errors import BinanceError, bad_param
from quantdesk.venues.accounts import Account
from quantdesk.venues.matching import CoreEvent
from quantdesk.venues.models import ZERO, Fill, MarketSpec, Order, TimeInForce

if TYPE_CHECKING:
    from quantdesk.sandbox.state import Sandbox

LISTEN_KEY_TTL_S = 3600.0  # Binance: a listenKey expires 60 minutes after the last keepalive
NO_LISTEN_KEY = (400, -1125, "This listenKey does not exist.")
_ALPHABET = string.ascii_letters + string.digits
PENDING_MAX = 100_000


@dataclass
class ListenKey:
    """One user data stream key: whose, which market, and until when (monotonic seconds)."""

    key: str
    account: str
    futures: bool
    expires: float


class ListenKeys:
    """Active listenKeys, one per (account, market) as on Binance."""

    def __init__(
        self, wall: Callable[[], float] = time.monotonic, ttl_s: float = LISTEN_KEY_TTL_S
    ) -> None:
        self.wall = wall
        self.ttl_s = ttl_s
        self.keys: dict[str, ListenKey] = {}

    def create(self, account: str, futures: bool) -> str:
        """A new key, or the active one of this account and market extended."""
        for lk in self.keys.values():
            if (lk.account, lk.futures) == (account, futures) and self.get(lk.key):
                lk.expires = self.wall() + self.ttl_s
                return lk.key
        key = "".join(secrets.choice(_ALPHABET) for _ in range(60))
        self.keys[key] = ListenKey(key, account, futures, self.wall() + self.ttl_s)
        return key

    def _mine(self, account: str, futures: bool, key: str | None) -> ListenKey:
        """The key named (spot) or the account's key (USD-M has no listenKey parameter)."""
        for lk in self.keys.values():
            mine = (lk.account, lk.futures) == (account, futures) and key in (None, lk.key)
            if mine and self.get(lk.key):
                return lk
        raise BinanceError(*NO_LISTEN_KEY)

    def keepalive(self, account: str, futures: bool, key: str | None) -> str:
        """Extend a key by another 60 minutes; -1125 when it does not exist (or expired)."""
        lk = self._mine(account, futures, key)
        lk.expires = self.wall() + self.ttl_s
        return lk.key

    def close(self, account: str, futures: bool, key: str | None) -> None:
        """Delete a key: its streams are closed at the hub's next look."""
        del self.keys[self._mine(account, futures, key).key]

    def get(self, key: str) -> ListenKey | None:
        """The key if it is active."""
        lk = self.keys.get(key)
        return lk if lk is not None and lk.expires > self.wall() else None


# -- REST handlers (security type USER_STREAM: X-MBX-APIKEY only) -------------------------------


def _listen_key_param(params: dict[str, str], required: bool) -> str | None:
    key = params.get("listenKey") or None
    if key is None and required:
        raise bad_param(
            "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed."
        )
    return key


def listen_key(futures: bool, method: str) -> Callable[..., Any]:
    """POST / PUT / DELETE the listenKey of the calling API key (spot or USD-M)."""

    def handler(sb: Sandbox, params: dict[str, str], account: Account | None) -> Any:
        assert account is not None
        keys = sb.listen_keys
        if method == "POST":
            return {"listenKey": keys.create(account.name, futures)}
        given = _listen_key_param(params, required=not futures)
        if method == "PUT":
            key = keys.keepalive(account.name, futures, given)
            return {"listenKey": key} if futures else {}
        keys.close(account.name, futures, given)
        return {}

    return handler


def verify_ws_signature(
    secrets_by_key: dict[str, str], params: dict[str, Any], server_ms: int
) -> str:
    """WebSocket API signature check: HMAC-SHA256 over the other params sorted by name."""
    api_key = params.get("apiKey")
    if not api_key:
        raise BinanceError(400, -1102, "Mandatory parameter 'apiKey' was not sent.")
    secret = secrets_by_key.get(api_key)
    if secret is None:
        raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    signature = params.get("signature")
    if not signature:
        raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent.")
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature).lower()):
        raise BinanceError(400, -1022, "Signature for this request is not valid.")
    try:
        timestamp = int(params["timestamp"])
        recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW))
    except (KeyError, ValueError, TypeError):
        raise BinanceError(400, -1102, "Mandatory parameter 'timestamp' was not sent.") from None
    if not 0 < recv_window <= MAX_RECV_WINDOW:
        raise BinanceError(400, -1131, "recvWindow must be less than 60000")
    if timestamp > server_ms + 1000 or server_ms - timestamp > recv_window:
        raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    return api_key


# -- events -----------------------------------------------------------------------------------


def execution_report(
    order: Order, spec: MarketSpec, kind: str, fill: Fill | None, now: int, exec_id: int
) -> dict[str, Any]:
    """Spot `executionReport` for one execution type (NEW, TRADE, CANCELED, EXPIRED)."""
    t = fill is not None
    resting = order.type.has_limit and order.tif is TimeInForce.GTC
    on_book = (
        order.status.is_open and resting and (not order.type.is_conditional or order.triggered)
    )
    return {
        "e": "executionReport", "E": now, "s": spec.id, "c": order.client_id,
        "S": order.side.value.upper(), "o": order.type.value, "f": order.tif.value,
        "q": fmt.s(order.qty), "p": fmt.s(order.price or ZERO),
        "P": fmt.s(order.stop_price or ZERO), "F": "0", "g": -1,
        "C": order.client_id if kind == "CANCELED" else "", "x": kind,
        "X": order.status.value.upper(), "r": "NONE", "i": order.id,
        "l": fmt.s(fill.qty) if t else "0", "z": fmt.s(order.filled),
        "L": fmt.s(fill.price) if t else "0", "n": fmt.s(fill.commission) if t else "0",
        "N": fill.commission_asset if t else None, "T": fill.time if t else order.update_time,
        "t": fill.trade_id if t else -1, "I": exec_id, "w": on_book,
        "m": fill.maker if t else False, "M": t, "O": order.time,
        "Z": fmt.s(order.cum_quote), "Y": fmt.s(fill.quote_qty) if t else "0",
        "Q": fmt.s(order.quote_qty or ZERO), "W": order.time, "V": "NONE",
    }  # fmt: skip


def order_trade_update(
    order: Order, spec: MarketSpec, kind: str, fill: Fill | None, now: int
) -> dict[str, Any]:
    """USD-M `ORDER_TRADE_UPDATE`; commission fields only with a trade, as Binance pushes them."""
    kind_name = fmt.futures_order(order, spec)["type"]
    o: dict[str, Any] = {
        "s": spec.id, "c": order.client_id, "S": order.side.value.upper(), "o": kind_name,
        "f": order.tif.value, "q": fmt.s(order.qty), "p": fmt.s(order.price or ZERO),
        "ap": fmt.s(order.avg_price), "sp": fmt.s(order.stop_price or ZERO), "x": kind,
        "X": order.status.value.upper(), "i": order.id,
        "l": fmt.s(fill.qty) if fill else "0", "z": fmt.s(order.filled),
        "L": fmt.s(fill.price) if fill else "0",
        "T": fill.time if fill else order.update_time, "t": fill.trade_id if fill else 0,
        "b": "0", "a": "0", "m": fill.maker if fill else False, "R": order.reduce_only,
        "wt": "CONTRACT_PRICE", "ot": kind_name, "ps": "BOTH", "cp": False,
        "rp": fmt.s(fill.realized_pnl) if fill else "0", "pP": False, "si": 0, "ss": 0,
        "V": "NONE", "pm": "NONE", "gtd": 0,
    }  # fmt: skip
    if fill is not None:
        o |= {"N": fill.commission_asset, "n": fmt.s(fill.commission)}
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": o["T"], "o": o}


class UserEvents:
    """Renders core events into Binance user data events, queued for the stream hub.

    Events are rendered synchronously, when the core reports the change, so each one shows
    the order and balances as they were then; `pending` is drained by the hub's pump.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        # bounded: a Sandbox driven without a server (nobody drains) must not grow forever
        self.pending: deque[tuple[int, str, bool, dict[str, Any]]] = deque(maxlen=PENDING_MAX)
        self.seq = 0  # events rendered so far: a stream gets only those after it connected
        self._exec_ids = itertools.count(1)
        self._sent: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        # USD-M "cr" (accumulated realized PnL) per (account, symbol), kept as fills come
        self._realized: dict[tuple[str, str], Decimal] = {}

    def install(self) -> None:
        """Listen to the sandbox's (new) core; remember the balances clients start from."""
        self._sent = {
            (name, asset): (b.free, b.locked)
            for name, acct in self.sb.core.accounts.items()
            for asset, b in acct.balances.items()
        }
        self.pending.clear()
        self._realized = {}
        self.sb.core.listener = self.on_core_event

    def drain(self) -> list[tuple[int, str, bool, dict[str, Any]]]:
        """Everything queued so far, oldest first: (seq, account, futures, payload)."""
        out = []
        while self.pending:
            out.append(self.pending.popleft())
        return out

    def on_core_event(self, ev: CoreEvent) -> None:
        """The matching core's hook: render and queue this change's events."""
        core, acct = self.sb.core, ev.account
        now = core.now
        if ev.order is not None:
            spec = core.markets[ev.order.symbol]
            if spec.perp:
                if ev.fill is not None:
                    cr = (acct.name, spec.symbol)
                    self._realized[cr] = self._realized.get(cr, ZERO) + ev.fill.realized_pnl
                    self._push(acct, True, self._account_update(acct, "ORDER", [spec], now))
                payload = order_trade_update(ev.order, spec, ev.kind, ev.fill, now)
                self._push(acct, True, payload)
            else:
                exec_id = next(self._exec_ids)
                payload = execution_report(ev.order, spec, ev.kind, ev.fill, now, exec_id)
                self._push(acct, False, payload)
                self._balances(acct, [spec.base, spec.quote], now, changed_only=True)
        elif ev.kind == "FUNDING" and ev.symbol is not None:
            spec = core.markets[ev.symbol]
            # Binance: a funding fee on a cross position pushes the balance only, no position
            self._push(acct, True, self._account_update(acct, "FUNDING_FEE", [], now, spec.quote))
        elif ev.kind == "BALANCES":
            if ev.futures:
                for asset in ev.assets:
                    self._push(acct, True, self._account_update(acct, "DEPOSIT", [], now, asset))
            else:
                self._balances(acct, list(ev.assets), now, changed_only=False)

    def _push(self, acct: Account, futures: bool, payload: dict[str, Any]) -> None:
        self.seq += 1
        self.pending.append((self.seq, acct.name, futures, payload))

    def _balances(self, acct: Account, assets: list[str], now: int, changed_only: bool) -> None:
        """`outboundAccountPosition` for the assets whose free or locked amount changed."""
        rows = []
        for asset in dict.fromkeys(assets):
            b = acct.balance(asset)
            state = (b.free, b.locked)
            if changed_only and self._sent.get((acct.name, asset)) == state:
                continue
            self._sent[(acct.name, asset)] = state
            rows.append({"a": asset, "f": fmt.s(b.free), "l": fmt.s(b.locked)})
        if rows:
            payload = {"e": "outboundAccountPosition", "E": now, "u": now, "B": rows}
            self._push(acct, False, payload)

    def _account_update(
        self, acct: Account, reason: str, specs: list[MarketSpec], now: int, asset: str = ""
    ) -> dict[str, Any]:
        """USD-M `ACCOUNT_UPDATE`: the wallet asset and (for fills) the position after it."""
        asset = asset or (specs[0].quote if specs else "USDT")
        wallet = acct.wallet.get(asset, ZERO)
        balances = [{"a": asset, "wb": fmt.s(wallet), "cw": fmt.s(wallet), "bc": "0"}]
        positions = []
        for spec in specs:
            pos = acct.position(spec.symbol)
            mark = self.sb.core.mark(spec.symbol)
            kind = self.sb.margin_types.get((acct.name, spec.symbol), "cross")
            realized = self._realized.get((acct.name, spec.symbol), ZERO)
            positions.append({
                "s": spec.id, "pa": fmt.s(pos.qty), "ep": fmt.s(pos.entry),
                "bep": fmt.s(pos.entry), "cr": fmt.s(realized), "up": fmt.s(pos.unrealized(mark)),
                "mt": kind, "iw": fmt.s(pos.margin if kind == "isolated" else ZERO),
                "ps": "BOTH", "ma": spec.quote,
            })  # fmt: skip
        data = {"m": reason, "B": balances, "P": positions}
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": data}
