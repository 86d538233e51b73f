"""Package faces that import their modules on first use.

A face names what callers use (``from sensorhub.sinks import InfluxSink``) without importing heavy or
optional back-ends (influxdb-client, aiomqtt, bleak, Bumble, uvicorn) until a name is touched, so that
``sensorhub demo`` starts without the InfluxDB client and ``sensorhub replay`` without the web server.
Each face lists its names twice: under ``TYPE_CHECKING`` (for mypy and readers) and in ``lazy_exports``.
A face never exports a name that is also one of its submodules: once that submodule is imported, Python
binds the package attribute to the module and ``__getattr__`` is no longer asked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562): ``NAME`` -> ``package.exports[NAME]``.NAME, imported on use."""

    def attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return attribute
