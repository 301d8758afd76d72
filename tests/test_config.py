from pathlib import Path

import pytest

from quantdesk.config import load_config, parse_config
from quantdesk.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "quantdesk.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.data.root == Path("data")
    assert config.venues == {}
    assert config.source is None


def test_cwd_file_is_read_and_relative_root_is_relative_to_the_file(tmp_path, monkeypatch):
    write(tmp_path, '[data]\nroot = "market"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config().data.root == Path("market")
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(tmp_path / "quantdesk.toml").data.root == tmp_path / "market"


def test_environment_overrides_the_data_root(tmp_path):
    path = write(tmp_path, '[data]\nroot = "market"\n')
    config = load_config(path, env={"QUANTDESK_DATA": "/srv/md"})
    assert config.data.root == Path("/srv/md")
    assert config.store().root == Path("/srv/md")


def test_venues_and_credentials_from_environment(tmp_path):
    path = write(
        tmp_path,
        """
[venues.sandbox]
exchange = "binance"
market = "usdm"
sandbox_url = "http://127.0.0.1:8800/"
api_key_env = "QD_KEY"
api_secret_env = "QD_SECRET"
""",
    )
    venue = load_config(path).venue("sandbox")
    assert venue.market == "usdm" and venue.sandbox_url == "http://127.0.0.1:8800"
    key, secret = venue.credentials({"QD_KEY": "k-123", "QD_SECRET": "s-456"})
    assert key.get_secret_value() == "k-123" and secret.get_secret_value() == "s-456"
    assert "s-456" not in repr(secret) and "s-456" not in str(secret)
    with pytest.raises(ConfigError, match="QD_SECRET"):
        venue.credentials({"QD_KEY": "k"})
    with pytest.raises(ConfigError, match=r"unknown venue 'live' \(known: sandbox\)"):
        load_config(path).venue("live")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[venues.x]\nexchange = "binance"\nmarket = "margin"\n', r"venues\.x\.market: Input"),
        ('[venues.x]\nexchange = "binance"\nsandbox_url = "ftp://h"\n', r"venues\.x\.sandbox_url"),
        ("[venues.x]\n", r"venues\.x\.exchange: Field required"),
        ('[data]\nrooot = "x"\n', r"data\.rooot: Extra inputs are not permitted"),
        ("[data\n", "not valid TOML"),
    ],
)
def test_invalid_config_is_one_line_naming_the_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(str(path))


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_parse_config_counts_further_errors():
    with pytest.raises(ConfigError, match=r"\(\+1 more\)"):
        parse_config({"venues": {"a": {"market": "x"}}})
