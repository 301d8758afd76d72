"""model.dec: the one float -> Decimal conversion, and that the package uses it."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from quantdesk.model import dec

ROOT = Path(__file__).resolve().parents[2] / "platform" / "quantdesk"
CONVERSIONS = ("str", "repr", "float")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),  # not Decimal(0.1) = 0.1000000000000000055511151231257827...
        (np.float64(0.3), "0.3"),
        (np.float32(0.5), "0.5"),
        (1e-8, "1E-8"),
        (12345678901234567890, "12345678901234567890"),  # ints exactly, never via float
        (np.int64(42), "42"),
        ("0.00100", "0.00100"),  # strings as written
        (Decimal("2.50"), "2.50"),
    ],
)
def test_dec(value, text) -> None:
    assert str(dec(value)) == text


@pytest.mark.parametrize("value", [None, True])
def test_dec_refuses_what_is_not_a_quantity(value) -> None:
    with pytest.raises(TypeError, match="not a number"):
        dec(value)


def test_the_package_converts_floats_through_dec_only() -> None:
    """Decimal(str(x)) or Decimal(float) spelled inline drift apart (issue 11): use model.dec."""
    inline = []
    for path in ROOT.rglob("*.py"):
        if path == ROOT / "model" / "numbers.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Decimal"):
                continue
            [arg] = node.args or [None]
            if isinstance(arg, ast.Call) and getattr(arg.func, "id", None) in (
                "str",
                "repr",
                "float",
            ):
                inline.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not inline, "use quantdesk.model.dec:\n" + "\n".join(inline)
