"""Cue rules from the ``[cues]`` config table, checked against a small grammar (never ``eval``).

    [cues]
    cooldown_s = 3.0                      # default per rule
    [[cues.rules]]
    drill = "squat"                       # a drill name or "*" (every drill)
    on = "rep"                            # "landing" | "cut" | "rep" (finished events) | "rep_descent" (live)
    when = "peak_valgus_deg > 6"          # METRIC OP NUMBER [and METRIC OP NUMBER ...]; OP in < <= > >=
    phrase = "knees out"
    priority = 1                          # smaller = more important
    cooldown_s = 4.0                      # optional
    hysteresis = 1.0                      # optional, live rules: re-arm only after the value is back by this

Instead of ``when`` a rule may give ``metric``, ``op`` and ``threshold``. Unknown metrics, operators and
keys raise ``ConfigError`` naming the file, the rule and the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sensorhub.conventions import EVENT_METRIC_KEYS
from sensorhub.errors import ConfigError

EVENT_METRICS: Mapping[str, frozenset[str]] = {
    **{kind: frozenset((*keys, "control_score")) for kind, keys in EVENT_METRIC_KEYS.items()},
    "rep_descent": frozenset(
        {
            "flexion_deg",
            "excursion_deg",
            "elapsed_s",
            "descent_rate_deg_s",
            "peak_valgus_deg",
            "valgus_excursion_deg",
        }
    ),
}
LIVE_KINDS = frozenset({"rep_descent"})
OPS = ("<=", ">=", "<", ">")
RULE_KEYS = frozenset(
    {
        "name",
        "drill",
        "on",
        "when",
        "metric",
        "op",
        "threshold",
        "phrase",
        "priority",
        "cooldown_s",
        "hysteresis",
    }
)
DEFAULT_COOLDOWN_S = 3.0
_CLAUSE = re.compile(
    r"^\s*([a-z_][a-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: str
    threshold: float

    def holds(self, value: float, margin: float = 0.0, threshold: float | None = None) -> bool:
        """True when ``value`` satisfies the comparison, tightened by ``margin`` (hysteresis re-arm);
        ``threshold`` replaces the rule's own (an athlete's edited threshold for this metric)."""
        if not math.isfinite(value):
            return False
        limit = self.threshold if threshold is None else threshold
        if self.op == "<":
            return value < limit - margin
        if self.op == "<=":
            return value <= limit - margin
        if self.op == ">":
            return value > limit + margin
        return value >= limit + margin


@dataclass(frozen=True, slots=True)
class CueRule:
    name: str
    drill: str
    on: str
    conditions: tuple[Condition, ...]
    phrase: str
    priority: int
    cooldown_s: float
    hysteresis: float

    @property
    def live(self) -> bool:
        return self.on in LIVE_KINDS

    def matches(
        self, metrics: Mapping[str, float], margin: float = 0.0, overrides: Mapping[str, float] | None = None
    ) -> bool:
        """All conditions hold; ``overrides`` (metric -> threshold) replace the rule's thresholds."""
        over = overrides or {}
        return all(
            c.holds(float(metrics.get(c.metric, math.nan)), margin, over.get(c.metric))
            for c in self.conditions
        )


@dataclass(frozen=True, slots=True)
class CueRuleSet:
    rules: tuple[CueRule, ...]

    def for_drill(self, drill: str, on: str) -> list[CueRule]:
        return [r for r in self.rules if r.on == on and r.drill in ("*", drill)]

    @property
    def phrases(self) -> list[str]:
        return sorted({r.phrase for r in self.rules})


def parse_condition(text: str, on: str, where: str) -> tuple[Condition, ...]:
    """``METRIC OP NUMBER`` joined by ``and``; the metric must exist for events of kind ``on``."""
    clauses = re.split(r"\s+and\s+", text.strip())
    out = []
    for clause in clauses:
        m = _CLAUSE.match(clause)
        if m is None:
            raise ConfigError(
                f"{where}: when = {text!r}: {clause!r} is not 'METRIC OP NUMBER' "
                f"(OP one of {', '.join(OPS)}; clauses joined by 'and')"
            )
        out.append(_condition(m.group(1), m.group(2), float(m.group(3)), on, where))
    return tuple(out)


def _condition(metric: str, op: str, threshold: float, on: str, where: str) -> Condition:
    if metric not in EVENT_METRICS[on]:
        raise ConfigError(
            f"{where}: unknown metric {metric!r} for on = {on!r}; known: "
            f"{', '.join(sorted(EVENT_METRICS[on]))}"
        )
    if op not in OPS:
        raise ConfigError(f"{where}: op = {op!r}; allowed: {', '.join(OPS)}")
    if not math.isfinite(threshold):
        raise ConfigError(f"{where}: threshold must be a finite number")
    return Condition(metric, op, threshold)


