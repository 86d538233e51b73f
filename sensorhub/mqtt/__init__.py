"""MQTT (v5, aiomqtt): the versioned topic tree (``topics``), the result publisher (``MqttSink``), the
raw-packet gateway (``Gateway``) and the worker source taking athletes from gateways (``MqttSource``).
Modules are imported on first use (aiomqtt only when MQTT is)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorhub.lazy import lazy_exports

if TYPE_CHECKING:
    from sensorhub.mqtt.claims import Claim, Offer
    from sensorhub.mqtt.client import BrokerUnavailableError, MqttConnection
    from sensorhub.mqtt.gateway import Gateway, GatewayTiming
    from sensorhub.mqtt.sink import MqttSink
    from sensorhub.mqtt.source import MqttSource, make_mqtt_source

__all__ = [
    "BrokerUnavailableError",
    "Claim",
    "Gateway",
    "GatewayTiming",
    "MqttConnection",
    "MqttSink",
    "MqttSource",
    "Offer",
    "make_mqtt_source",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "Claim": "claims",
        "Offer": "claims",
        "BrokerUnavailableError": "client",
        "MqttConnection": "client",
        "Gateway": "gateway",
        "GatewayTiming": "gateway",
        "MqttSink": "sink",
        "MqttSource": "source",
        "make_mqtt_source": "source",
    },
)
