#!/usr/bin/env bash
# Install (package + test tools) and run the test suite. Tests read ../shared (real clip, photos,
# ci_pack models); set SCREENALYTICS_SHARED to use another copy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
exec .venv/bin/python -m pytest "$@"
