"""``sensorhub.jit.njit``: a helper called from another kernel with different constants compiles once
per argument type (numba's own ``njit`` compiles one copy per constant value), and computes the same."""

from __future__ import annotations

import numba

from sensorhub.jit import njit


def _offset(values: float, at: int) -> float:
    return values + at


def _caller_of(helper: object) -> object:
    @njit
    def caller(x: float) -> float:
        return helper(x, 1) + helper(x, 2) + helper(x, 7)  # type: ignore[operator]

    return caller


def test_a_helper_called_with_constants_compiles_once_per_type() -> None:
    ours = njit(_offset)
    assert _caller_of(ours)(1.0) == 13.0  # type: ignore[operator]
    assert len(ours.signatures) == 1


def test_numbas_own_njit_compiles_one_copy_per_constant() -> None:
    # the behaviour the module exists for: if numba stops doing this, sensorhub.jit can go
    theirs = numba.njit(_offset)
    assert _caller_of(theirs)(1.0) == 13.0  # type: ignore[operator]
    assert len(theirs.signatures) == 3


def test_options_and_signatures_pass_through() -> None:
    eager = njit("f8(f8, i8)", nogil=True)(_offset)
    assert eager.signatures and eager.targetoptions["nogil"] is True
    assert _caller_of(eager)(1.0) == 13.0  # type: ignore[operator]
    assert len(eager.signatures) == 1
