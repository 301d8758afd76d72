"""quantdesk.toml: pydantic models for the project's configuration, and loading it."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from quantdesk.alerts import AlertsConfig
from quantdesk.errors import ConfigError
from quantdesk.risk.limits import RiskConfig

if TYPE_CHECKING:
    from quantdesk.data.store import DataStore

CONFIG_FILE = "quantdesk.toml"
DATA_ENV = "QUANTDESK_DATA"


class _Model(BaseModel):
    # Unknown keys are typos until proven otherwise: refuse them instead of ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Model):
    """Where market data lives."""

    root: Path = Path("data")


class VenueConfig(_Model):
    """One trading venue: a ccxt exchange, its market type, and where its credentials come from."""

    exchange: str = Field(min_length=1, description="ccxt exchange id, e.g. binance")
    market: Literal["spot", "usdm"] = "spot"
    sandbox_url: str | None = Field(default=None, description="base URL of a quantdesk sandbox")
    api_key_env: str | None = Field(default=None, description="environment variable with the key")
    api_secret_env: str | None = None
    rate_limit_ms: float | None = Field(
        default=None,
        gt=0,
        le=60_000,
        description="ccxt's rateLimit: milliseconds per unit of request cost (Binance's tables "
        "assume its published weight limits at 50); lower it only where the account's "
        "or the sandbox's limit is higher",
    )
    feed: Literal["poll", "streams"] = Field(
        default="poll",
        description="where live/paper sessions get closed candles: poll (REST fetch_ohlcv every "
        "--poll seconds) or streams (ccxt.pro watch_ohlcv, with REST backfill after each "
        "reconnect; falls back to poll when ccxt has no ccxt.pro class for the exchange)",
    )
    stream_stall_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="feed = streams: a stream silent this long is reconnected and backfilled",
    )

    @field_validator("sandbox_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    def credentials(self, env: Mapping[str, str] | None = None) -> tuple[SecretStr, SecretStr]:
        """API key and secret read from the named environment variables (secret-wrapped)."""
        env = os.environ if env is None else env
        values = []
        for field in ("api_key_env", "api_secret_env"):
            name = getattr(self, field)
            if not name:
                raise ConfigError(f"venue {self.exchange}: {field} is not set in the config")
            if not env.get(name):
                raise ConfigError(f"environment variable {name} ({field}) is empty or unset")
            values.append(SecretStr(env[name]))
        return values[0], values[1]


class StorageConfig(_Model):
    """Where optimization studies live, so a team's workers all name the same one."""

    optuna: str | None = Field(
        default=None,
        min_length=1,
        description="optuna storage (URL such as postgresql+psycopg://USER@HOST/optuna, or a "
        "SQLite path) used when --storage is not given",
    )


class ArbConfig(_Model):
    """`[arb]`: live funding-rate arbitrage between two configured venues (`quantdesk arb run`)."""

    venue_a: str = Field(min_length=1, description="a [venues.NAME] (USD-M)")
    venue_b: str = Field(min_length=1, description="another [venues.NAME] (USD-M)")
    symbol: str = Field("BTC/USDT:USDT", min_length=3, description="the perpetual on both")
    capital: float = Field(gt=0, description="USDT the pair may post as margin, both venues")
    max_notional_per_venue: float | None = Field(default=None, gt=0)
    max_total_notional: float | None = Field(default=None, gt=0)
    funding_poll_s: float = Field(60.0, gt=0, description="how often funding rates are read")
    price_poll_s: float = Field(10.0, gt=0, description="how often prices are read")
    reconcile_every_s: float = Field(60.0, gt=0)
    taker_fees: dict[str, float] = Field(
        default_factory=dict, description="venue name -> taker fee (default: the market's)"
    )
    maintenance_margin: float = Field(0.005, ge=0, lt=1)
    tolerance: float = Field(0.05, ge=0, lt=1, description="net exposure allowed, of a slice")
    retries: int = Field(2, ge=0, le=10, description="retries of a lagging leg")
    params: dict[str, float | int | str] = Field(
        default_factory=dict, description="funding_arb parameters"
    )

    @field_validator("venue_b")
    @classmethod
    def _two(cls, value: str, info: object) -> str:
        data = getattr(info, "data", {})
        if value == data.get("venue_a"):
            raise ValueError("venue_b must differ from venue_a")
        return value


