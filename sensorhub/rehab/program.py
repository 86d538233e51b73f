"""Rehab programs: phases of drills with sets, reps, tempo, metric targets, cue rules and the milestones
that decide when to move on. Read from TOML (``configs/programs/NAME.toml``), validated once.

A wrong program stops loading with the file, the key path and the reason, e.g.
``configs/programs/pfp.toml: phases[1].drills[2].targets.peak_valgus_deg: min 8 > max 6``.
Drills come from one registry, ``DRILLS`` (name -> the event type the analysis gives for it, or None for
work logged without sensors); targets use the analysis' metric names; cue rules use the cue grammar
(``sensorhub.cues.rules``), the same parser as the ``[cues]`` table.
"""

from __future__ import annotations

import math
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorhub.analysis import Target
from sensorhub.cues import DEFAULT_COOLDOWN_S, EVENT_METRICS, CueRule, CueRuleSet, parse_rule
from sensorhub.errors import ConfigError

DRILLS: Mapping[str, str | None] = {
    # closed-chain strength and control: reps (start of descent, bottom, end)
    "squat": "rep",
    "single_leg_squat": "rep",
    "step_down": "rep",
    "stair_descent": "rep",
    "lunge": "rep",
    # jumps and hops: landings
    "cmj": "landing",
    "drop_jump": "landing",
    "single_leg_hop": "landing",
    "lateral_hop": "landing",
    # change of direction: cuts
    "cut_45": "cut",
    "cut_90": "cut",
    # hip work logged without sensors (sets and reps only)
    "side_lying_hip_abduction": None,
    "banded_hip_abduction": None,
    "banded_lateral_walk": None,
    "clamshell": None,
    "bridge": None,
}
"""Every drill a program may name: the event type the analysis produces for it, None = no sensors."""

# Metrics per event type that targets may name: the analysis' (control_score included).
TARGET_METRICS: Mapping[str, frozenset[str]] = {k: EVENT_METRICS[k] for k in ("landing", "cut", "rep")}
# Cue kinds a drill of each event type can use (rep drills also cue live during the descent).
CUE_KINDS: Mapping[str, tuple[str, ...]] = {
    "rep": ("rep", "rep_descent"),
    "landing": ("landing",),
    "cut": ("cut",),
}

PROGRAM_KEYS = frozenset(
    {"name", "title", "condition", "max_weekly_load_increase_pct", "pain_threshold", "phases"}
)
PHASE_KEYS = frozenset({"name", "title", "goal", "drills", "criteria"})
DRILL_KEYS = frozenset({"drill", "sets", "reps", "tempo_eccentric_s", "targets", "cues", "note"})
CRITERIA_KEYS = frozenset(
    {"pain_free_sessions", "target_share", "min_events", "symmetry_min_pct", "symmetry_metrics"}
)
DEFAULT_SYMMETRY_METRICS = ("peak_flexion_deg", "flexion_excursion_deg")
DEFAULT_MAX_WEEKLY_INCREASE_PCT = 20.0  # a program without its own limit (tendon-load guidance: 20 %)


@dataclass(frozen=True, slots=True)
class DrillPlan:
    drill: str
    event_type: str | None  # None: logged without sensors
    sets: int
    reps: int
    tempo_eccentric_s: float | None
    targets: tuple[Target, ...]
    cues: tuple[CueRule, ...]
    note: str

    @property
    def sensed(self) -> bool:
        return self.event_type is not None


@dataclass(frozen=True, slots=True)
class Criteria:
    """Milestones to advance from a phase (all must hold):

    - pain at or under the athlete's threshold in each of the last ``pain_free_sessions`` sessions;
    - every target of every sensed drill met on at least ``target_share`` of that drill's events on
      the involved side in the latest session, which must hold at least ``min_events`` of them;
    - if ``symmetry_min_pct`` is set: the limb symmetry index of each ``symmetry_metrics`` metric on the
      phase's landing drills at or above it (both legs instrumented).
    """

    pain_free_sessions: int
    target_share: float
    min_events: int
    symmetry_min_pct: float | None
    symmetry_metrics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    title: str
    goal: str
    drills: tuple[DrillPlan, ...]
    criteria: Criteria

    def drill(self, name: str) -> DrillPlan | None:
        return next((d for d in self.drills if d.drill == name), None)


@dataclass(frozen=True, slots=True)
class Program:
    name: str
    title: str
    condition: str
    pain_threshold: int  # the default for athletes on this program (their plan may set their own)
    max_weekly_load_increase_pct: float
    phases: tuple[Phase, ...]
    source: str

    def phase(self, index: int) -> Phase:
        if not 0 <= index < len(self.phases):
            raise ConfigError(
                f"{self.source}: program {self.name!r} has phases 0-{len(self.phases) - 1}, not {index}"
            )
        return self.phases[index]

    def cue_rules(self, phase_index: int) -> CueRuleSet:
        """The phase's per-drill cue rules, for the cue engine."""
        return CueRuleSet(tuple(rule for d in self.phase(phase_index).drills for rule in d.cues))


