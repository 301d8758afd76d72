import subprocess
import sys

import click
import pytest

from quantdesk.cli import cli
from tests.conftest import REPO
from tests.conftest import run_cli as run


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [(), *_all_commands(cli)], ids=lambda p: " ".join(p) or "top")
def test_every_command_has_help(path, capsys):
    code, out, _ = run([*path, "--help"], capsys)
    assert code == 0
    assert "Usage: quantdesk" in out


def test_unknown_command_and_bad_option_exit_2(capsys):
    assert run(["frobnicate"], capsys)[0] == 2
    code, _, err = run(["data", "synth", "--days", "0"], capsys)
    assert code == 2 and "--days" in err


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "q.toml"
    bad.write_text("[data]\nroot = 5\n")
    code, out, err = run(["--config", str(bad), "data", "list"], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert err.startswith("error: ") and "data.root" in err
    assert "Traceback" not in err + out


def test_synth_then_list(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "md"))
    code, out, _ = run(
        ["data", "synth", "--seed", "2", "--days", "2", "--timeframes", "1h"], capsys
    )
    assert code == 0 and "wrote 18 series" in out
    code, out, _ = run(["data", "list", "--market", "usdm"], capsys)
    assert code == 0
    assert "BTC/USDT:USDT" in out and "funding" in out and "BTC/USDT " not in out


def test_synth_bad_start_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "md"))
    code, _, err = run(["data", "synth", "--start", "2024-01-01T05:00", "--days", "1"], capsys)
    assert code == 2 and "UTC midnight" in err
    assert not (tmp_path / "md").exists()


def test_console_script_and_stdlib_platform_still_importable():
    """`platform/` is a source folder; `import platform` from the repo root is the stdlib one."""
    probe = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system())"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "Linux"
    assert not (REPO / "platform" / "__init__.py").exists()
    version = subprocess.run(
        [sys.executable, "-m", "quantdesk.cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and "0.1.0" in version.stdout
