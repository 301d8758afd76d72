"""Property-based bad input (issue 19): import, backtest/replay options and config files.

Whatever hypothesis generates, a command either succeeds (exit 0) or exits 2 with exactly one
`error: ...` line and leaves every file as it was: never a traceback, never a partial write.
The seed is fixed (derandomize) and the budget small so this runs in CI on every change;
QUANTDESK_FUZZ_EXAMPLES=500 runs a longer search locally.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from click.testing import CliRunner
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from quantdesk.alerts import Alerter
from quantdesk.cli import main
from quantdesk.config import Config, load_config, parse_config
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.errors import ConfigError
from quantdesk.strategy import repo_strategies_dir
from tests.conftest import make_bars


def budget(default: int) -> settings:
    """Fixed-seed settings with `default` examples (or QUANTDESK_FUZZ_EXAMPLES)."""
    return settings(
        max_examples=int(os.environ.get("QUANTDESK_FUZZ_EXAMPLES") or default),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def invoke(argv: list[str]) -> tuple[int, str, str]:
    """Run `quantdesk ARGV` in-process with click's isolated streams: code, stdout, stderr.

    Any exception other than SystemExit escapes and fails the test: that is a traceback.
    """
    with CliRunner().isolation() as (out, err, _):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue().decode(), err.getvalue().decode()


def files_under(*roots: Path) -> dict[str, bytes]:
    """Every file below the roots with its bytes."""
    return {
        str(p): p.read_bytes() for root in roots if root.exists() for p in root.rglob("*")
        if p.is_file()
    }  # fmt: skip


def assert_held(code: int, err: str, before: dict[str, bytes], after: dict[str, bytes]) -> None:
    """The invariant: success, or exit 2 with one error line and nothing written."""
    event(f"exit {code}")  # --hypothesis-show-statistics: how many succeeded, how many refused
    assert "Traceback" not in err
    if code == 0:
        return
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert after == before, "a refused command changed files"


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """A factory of fresh folders (one per hypothesis example), made the cwd.

    The data root is FOLDER/data unless one is given.
    """
    made: list[tempfile.TemporaryDirectory] = []

    def fresh(data: Path | None = None) -> Path:
        made.append(tempfile.TemporaryDirectory(prefix="qd-fuzz-"))
        folder = Path(made[-1].name)
        monkeypatch.chdir(folder)
        monkeypatch.setenv("QUANTDESK_DATA", str(data or folder / "data"))
        return folder

    yield fresh
    for folder in made:
        folder.cleanup()


# --------------------------------------------------------------------------------------------
# CSV import

GOOD_MS = 1_704_067_200_000  # 2024-01-01
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.5, max_value=2.0),
    st.sampled_from([0.0, -1.0, 1e300, -0.0]),
)
epoch_times = st.one_of(
    st.integers(min_value=GOOD_MS, max_value=GOOD_MS + 10 * 86_400_000),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e20, 1e300, float("inf"), -1.0, 0.0, 4102444800.0]),
)
iso_times = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:00:00Z".format,
    st.integers(0, 9999),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
)
cells = st.one_of(numbers.map(repr), st.text(max_size=6), st.just(""))


def _format_time(ms: int, kind: str) -> str:
    if kind == "s":
        return str(ms // 1000)
    if kind == "iso":
        return f"{np.datetime64(ms, 'ms')}Z"
    return str(ms)


@st.composite
def csv_files(draw: st.DrawFn) -> str:
    """A kline CSV with 1-6 daily rows: valid ones, then maybe a few cells made absurd."""
    kind = draw(st.sampled_from(["ms", "s", "iso"]))
    rows = [
        [_format_time(GOOD_MS + i * 86_400_000, kind), "1.0", "2.0", "0.5", "1.5", "10"]
        for i in range(draw(st.integers(1, 6)))
    ]
    for _ in range(draw(st.integers(0, 2))):
        row = draw(st.integers(0, len(rows) - 1))
        column = draw(st.integers(0, 5))
        bad = st.one_of(epoch_times.map(str), iso_times, cells) if column == 0 else cells
        rows[row][column] = draw(bad).replace(",", "").replace("\n", "").replace("\r", "")
    lines = [",".join(row) for row in rows]
    return "open_time,open,high,low,close,volume\n" + "\n".join(lines) + "\n"


timeframes = st.one_of(
    st.none(),
    st.none(),
    st.sampled_from(["1d", "1h", "366d", "367d", "99999999999999w", "0m", "1M", "x"]),
    st.builds("{}{}".format, st.integers(0, 10**15), st.sampled_from("mhdw")),
)


@given(
    text=csv_files(),
    timeframe=timeframes,
    symbol=st.sampled_from([None, None, None, "BTC/USDT", "x/"]),
)
@budget(40)
def test_import_holds_the_invariant(scratch, text: str, timeframe, symbol) -> None:
    folder = scratch()
    store = DataStore(folder / "data")
    key = SeriesKey("binance", "spot", "BTC/USDT", "1d")
    store.write(key, make_bars(3, start="2024-01-01", freq="1D"))  # good data to protect
    inbox = folder / "in"
    inbox.mkdir()
    good = f"open_time,open,high,low,close,volume\n{GOOD_MS},1,2,1,2,3\n"
    (inbox / "AAAUSDT-1d.csv").write_text(good)  # sorts first: a partial import writes it
    (inbox / "BTCUSDT-1d.csv").write_text(text)
    argv = ["data", "import", str(inbox)]
    argv += ["--timeframe", timeframe] if timeframe is not None else []
    argv += ["--symbol", symbol] if symbol is not None else []
    before = files_under(store.root)
    code, _, err = invoke(argv)
    assert_held(code, err, before, files_under(store.root))
    for stored in store.keys(exchange="binance"):
        values = store.read(stored).to_numpy()
        assert np.isfinite(values).all(), f"{stored} holds NaN or inf after an import"


# --------------------------------------------------------------------------------------------
# backtest and replay options


@pytest.fixture(scope="module")
def bars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with 120 hourly BTC/USDT bars, shared read-only by the option examples."""
    root = tmp_path_factory.mktemp("fuzz-bars")
    DataStore(root).write(SeriesKey("binance", "spot", "BTC/USDT", "1h"), make_bars(120))
    return root


