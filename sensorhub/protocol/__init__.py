"""Wire formats: the sensorhub GATT profile (``spec``), decoders from bytes to samples (``decode``) and
the commercial sensors' profiles (``witmotion``, ``movella_dot``, ``metamotion``)."""

from sensorhub.protocol.decode import (
    GRID_RATES_HZ,
    DecoderFactory,
    DecodeStats,
    MalformedPacketError,
    MalformedReason,
    PacketDecoder,
    SensorhubV1Decoder,
    available_protocols,
    decode_or_count,
    decode_packet,
    decode_packet_counting,
    make_decoder,
    register_decoder,
    warm_up,
)
from sensorhub.protocol.spec import PROTOCOL_NAME, DeviceInfo, StreamSettings, encode_start, parse_info

__all__ = [
    "GRID_RATES_HZ",
    "PROTOCOL_NAME",
    "DecodeStats",
    "DecoderFactory",
    "DeviceInfo",
    "MalformedPacketError",
    "MalformedReason",
    "PacketDecoder",
    "SensorhubV1Decoder",
    "StreamSettings",
    "available_protocols",
    "decode_or_count",
    "decode_packet",
    "decode_packet_counting",
    "encode_start",
    "make_decoder",
    "parse_info",
    "register_decoder",
    "warm_up",
]
