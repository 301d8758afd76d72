"""Errors a user can cause: the CLI prints their one-line message and exits 2."""


class QuantdeskError(Exception):
    """Base class for user-facing errors; the message is one line, meant for people."""


class ConfigError(QuantdeskError):
    """The configuration file or an option value is invalid."""


class DataError(QuantdeskError):
    """Market data is missing, malformed or cannot be stored."""


class NoDataError(DataError):
    """The store holds no data for what was asked."""


class BacktestError(QuantdeskError):
    """A backtest cannot run with the given inputs."""
