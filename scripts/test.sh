#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script):
#   1. the main environment .venv (scripts/bootstrap.sh: torch CPU + the dev extra), every test
#      but those marked `dowhy`;
#   2. the DoWhy integration's tests (marked `dowhy`) in an environment of their own,
#      .venv-dowhy (torch, then the dowhy extra and pytest): dowhy 0.14 pins scipy <= 1.15.3,
#      which the main environment does not take (docs/report.md section 5).
# Both environments are set up when missing and updated otherwise (idempotent). Arguments go to
# the main run's pytest (e.g. -x, -k name, --durations=30). With CI set (as .ci/run sets it) a
# skipped test counts as a failure (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
./scripts/bootstrap.sh
if [ ! -x .venv-dowhy/bin/python ]; then
    "$PY" -m venv .venv-dowhy
fi
.venv-dowhy/bin/python -m pip install -q --upgrade pip >/dev/null
.venv-dowhy/bin/python -c "import torch" 2>/dev/null || .venv-dowhy/bin/python -m pip install -q torch==2.13.0
.venv-dowhy/bin/python -m pip install -q -e ".[dowhy]" pytest
# both runs always run (a failure of the first does not hide the second's); the exit status
# is the first failure's
status=0
.venv/bin/python -m pytest -q -m "not dowhy" "$@" || status=$?
.venv-dowhy/bin/python -m pytest -q -m dowhy tests/test_dowhy.py || { [ "$status" -ne 0 ] || status=$?; }
exit "$status"
