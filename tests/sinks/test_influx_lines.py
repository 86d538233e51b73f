"""Knee-angle blocks -> line protocol in one numba call: byte for byte the per-point path (``Point``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensorhub.model import KneeAngles
from sensorhub.sinks._kernels import write_float
from sensorhub.sinks.influx_schema import AngleBlock, KneeAngleLines, angle_point_line

T0_S = 1_767_225_600.0

# tag values the line protocol must escape (spaces, commas, equals signs, a trailing backslash)
TAGS: list[dict[str, str]] = [
    {"athlete": "ana", "leg": "right"},
    {"athlete": "ben smith", "leg": "left", "drill": "squat, deep", "session": "s=1"},
    {"athlete": "c\\", "leg": "", "drill": "a b=c,d", "session": ""},
    {"athlete": "émile", "leg": "left", "session": "2026-01-01 09:00"},
]


def per_point(blocks: list[AngleBlock]) -> bytes:
    lines = (angle_point_line(a, int(i), tags) for a, keep, tags in blocks for i in keep)
    return b"".join(line.encode() + b"\n" for line in lines if line is not None)


def random_block(rng: np.random.Generator, n: int, leg: str) -> KneeAngles:
    def column() -> np.ndarray:
        kind = rng.integers(0, 6, n)
        values = np.where(kind == 0, rng.normal(0.0, 1.0, n), rng.uniform(-math.pi, math.pi, n))
        values = np.where(kind == 1, np.round(values, 3), values)  # short decimals
        values = np.where(kind == 2, rng.choice([0.0, -0.0, 1e-7, -3e-6, 1e15, 2e16], n), values)
        bad = rng.random(n) < 0.08
        return np.where(bad, rng.choice([np.nan, np.inf, -np.inf, 1e308], n), values)

    return KneeAngles(
        leg,
        T0_S + np.sort(rng.uniform(0.0, 3600.0, n)),
        column(),
        column(),
        column(),
        rng.integers(0, 256, n).astype(np.uint8),
    )


def test_blocks_are_byte_identical_to_the_per_point_path() -> None:
    rng = np.random.default_rng(18)
    lines = KneeAngleLines()
    for _ in range(60):
        blocks: list[AngleBlock] = []
        for _ in range(int(rng.integers(1, 6))):
            angles = random_block(rng, int(rng.integers(1, 300)), "x/right")
            keep = np.flatnonzero(rng.random(angles.t_s.shape[0]) < 0.7)
            blocks.append((angles, keep, TAGS[int(rng.integers(0, len(TAGS)))]))
        out = lines(blocks)
        expected = per_point(blocks)
        assert bytes(out.body) == expected
        assert len(out) == expected.count(b"\n")
        assert out.ends.tolist() == [i + 1 for i, c in enumerate(expected) if c == ord("\n")]


def test_an_empty_selection_is_no_lines() -> None:
    angles = random_block(np.random.default_rng(1), 5, "x/left")
    out = KneeAngleLines()([(angles, np.zeros(0, dtype=np.int64), TAGS[0])])
    assert bytes(out.body) == b"" and len(out) == 0


def test_a_non_finite_timestamp_fails_as_the_per_point_path_does() -> None:
    angles = random_block(np.random.default_rng(2), 4, "x/left")
    angles.t_s[2] = np.nan
    block: AngleBlock = (angles, np.arange(4), TAGS[0])
    with pytest.raises(ValueError, match="NaN"):
        per_point([block])
    with pytest.raises(ValueError, match="NaN"):
        KneeAngleLines()([block])


@pytest.mark.parametrize("seed", range(4))
def test_floats_are_written_as_python_repr_or_left_to_it(seed: int) -> None:
    """Random doubles over the whole range, random bit patterns and the edges (powers of two and ten,
    their neighbours): what the kernel writes is repr with ".0" cut; what it leaves, it leaves whole."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**64, 20_000, dtype=np.uint64, endpoint=False)
    edges = [float(v) for k in range(-15, 60) for v in (2.0**k, 10.0 ** min(k, 20))]
    edges += [math.nextafter(v, d) for v in edges for d in (0.0, math.inf)]
    values = np.concatenate(
        [
            bits.view(np.float64),
            np.sign(rng.normal(size=20_000)) * 10.0 ** rng.uniform(-5.0, 17.0, 20_000),
            np.array(edges),
        ]
    )
    buf = np.empty(64, dtype=np.uint8)
    written = 0
    for x in values[np.isfinite(values)].tolist():
        end = write_float(buf, 0, x)
        if end < 0:
            continue
        text = repr(x)
        assert bytes(buf[:end]).decode() == (text[:-2] if text.endswith(".0") else text), x
        written += 1
    assert written > 18_000  # the fixed-notation range (~90 % of the log-uniform draws) is done by the kernel
