"""Wire protocol: golden vectors, malformed packets, round trip and fuzzing of the decoder."""

from __future__ import annotations

import json
import logging
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorhub.errors import ProtocolError
from sensorhub.model import ImuPacket, RawPacket
from sensorhub.protocol import (
    DecodeStats,
    MalformedPacketError,
    MalformedReason,
    StreamSettings,
    available_protocols,
    decode_or_count,
    decode_packet,
    encode_start,
    make_decoder,
    parse_info,
    register_decoder,
)
from sensorhub.protocol.decode import _REGISTRY
from sensorhub.protocol.spec import DeviceState, encode_identify, encode_stop
from tests.helpers import GOLDEN_DIR

GOLDEN = json.loads((GOLDEN_DIR / "protocol_v1.json").read_text())
G = 9.80665
ACC_G = (2, 4, 8, 16, 32)
GYR_DPS = (125, 250, 500, 1000, 2000, 4000)


def pack(
    version: int,
    flags: int,
    seq: int,
    t0_us: int,
    period_us: int,
    acc_g: int,
    gyr_dps: int,
    raw: list[list[int]],
) -> bytes:
    """Packer written from the byte table of docs/protocol.md (independent of the decoder)."""
    head = struct.pack("<BBHIHBBH", version, flags, seq, t0_us, period_us, acc_g, len(raw), gyr_dps)
    return head + b"".join(struct.pack("<6h", *row) for row in raw)


@pytest.mark.parametrize("case", GOLDEN["data"], ids=lambda c: c["name"])
def test_golden_data_packets_decode_exactly(case: dict) -> None:
    packet = decode_packet("s1", 12.5, bytes.fromhex(case["hex"]))
    assert (packet.seq, packet.t0_sensor_us, packet.period_us, packet.flags) == (
        case["seq"],
        case["t0_us"],
        case["period_us"],
        case["flags"],
    )
    assert packet.sensor_id == "s1" and packet.t_host_s == 12.5
    assert np.array_equal(packet.acc_m_s2, np.array(case["acc_m_s2"]))
    assert np.array_equal(packet.gyr_rad_s, np.array(case["gyr_rad_s"]))
    assert packet.acc_range_m_s2 == case["acc_range_g"] * G
    assert packet.gyr_range_rad_s == pytest.approx(math.radians(case["gyr_range_dps"]), rel=1e-15)


MALFORMED_REASON = {
    "empty": MalformedReason.TOO_SHORT,
    "header only": MalformedReason.BAD_SAMPLE_COUNT,
    "wrong version": MalformedReason.BAD_VERSION,
    "length does not match n": MalformedReason.LENGTH_MISMATCH,
    "n = 20 too many": MalformedReason.BAD_SAMPLE_COUNT,
    "unsupported accelerometer range": MalformedReason.BAD_ACC_RANGE,
    "unsupported gyroscope range": MalformedReason.BAD_GYR_RANGE,
    "zero period": MalformedReason.ZERO_PERIOD,
    "reserved flag bits set": MalformedReason.RESERVED_FLAGS,
}


@pytest.mark.parametrize("case", GOLDEN["malformed"], ids=lambda c: c["name"])
def test_golden_malformed_packets_rejected_with_reason(case: dict) -> None:
    with pytest.raises(MalformedPacketError) as info:
        decode_packet("s1", 0.0, bytes.fromhex(case["hex"]))
    assert info.value.reason == MALFORMED_REASON[case["name"]]
    assert isinstance(info.value, ProtocolError)
    assert str(info.value).startswith(info.value.reason.value + ":")


def test_golden_control_commands() -> None:
    by_name = {c["name"]: c for c in GOLDEN["control"]}
    start = by_name["start 200 Hz 16 g 2000 dps 8 per packet"]
    settings_ = StreamSettings(
        start["rate_hz"], start["acc_range_g"], start["gyr_range_dps"], start["samples_per_packet"]
    )
    assert encode_start(settings_) == bytes.fromhex(start["hex"])
    assert encode_stop() == bytes.fromhex(by_name["stop"]["hex"])
    assert encode_identify() == bytes.fromhex(by_name["identify"]["hex"])


def test_golden_info() -> None:
    case = GOLDEN["info"][0]
    info = parse_info(bytes.fromhex(case["hex"]))
    assert info.version == case["version"] and info.state == DeviceState(case["state"])
    assert info.settings == StreamSettings(
        case["rate_hz"], case["acc_range_g"], case["gyr_range_dps"], case["samples_per_packet"]
    )
    with pytest.raises(ProtocolError, match="8"):
        parse_info(bytes.fromhex(case["hex"])[:-1])
    with pytest.raises(ProtocolError, match="state"):
        parse_info(bytes.fromhex("0107c80010d00708"))


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"rate_hz": 250}, "rate_hz"),
        ({"acc_range_g": 3}, "acc_range_g"),
        ({"gyr_range_dps": 300}, "gyr_range_dps"),
        ({"samples_per_packet": 20}, "samples_per_packet"),
    ],
)
def test_stream_settings_reject_unsupported_values(kwargs: dict, word: str) -> None:
    with pytest.raises(ProtocolError, match=word):
        StreamSettings(**kwargs)


raw_rows = st.lists(st.lists(st.integers(-32768, 32767), min_size=6, max_size=6), min_size=1, max_size=19)