floats_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "1e13", "0", "1e-320", "10000", "abc", ""]),
)
times_text = st.one_of(
    st.none(),
    st.none(),
    iso_times,
    st.sampled_from(["9999-01-01", "0000-01-01", "2024-01-03", "2024-01-02T05:00", "soon"]),
)
steps = st.one_of(floats_text, st.sampled_from(["1", "2", "1e-9", "0.05"]))
sweeps = st.one_of(
    st.builds("fast={}:{}:{}".format, st.integers(-5, 300), st.integers(-5, 300), steps),
    st.builds("sl_stop=0:{}:{}".format, st.sampled_from(["0.5", "0.1", "nan"]), steps),
    st.sampled_from(["fast=5", "slow=20", "fast=2,3", "nope=1", "fast", "=1"]),
)
outs = st.sampled_from(["reports", "/proc/quantdesk/out", "taken", "taken/sub", "deep/a/b"])


@st.composite
def run_options(draw: st.DrawFn) -> list[str]:
    """A subset of the shared backtest/replay options with drawn values, sane or not."""
    argv: list[str] = []
    for flag, sane in (
        ("--cash", ["10000", "250.5", "1e9"]),
        ("--fee", ["0.001", "0"]),
        ("--slippage", ["0", "0.0005"]),
    ):
        if draw(st.booleans()):
            argv += [flag, draw(st.one_of(st.sampled_from(sane), floats_text))]
    for flag in ("--start", "--end"):
        value = draw(times_text)
        if value is not None:
            argv += [flag, value]
    for param in draw(st.lists(sweeps, max_size=2)):
        argv += ["--param", param]
    argv += ["--out", draw(outs)]
    if draw(st.booleans()):
        argv += ["--timeframe", draw(st.sampled_from(["1h", "99999999w", "2h", "1x"]))]
    return argv


