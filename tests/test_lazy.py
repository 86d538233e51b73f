"""The package faces (``sensorhub.lazy``): every public name resolves, and naming a heavy back-end in a
face does not import it."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

from tests.helpers import modules_after

LAZY_FACES = (
    "sensorhub.demo",
    "sensorhub.mqtt",
    "sensorhub.rehab",
    "sensorhub.runtime",
    "sensorhub.sinks",
    "sensorhub.sources",
    "sensorhub.sources.bumble_backend",
    "sensorhub.web",
)


@pytest.mark.parametrize("face", LAZY_FACES)
def test_every_public_name_of_a_face_resolves(face: str) -> None:
    module = importlib.import_module(face)
    submodules = [m.name for m in pkgutil.iter_modules(module.__path__)]
    # An exported name that is also a submodule's would resolve to that module once it is imported.
    assert not set(module.__all__) & set(submodules)
    for name in submodules:
        importlib.import_module(f"{face}.{name}")
    for name in module.__all__:
        assert not isinstance(getattr(module, name), ModuleType), f"{face}.{name}"
    with pytest.raises(AttributeError, match="no attribute 'not_there'"):
        module.not_there  # noqa: B018


def test_the_live_service_imports_no_optional_back_end_it_does_not_use() -> None:
    loaded = modules_after(
        "import sensorhub.sinks, sensorhub.sources, sensorhub.mqtt, sensorhub.runtime.service"
    )
    assert "sensorhub.runtime.service" in loaded
    assert sorted(m for m in ("influxdb_client", "aiomqtt", "bleak") if m in loaded) == []
