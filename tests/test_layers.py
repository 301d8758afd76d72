"""The import-layer contract (DESIGN.md 1.2), read from the source with ast: imports point down.

Each package (or top-level module) of quantdesk belongs to one layer; it may import only from
strictly lower layers, so packages of one layer are independent and there are no cycles.
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "platform" / "quantdesk"

# Bottom to top. config holds RiskConfig (risk.limits) and AlertsConfig, so it sits above risk
# and alerts and below venues, which read VenueConfig.
LAYERS: list[set[str]] = [
    {"errors"},
    {"model", "oslock"},  # oslock: OS file locks (store series, one session per journal)
    {"data", "strategy", "alerts", "reports", "reports_format"},
    {"risk", "execution"},  # execution: algorithms and routing over venues' books
    {"config"},
    {"venues"},
    {"engine"},
    {"backtest", "arbitrage", "mm"},  # arbitrage: two-venue funding; mm: market-making research
    {"selection"},  # ranks coins with backtests
    {"system", "promotion"},
    {"sandbox", "dashboards"},
    {"reports_daily"},  # the daily report renders the session dashboard's views
    {"cli", "quantdesk"},  # quantdesk: the package __init__
    {"testing"},  # fault injection for tests: nothing in production imports it
]
# Exceptions to the layer order; the parity check takes its replay injected, so none are left.
ALLOWED: set[tuple[str, str]] = set()
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def unit_of(module: str) -> str:
    """quantdesk.engine.kernel -> engine; quantdesk.config -> config."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "quantdesk"


def imports(path: Path, module: str) -> set[str]:
    """The quantdesk modules one file imports (absolute and relative)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return {m for m in found if m == "quantdesk" or m.startswith("quantdesk.")}


def edges() -> set[tuple[str, str, str]]:
    """(importing unit, imported unit, file) for every import across units."""
    out = set()
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        src = unit_of(module)
        for target in imports(path, module):
            dst = unit_of(target)
            if dst not in (src, "quantdesk"):
                out.add((src, dst, str(path.relative_to(ROOT))))
    return out


def test_every_unit_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()}
    units = {u for u in units if not u.startswith("__") or u == "__main__"} - {"py", ""}
    missing = {u for u in units if (ROOT / u).is_dir() or (ROOT / f"{u}.py").is_file()} - set(LEVEL)
    assert not missing, f"put these in a layer of tests/test_layers.py: {sorted(missing)}"


def test_imports_point_down() -> None:
    wrong = sorted(
        f"{file}: {src} imports {dst}"
        for src, dst, file in edges()
        if LEVEL[dst] >= LEVEL[src] and (src, dst) not in ALLOWED
    )
    assert not wrong, "upward or sideways imports:\n" + "\n".join(wrong)


def test_allowed_exceptions_are_still_needed() -> None:
    used = {(src, dst) for src, dst, _ in edges()}
    assert used >= ALLOWED, f"remove from ALLOWED: {sorted(ALLOWED - used)}"


def test_model_imports_nothing_of_quantdesk_but_errors() -> None:
    assert {dst for src, dst, _ in edges() if src == "model"} <= {"errors"}


@pytest.mark.parametrize("banned", ["venues", "risk", "backtest", "system"])
def test_engine_knows_venues_and_risk_only_through_ports(banned: str) -> None:
    assert not [f for src, dst, f in edges() if src == "engine" and dst == banned]


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    # the contract is only as good as the import reader: it must see lazy and relative imports
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from quantdesk.system import kernel\nfrom ..risk import gate\n")
    assert imports(f, "quantdesk.engine.x") == {"quantdesk.system", "quantdesk.risk"}


# Market-data clients (download, record) turn any ccxt failure into DataError or a reconnect;
# trading code sees only model.VenueError, which venues/ccxt_venue.py maps ccxt's classes to.
CCXT_ERRORS_ALLOWED = {"venues/ccxt_venue.py", "data/download.py", "data/record.py"}


def ccxt_error_uses(path: Path) -> set[str]:
    """Names of ccxt exception classes one file mentions (ccxt.X / ccxt.base.errors)."""
    import ccxt

    errors = {n for n in dir(ccxt) if isinstance(getattr(ccxt, n), type)}
    errors = {n for n in errors if issubclass(getattr(ccxt, n), ccxt.BaseError)}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in errors:
            found.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ccxt"):
            found |= {a.name for a in node.names if a.name in errors}
    return found


def test_ccxt_errors_are_mapped_in_one_place() -> None:
    wrong = {
        str(p.relative_to(ROOT)): sorted(ccxt_error_uses(p))
        for p in ROOT.rglob("*.py")
        if str(p.relative_to(ROOT)) not in CCXT_ERRORS_ALLOWED and ccxt_error_uses(p)
    }
    assert not wrong, f"map ccxt errors in venues/ccxt_venue.py, not here: {wrong}"
    assert ccxt_error_uses(ROOT / "venues" / "ccxt_venue.py") >= {"InsufficientFunds", "BaseError"}
