#!/usr/bin/env bash
# Make .venv (once) and install the project into it, with the extras given as arguments (e.g. test).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
extras=""
[ $# -gt 0 ] && extras="[$(IFS=,; echo "$*")]"
.venv/bin/pip install -q -e ".${extras}"
