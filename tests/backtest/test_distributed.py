"""Independent `quantdesk optimize` processes on one PostgreSQL study: real processes, loopback.

A test strategy (sma_cross plus two hooks) lets the test see every worker holding a trial
before any evaluates one (so the work is really shared), and makes one trial hang until the
test kills its process: the other workers must fail it on its stale heartbeat and retry it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from quantdesk.data.store import DataStore, SeriesKey
from tests.conftest import REPO, make_bars

pytestmark = pytest.mark.slow

STRATEGY = textwrap.dedent(
    '''
    """sma_cross with test hooks: a gate before the first evaluation, one hanging trial."""

    import os
    import time
    from pathlib import Path

    import numpy as np
    import vectorbt as vbt

    from quantdesk.strategy import Float, Int, Signals, SignalStrategy


    def _hooks(fast: int) -> None:
        folder = Path(os.environ["HOOKS"])
        if os.environ.get("GATE"):
            mark = folder / f"ready-{os.getpid()}"
            if not mark.exists():
                mark.write_text("")
                while not (folder / "go").exists():
                    time.sleep(0.02)
        if os.environ.get("HANG") in ("any", str(fast)):
            try:
                (folder / "hang").unlink()  # only the first process to get here hangs
            except FileNotFoundError:
                return
            (folder / "hung.tmp").write_text(str(os.getpid()))
            (folder / "hung.tmp").rename(folder / "hung")
            time.sleep(3600)


    class HookCross(SignalStrategy):
        """sma_cross."""

        params = {
            "fast": Int(2, 200, 10),
            "slow": Int(3, 500, 30),
            "sl_stop": Float(0.0, 0.5, 0.0),
            "tp_stop": Float(0.0, 2.0, 0.0),
        }
        timeframe = "1h"

        @property
        def warmup(self) -> int:
            return int(np.max(self.slow)) + 1

        def signals(self, bars):
            _hooks(int(np.max(self.fast)))
            close = bars["close"]
            fast = vbt.MA.run(close, self.fast, short_name="fast")
            slow = vbt.MA.run(close, self.slow, short_name="slow")
            return Signals(
                entries=fast.ma_crossed_above(slow), exits=fast.ma_crossed_below(slow)
            )
    '''
)
GRID = {"fast": [3, 5, 8, 13], "slow": [20, 30, 40]}


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A data root with 400 synthetic hourly bars, the hook strategy, and the hooks folder."""
    root = tmp_path / "data"
    DataStore(root).write(SeriesKey("synthetic", "spot", "BTC/USDT", "1h"), make_bars(400, seed=3))
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "hook_cross.py").write_text(STRATEGY)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    return {"root": root, "strategies": strategies, "hooks": hooks, "cwd": tmp_path}


def start(world: dict[str, Path], url: str, study: str, *args: str, **env: str) -> subprocess.Popen:
    """One `quantdesk optimize` process, in its own session (so the test can kill its group)."""
    cmd = [
        sys.executable, "-m", "quantdesk.cli", "optimize", "--strategy", "hook_cross",
        "--strategies-dir", str(world["strategies"]), "--symbols", "BTC/USDT",
        "--timeframe", "1h", "--exchange", "synthetic", "--param", "sl_stop=0",
        "--param", "tp_stop=0", "--no-prune", "--storage", url, "--study", study,
        "--heartbeat", "5", "--min-trades", "0", *args,  # every trial counts here
    ]  # fmt: skip
    full_env = {
        **os.environ,
        "QUANTDESK_DATA": str(world["root"]),
        "NUMBA_CACHE_DIR": str(REPO / ".cache" / "numba"),
        "HOOKS": str(world["hooks"]),
        **env,
    }
    return subprocess.Popen(
        cmd,
        cwd=world["cwd"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], procs: list[subprocess.Popen], what: str) -> None:
    """Until condition holds; fails at once if every process has exited first."""
    deadline = time.monotonic() + 300
    while not condition():
        if all(p.poll() is not None for p in procs):
            outputs = "\n".join(p.stdout.read() for p in procs)
            pytest.fail(f"every process exited before {what}:\n{outputs}")
        if time.monotonic() > deadline:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
            outputs = "\n".join(f"[{p.wait()}] {p.stdout.read()}" for p in procs)
            pytest.fail(f"timed out waiting for {what}:\n{outputs}")
        time.sleep(0.05)


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    """Exit code and output of each process."""
    results = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        results.append((proc.returncode, out))
    return results


