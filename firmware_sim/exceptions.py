"""The simulator's own exception tree: every error firmware_sim raises is a ``FirmwareSimError``.

Rooted here, not in sensorhub's tree, as bleak's ``BleakError`` and aiomqtt's ``MqttError`` are: the
simulator is a package of its own that sensorhub's faces and tests compose with the pipeline.
"""

from __future__ import annotations


class FirmwareSimError(Exception):
    """Base of every firmware_sim error; the message says what was asked and what is allowed."""
