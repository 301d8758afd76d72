"""Local Binance-compatible exchange (spot /api/v3 and USD-M /fapi) on the matching core."""

from quantdesk.sandbox.server import make_app, run, serve_in_thread
from quantdesk.sandbox.state import AccountConfig, Sandbox, SandboxConfig

__all__ = ["AccountConfig", "Sandbox", "SandboxConfig", "make_app", "run", "serve_in_thread"]
