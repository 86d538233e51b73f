"""What the BLE source subscribes to and writes, per sensor protocol (``[[athletes.sensors]] protocol``).

Each profile names the data characteristic to subscribe to, the battery characteristic (if any) and the
device's documented start sequence: the writes, in order, that make it stream (sent after the data
notification is enabled, as the vendors' best practice asks). Specification versions: README
"Sensors".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sensorhub.config import StreamConfig
from sensorhub.protocol import metamotion, movella_dot, spec, witmotion

GattWrite = tuple[str, bytes]
"""One write of a start sequence: (characteristic UUID, value)."""


@dataclass(frozen=True, slots=True)
class GattProfile:
    protocol: str
    service_uuid: str
    data_uuid: str
    battery_uuid: str | None  # read as a u8 percentage in the first byte
    advertises_service: bool  # whether the service UUID is in the advertisement (scan filter)
    start_writes: Callable[[StreamConfig, int], Sequence[GattWrite]]  # (settings, max samples/packet)


def _sensorhub_start(stream: StreamConfig, max_samples_per_packet: int) -> list[GattWrite]:
    per_packet = min(stream.samples_per_packet, max_samples_per_packet)
    settings = spec.StreamSettings(stream.rate_hz, stream.acc_range_g, stream.gyr_range_dps, per_packet)
    return [(spec.CONTROL_UUID, spec.encode_start(settings))]


def _movella_dot_start(_stream: StreamConfig, _max: int) -> list[GattWrite]:
    # The output rate first: the spec allows no change once the measurement runs.
    return [(movella_dot.DEVICE_CONTROL_UUID, movella_dot.output_rate_command()),
            (movella_dot.CONTROL_UUID, movella_dot.control_command(start=True))]


def _metamotion_start(_stream: StreamConfig, _max: int) -> list[GattWrite]:
    return [(metamotion.COMMAND_UUID, command) for command in metamotion.start_commands()]


PROFILES: dict[str, GattProfile] = {
    spec.PROTOCOL_NAME: GattProfile(
        protocol=spec.PROTOCOL_NAME,
        service_uuid=spec.SERVICE_UUID,
        data_uuid=spec.DATA_UUID,
        battery_uuid=spec.BATTERY_LEVEL_UUID,
        advertises_service=True,
        start_writes=_sensorhub_start,
    ),
    witmotion.PROTOCOL_NAME: GattProfile(
        protocol=witmotion.PROTOCOL_NAME,
        service_uuid=witmotion.SERVICE_UUID,
        data_uuid=witmotion.NOTIFY_UUID,
        battery_uuid=None,
        advertises_service=False,
        start_writes=lambda stream, _max: [(witmotion.WRITE_UUID, witmotion.rate_command(stream.rate_hz))],
    ),
    movella_dot.PROTOCOL_NAME: GattProfile(
        protocol=movella_dot.PROTOCOL_NAME,
        service_uuid=movella_dot.MEASUREMENT_SERVICE_UUID,
        data_uuid=movella_dot.MEDIUM_PAYLOAD_UUID,
        battery_uuid=movella_dot.BATTERY_UUID,
        advertises_service=False,  # DOTs advertise their name and Movella's company id
        start_writes=_movella_dot_start,
    ),
    metamotion.PROTOCOL_NAME: GattProfile(
        protocol=metamotion.PROTOCOL_NAME,
        service_uuid=metamotion.SERVICE_UUID,
        data_uuid=metamotion.NOTIFY_UUID,
        battery_uuid=None,
        advertises_service=False,
        start_writes=_metamotion_start,
    ),
}
