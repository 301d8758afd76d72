"""Run every benchmarks/bench_*.py module's main(), in name order (`make bench`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks, or only those whose module name contains one of argv."""
    wanted = argv if argv is not None else sys.argv[1:]
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("bench_*.py")):
        name = path.stem
        if wanted and not any(w in name for w in wanted):
            continue
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
