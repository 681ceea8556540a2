#!/usr/bin/env bash
# Install, then run the whole episode job on the Hamilton clip with the small real ci_pack models
# from ../shared and the cast photos in ../shared/media/facebank, local storage (./data) and a local
# Dagster instance (./data/dagster_home).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SCREENALYTICS_SHARED:-$(cd .. && pwd)/shared}"
bash scripts/install.sh
export SCREENALYTICS_MODEL_ROOT="${SCREENALYTICS_MODEL_ROOT:-$SHARED}"
export SCREENALYTICS_MODEL_PACK="${SCREENALYTICS_MODEL_PACK:-ci_pack}"
printf '==> %s\n' "running every asset of hamilton-s01e01 on $SHARED/media/short_hamilton_clip.mp4 (model pack $SCREENALYTICS_MODEL_PACK; data in ${SCREENALYTICS_DATA_ROOT:-./data})"
exec .venv/bin/screenalytics run "$SHARED/media/short_hamilton_clip.mp4" --ep-id hamilton-s01e01 \
  --facebank "$SHARED/media/facebank" "$@"
