#!/usr/bin/env bash
# Refresh the review app's screenshots in docs/img/ (docs/review.md): the Chromium tests take
# them and, with SCREENALYTICS_DOCS_IMG set, also write a 128-colour copy there.
#   scripts/review_screenshots.sh          # the 20-minute episode, its track and season pages
#   scripts/review_screenshots.sh all      # and the Hamilton clip's flow (runs the pipeline)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
tests=(tests/test_review_timeline.py)
[ "${1:-}" = all ] && tests+=(tests/test_review_app.py)
SCREENALYTICS_DOCS_IMG=docs/img exec "$PY" -m pytest -q "${tests[@]}"
