"""What every command shares: the config, loaded once and only when a command needs it."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantdesk.config import Config
    from quantdesk.data.store import DataStore


class AppContext:
    """Per-invocation state handed to commands through click's context object."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    @cached_property
    def config(self) -> Config:
        """The loaded configuration (errors surface as ConfigError)."""
        from quantdesk.config import load_config

        return load_config(self.config_path)

    @cached_property
    def store(self) -> DataStore:
        """The data store at the configured root."""
        return self.config.store()
