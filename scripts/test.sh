#!/usr/bin/env bash
# Set up .venv and run every check and test. PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) must
# be installed; the suite starts them if they are stopped and stops with a clear message if it cannot.
# Extra arguments go to pytest (e.g. scripts/test.sh -k notify -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
