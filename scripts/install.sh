#!/usr/bin/env bash
# Create ./.venv (if needed) and install Screenalytics into it, with the test extras when asked.
#   scripts/install.sh          # the package
#   scripts/install.sh test     # the package + test tools (pytest, moto server, selenium) + the cluster extra
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install -q -e '.[test,cluster]'
else
  .venv/bin/python -m pip install -q -e .
fi