def _run_options_case(scratch, bars_root: Path, command: str, options: list[str]) -> None:
    folder = scratch(bars_root)
    (folder / "taken").write_text("a file where a folder is expected")
    argv = [command, "--strategies-dir", str(repo_strategies_dir())]
    argv += ["--strategy", "sma_cross", "--symbols", "BTC/USDT", *options]
    if command == "replay":
        argv.append("--no-progress")
    before = files_under(folder, bars_root)
    code, _, err = invoke(argv)
    assert_held(code, err, before, files_under(folder, bars_root))


@given(options=run_options())
@budget(30)
def test_backtest_options_hold_the_invariant(scratch, bars_root: Path, options) -> None:
    _run_options_case(scratch, bars_root, "backtest", options)


@given(options=run_options())
@budget(15)
def test_replay_options_hold_the_invariant(scratch, bars_root: Path, options) -> None:
    _run_options_case(scratch, bars_root, "replay", options)


# --------------------------------------------------------------------------------------------
# config files

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["loud", "info", "WARNING", "http://127.0.0.1:9/hook", "data", "spot"]),
)
section_names = st.sampled_from(
    ["data", "venues", "risk", "alerts", "root", "webhook", "telegram", "email", "sandbox",
     "log_min_severity", "min_severity", "exchange", "market", "url", "max_drawdown", "x"]
)  # fmt: skip
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(section_names, inner, max_size=4)
    ),
    max_leaves=12,
)
severities = st.sampled_from(["info", "warning", "ERROR", "critical", "loud", "", "Info "])
any_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**20), 10**20)
)
plausible_configs = st.fixed_dictionaries(
    {},
    optional={
        "data": st.fixed_dictionaries({}, optional={"root": st.one_of(st.text(max_size=8))}),
        "alerts": st.fixed_dictionaries(
            {},
            optional={
                "log_min_severity": severities,
                "dedup_window_s": any_number,
                "max_per_minute": any_number,
                "webhook": st.fixed_dictionaries(
                    {"url": st.sampled_from(["http://127.0.0.1:9/hook", "ftp://x", ""])},
                    optional={"min_severity": severities, "timeout_s": any_number},
                ),
            },
        ),
        "risk": st.dictionaries(
            st.sampled_from(
                ["monitor_interval_s", "breaker_failures", "var_window_days", "strategies", "x"]
            ),
            st.one_of(any_number, toml_values),
            max_size=3,
        ),
        "venues": st.dictionaries(
            st.sampled_from(["sandbox", "real"]),
            st.fixed_dictionaries(
                {"exchange": st.sampled_from(["binance", ""])},
                optional={
                    "market": st.sampled_from(["spot", "usdm", "coinm"]),
                    "sandbox_url": st.sampled_from(["http://127.0.0.1:9", "127.0.0.1"]),
                },
            ),
            max_size=2,
        ),
    },
)
configs = st.one_of(plausible_configs, st.dictionaries(section_names, toml_values, max_size=4))


def deep(depth: int, kind: str) -> str:
    """TOML text nesting arrays or inline tables depth levels deep."""
    if kind == "array":
        return "x = " + "[" * depth + "]" * depth + "\n"
    return "x = " + "{a = " * depth + "1" + "}" * depth + "\n"


config_texts = st.one_of(
    configs.map(tomli_w.dumps),
    st.text(max_size=40),
    st.builds(deep, st.sampled_from([1, 40, 1000, 3000]), st.sampled_from(["array", "table"])),
)


@given(text=config_texts)
@budget(60)
def test_config_files_hold_the_invariant(scratch, text: str) -> None:
    folder = scratch()
    (folder / "quantdesk.toml").write_text(text, encoding="utf-8")
    before = files_under(folder)
    code, _, err = invoke(["data", "list"])
    assert_held(code, err, before, files_under(folder))
    if code == 0:
        assert_usable(load_config(folder / "quantdesk.toml"))


def assert_usable(config: Config) -> None:
    """What a config accepted must work later: every session builds its alerter from it."""
    alerter = Alerter.from_config(config.alerts, env={})
    alerter.close(timeout=0.1)


@given(raw=configs)
@example(raw={"alerts": {"log_min_severity": "loud"}})  # issue 21: accepted, KeyError later
@budget(100)
def test_parse_config_gives_a_config_or_one_line(raw: dict) -> None:
    try:
        config = parse_config(raw)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert_usable(config)
