#!/usr/bin/env bash
# Install (package + test tools) and run the test suite. Tests read ../shared (real clip, photos,
# ci_pack models); set SCREENALYTICS_SHARED to use another copy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# The UI test drives headless Chromium through chromedriver (Debian packages); it is skipped when
# they are missing. Install them when we can (root on a Debian-based image).
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null \
    && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; } \
    || echo "warning: could not install chromium/chromium-driver; the UI test will be skipped" >&2
fi
exec .venv/bin/python -m pytest "$@"
