"""Compile (or load from numba's cache) every kernel of the live path before the first live sample.

A warm start loads the cached machine code (well under a second). A cold start (a new install, a new
numba, an edited kernel) compiles: about 20 s of one core here. The stages then compile in two processes
at once, one stage group each, writing numba's cache; this process loads what the other compiled. The
second process starts as early as the command can start it (``start_parallel_compile``), so that it also
overlaps this process's imports and the simulator's set-up.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _warm_timing_orientation_and_analysis() -> None:
    from sensorhub import analysis, orientation
    from sensorhub.timing import front

    front.warmup()
    orientation.warmup()
    analysis.warmup()


def _warm_decode_and_kinematics() -> None:
    from sensorhub import kinematics
    from sensorhub.protocol import decode

    decode.warm_up()
    kinematics.warmup()


# Two groups of about equal time: measured cold on one core (under load 4-6), 1.4 + 5.4 + 4.9 s in the
# second process and 0.7 + 7.5 s here, where the service's imports and the simulator's set-up (2-3 s)
# run too.
GROUPS: tuple[Callable[[], None], ...] = (_warm_timing_orientation_and_analysis, _warm_decode_and_kinematics)


_HELPER = "from sensorhub.runtime.warmup import GROUPS; GROUPS[0]()"


def _heavy_kernels() -> list[object]:
    from sensorhub.analysis import _kernels as analysis_kernels
    from sensorhub.kinematics import _kernels as kinematics_kernels
    from sensorhub.orientation import _kernels as orientation_kernels

    return [orientation_kernels.filter_batch, kinematics_kernels.recover_after_gaps, analysis_kernels.detect]


def _cached(kernel: object) -> bool:
    """Whether numba's cache holds machine code for this kernel's current source (numba's own index;
    any doubt counts as not cached, which only costs a second process)."""
    try:
        return bool(kernel._cache._cache_file._load_index())  # type: ignore[attr-defined]
    except Exception:
        return False


_helper: subprocess.Popen[bytes] | None = None  # compiling GROUPS[0] in a second process


def start_parallel_compile() -> None:
    """On a cold cache, start compiling the first kernel group in a second process now, so that it runs
    while this process builds its sources and imports the service (``warmup`` joins it). Call first
    thing in a command that will serve; harmless on a warm cache or a single core."""
    global _helper
    if _helper is None and (os.cpu_count() or 1) > 1 and not all(_cached(k) for k in _heavy_kernels()):
        # a plain child interpreter (not multiprocessing: that would re-import the caller's __main__)
        _helper = subprocess.Popen([sys.executable, "-c", _HELPER], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)


def warmup(parallel: bool = True) -> None:
    global _helper
    t0_s = time.perf_counter()
    cold = not all(_cached(k) for k in _heavy_kernels())
    if parallel and cold:
        start_parallel_compile()
    helper, _helper = _helper, None
    if helper is not None:
        GROUPS[1]()
        _, err = helper.communicate()
        if helper.returncode != 0:
            log.warning("the parallel kernel compilation failed (%s); compiling here: %s", helper.returncode,
                        err.decode(errors="replace").strip().splitlines()[-1:])
        GROUPS[0]()  # loads what the helper compiled (or compiles it, if it could not write the cache)
    else:
        for group in GROUPS:
            group()
    if cold:
        log.info("numba kernels compiled in %.1f s (cached for the next start)", time.perf_counter() - t0_s)
