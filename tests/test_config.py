"""Configuration: every shipped file loads; wrong keys or values fail fast, naming file, key and allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorhub.cli import main
from sensorhub.config import load_config
from sensorhub.errors import ConfigError
from sensorhub.model import athlete_id_problem

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIGS / name, env={})
    assert config.source_file.endswith(name)


def test_defaults_without_a_file() -> None:
    config = load_config(None, env={})
    assert config.service.host == "127.0.0.1" and config.service.port == 8765
    assert config.stream.rate_hz == 200 and config.source.kind == "simulator"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[stream]\nrate_hz = 300\n", "stream.rate_hz: 300 is not allowed; allowed: 50, 100, 200, 400, 800"),
        ("[service]\nportt = 1\n", "service: unknown key 'portt'; allowed keys:"),
        ("[source]\nkind = 'usb'\n", "source.kind: 'usb' is not allowed; allowed: 'simulator', 'ble'"),
        ("[service]\nport = 'x'\n", "service.port: expected an integer"),
        ("[service]\nport = 70000\n", "service.port: 70000 is out of range; allowed: 0 to 65535"),
        ("[[athletes]]\nname = 'a'\n", "athletes[0].id: required key is missing"),
        (
            "[[athletes]]\nid='a'\n[[athletes.sensors]]\nid='s'\nside='right'\nsegment='foot'\n",
            "athletes[0].sensors[0].segment: 'foot' is not allowed",
        ),
        (
            "[[athletes]]\nid='a'\n[[athletes.sensors]]\nid='s'\nside='right'\nsegment='thigh'\n"
            "[[athletes.sensors]]\nid='s'\nside='right'\nsegment='shank'\n",
            "sensor id 's' is already used by athletes[0].sensors[0]",
        ),
        ("[stream\n", "not valid TOML"),
    ],
)
def test_wrong_config_names_file_key_and_allowed(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_ble_sensor_needs_address_or_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[source]\nkind='ble'\n[[athletes]]\nid='a'\n[[athletes.sensors]]\nid='s'\nside='left'\nsegment='thigh'\n",
    )
    with pytest.raises(
        ConfigError, match=r"athletes\[0\]\.sensors\[0\]: a BLE sensor needs `address` or `name`"
    ):
        load_config(path, env={})


def test_environment_overrides_and_their_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "[service]\nport = 9000\n")
    env = {
        "SENSORHUB_SERVICE__PORT": "9100",
        "SENSORHUB_SINKS__RECORDER__ENABLED": "false",
        "SENSORHUB_BROAD_DIR": "x",
    }
    config = load_config(path, env=env)
    assert config.service.port == 9100
    assert config.sinks.recorder.enabled is False
    assert load_config(path, env={"SENSORHUB_MQTT__PORT": "1884"}).mqtt.port == 1884
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        load_config(path, env={"SENSORHUB_MQTT__PORT": "0"})
    with pytest.raises(
        ConfigError, match=r"with SENSORHUB_STREAM__RATE_HZ\): stream.rate_hz: 33 is not allowed"
    ):
        load_config(path, env={"SENSORHUB_STREAM__RATE_HZ": "33"})
    # SENSORHUB_CONFIG names the file when no path is given.
    assert load_config(None, env={"SENSORHUB_CONFIG": str(path)}).service.port == 9000


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_cli_help_and_check_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "analyze" in capsys.readouterr().out
    assert main(["check-config", str(CONFIGS / "team.toml")]) == 0
    assert "2 athletes, 6 sensors" in capsys.readouterr().out
    bad = _write(tmp_path, "[stream]\nrate_hz = 300\n")
    assert main(["check-config", str(bad)]) == 2
    assert "stream.rate_hz: 300 is not allowed" in capsys.readouterr().err


def test_history_commands_without_a_database_say_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for command in (["report", "ana", "--out", str(tmp_path / "r.html")], ["battery", "ana"]):
        assert main([*command, "--db", str(tmp_path / "none.sqlite3")]) == 2
        assert "none.sqlite3: no history database" in capsys.readouterr().err


def test_console_scripts_are_installed() -> None:
    """The README's install gives both console scripts (`pip install -e .` in this environment)."""
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    for script, expected in (("sensorhub", "analyze"), ("firmware-sim", "record")):
        path = bin_dir / script
        if not path.exists():
            pytest.skip(f"{script} is not installed in {bin_dir} (run `pip install -e .`)")
        out = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60, check=True)
        assert expected in out.stdout


