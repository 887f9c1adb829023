#!/usr/bin/env bash
# Set up .venv and run every check and test. PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) must
# be installed; the suite starts them if they are stopped and stops with a clear message if it cannot.
# Extra arguments go to pytest (e.g. scripts/test.sh -k notify -x). Also checked: ruff, mypy strict, the direction
# of imports between layers (scripts/import_graph.py), and the unit tests with neither server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python scripts/import_graph.py >/dev/null || { .venv/bin/python scripts/import_graph.py | grep -v '  ('; exit 1; }
.venv/bin/pytest "$@"
# The unit tests need no server: run them again as on a machine with neither (scripts/test-without-servers.sh).
if [ $# -eq 0 ]; then
  bash scripts/test-without-servers.sh -q -p no:cacheprovider tests/unit
fi
