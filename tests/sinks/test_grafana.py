"""Every query of the Grafana dashboards reads only measurements, fields and tags the InfluxDB sink writes
(``sensorhub.sinks.influx.SCHEMA``). Queries are InfluxQL; each one is parsed completely (an unparsed
remainder fails the test) so a renamed field cannot slip through."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorhub.sinks.influx import SCHEMA
from tests.helpers import ROOT

GRAFANA = ROOT / "dashboards" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE_UID = "sensorhub-influxdb"

IDENT = r'"[^"]+"|[A-Za-z_]\w*'
SELECT = re.compile(rf"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+(?P<m>{IDENT})(?P<rest>.*)$", re.I | re.S)
SHOW_TAGS = re.compile(
    rf"^\s*SHOW\s+TAG\s+VALUES\s+FROM\s+(?P<m>{IDENT})\s+WITH\s+KEY\s*=\s*(?P<key>{IDENT})(?P<rest>.*)$",
    re.I | re.S,
)
ALIAS = re.compile(r'\s+AS\s+"[^"]*"', re.I)
QUOTED = re.compile(r'"([^"]+)"')
# What may remain of a SELECT list once quoted identifiers and aliases are gone: functions, commas, *.
SELECT_REST = re.compile(
    r"^(?:\s|,|\(|\)|\*|\d+|(?:mean|max|min|last|first|count|sum|median|spread|stddev)\()*$", re.I
)
# ... and of WHERE / GROUP BY once identifiers, Grafana variables and regexes are gone.
CLAUSE_REST = re.compile(
    r"^(?:\s|,|AND|OR|WHERE|GROUP BY|fill\((?:none|null|0|previous|linear)\)|time\([^)]*\)|=~|!~|=|!=|<>|<|>"
    r"|/\^\$\w+\$/|'[^']*'|\$timeFilter|\d+(?:\.\d+)?)*$",
    re.I,
)


def _name(ident: str) -> str:
    return ident[1:-1] if ident.startswith('"') else ident


def references(query: str) -> tuple[str, set[str], set[str]]:
    """(measurement, fields selected, identifiers in WHERE/GROUP BY) of one InfluxQL query;
    ValueError when the query is not fully understood."""
    if m := SHOW_TAGS.match(query):
        rest = m["rest"]
        if not CLAUSE_REST.match(QUOTED.sub("", rest)):
            raise ValueError(f"cannot parse the WHERE of {query!r}")
        return _name(m["m"]), set(), {_name(m["key"]), *QUOTED.findall(rest)}
    m = SELECT.match(query)
    if m is None:
        raise ValueError(f"not a SELECT or SHOW TAG VALUES query: {query!r}")
    select = ALIAS.sub("", m["select"])
    fields = set(QUOTED.findall(select))
    if not fields or not SELECT_REST.match(QUOTED.sub("", select)):
        raise ValueError(f"cannot parse the SELECT list of {query!r}")
    rest = m["rest"]
    if not CLAUSE_REST.match(QUOTED.sub("", rest)):
        raise ValueError(f"cannot parse the clauses of {query!r}")
    return _name(m["m"]), fields, set(QUOTED.findall(rest))


def problems(query: str) -> list[str]:
    """What a query names that the writer does not write."""
    try:
        measurement, fields, idents = references(query)
    except ValueError as exc:
        return [str(exc)]
    schema = SCHEMA.get(measurement)
    if schema is None:
        return [f"measurement {measurement!r} is not written (written: {', '.join(SCHEMA)})"]
    out = [f"{measurement}: no field {f!r}" for f in sorted(fields - set(schema.fields))]
    out += [
        f"{measurement}: no tag or field {t!r}"
        for t in sorted(idents - set(schema.tags) - set(schema.fields))
    ]
    return out


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["query"]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            yield f"variable {var['name']}", query


def test_there_are_dashboards_for_live_angles_events_and_trends() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {
        "sensorhub: live knee angles",
        "sensorhub: events per athlete",
        "sensorhub: session trends",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_reads_what_the_writer_writes(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    found = list(queries(dashboard))
    assert len(found) >= 3
    errors = [f"{where}: {p}" for where, query in found for p in problems(query)]
    assert not errors, "\n".join(errors)
    for panel in _panels(dashboard["panels"]):
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        for target in panel.get("targets", []):
            assert target["rawQuery"] is True  # the query text is what Grafana runs


def test_the_dashboards_cover_every_measurement() -> None:
    read = {references(q)[0] for p in DASHBOARDS for _, q in queries(json.loads(p.read_text()))}
    assert read == set(SCHEMA)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('SELECT mean("flexion_deg") FROM "knee_angle" WHERE $timeFilter', "measurement 'knee_angle'"),
        ('SELECT mean("flexion") FROM "knee_angles" WHERE $timeFilter', "no field 'flexion'"),
        ('SELECT "depth_deg" FROM "rep" WHERE "set" = \'1\' AND $timeFilter', "no tag or field 'set'"),
        ('SELECT "depth_deg" FROM "rep" GROUP BY "sensor"', "no tag or field 'sensor'"),
        ("SELECT mean(depth_deg) FROM rep", "cannot parse the SELECT list"),
        ('SHOW TAG VALUES FROM "cue" WITH KEY = "drills"', "no tag or field 'drills'"),
    ],
)
def test_the_check_catches_a_missing_name(query: str, expected: str) -> None:
    assert any(expected in p for p in problems(query)), problems(query)


def test_provisioning_points_at_the_dashboards_datasource() -> None:
    datasource = (GRAFANA / "provisioning" / "datasources" / "sensorhub.yaml").read_text()
    assert f"uid: {DATASOURCE_UID}" in datasource and "version: InfluxQL" in datasource
    provider = (GRAFANA / "provisioning" / "dashboards" / "sensorhub.yaml").read_text()
    assert "type: file" in provider and "path:" in provider