def test_cue_rules_in_the_config_are_validated_with_file_and_rule(tmp_path: Path) -> None:
    good = _write(
        tmp_path,
        "[cues]\ncooldown_s = 2.0\n[[cues.rules]]\nname = 'deep'\non = 'rep'\n"
        "when = 'depth_deg < 70'\nphrase = 'deeper'\n",
    )
    config = load_config(good, env={})
    assert config.cues is not None and [r.name for r in config.cues.rules] == ["deep"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[[cues.rules]]\nname = 'x'\non = 'rep'\nwhen = 'wobble_deg > 3'\nphrase = 'hm'\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert str(bad) in str(info.value) and "wobble_deg" in str(info.value)
    assert load_config(None, env={}).cues is not None  # the default rules when [cues] is absent


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("[service]\naccess_token = 918273645546372819\n", {}, "service.access_token"),
        ("[mqtt]\npassword = ['hunter2-hunter2']\n", {}, "mqtt.password"),
        ("[sinks.influxdb]\ntoken = {value = 'hunter2-hunter2'}\n", {}, "sinks.influxdb.token"),
        ("", {"SENSORHUB_MQTT__PASSWORD": "[1, 'hunter2-hunter2']"}, "mqtt.password"),
    ],
)
def test_config_errors_never_show_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, env: dict[str, str], key: str
) -> None:
    """A wrong value of a secret key is named by its key; the value stays out of the message (and out of
    `sensorhub check-config`'s output), while other keys still show what was given."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    message = str(info.value)
    assert key in message and "<redacted>" in message
    assert "hunter2" not in message and "918273645546372819" not in message
    with pytest.raises(ConfigError) as shown:
        load_config(_write(tmp_path, "[service]\nport = 'eighty'\n"), env={})
    assert "'eighty'" in str(shown.value)
    if not env:
        assert main(["check-config", str(path)]) != 0
        out, err = capsys.readouterr()
        assert "hunter2" not in out + err and "918273645546372819" not in out + err


UNSAFE_ATHLETE_IDS = ["a+b", "team/ana", "ana#1", "", " ana", "ana smith", "-x", "é", "a" * 65]


@pytest.mark.parametrize("athlete", UNSAFE_ATHLETE_IDS)
def test_athlete_ids_unsafe_in_topics_paths_or_files_are_refused_naming_the_key(
    tmp_path: Path, athlete: str
) -> None:
    text = f'[[athletes]]\nid = "ok"\n\n[[athletes]]\nid = "{athlete}"\n'
    with pytest.raises(ConfigError, match=r"athletes\[1\]\.id: .* is not a valid athlete id"):
        load_config(_write(tmp_path, text), env={})


@pytest.mark.parametrize("sensor", ["s/1", "s+1", "s#1", "s\\u0001"])
def test_sensor_ids_unsafe_as_topic_levels_are_refused_naming_the_key(tmp_path: Path, sensor: str) -> None:
    sensors = f'[[athletes.sensors]]\nid = "{sensor}"\nside = "left"\nsegment = "thigh"\n'
    text = f'[[athletes]]\nid = "ana"\n{sensors}'
    with pytest.raises(ConfigError, match=r"athletes\[0\]\.sensors\[0\]\.id: .* is not a valid sensor id"):
        load_config(_write(tmp_path, text), env={})


def test_athlete_ids_in_use_stay_valid() -> None:
    for athlete in ("ana", "athlete1", "ath", "Team_A.01-x", "a" * 64):
        assert athlete_id_problem(athlete) == ""