# ---- loading -------------------------------------------------------------------------------------------


class _Where:
    """The file and key path of the value being checked, for error messages."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source = source
        self.path = path

    def key(self, name: str | int) -> _Where:
        if isinstance(name, int):
            return _Where(self.source, f"{self.path}[{name}]")
        return _Where(self.source, f"{self.path}.{name}" if self.path else name)

    def error(self, reason: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.path or '(top level)'}: {reason}")


def _table(value: Any, where: _Where, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(f"expected a table, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise where.key(unknown[0]).error(f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return value


def _array(value: Any, where: _Where) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise where.error(f"expected an array, got {value!r}")
    return value


def _str(value: Any, where: _Where, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _int(value: Any, where: _Where, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise where.error(f"{value} is out of range; allowed: {lo} to {hi}")
    return value


def _num(value: Any, where: _Where, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(f"expected a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise where.error(f"{value} is out of range; allowed: {lo:g} to {hi:g}")
    return float(value)


def _target(metric: str, value: Any, event_type: str, where: _Where) -> Target:
    if metric not in TARGET_METRICS[event_type]:
        raise where.error(
            f"unknown metric for a {event_type} drill; known: {', '.join(sorted(TARGET_METRICS[event_type]))}"
        )
    table = _table(value, where, frozenset({"min", "max"}))
    lo = None if "min" not in table else _num(table["min"], where.key("min"), -1e6, 1e6)
    hi = None if "max" not in table else _num(table["max"], where.key("max"), -1e6, 1e6)
    if lo is None and hi is None:
        raise where.error("give min, max or both, e.g. { max = 6.0 }")
    if lo is not None and hi is not None and lo > hi:
        raise where.error(f"min {lo:g} > max {hi:g}")
    return Target(metric, lo, hi)


def _drill(value: Any, where: _Where) -> DrillPlan:
    table = _table(value, where, DRILL_KEYS)
    name = _str(table.get("drill"), where.key("drill"))
    if name not in DRILLS:
        raise where.key("drill").error(f"unknown drill {name!r}; known: {', '.join(DRILLS)}")
    event_type = DRILLS[name]
    sets = _int(table.get("sets"), where.key("sets"), 1, 20)
    reps = _int(table.get("reps"), where.key("reps"), 1, 200)
    tempo = table.get("tempo_eccentric_s")
    if tempo is not None:
        if event_type not in ("rep", None):
            raise where.key("tempo_eccentric_s").error(
                f"a tempo applies to rep drills, not {event_type} drills"
            )
        tempo = _num(tempo, where.key("tempo_eccentric_s"), 0.1, 20.0)
    targets: list[Target] = []
    cues: list[CueRule] = []
    if event_type is None:
        for key in ("targets", "cues"):
            if key in table:
                raise where.key(key).error(f"{name!r} is logged without sensors: it has no metrics or cues")
    else:
        raw_targets = table.get("targets", {})
        if not isinstance(raw_targets, Mapping):
            raise where.key("targets").error(
                f"expected a table of metric = {{ min, max }}, got {raw_targets!r}"
            )
        targets = [_target(m, v, event_type, where.key("targets").key(m)) for m, v in raw_targets.items()]
        for i, rule in enumerate(_array(table.get("cues", []), where.key("cues"))):
            here = where.key("cues").key(i)
            if not isinstance(rule, Mapping):
                raise here.error("expected a table (a cue rule)")
            if rule.get("drill", name) != name:
                raise here.key("drill").error(
                    f"a drill's cue rules apply to that drill ({name!r}); leave it out"
                )
            if rule.get("on") not in CUE_KINDS[event_type]:
                raise here.key("on").error(
                    f"{rule.get('on')!r} does not fit a {event_type} drill; "
                    f"allowed: {', '.join(CUE_KINDS[event_type])}"
                )
            full = {"name": f"{name}_{i + 1}", **rule, "drill": name}
            cues.append(parse_rule(full, i, DEFAULT_COOLDOWN_S, f"{where.source}: {here.path}"))
    note = table.get("note", "")
    if not isinstance(note, str):
        raise where.key("note").error(f"expected a string, got {note!r}")
    return DrillPlan(name, event_type, sets, reps, tempo, tuple(targets), tuple(cues), note)


def _criteria(value: Any, where: _Where, drills: Sequence[DrillPlan]) -> Criteria:
    if value is None:
        raise where.error(
            "a phase needs [phases.criteria] (the milestones to advance); e.g. pain_free_sessions = 2"
        )
    table = _table(value, where, CRITERIA_KEYS)
    if "pain_free_sessions" not in table:
        raise where.key("pain_free_sessions").error("required: pain at or under the threshold for N sessions")
    pain_n = _int(table["pain_free_sessions"], where.key("pain_free_sessions"), 1, 50)
    share = _num(table.get("target_share", 0.8), where.key("target_share"), 0.0, 1.0)
    min_events = _int(table.get("min_events", 5), where.key("min_events"), 1, 1000)
    sym = table.get("symmetry_min_pct")
    sym_pct = None if sym is None else _num(sym, where.key("symmetry_min_pct"), 0.0, 100.0)
    metrics: tuple[str, ...] = ()
    if sym_pct is not None:
        landing_drills = [d.drill for d in drills if d.event_type == "landing"]
        if not landing_drills:
            raise where.key("symmetry_min_pct").error(
                "limb symmetry is judged on landing drills; this phase has none"
            )
        raw = _array(
            table.get("symmetry_metrics", list(DEFAULT_SYMMETRY_METRICS)), where.key("symmetry_metrics")
        )
        for i, m in enumerate(raw):
            if not isinstance(m, str) or m not in TARGET_METRICS["landing"]:
                raise (
                    where.key("symmetry_metrics")
                    .key(i)
                    .error(
                        f"unknown landing metric {m!r}; known: {', '.join(sorted(TARGET_METRICS['landing']))}"
                    )
                )
        metrics = tuple(raw)
        if not metrics:
            raise where.key("symmetry_metrics").error("name at least one landing metric")
    elif "symmetry_metrics" in table:
        raise where.key("symmetry_metrics").error("set symmetry_min_pct too (or drop symmetry_metrics)")
    return Criteria(pain_n, share, min_events, sym_pct, metrics)


def _phase(value: Any, where: _Where) -> Phase:
    table = _table(value, where, PHASE_KEYS)
    name = _str(table.get("name"), where.key("name"))
    drills_raw = _array(table.get("drills", []), where.key("drills"))
    if not drills_raw:
        raise where.key("drills").error("a phase needs at least one drill ([[phases.drills]])")
    drills = [_drill(d, where.key("drills").key(i)) for i, d in enumerate(drills_raw)]
    seen: set[str] = set()
    for i, d in enumerate(drills):
        if d.drill in seen:
            raise where.key("drills").key(i).key("drill").error(f"{d.drill!r} appears twice in this phase")
        seen.add(d.drill)
    criteria = _criteria(table.get("criteria"), where.key("criteria"), drills)
    return Phase(
        name=name,
        title=_str(table.get("title"), where.key("title"), default=name),
        goal=str(table.get("goal", "")),
        drills=tuple(drills),
        criteria=criteria,
    )


def parse_program(table: Mapping[str, Any], source: str) -> Program:
    """A program from its TOML table; ``source`` names the file in error messages."""
    where = _Where(source)
    top = _table(table, where, PROGRAM_KEYS)
    phases_raw = _array(top.get("phases", []), where.key("phases"))
    if not phases_raw:
        raise where.key("phases").error("a program needs at least one phase ([[phases]])")
    phases = tuple(_phase(p, where.key("phases").key(i)) for i, p in enumerate(phases_raw))
    names = [p.name for p in phases]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise where.key("phases").key(i).key("name").error(f"phase name {n!r} is used twice")
    return Program(
        name=_str(top.get("name"), where.key("name")),
        title=_str(top.get("title"), where.key("title"), default=str(top.get("name", ""))),
        condition=str(top.get("condition", "")),
        pain_threshold=_int(top.get("pain_threshold", 3), where.key("pain_threshold"), 0, 10),
        max_weekly_load_increase_pct=_num(
            top.get("max_weekly_load_increase_pct", DEFAULT_MAX_WEEKLY_INCREASE_PCT),
            where.key("max_weekly_load_increase_pct"),
            0.0,
            1000.0,
        ),
        phases=phases,
        source=source,
    )


MAX_PROGRAM_BYTES = 1024 * 1024
# A program is chosen by name (the coach's browser sends it): NAME.toml in the programs directory.
PROGRAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def load_program(path: str | Path) -> Program:
    """Read and validate a program file; raises ``ConfigError`` naming the file, key and reason. Only a
    regular file of at most ``MAX_PROGRAM_BYTES`` is read (never a device or a FIFO, which would block
    or never end)."""
    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{p}: not a regular file")
        if st.st_size > MAX_PROGRAM_BYTES:
            raise ConfigError(f"{p}: {st.st_size} bytes, larger than a program can be ({MAX_PROGRAM_BYTES})")
        with p.open("rb") as fh:
            table = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: program file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_program(table, str(p))


PROGRAMS_DIR = Path(__file__).resolve().parents[2] / "configs" / "programs"


def find_program(name: str, search: Sequence[Path] = (PROGRAMS_DIR,)) -> Program:
    """A program by its plain name (``NAME.toml`` in the search directories); never a path."""
    if not PROGRAM_NAME.fullmatch(name):
        raise ConfigError(
            f"program {name!r} is not a program name (letters, digits, '_' and '-', no path or .toml)"
        )
    for directory in search:
        candidate = Path(directory) / f"{name}.toml"
        if candidate.is_file():
            return load_program(candidate)
    raise ConfigError(f"program {name!r}: no {name}.toml in {', '.join(str(d) for d in search)}")
