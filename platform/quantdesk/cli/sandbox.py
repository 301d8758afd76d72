"""`quantdesk sandbox`: run the local Binance-compatible exchange."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.data.symbols import parse_symbols
from quantdesk.errors import ConfigError

DEFAULT_SYMBOLS = "BTC/USDT,ETH/USDT"
ADMIN_TOKEN_ENV = "QUANTDESK_SANDBOX_ADMIN_TOKEN"


def _amount(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{what}: {text!r} must be a non-negative number")
    return value


def parse_balances(items: tuple[str, ...]) -> dict[str, Decimal]:
    """--balance ASSET=AMOUNT options as a dict (empty when none given)."""
    out = {}
    for item in items:
        asset, sep, amount = item.partition("=")
        if not sep or not asset.strip().isalnum():
            raise ConfigError(f"--balance must look like USDT=100000, got {item!r}")
        out[asset.strip().upper()] = _amount(amount.strip(), f"--balance {asset}")
    return out


def load_accounts(path: str) -> list:
    """Accounts from a TOML file: [[accounts]] api_key, api_secret, balances = {USDT = "1000"}."""
    from quantdesk.sandbox import AccountConfig

    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read accounts file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"accounts file {path} is not valid TOML: {exc}") from None
    out = []
    for i, entry in enumerate(data.get("accounts", [])):
        try:
            key, secret = str(entry["api_key"]), str(entry["api_secret"])
        except (KeyError, TypeError):
            raise ConfigError(f"{path}: accounts[{i}] needs api_key and api_secret") from None
        balances = {
            str(a).upper(): _amount(v, f"{path}: accounts[{i}] {a}")
            for a, v in dict(entry.get("balances", {})).items()
        }
        out.append(AccountConfig(key, secret, balances))
    if not out:
        raise ConfigError(f"{path} defines no [[accounts]]")
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8800, show_default=True)
@click.option(
    "--symbols",
    default=DEFAULT_SYMBOLS,
    show_default=True,
    help="Spot symbols; each also gets its USDT perpetual.",
)
@click.option(
    "--data",
    "data",
    default="synthetic",
    show_default=True,
    help="'synthetic', 'store' (the configured data root) or a data-root path with 1m bars.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Synthetic market seed.")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=30,
    show_default=True,
    help="Synthetic market length.",
)
@click.option(
    "--speed",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="Replay speed: 60 = one 1m bar per second; 0 = manual clock (POST /sandbox/advance).",
)
@click.option(
    "--history-bars",
    type=click.IntRange(1),
    default=1440,
    show_default=True,
    help="Bars already visible when the clock starts.",
)
@click.option("--api-key", default="sandbox-key", show_default=True)
@click.option("--api-secret", default="sandbox-secret", show_default=True)
@click.option(
    "--balance",
    "balances",
    multiple=True,
    metavar="ASSET=AMOUNT",
    help="Starting balance of the default account (repeatable; default USDT=100000 BTC=1).",
)
@click.option(
    "--accounts",
    "accounts_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file with more [[accounts]].",
)
@click.option("--maker-fee", default="0.001", show_default=True, help="Spot maker fee rate.")
@click.option("--taker-fee", default="0.001", show_default=True, help="Spot taker fee rate.")
@click.option("--futures-maker-fee", default="0.0002", show_default=True)
@click.option("--futures-taker-fee", default="0.0004", show_default=True)
@click.option(
    "--spread-bps",
    default="2",
    show_default=True,
    help="Half-spread of derived books, in basis points.",
)
@click.option(
    "--depth-levels",
    type=click.IntRange(1, 5000),
    default=1000,
    show_default=True,
    help="Book levels per side (what /depth?limit= can return).",
)
@click.option(
    "--depth-volume-fraction",
    default="0.05",
    show_default=True,
    help="Size of each book level as a fraction of the mean 1m volume of the last hour.",
)
@click.option(
    "--weight-limit",
    type=click.IntRange(1),
    default=6000,
    show_default=True,
    help="Spot request weight per IP per minute.",
)
@click.option(
    "--futures-weight-limit",
    type=click.IntRange(1),
    default=2400,
    show_default=True,
    help="USD-M request weight per IP per minute.",
)
@click.option(
    "--funding-hours",
    type=click.IntRange(1, 168),
    default=None,
    help="Perpetuals settle funding every N hours (default: as the replayed data does, 8).",
)
@click.option(
    "--funding-offset",
    type=click.FloatRange(-0.01, 0.01),
    default=0.0,
    show_default=True,
    help="Added to the funding rate per hour: a second sandbox then pays another rate.",
)
@click.option(
    "--admin/--no-admin",
    "admin",
    default=None,
    help="Serve /sandbox/ admin and fault endpoints (default: only on loopback binds).",
)
@click.pass_obj
def sandbox(
    app: AppContext,
    host: str,
    port: int,
    symbols: str,
    data: str,
    seed: int,
    days: int,
    speed: float,
    history_bars: int,
    api_key: str,
    api_secret: str,
    balances: tuple[str, ...],
    accounts_file: str | None,
    maker_fee: str,
    taker_fee: str,
    futures_maker_fee: str,
    futures_taker_fee: str,
    spread_bps: str,
    depth_levels: int,
    depth_volume_fraction: str,
    weight_limit: int,
    futures_weight_limit: int,
    funding_hours: int | None,
    funding_offset: float,
    admin: bool | None,
) -> None:
    """Run a local Binance-compatible exchange (spot /api/v3 + USD-M /fapi) replaying bars."""
    from quantdesk.sandbox import AccountConfig, Sandbox, SandboxConfig, run
    from quantdesk.sandbox.market import store_series, synthetic_series
    from quantdesk.sandbox.state import DEFAULT_BALANCES
    from quantdesk.venues.book import BookConfig
    from quantdesk.venues.matching import FeeSchedule

    spot = parse_symbols(symbols)
    if any(":" in s for s in spot):
        raise ConfigError("--symbols takes spot symbols (BTC/USDT); perpetuals are added")
    accounts = [
        AccountConfig(api_key, api_secret, parse_balances(balances) or dict(DEFAULT_BALANCES))
    ]
    if accounts_file:
        accounts += load_accounts(accounts_file)
    if len({a.key for a in accounts}) != len(accounts):
        raise ConfigError("api keys must be unique across accounts")
    token_from_env = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if os.environ.get(ADMIN_TOKEN_ENV) is not None and len(token_from_env) < 16:
        raise ConfigError(f"${ADMIN_TOKEN_ENV} must hold at least 16 characters")
    config = SandboxConfig(
        symbols=spot,
        seed=seed,
        days=days,
        speed=speed,
        history_bars=history_bars,
        accounts=accounts,
        book=BookConfig(
            spread_bps=_amount(spread_bps, "--spread-bps"),
            levels=depth_levels,
            level_volume_fraction=_amount(depth_volume_fraction, "--depth-volume-fraction"),
        ),
        spot_fees=FeeSchedule(_amount(maker_fee, "--maker-fee"), _amount(taker_fee, "--taker-fee")),
        perp_fees=FeeSchedule(
            _amount(futures_maker_fee, "--futures-maker-fee"),
            _amount(futures_taker_fee, "--futures-taker-fee"),
        ),
        weight_limit=weight_limit,
        futures_weight_limit=futures_weight_limit,
        funding_hours=funding_hours,
        funding_offset=funding_offset,
        admin=_is_loopback(host) if admin is None else admin,
    )
    if token_from_env:
        config.admin_token = token_from_env
    if data == "synthetic":
        series = synthetic_series(spot, seed, days)
    else:
        from quantdesk.data.store import DataStore

        store = app.store if data == "store" else DataStore(data)
        series = store_series(store, spot)
    venue = Sandbox(config, series)
    click.echo(
        f"replaying {', '.join(venue.series)} ({venue.n_bars} bars, speed {speed:g}); "
        f"accounts: {', '.join(a.key for a in accounts)}; admin endpoints "
        f"{'on' if config.admin else 'off'}"
    )
    if config.admin:
        # A generated token is shown once so the operator can use it; one from the environment
        # is already known to them and stays out of the terminal scrollback.
        shown = f"from ${ADMIN_TOKEN_ENV}" if token_from_env else config.admin_token
        click.echo(f"admin token: {shown} (send 'Authorization: Bearer <token>' to /sandbox/)")
    run(venue, host, port, announce=click.echo)
