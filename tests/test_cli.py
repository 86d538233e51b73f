"""The command line: building the parser imports no benchmark; each benchmark's arguments still parse."""

from __future__ import annotations

import pytest

from sensorhub.cli import BENCHES, build_parser
from tests.helpers import modules_after


def test_building_the_parser_imports_no_benchmark_module() -> None:
    loaded = modules_after("from sensorhub.cli import build_parser; build_parser().parse_args(['demo'])")
    assert "sensorhub.cli" in loaded
    assert sorted(m for m in loaded if m.startswith("sensorhub.bench")) == []


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_each_benchmark_parses_its_own_arguments(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["bench", name, "--help"])
    assert stop.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith(f"usage: sensorhub bench {name}")
    assert "--" in usage.split("options:", 1)[1].replace("--help", "")  # its own options were added


def test_bench_options_reach_the_namespace() -> None:
    args = build_parser().parse_args(["bench", "capacity", "--steps", "64,128"])
    assert args.bench == "capacity" and args.steps == "64,128"
