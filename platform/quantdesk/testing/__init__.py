"""Test-only tools that ship with the package (fault injection); no production module imports
this package, and `tests/test_layers.py` checks that the CLI never does."""
