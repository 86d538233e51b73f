#!/usr/bin/env bash
# Install what the tests need (Debian packages when run as root, a virtualenv in .venv) and run them.
# Usage: ./scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the integration tests start or drive themselves (never a pre-running service).
# chromium: the dashboard's browser tests (Playwright drives Debian's build, no browser download);
# espeak-ng: spoken cue audio (without it cues fall back to synthesised tones, tested too);
# mosquitto, victoria-metrics: the MQTT and InfluxDB-API tests start their own on free loopback ports.
APT_PACKAGES=(python3-venv chromium espeak-ng mosquitto victoria-metrics)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,bench,dev]'

# Real data for the accuracy tests (skipped with a reason when absent).
if [[ -z "${SENSORHUB_BROAD_DIR:-}" && -d ../shared/data/broad ]]; then
  export SENSORHUB_BROAD_DIR=../shared/data/broad
fi

.venv/bin/ruff check sensorhub firmware_sim tests
.venv/bin/mypy
.venv/bin/lint-imports  # the import rules in pyproject.toml: layers, no cycles, the simulator outside
.venv/bin/python -m pytest -q -ra "$@"
