"""numba's ``njit`` for every sensorhub kernel, compiling a helper once per argument *type*.

Called from another kernel with a constant (a state index, a flag), a numba function is compiled once
per constant *value* (numba types a frozen global or a literal as ``Literal[int](80)`` and compiles a
copy for it). The helpers here are called with dozens of such constants, so this cost about a fifth of
a cold start's compile time (25 -> 20 s of one core, measured with ``sensorhub bench startup --cold``'s
kernels). The dispatchers below type those calls by the constants' plain types instead; the machine code
is the same (LLVM still sees the constants after inlining).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
from numba.core import types

_F = TypeVar("_F", bound=Callable[..., Any])


def _typed_by_type(dispatcher: Any) -> Any:
    get_call_template = dispatcher.get_call_template  # how numba types a call from another kernel

    def by_type(args: tuple[Any, ...], kws: dict[str, Any]) -> Any:
        return get_call_template(
            tuple(types.unliteral(a) for a in args), {k: types.unliteral(v) for k, v in kws.items()}
        )

    dispatcher.get_call_template = by_type
    return dispatcher


def njit(*args: Any, **options: Any) -> Any:
    """``numba.njit`` (same arguments: ``@njit``, ``@njit(**options)``, ``@njit(signature, ...)``)."""
    if len(args) == 1 and callable(args[0]) and not options:
        return _typed_by_type(numba.njit(args[0]))

    def decorate(fn: _F) -> _F:
        return cast(_F, _typed_by_type(numba.njit(*args, **options)(fn)))

    return decorate