def by_state(url: str, study: str) -> dict[TrialState, list[optuna.trial.FrozenTrial]]:
    trials = optuna.load_study(study_name=study, storage=url).get_trials()
    return {s: [t for t in trials if t.state == s] for s in TrialState}


def test_three_processes_share_a_grid_and_retry_a_killed_workers_trial(world, pg_url) -> None:
    (world["hooks"] / "hang").write_text("")
    grid = ["--param", "fast=3,5,8,13", "--param", "slow=20,30,40", "--trials", "12"]
    procs = [
        start(world, pg_url, "grid", *grid, "--workers", workers, GATE="1", HANG="8")
        for workers in ("1", "2", "1")
    ]

    # Four workers in all (one process spawns two): each holds a trial before any evaluates.
    def ready() -> bool:
        return len(list(world["hooks"].glob("ready-*"))) == 4

    wait_for(ready, procs, "four workers holding a trial")
    (world["hooks"] / "go").write_text("")
    wait_for((world["hooks"] / "hung").exists, procs, "a trial with fast=8 to hang")
    hung = int((world["hooks"] / "hung").read_text())
    os.kill(hung, signal.SIGKILL)
    results = finish(procs)

    for proc, (code, out) in zip(procs, results, strict=True):
        assert code == (-signal.SIGKILL if proc.pid == hung else 0), out
    trials = by_state(pg_url, "grid")
    combos = [(t.params["fast"], t.params["slow"]) for t in trials[TrialState.COMPLETE]]
    assert sorted(combos) == sorted((f, s) for f in GRID["fast"] for s in GRID["slow"])
    fails = trials[TrialState.FAIL]
    assert len(fails) == 1, [(t.number, t.params, t.user_attrs, t.system_attrs) for t in fails]
    [failed] = fails
    assert failed.params["fast"] == 8 and failed.user_attrs["worker"].endswith(f":{hung}")
    [retry] = [t for t in trials[TrialState.COMPLETE] if t.params == failed.params]
    assert retry.system_attrs["failed_trial"] == failed.number
    assert not retry.user_attrs["worker"].endswith(f":{hung}")
    assert trials[TrialState.WAITING] == trials[TrialState.RUNNING] == []
    workers = {t.user_attrs["worker"] for t in trials[TrialState.COMPLETE]}
    assert len(workers) >= 3  # the survivors of the four all evaluated trials


def test_a_study_resumes_after_every_worker_is_killed(world, pg_url) -> None:
    (world["hooks"] / "hang").write_text("")
    tpe = ("--trials", "6", "--method", "tpe")
    first = start(world, pg_url, "tpe", *tpe, "--workers", "2", HANG="any")
    wait_for((world["hooks"] / "hung").exists, [first], "a trial to hang")
    os.killpg(first.pid, signal.SIGKILL)  # the command and both its workers
    [(code, _)] = finish([first])
    assert code == -signal.SIGKILL
    left = by_state(pg_url, "tpe")
    assert len(left[TrialState.RUNNING]) >= 1 and left[TrialState.WAITING]

    again = start(world, pg_url, "tpe", *tpe, "--workers", "1")
    [(code, out)] = finish([again])
    assert code == 0, out
    trials = by_state(pg_url, "tpe")
    assert len(trials[TrialState.COMPLETE]) == 6  # the rerun joined the queued run
    assert "of 6 complete trials" in out
    assert len(trials[TrialState.FAIL]) == len(left[TrialState.RUNNING])
    assert trials[TrialState.WAITING] == trials[TrialState.RUNNING] == []