@settings(max_examples=400, deadline=None)
@given(
    flags=st.integers(0, 7),
    seq=st.integers(0, 65535),
    t0_us=st.integers(0, 2**32 - 1),
    period_us=st.integers(1, 65535),
    acc_g=st.sampled_from(ACC_G),
    gyr_dps=st.sampled_from(GYR_DPS),
    raw=raw_rows,
)
def test_round_trip_from_the_byte_table(
    flags: int, seq: int, t0_us: int, period_us: int, acc_g: int, gyr_dps: int, raw: list[list[int]]
) -> None:
    packet = decode_packet("s", 1.0, pack(1, flags, seq, t0_us, period_us, acc_g, gyr_dps, raw))
    assert (packet.flags, packet.seq, packet.t0_sensor_us, packet.period_us) == (flags, seq, t0_us, period_us)
    expected_acc = [[v * acc_g * G / 32768 for v in row[:3]] for row in raw]
    expected_gyr = [[v * gyr_dps * math.pi / 180 / 32768 for v in row[3:]] for row in raw]
    assert packet.acc_m_s2.shape == (len(raw), 3) and packet.acc_m_s2.dtype == np.float64
    assert np.array_equal(packet.acc_m_s2, np.array(expected_acc))
    assert np.array_equal(packet.gyr_rad_s, np.array(expected_gyr))


def _counted(stats: DecodeStats) -> int:
    return stats.packets + stats.malformed_total


@settings(max_examples=3000, deadline=None)
@given(payload=st.binary(max_size=300))
def test_random_bytes_never_raise_and_are_counted(payload: bytes) -> None:
    stats = DecodeStats("s")
    result = decode_or_count(RawPacket("s", 0.0, payload), make_decoder(), stats)
    assert _counted(stats) == 1
    assert (result is None) == (stats.malformed_total == 1)
    if result is not None:
        assert len(payload) == 14 + 12 * result.n_samples and np.all(np.isfinite(result.acc_m_s2))


valid_packets = st.builds(
    lambda seq, acc_g, gyr_dps, raw: pack(1, 0, seq, 1000, 5000, acc_g, gyr_dps, raw),
    st.integers(0, 65535),
    st.sampled_from(ACC_G),
    st.sampled_from(GYR_DPS),
    raw_rows,
)


@settings(max_examples=3000, deadline=None)
@given(
    payload=valid_packets,
    position=st.integers(0, 300),
    value=st.integers(0, 255),
    cut=st.integers(0, 300),
    extra=st.binary(max_size=20),
    mode=st.sampled_from(["flip", "truncate", "extend"]),
)
def test_mutated_valid_packets_never_raise(
    payload: bytes, position: int, value: int, cut: int, extra: bytes, mode: str
) -> None:
    if mode == "flip":
        i = position % len(payload)
        mutated = payload[:i] + bytes([value]) + payload[i + 1 :]
    elif mode == "truncate":
        mutated = payload[: cut % len(payload)]
    else:
        mutated = payload + extra
    stats = DecodeStats("s")
    result = decode_or_count(RawPacket("s", 0.0, mutated), make_decoder(), stats)
    assert _counted(stats) == 1
    if mode == "truncate":
        assert result is None and stats.malformed_total == 1
    if mode == "extend" and extra:
        assert result is None and stats.malformed == {"length_mismatch": 1}


def test_stats_count_samples_clipping_and_reasons() -> None:
    stats = DecodeStats("s")
    decoder = make_decoder("sensorhub-v1")
    for case in GOLDEN["data"]:
        assert decode_or_count(RawPacket("s", 0.0, bytes.fromhex(case["hex"])), decoder, stats) is not None
    for case in GOLDEN["malformed"]:
        assert decode_or_count(RawPacket("s", 0.0, bytes.fromhex(case["hex"])), decoder, stats) is None
    assert stats.packets == 4 and stats.samples == 1 + 2 + 1 + 19
    # one full-scale sample in the "clipped" packet and one in the near-wrap packet (without a flag)
    assert stats.clipped == 2
    assert stats.malformed["bad_sample_count"] == 2 and stats.malformed_total == 9
    assert stats.last_error.startswith("reserved_flags")


def test_malformed_logging_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    stats = DecodeStats("s")
    decoder = make_decoder()
    with caplog.at_level(logging.WARNING, logger="sensorhub.protocol.decode"):
        for _ in range(500):
            decode_or_count(RawPacket("s", 0.0, b"\x02"), decoder, stats)
    assert stats.malformed == {"too_short": 500}
    assert len(caplog.records) == 1 and "too_short" in caplog.records[0].getMessage()


class _BrokenDecoder:
    protocol = "broken-test"

    def decode(self, sensor_id: str, t_host_s: float, payload: bytes) -> ImuPacket:
        raise RuntimeError("plugin bug")

    def clipped_samples(self, packet: ImuPacket, payload: bytes) -> int:
        return 0


def test_registry_builds_known_decoders_and_names_the_unknown() -> None:
    assert {"sensorhub-v1", "witmotion"} <= set(available_protocols())
    assert make_decoder("witmotion").protocol == "witmotion"
    with pytest.raises(ProtocolError, match="sensorhub-v1"):
        make_decoder("witmotion-nope")
    register_decoder("broken-test", _BrokenDecoder)
    try:
        with pytest.raises(ProtocolError, match="already registered"):
            register_decoder("broken-test", _BrokenDecoder)
        stats = DecodeStats("s")
        assert decode_or_count(RawPacket("s", 0.0, b""), make_decoder("broken-test"), stats) is None
        assert stats.malformed == {"decoder_failure": 1} and "plugin bug" in stats.last_error
    finally:
        del _REGISTRY["broken-test"]
