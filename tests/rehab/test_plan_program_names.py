"""A plan's program is one of the known programs, by plain name: never a path, a device or a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sensorhub.errors import ConfigError, InputError
from sensorhub.history import HistoryStore
from sensorhub.rehab import plan_edit
from sensorhub.rehab.program import PROGRAMS_DIR, find_program, load_program


@pytest.mark.parametrize(
    "program",
    [
        "/dev/zero",
        str(PROGRAMS_DIR / "pfp_default.toml"),  # a real program file, but by path
        "pfp_default.toml",
        "../programs/pfp_default",
        "fifo",
    ],
)
def test_a_plan_takes_known_program_names_only(tmp_path: Path, program: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    if program == "fifo":
        program = str(tmp_path / "fifo")
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        with pytest.raises(InputError, match=r"unknown program .*; programs: .*pfp_default"):
            plan_edit(store, "ana", program=program, side="right")
        plan, prog, _ = plan_edit(store, "ana", program="pfp_default", side="right")
    assert plan.program == prog.name == "pfp_default"


def test_program_files_must_be_regular_and_small(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "p.toml")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_program(tmp_path / "p.toml")  # would block forever on open
    with pytest.raises(ConfigError, match="not a regular file"):
        load_program("/dev/zero")  # would never end
    (tmp_path / "big.toml").write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(ConfigError, match="larger than a program can be"):
        load_program(tmp_path / "big.toml")
    with pytest.raises(ConfigError, match="not a program name"):
        find_program(str(PROGRAMS_DIR / "pfp_default.toml"))
