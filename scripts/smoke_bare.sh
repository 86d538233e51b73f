#!/usr/bin/env bash
# The README's first command as a new user runs it: a fresh venv with `pip install -e .` and nothing else
# (no extras), then scripts/smoke_bare.py with that venv's interpreter: --help of every subcommand,
# `analyze` on a firmware-sim CSV, and `sensorhub demo` for about 60 s from an empty numba cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-bare
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e .
exec "$VENV/bin/python" scripts/smoke_bare.py "$@"