class MMLiveConfig(_Model):
    """`[mm]`: how `quantdesk mm run` quotes, and the behaviour monitor's limits.

    `[mm.params.STRATEGY]` holds strategy parameters; a running session re-reads them (hot
    reload) and applies a change only if the strategy validates it."""

    params: dict[str, dict[str, Any]] = {}
    order_timeout_s: float = Field(5.0, gt=0, description="re-place a quote older than this")
    reconcile_every_s: float = Field(30.0, gt=0, description="live: journal vs venue")
    timer_s: float = Field(1.0, gt=0, description="the strategy's on_timer interval")
    status_every_s: float = Field(10.0, gt=0, description="the CLI's status line")
    max_inventory: float = Field(0.01, gt=0, description="|position| cap, base units")
    max_orders_per_s: int = Field(10, ge=1, description="the quote diff's message budget")
    max_cancel_ratio: float = Field(3.0, gt=0, description="the quote diff's cancels / places")
    monitor_window_s: float = Field(60.0, gt=0, description="the behaviour monitor's window")
    monitor_min_orders: int = Field(20, ge=1, description="orders before the ratios apply")
    monitor_max_orders_per_s: float | None = Field(None, gt=0)
    monitor_max_cancel_ratio: float | None = Field(None, gt=0)
    monitor_min_fill_rate: float | None = Field(None, ge=0, le=1, description="fills / orders")
    monitor_action: Literal["reduce", "halt"] = "halt"


class Config(_Model):
    """The whole quantdesk.toml."""

    data: DataConfig = DataConfig()
    storage: StorageConfig = StorageConfig()
    venues: dict[str, VenueConfig] = {}
    risk: RiskConfig = RiskConfig()
    alerts: AlertsConfig = AlertsConfig()
    arb: ArbConfig | None = None
    mm: MMLiveConfig = MMLiveConfig()
    source: Path | None = Field(default=None, exclude=True)

    def store(self) -> DataStore:
        """The data store at the configured root."""
        from quantdesk.data.store import DataStore

        return DataStore(self.data.root)

    def venue(self, name: str) -> VenueConfig:
        """A configured venue by name, or ConfigError listing the known ones."""
        if name not in self.venues:
            known = ", ".join(sorted(self.venues)) or "none configured"
            raise ConfigError(f"unknown venue {name!r} (known: {known})")
        return self.venues[name]


def _one_line(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{source}: {where}: {first['msg']}{more}"


def parse_config(
    raw: Mapping[str, object], source: str = CONFIG_FILE, base_dir: Path | None = None
) -> Config:
    """Validate a parsed TOML mapping into a Config; ConfigError names the first bad field."""
    try:
        config = Config.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None
    except RecursionError:
        raise ConfigError(f"{source}: values are nested too deeply") from None
    root = config.data.root
    if base_dir is not None and not root.is_absolute():
        root = base_dir / root
    return config.model_copy(update={"data": DataConfig(root=root)})


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load quantdesk.toml (given path, else ./quantdesk.toml if present, else defaults)."""
    env = os.environ if env is None else env
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist")
    else:
        file = Path(CONFIG_FILE)
    if file.is_file():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except RecursionError:
            # tomllib parses nested arrays and inline tables recursively.
            raise ConfigError(f"{file}: not valid TOML: nested too deeply") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}") from None
        config = parse_config(raw, str(file), file.parent)
        config = config.model_copy(update={"source": file})
    else:
        config = Config()
    if env.get(DATA_ENV):
        config = config.model_copy(update={"data": DataConfig(root=Path(env[DATA_ENV]))})
    return config
