"""`quantdesk arb run / open / close` as an operator uses them: a real process on two sandboxes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantdesk.cli import main
from tests.arbitrage.two_venues import admins, kinds, read, two_urls, venue_position
from tests.sandbox.conftest import KEY, SECRET

__all__ = ["admins", "two_urls"]  # fixtures
REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, urls: dict[str, str], arb: str = "") -> Path:
    """quantdesk.toml with two USD-M sandbox venues and an [arb] section."""
    path = tmp_path / "quantdesk.toml"
    venues = "".join(
        f'[venues.{name}]\nexchange = "binance"\nmarket = "usdm"\nsandbox_url = "{url}"\n'
        f'api_key_env = "QD_ARB_KEY"\napi_secret_env = "QD_ARB_SECRET"\nrate_limit_ms = 1\n\n'
        for name, url in (("alpha", urls["a"]), ("beta", urls["b"]))
    )
    path.write_text(venues + arb)
    return path


ARB = """[arb]
venue_a = "alpha"
venue_b = "beta"
capital = 2000
funding_poll_s = 0.2
price_poll_s = 0.05
reconcile_every_s = 0.5
params = { entry_apr = 10.0, confirm = 1, slices = 2 }
"""


def exit_code(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(args)
    return int(done.value.code or 0), capsys.readouterr().err


def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    two_urls: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "arb.sqlite"
    bare = write_config(tmp_path, two_urls)
    code, err = exit_code(["--config", str(bare), "arb", "run", "--journal", str(journal)], capsys)
    assert code == 2 and err.count("\n") == 1 and "no [arb] section" in err
    config = write_config(tmp_path, two_urls, ARB)
    args = ["--config", str(config), "arb", "run", "--journal", str(journal), "--param", "x=1"]
    code, err = exit_code(args, capsys)
    assert code == 2 and err.count("\n") == 1
    code, err = exit_code(["arb", "open", "--journal", str(journal)], capsys)
    assert code == 2 and "no journal at" in err
    code, err = exit_code(["arb", "status", "--journal", str(journal)], capsys)
    assert code == 2 and "no journal at" in err
    assert not journal.exists()
    same = ARB.replace('venue_b = "beta"', 'venue_b = "alpha"')
    code, err = exit_code(
        ["--config", str(write_config(tmp_path, two_urls, same)), "arb", "run", "--journal",
         str(journal)], capsys,
    )  # fmt: skip
    assert code == 2 and "venue_b must differ from venue_a" in err


def wait(condition: object, proc: subprocess.Popen, what: str, limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if proc.poll() is not None:
            raise AssertionError(f"arb run ended before {what}: {proc.stdout.read()}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_run_then_open_and_close_by_command_then_stop_by_signal(
    two_urls: dict[str, str], admins: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, two_urls, ARB)
    journal = tmp_path / "arb.sqlite"
    env = {**os.environ, "QD_ARB_KEY": KEY, "QD_ARB_SECRET": SECRET}
    cmd = [sys.executable, "-m", "quantdesk.cli", "--config", str(config), "arb", "run",
           "--journal", str(journal)]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait(lambda: bool(kinds(journal, "arb_session_started")), proc, "the session to start")
        base = ["--config", str(config), "arb"]
        with pytest.raises(SystemExit) as done:
            main([*base, "open", "--journal", str(journal), "--direction", "long-a"])
        assert done.value.code == 0
        opened = lambda: any(p["status"] == "open" for p in kinds(journal, "arb_pair"))  # noqa: E731
        wait(opened, proc, "the pair to open")
        assert venue_position(two_urls["a"]) > 0 > venue_position(two_urls["b"])
        with pytest.raises(SystemExit) as done:
            main([*base, "close", "--journal", str(journal)])
        closed = lambda: any(p["status"] == "closed" for p in kinds(journal, "arb_pair"))  # noqa: E731
        wait(closed, proc, "the pair to close")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "pairs 1 (none)" in out
    assert "spread " in out and "entry 1000.00%" in out  # a status line per funding poll
    assert "; no pair" in out
    with pytest.raises(SystemExit) as done:
        main(["arb", "status", "--journal", str(journal)])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert "alpha / beta" in shown and "closed" in shown and "manual" in shown
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
    assert KEY not in journal.read_bytes().decode("latin-1")  # credentials never journaled


def test_until_stops_at_the_venues_time_and_a_journal_of_other_venues_is_refused(
    two_urls: dict[str, str],
    admins: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("QD_ARB_KEY", KEY)
    monkeypatch.setenv("QD_ARB_SECRET", SECRET)
    config = write_config(tmp_path, two_urls, ARB)
    journal = tmp_path / "arb.sqlite"
    args = ["--config", str(config), "arb", "run", "--journal", str(journal)]
    code, _ = exit_code([*args, "--until", "2020-01-01"], capsys)
    assert code == 0
    stopped = kinds(journal, "arb_session_stopped")
    assert len(stopped) == 1
    messages = [m for m in read(journal, lambda j: list(j.events()["message"])) if "until" in m]
    assert messages == ["reached --until"]
    swapped = ARB.replace(
        'venue_a = "alpha"\nvenue_b = "beta"', 'venue_a = "beta"\nvenue_b = "alpha"'
    )
    other = write_config(tmp_path, two_urls, swapped)
    code, err = exit_code(
        ["--config", str(other), "arb", "run", "--journal", str(journal), "--until", "2020-01-01"],
        capsys,
    )
    assert code == 2 and "belongs to an arb session" in err and err.count("\n") == 1
