#!/usr/bin/env bash
# The suite as on a machine with neither PostgreSQL nor Redis: every test that needs one is deselected, and
# the shared servers' URLs point at ports nobody listens on, so a test that still reaches one (an unmarked
# fixture fetched by name, a URL of its own) fails instead of passing against a server that happens to run.
# Nothing is stopped or started: the suite is told not to start a server it finds down.
# Extra arguments go to pytest (e.g. scripts/test-without-servers.sh -x -q).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
read -r pg_port redis_port < <("$PYTHON" -c '
import socket
probes = [socket.socket() for _ in range(2)]
for probe in probes:
    probe.bind(("127.0.0.1", 0))
print(*(probe.getsockname()[1] for probe in probes))
for probe in probes:
    probe.close()')
export LEDGER_TEST_POSTGRES="postgresql://postgres@127.0.0.1:${pg_port}/postgres"
export LEDGER_TEST_REDIS="redis://127.0.0.1:${redis_port}/0"
export LEDGER_TEST_START_SERVERS=0
exec "$PYTHON" -m pytest -m "not postgres and not redis" "$@"
