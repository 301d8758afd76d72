"""Binance JSON shapes for orders, trades, balances and positions (the fields ccxt reads)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from quantdesk.venues.accounts import Account, Position
from quantdesk.venues.models import ZERO, Fill, MarketSpec, Order, OrderStatus, OrderType

_FUTURES_TYPES = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.LIMIT_MAKER: "LIMIT",
    OrderType.STOP_LOSS: "STOP_MARKET",
    OrderType.STOP_LOSS_LIMIT: "STOP",
    OrderType.TAKE_PROFIT: "TAKE_PROFIT_MARKET",
    OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT",
}
FUTURES_TO_CORE = {v: k for k, v in _FUTURES_TYPES.items() if k is not OrderType.LIMIT_MAKER}


def s(value: Decimal | int | None) -> str:
    """Decimal as Binance prints it: plain notation, no exponent."""
    if value is None:
        return "0"
    text = format(Decimal(value).normalize(), "f")
    return "0" if text == "-0" else text


def spot_order(order: Order, spec: MarketSpec, full: bool = False) -> dict[str, Any]:
    """GET /api/v3/order shape; with full=True the POST FULL shape with fills."""
    out: dict[str, Any] = {
        "symbol": spec.id,
        "orderId": order.id,
        "orderListId": -1,
        "clientOrderId": order.client_id,
        "price": s(order.price or ZERO),
        "origQty": s(order.qty),
        "executedQty": s(order.filled),
        "cummulativeQuoteQty": s(order.cum_quote),
        "status": order.status.value.upper(),
        "timeInForce": order.tif.value,
        "type": order.type.value,
        "side": order.side.value.upper(),
        "stopPrice": s(order.stop_price or ZERO),
        "icebergQty": "0",
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": not order.type.is_conditional or order.triggered,
        "workingTime": order.time,
        "origQuoteOrderQty": s(order.quote_qty or ZERO),
        "selfTradePreventionMode": "NONE",
    }
    if full:
        out["transactTime"] = order.update_time
        out["fills"] = [
            {
                "price": s(f.price),
                "qty": s(f.qty),
                "commission": s(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in order.fills
        ]
    return out


def futures_order(order: Order, spec: MarketSpec) -> dict[str, Any]:
    """GET/POST /fapi/v1/order shape."""
    kind = _FUTURES_TYPES[order.type]
    return {
        "orderId": order.id,
        "symbol": spec.id,
        "status": order.status.value.upper(),
        "clientOrderId": order.client_id,
        "price": s(order.price or ZERO),
        "avgPrice": s(order.avg_price),
        "origQty": s(order.qty),
        "executedQty": s(order.filled),
        "cumQty": s(order.filled),
        "cumQuote": s(order.cum_quote),
        "timeInForce": order.tif.value,
        "type": kind,
        "origType": kind,
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": order.side.value.upper(),
        "positionSide": "BOTH",
        "stopPrice": s(order.stop_price or ZERO),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "time": order.time,
        "updateTime": order.update_time,
    }


def algo_order(order: Order, spec: MarketSpec) -> dict[str, Any]:
    """/fapi/v1/algoOrder shape (USD-M conditional orders)."""
    if order.status.is_open:
        status = "NEW"
    elif order.status is OrderStatus.FILLED:
        status = "FINISHED"
    else:
        status = order.status.value.upper()
    return {
        "algoId": order.id,
        "clientAlgoId": order.client_id,
        "algoType": "CONDITIONAL",
        "orderType": _FUTURES_TYPES[order.type],
        "symbol": spec.id,
        "side": order.side.value.upper(),
        "positionSide": "BOTH",
        "timeInForce": order.tif.value,
        "quantity": s(order.qty),
        "algoStatus": status,
        "triggerPrice": s(order.stop_price),
        "price": s(order.price or ZERO),
        "executedQty": s(order.filled),
        "avgPrice": s(order.avg_price),
        "actualOrderId": str(order.id) if order.triggered else "",
        "selfTradePreventionMode": "NONE",
        "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE",
        "closePosition": False,
        "priceProtect": False,
        "reduceOnly": order.reduce_only,
        "createTime": order.time,
        "updateTime": order.update_time,
        "triggerTime": order.update_time if order.triggered else 0,
        "goodTillDate": 0,
    }


def spot_trade(fill: Fill, spec: MarketSpec) -> dict[str, Any]:
    """GET /api/v3/myTrades item."""
    return {
        "symbol": spec.id,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": -1,
        "price": s(fill.price),
        "qty": s(fill.qty),
        "quoteQty": s(fill.quote_qty),
        "commission": s(fill.commission),
        "commissionAsset": fill.commission_asset,
        "time": fill.time,
        "isBuyer": fill.side.value == "buy",
        "isMaker": fill.maker,
        "isBestMatch": True,
    }


def futures_trade(fill: Fill, spec: MarketSpec) -> dict[str, Any]:
    """GET /fapi/v1/userTrades item."""
    return {
        "buyer": fill.side.value == "buy",
        "commission": s(fill.commission),
        "commissionAsset": fill.commission_asset,
        "id": fill.trade_id,
        "maker": fill.maker,
        "orderId": fill.order_id,
        "price": s(fill.price),
        "qty": s(fill.qty),
        "quoteQty": s(fill.quote_qty),
        "realizedPnl": s(fill.realized_pnl),
        "side": fill.side.value.upper(),
        "positionSide": "BOTH",
        "symbol": spec.id,
        "time": fill.time,
    }


def position_risk(
    pos: Position, spec: MarketSpec, mark: Decimal, now: int, margin_type: str = "cross"
) -> dict[str, Any]:
    """GET /fapi/v3/positionRisk item (the margin model is isolated-style whatever the
    margin type says, see venues.accounts)."""
    margin = pos.margin
    upnl = pos.unrealized(mark)
    return {
        "symbol": spec.id,
        "positionSide": "BOTH",
        "positionAmt": s(pos.qty),
        "entryPrice": s(pos.entry),
        "breakEvenPrice": s(pos.entry),
        "markPrice": s(mark),
        "unRealizedProfit": s(upnl),
        "liquidationPrice": s(spec.round_price(pos.liquidation_price)),
        "isolatedMargin": s(margin + upnl),
        "isolatedWallet": s(margin),
        "notional": s(pos.qty * mark),
        "marginAsset": spec.quote,
        "initialMargin": s(margin),
        "maintMargin": s(abs(pos.qty) * mark * Decimal("0.004")),
        "positionInitialMargin": s(margin),
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "leverage": str(pos.leverage),
        "marginType": margin_type,
        "updateTime": pos.update_time or now,
    }


def futures_account(
    account: Account, specs: dict[str, MarketSpec], marks: dict[str, Decimal], now: int
) -> dict[str, Any]:
    """GET /fapi/v2|v3/account: wallet assets plus positions."""
    positions = [(sym, p) for sym, p in account.positions.items() if p.qty]
    upnl = sum((p.unrealized(marks[sym]) for sym, p in positions), ZERO)
    pos_margin = sum((p.margin for _, p in positions), ZERO)
    assets = []
    for asset, wallet in sorted(account.wallet.items()):
        is_usdt = asset == "USDT"
        a_upnl = upnl if is_usdt else ZERO
        initial = pos_margin + account.order_margin if is_usdt else ZERO
        available = account.available(marks, asset) if is_usdt else wallet
        assets.append(
            {
                "asset": asset,
                "walletBalance": s(wallet),
                "unrealizedProfit": s(a_upnl),
                "marginBalance": s(wallet + a_upnl),
                "maintMargin": "0",
                "initialMargin": s(initial),
                "positionInitialMargin": s(pos_margin if is_usdt else ZERO),
                "openOrderInitialMargin": s(account.order_margin if is_usdt else ZERO),
                "crossWalletBalance": s(wallet),
                "crossUnPnl": s(a_upnl),
                "availableBalance": s(available),
                "maxWithdrawAmount": s(available),
                "updateTime": now,
            }
        )
    wallet = account.wallet_balance()
    return {
        "totalInitialMargin": s(pos_margin + account.order_margin),
        "totalMaintMargin": "0",
        "totalWalletBalance": s(wallet),
        "totalUnrealizedProfit": s(upnl),
        "totalMarginBalance": s(wallet + upnl),
        "availableBalance": s(account.available(marks)),
        "maxWithdrawAmount": s(account.available(marks)),
        "assets": assets,
        "positions": [
            {
                "symbol": specs[sym].id,
                "positionSide": "BOTH",
                "positionAmt": s(p.qty),
                "unrealizedProfit": s(p.unrealized(marks[sym])),
                "isolatedMargin": s(p.margin),
                "notional": s(p.qty * marks[sym]),
                "isolatedWallet": s(p.margin),
                "initialMargin": s(p.margin),
                "maintMargin": "0",
                "updateTime": p.update_time,
            }
            for sym, p in positions
        ],
    }
