"""`quantdesk arb run` killed (SIGKILL) in the middle of an open, at each step of an order's
path, then restarted on the same journal: the pair ends exactly at its target, nothing doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from quantdesk.cli import main
from tests.arbitrage.test_arb_run_cli import ARB, wait, write_config
from tests.arbitrage.two_venues import admins, kinds, read, two_urls, venue_position
from tests.sandbox.conftest import KEY, SECRET

__all__ = ["admins", "two_urls"]  # fixtures
REPO = Path(__file__).resolve().parents[2]


def launch(config: Path, journal: Path, crash: str | None) -> subprocess.Popen:
    env = {**os.environ, "QD_ARB_KEY": KEY, "QD_ARB_SECRET": SECRET}
    env.pop("QUANTDESK_CRASH_AT", None)
    if crash:
        env["QUANTDESK_CRASH_AT"] = crash
    cmd = [sys.executable, "-m", "quantdesk.testing.arb_crash", "--config", str(config), "arb",
           "run", "--journal", str(journal)]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.parametrize(
    ("crash", "third"),
    [("before_send:3", "rejected"), ("after_send:3", "filled"), ("before_fill_journal:2", "")],
)
def test_a_kill_mid_open_then_a_restart_ends_at_the_target_without_doubling(
    two_urls: dict[str, str], admins: dict, tmp_path: Path, crash: str, third: str
) -> None:
    config = write_config(tmp_path, two_urls, ARB.replace("slices = 2", "slices = 4"))
    journal = tmp_path / "arb.sqlite"
    proc = launch(config, journal, crash)
    try:
        wait(lambda: bool(kinds(journal, "arb_session_started")), proc, "the session to start")
        with pytest.raises(SystemExit):
            main(["arb", "open", "--journal", str(journal)])
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, out
    state = kinds(journal, "arb_pair")[-1]
    assert state["status"] == "opening"
    qty = Decimal(state["qty"])
    proc = launch(config, journal, None)
    try:
        opened = lambda: any(p["status"] == "open" for p in kinds(journal, "arb_pair"))  # noqa: E731
        wait(opened, proc, "the restarted session to finish the open")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    a, b = venue_position(two_urls["a"]), venue_position(two_urls["b"])
    assert (a, b) == (qty, -qty), f"target {qty}: a={a} b={b}"
    orders = read(journal, lambda j: j.orders())
    assert orders["client_order_id"].is_unique
    for venue, side, want in (("alpha", "buy", qty), ("beta", "sell", qty)):
        mine = orders[(orders["venue"] == venue) & (orders["side"] == side)]
        assert sum(mine["filled"], Decimal(0)) == want  # every unit bought once
    assert not (orders["status"] == "submitted").any()
    if third:
        order = orders.set_index("client_order_id").loc["arb-1-3a"]  # slice 2's long leg
        assert order["status"] == third  # never sent: absent; sent: adopted from the venue
