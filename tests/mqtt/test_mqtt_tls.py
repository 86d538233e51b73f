"""MQTT over TLS with a password, against a real Mosquitto whose only listener requires both: a throwaway
CA and server certificate made here with the openssl CLI, users made with mosquitto_passwd. Every MQTT
client (sink, gateway, worker) connects through MqttConnection, so its [mqtt] TLS settings apply to all."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiomqtt
import pytest

from sensorhub.config import BrokerConfig, load_config
from sensorhub.errors import ConfigError
from sensorhub.mqtt.client import MqttConnection, payload_bytes
from tests.services import Mosquitto

PASSWORD = "s3cret-Pa55"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path) -> None:
    """ca.pem (a throwaway CA) and server.pem/server.key for 127.0.0.1 signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)  # fmt: skip


class TlsMosquitto(Mosquitto):
    """Mosquitto whose one listener requires TLS and a user name and password."""

    def __init__(self, certs: Path) -> None:
        super().__init__()
        self.certs = certs

    def _command(self) -> list[str]:
        command = super()._command()
        passwd = self.certs / "passwd"
        passwd.write_text("")
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), "coach", PASSWORD], check=True, timeout=30)
        passwd.chmod(0o644)
        (self._dir / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
            f"cafile {self.certs / 'ca.pem'}\ncertfile {self.certs / 'server.pem'}\n"
            f"keyfile {self.certs / 'server.key'}\npersistence false\nlog_type error\n"
            "user root\n"  # as root, mosquitto would switch to its own user, who cannot read pytest's tmp
        )
        return command


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMosquitto]:
    certs = tmp_path_factory.mktemp("certs")
    make_certificates(certs)
    mosquitto = TlsMosquitto(certs)
    with mosquitto:
        yield mosquitto


def broker_config(tls_broker: TlsMosquitto, **changes: object) -> BrokerConfig:
    base = BrokerConfig(
        port=tls_broker.port,
        username="coach",
        password=PASSWORD,
        ca_file=str(tls_broker.certs / "ca.pem"),
        reconnect_min_s=0.1,
        reconnect_max_s=0.3,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_tls_and_password_connect_publish_and_receive(tls_broker: TlsMosquitto) -> None:
    async def subscribe(client: aiomqtt.Client) -> None:
        await client.subscribe("t/#", qos=1)

    async with MqttConnection(broker_config(tls_broker), "tls", on_connect=subscribe) as conn:
        await conn.wait_connected(15.0)
        await conn.publish("t/x", b"over tls", qos=1)
        async with asyncio.timeout(15.0):
            message = await anext(conn.messages())
    assert payload_bytes(message) == b"over tls"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"password": "wrong"}, "refused"),  # TLS fine, password wrong
        ({"tls": False, "ca_file": ""}, ""),  # plain MQTT to a TLS listener
        ({"ca_file": ""}, "certificate verify failed"),  # the system's CAs do not know the test CA
    ],
)
async def test_a_wrong_password_plain_mqtt_or_an_unknown_ca_never_connects(
    tls_broker: TlsMosquitto, caplog: pytest.LogCaptureFixture, changes: dict[str, object], why: str
) -> None:
    caplog.set_level(logging.DEBUG)
    config = broker_config(tls_broker, **changes)
    if "ca_file" in changes and "tls" not in changes:
        config = replace(config, tls=True)
    conn = MqttConnection(config, "tls-bad")
    async with conn:
        async with asyncio.timeout(40.0):  # plain MQTT to TLS: aiomqtt's 10 s CONNACK timeout
            while conn.stats.failed_attempts < 1:
                await asyncio.sleep(0.05)
        assert not conn.connected
    assert why in conn.stats.last_error
    assert PASSWORD not in caplog.text and PASSWORD not in conn.stats.last_error


def test_tls_keys_are_checked_at_config_load_and_the_password_is_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nca_file = "/nonexistent/ca.pem"\n')
    with pytest.raises(ConfigError, match=r"mqtt\.ca_file: '/nonexistent/ca.pem' is not a file"):
        load_config(path, env={})
    path.write_text(f"[mqtt]\npassword = {len(PASSWORD)}\n")  # wrong type: the value stays hidden
    with pytest.raises(ConfigError, match=r"mqtt\.password: expected a string, got <redacted>") as error:
        load_config(path, env={})
    assert str(len(PASSWORD)) not in str(error.value)
    path.write_text(f'[mqtt]\nusername = "coach"\npassword = "{PASSWORD}"\n')
    assert PASSWORD not in repr(load_config(path, env={}))