def _number(rule: Mapping[str, Any], key: str, default: float, where: str, lo: float = 0.0) -> float:
    value = rule.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= lo:
        raise ConfigError(f"{where}: {key} = {value!r}; expected a number >= {lo:g}")
    return float(value)


def parse_rule(rule: Mapping[str, Any], index: int, default_cooldown_s: float, where: str) -> CueRule:
    name = str(rule.get("name", f"rule {index + 1}"))
    here = f"{where}: [[cues.rules]] {name!r}"
    unknown = sorted(set(rule) - RULE_KEYS)
    if unknown:
        raise ConfigError(
            f"{here}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(RULE_KEYS))}"
        )
    on = rule.get("on")
    if on not in EVENT_METRICS:
        raise ConfigError(f"{here}: on = {on!r}; allowed: {', '.join(EVENT_METRICS)}")
    if "when" in rule:
        if any(k in rule for k in ("metric", "op", "threshold")):
            raise ConfigError(f"{here}: give either 'when' or 'metric'/'op'/'threshold', not both")
        if not isinstance(rule["when"], str):
            raise ConfigError(f'{here}: when must be a string like "peak_valgus_deg > 6"')
        conditions = parse_condition(rule["when"], str(on), here)
    else:
        missing = [k for k in ("metric", "op", "threshold") if k not in rule]
        if missing:
            raise ConfigError(f"{here}: missing {', '.join(missing)} (or give 'when')")
        threshold = rule["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError(f"{here}: threshold = {threshold!r}; expected a number")
        conditions = (_condition(str(rule["metric"]), str(rule["op"]), float(threshold), str(on), here),)
    phrase = rule.get("phrase")
    if not isinstance(phrase, str) or not phrase.strip() or len(phrase) > 40:
        raise ConfigError(f"{here}: phrase must be a short non-empty string (<= 40 characters)")
    priority = rule.get("priority", 5)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigError(f"{here}: priority = {priority!r}; expected an integer (smaller = more important)")
    drill = rule.get("drill", "*")
    if not isinstance(drill, str):
        raise ConfigError(f'{here}: drill = {drill!r}; expected a drill name or "*"')
    return CueRule(
        name=name,
        drill=drill,
        on=str(on),
        conditions=conditions,
        phrase=phrase.strip(),
        priority=priority,
        cooldown_s=_number(rule, "cooldown_s", default_cooldown_s, here),
        hysteresis=_number(rule, "hysteresis", 0.0, here),
    )


def parse_rules(table: Mapping[str, Any], where: str) -> CueRuleSet:
    """The ``[cues]`` table of a config file (``where`` names the file for error messages)."""
    allowed = {"cooldown_s", "rules", "mute"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: [cues] unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    default = _number(table, "cooldown_s", DEFAULT_COOLDOWN_S, f"{where}: [cues]")
    rules = table.get("rules", [])
    if not isinstance(rules, Sequence) or isinstance(rules, str):
        raise ConfigError(f"{where}: [cues] rules must be an array of tables ([[cues.rules]])")
    parsed = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            raise ConfigError(f"{where}: [[cues.rules]] entry {i + 1} is not a table")
        parsed.append(parse_rule(rule, i, default, where))
    names = [r.name for r in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{where}: [[cues.rules]] names must be unique; repeated: {', '.join(dup)}")
    return CueRuleSet(tuple(parsed))


DEFAULT_RULES: Mapping[str, Any] = {
    "cooldown_s": 3.0,
    "rules": [
        {
            "name": "knees_out_rep",
            "drill": "*",
            "on": "rep",
            "when": "peak_valgus_deg > 6",
            "phrase": "knees out",
            "priority": 1,
        },
        {
            "name": "knees_out_live",
            "drill": "*",
            "on": "rep_descent",
            "when": "peak_valgus_deg > 6",
            "phrase": "knees out",
            "priority": 1,
            "hysteresis": 1.0,
        },
        {
            "name": "slower",
            "drill": "*",
            "on": "rep",
            "when": "eccentric_s < 0.85",
            "phrase": "slower",
            "priority": 2,
        },
        {
            "name": "softer_landing",
            "drill": "*",
            "on": "landing",
            "when": "peak_flexion_deg < 50",
            "phrase": "softer landing",
            "priority": 1,
        },
        {
            "name": "knees_out_landing",
            "drill": "*",
            "on": "landing",
            "when": "peak_valgus_deg > 6",
            "phrase": "knees out",
            "priority": 2,
        },
        {
            "name": "knees_out_cut",
            "drill": "*",
            "on": "cut",
            "when": "peak_valgus_deg > 6",
            "phrase": "knees out",
            "priority": 1,
        },
    ],
}
"""Rules used when the config has no [cues] table (targets: docs/events.md)."""
