#!/usr/bin/env bash
# Create ./.venv (if needed) and install Screenalytics into it, with the test extras when asked.
#   scripts/install.sh          # the package
#   scripts/install.sh test     # the package + test tools (pytest, moto server, selenium) + the cluster extra
# Says what it is doing: pip prints each package it downloads, builds and installs (the first
# install takes a few minutes); the "Requirement already satisfied" lines of a re-run are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '==> %s\n' "$*"; }
if [ ! -x .venv/bin/python ]; then
  step "creating the virtual environment .venv"
  python3 -m venv .venv
fi
step "updating pip in .venv"
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "test" ]; then
  target='.[test,cluster]'
  step "installing Screenalytics with the test tools and the cluster extra into .venv (Dagster, ONNX Runtime, PyAV, OpenCV, pytest...; a few minutes the first time)"
else
  target='.'
  step "installing Screenalytics into .venv (Dagster, ONNX Runtime, PyAV, OpenCV...; a few minutes the first time)"
fi
# pipefail keeps pip's exit status; its errors go to stderr, unfiltered
.venv/bin/python -m pip install -e "$target" \
  | grep --line-buffered -v '^Requirement already satisfied' || [ "${PIPESTATUS[0]}" = 0 ]
step "installed: screenalytics $(.venv/bin/python -c "import importlib.metadata as m; print(m.version('screenalytics'))") in .venv"
