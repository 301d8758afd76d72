"""The sandbox exchange fixtures, shared with tests/sandbox (one server for this directory)."""

from tests.sandbox.conftest import Admin, admin, sandbox, url  # noqa: F401
