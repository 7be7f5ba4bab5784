"""The settings file both hosts read: location, defaults, atomic owner-only writes, server addresses."""
import json
import os
import stat

import pytest

from plugin import config
from plugin.client import Client, WorkerError


def test_location_follows_the_override_and_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("AI_PORTRAIT_CONFIG", str(tmp_path / "custom.json"))
    assert config.config_path() == str(tmp_path / "custom.json")
    monkeypatch.delenv("AI_PORTRAIT_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.config_path() == str(tmp_path / "xdg" / "ai-portrait" / "config.json")


def test_missing_file_gives_defaults_and_finds_the_checkout(tmp_path):
    cfg = config.load_config(str(tmp_path / "none.json"))
    assert set(config.DEFAULTS) <= set(cfg)
    assert cfg["server"] is None and cfg["device"] == "auto"
    assert os.path.isfile(os.path.join(cfg["core_root"], "core", "registry.py"))


def test_save_then_load_round_trip_owner_only(tmp_path):
    path = str(tmp_path / "sub" / "config.json")
    written = config.save_config({"python": "/opt/venv/bin/python", "token": "s3cret-s3cret-s3cret",
                                  "memory_budget_mb": 6000}, path)
    assert written == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cfg = config.load_config(path)
    assert cfg["python"] == "/opt/venv/bin/python" and cfg["memory_budget_mb"] == 6000
    assert cfg["idle_timeout_s"] == config.DEFAULTS["idle_timeout_s"]
    assert not [n for n in os.listdir(tmp_path / "sub") if n != "config.json"]  # no temporary left behind


def test_broken_file_is_a_clear_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(config.ConfigError) as err:
        config.load_config(str(path))
    assert str(path) in str(err.value) and "install.py" in str(err.value)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(config.ConfigError):
        config.load_config(str(path))


def test_client_reports_a_broken_settings_file_as_not_configured(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text("{")
    monkeypatch.setenv("AI_PORTRAIT_CONFIG", str(path))
    with pytest.raises(WorkerError) as err:
        Client()
    assert err.value.code == "not-configured"


@pytest.mark.parametrize("address,parsed", [
    ("tcp://127.0.0.1:8765", ("tcp", "127.0.0.1", 8765)),
    ("tcp://gpu-box.local:9000/", ("tcp", "gpu-box.local", 9000)),
    ("tcp://[::1]:8765", ("tcp", "::1", 8765)),
    ("unix:/run/user/1000/ai.sock", ("unix", "/run/user/1000/ai.sock", None)),
    (None, None), ("", None),
])
def test_server_addresses(address, parsed):
    assert config.parse_server(address) == parsed


@pytest.mark.parametrize("address", ["127.0.0.1:8765", "tcp://host", "tcp://host:99999", "unix:", "http://x:1"])
def test_bad_server_addresses(address):
    with pytest.raises(config.ConfigError):
        config.parse_server(address)
