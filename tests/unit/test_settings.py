from pathlib import Path

import pytest

from csms.settings import load


def test_flags_beat_environment_beat_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "csms.toml"
    file.write_text('ocpp_port = 9100\napi_port = 8100\nnats_url = "nats://file:4222"\n')
    monkeypatch.setenv("CSMS_API_PORT", "8200")
    monkeypatch.setenv("CSMS_DATA_DIR", "/var/lib/csms")
    settings = load(file, {"nats_url": "nats://flag:4222", "host": None})
    assert settings.ocpp_port == 9100
    assert settings.api_port == 8200
    assert settings.data_dir == Path("/var/lib/csms")
    assert settings.nats_url == "nats://flag:4222"
    assert settings.host == "0.0.0.0"


def test_unknown_file_settings_are_an_error(tmp_path: Path) -> None:
    file = tmp_path / "csms.toml"
    file.write_text("ocpp_prot = 1\n")
    with pytest.raises(ValueError, match="ocpp_prot"):
        load(file, {})
