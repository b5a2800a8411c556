#!/usr/bin/env bash
# Set up a local virtual environment for cina in .venv (idempotent).
# torch is pinned to the CPU wheel that installs offline-fast here; the package itself only
# declares a lower bound, so users elsewhere get their own build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -c "import torch" 2>/dev/null || python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev]"
