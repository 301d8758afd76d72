"""Issue 19's bad inputs through main(): one line naming the value, exit 2, nothing written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from quantdesk.cli.backtest import MAX_GRID_COMBINATIONS as CLI_MAX_GRID_COMBINATIONS
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.strategy import MAX_GRID_COMBINATIONS, repo_strategies_dir
from tests.conftest import make_bars, run_cli


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below root (recursively) with its bytes: the 'nothing changed' snapshot."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def one_error_line(err: str) -> str:
    """The single stderr line of a refused command (and that it is the only one)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as cwd, with 200 hourly BTC/USDT bars in its store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    DataStore(tmp_path / "data").write(
        SeriesKey("binance", "spot", "BTC/USDT", "1h"), make_bars(200)
    )
    return tmp_path


STRATEGY = ("--strategy", "sma_cross", "--symbols", "BTC/USDT")


def refused(capsys: pytest.CaptureFixture[str], root: Path, *argv: str) -> str:
    """Run argv; assert exit 2, one line, and no file created or changed under root."""
    before = files_under(root)
    code, out, err = run_cli(argv, capsys)
    assert code == 2, (out, err)
    line = one_error_line(err)
    assert files_under(root) == before
    return line


@pytest.mark.parametrize("command", ["backtest", "replay"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--cash", "inf"), "error: --cash must be a positive amount up to 1e+12, got inf"),
        (("--cash", "nan"), "error: --cash must be a positive amount up to 1e+12, got nan"),
        (("--cash", "1e13"), "error: --cash must be a positive amount up to 1e+12, got 1e+13"),
        (("--cash", "-5"), "error: --cash must be a positive amount up to 1e+12, got -5"),
        (("--fee", "nan"), "error: --fee must be a finite number, got nan"),
        (("--slippage", "-inf"), "error: --slippage must be a finite number, got -inf"),
        (("--start", "9999-01-01"), "error: --start: time '9999-01-01' is out of range"),
        (("--start", "0000-01-01"), "error: --start: time '0000-01-01' is out of range"),
        (("--end", "0001-01-01"), "error: --end: time '0001-01-01' is out of range"),
        (("--start", "soon"), "error: --start: invalid time 'soon'"),
        (("--out", "/proc/quantdesk/reports"), "error: --out /proc/quantdesk/reports cannot be"),
        (("--timeframe", "99999999w"), "error: invalid timeframe '99999999w': bars are at most"),
    ],
)
def test_bad_run_options(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str, args, message: str
) -> None:
    line = refused(
        capsys, workdir, command, "--strategies-dir", str(repo_strategies_dir()), *STRATEGY, *args
    )
    assert line.startswith(message), line


def test_out_that_is_a_file_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "taken").write_text("a file")
    line = refused(capsys, workdir, "backtest", *STRATEGY, "--out", "taken/reports")
    assert line == "error: --out taken/reports: taken is not a folder"


def test_replay_journal_in_an_unwritable_place(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, workdir, "replay", *STRATEGY, "--journal", "/proc/none/j.sqlite")
    assert line.startswith("error: --journal /proc/none cannot be written")


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("fast=2:10:nan", "error: param fast: sweep step 'nan' is not a number"),
        ("sl_stop=0:0.5:nan", "error: param sl_stop: sweep '0:0.5:nan' needs lo <= hi and a"),
        ("sl_stop=0:0.5:inf", "error: param sl_stop: sweep '0:0.5:inf' needs lo <= hi and a"),
        (
            "sl_stop=0:0.5:1e-9",
            "error: param sl_stop: sweep '0:0.5:1e-9' has 500000000 combinations, more than the "
            "limit of 10000: use a coarser step or raise it with --max-combinations",
        ),
        ("sl_stop=0:0.5:1e-320", "error: param sl_stop: sweep '0:0.5:1e-320' has inf comb"),
    ],
)
def test_bad_grid_steps_are_refused_at_once(
    workdir: Path, capsys: pytest.CaptureFixture[str], param: str, message: str
) -> None:
    started = time.monotonic()
    line = refused(capsys, workdir, "backtest", *STRATEGY, "--param", param)
    assert line.startswith(message), line
    assert time.monotonic() - started < 10  # the 1e-9 step used to hang until killed


def test_grid_cap_counts_all_params_and_can_be_raised(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert MAX_GRID_COMBINATIONS == CLI_MAX_GRID_COMBINATIONS == 10_000
    sweep = ("--param", "fast=2:5:1", "--param", "slow=20:22:1")  # 4 x 3 = 12 combinations
    line = refused(capsys, workdir, "backtest", *STRATEGY, *sweep, "--max-combinations", "11")
    assert line == (
        "error: the sweep over fast, slow has 12 combinations, more than the limit of 11: "
        "use a coarser step or raise it with --max-combinations"
    )
    code, out, err = run_cli(
        ["backtest", *STRATEGY, *sweep, "--max-combinations", "12", "--top", "3"], capsys
    )
    assert code == 0, err
    assert "sweep: top 3 of 12 by total_return" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML: nested too deeply"),
        ("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "not valid TOML: nested too deeply"),
        (
            '[alerts]\nlog_min_severity = "loud"\n',
            "alerts.log_min_severity: Value error, 'loud' is not one of info, warning, error,",
        ),
        (
            '[alerts.webhook]\nurl = "http://127.0.0.1:9/x"\nmin_severity = "LOUDER"\n',
            "alerts.webhook.min_severity: Value error, 'LOUDER' is not one of",
        ),
    ],
)
def test_bad_config_files(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (workdir / "quantdesk.toml").write_text(text)
    line = refused(capsys, workdir, "data", "list")
    assert line.startswith("error: quantdesk.toml: ") and message in line, line


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["frobnicate"], "error: No such command 'frobnicate'. (see 'quantdesk --help')"),
        (
            ["data", "import", "--bogus"],
            "error: No such option '--bogus'. Did you mean '--columns'? "
            "(see 'quantdesk data import --help')",
        ),
        (
            ["data", "import"],
            "error: give a PATH or --sample NAME (one of them) "
            "(see 'quantdesk data import --help')",
        ),
        (
            ["data", "synth", "--days", "0"],
            "error: Invalid value for '--days': 0 is not in the range 1<=x<=3660. "
            "(see 'quantdesk data synth --help')",
        ),
    ],
)
def test_click_usage_errors_are_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    """Issue 21: click printed Usage, a hint, a blank line and the error: three lines."""
    assert refused(capsys, workdir, *argv) == line
