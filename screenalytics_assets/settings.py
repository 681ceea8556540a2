"""Stage settings: one YAML file with named profiles, model-pack thresholds and per-asset hashes.

The settings in force are the profile named by ``SCREENALYTICS_PROFILE`` (default: the file's
``default_profile``) from the file named by ``SCREENALYTICS_SETTINGS`` (default: the packaged
``settings.yaml``), plus the thresholds of the model pack named by ``SCREENALYTICS_MODEL_PACK``.
Each asset reads a fixed set of keys (:data:`ASSET_SETTINGS`); its Dagster ``code_version`` is its
code revision plus a hash of exactly those values, so changing one setting makes exactly the assets
that read it, and their descendants, stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SETTINGS_PATH = Path(__file__).with_name("settings.yaml")
DEFAULT_MODEL_PACK = "buffalo_l"

#: Keys each asset reads. ``model_pack`` is the recognizer/detector pack in use.
ASSET_SETTINGS: dict[str, tuple[str, ...]] = {
    "detections": ("model_pack", "stride", "fps", "det_thresh", "det_size", "scene_threshold",
                   "min_scene_len_s"),
    "tracks": ("track_thresh", "match_thresh", "track_buffer"),
    "faces": ("max_samples_per_track", "save_crops", "thumb_size", "jpeg_quality"),
    "embeddings": ("model_pack",),
    "identities": ("cluster_thresh", "min_identity_sim", "min_track_faces"),
    "track_reps": (),
    "facebank": ("model_pack", "det_size", "det_thresh"),
    "cast_links": ("cast_link_thresh",),
    "screentime": (),
}

#: Per-asset code revision: bump it when an asset's algorithm changes its output.
CODE_REVISIONS: dict[str, str] = {
    "detections": "1",
    "tracks": "1",
    "faces": "1",
    "embeddings": "1",
    "identities": "1",
    "track_reps": "2",
    "facebank": "1",
    "cast_links": "1",
    "screentime": "3",
}

PACK_KEYS = ("cluster_thresh", "min_identity_sim", "cast_link_thresh")


class SettingsError(ValueError):
    """The settings file, profile or an override is invalid."""


@dataclass(frozen=True)
class Settings:
    """Resolved settings: ``values`` maps every setting name to its value."""

    profile: str
    model_pack: str
    values: dict[str, Any] = field(default_factory=dict)
    path: str = str(DEFAULT_SETTINGS_PATH)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def for_asset(self, asset: str) -> dict[str, Any]:
        """The settings ``asset`` reads, as a dict (see :data:`ASSET_SETTINGS`)."""
        return {k: self.values[k] for k in ASSET_SETTINGS[asset]}

    def code_version(self, asset: str) -> str:
        """``{revision}-{sha256 of the asset's settings, 12 hex}``."""
        blob = json.dumps(self.for_asset(asset), sort_keys=True, default=str)
        return f"{CODE_REVISIONS[asset]}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def with_overrides(self, overrides: dict[str, Any]) -> "Settings":
        """A copy with some values replaced; values are coerced to the type of the current value.

        Raises:
            SettingsError: an unknown key or a value of the wrong type.
        """
        values = dict(self.values)
        for key, raw in overrides.items():
            if key not in values or key == "model_pack":
                raise SettingsError(
                    f"unknown setting {key!r}; known settings: {', '.join(sorted(values))}")
            values[key] = coerce(key, raw, values[key])
        return Settings(self.profile, self.model_pack, values, self.path)


def coerce(key: str, raw: Any, like: Any) -> Any:
    """Coerce ``raw`` (a value or a string from the command line) to the type of ``like``."""
    try:
        if isinstance(like, bool):
            if isinstance(raw, str):
                if raw.lower() in ("1", "true", "yes", "on"):
                    return True
                if raw.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
            return bool(raw)
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        return type(like)(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"setting {key}={raw!r}: expected a {type(like).__name__}") from exc


def load_settings(profile: str | None = None, path: str | os.PathLike | None = None,
                  model_pack: str | None = None) -> Settings:
    """Resolve the settings in force (arguments win over the environment variables above).

    Raises:
        SettingsError: missing file, unknown profile, or a profile missing a key.
    """
    path = Path(path or os.environ.get("SCREENALYTICS_SETTINGS") or DEFAULT_SETTINGS_PATH)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
    profiles = doc.get("profiles") or {}
    name = profile or os.environ.get("SCREENALYTICS_PROFILE") or doc.get("default_profile")
    if name not in profiles:
        raise SettingsError(
            f"unknown profile {name!r} in {path}; choose one of: {', '.join(profiles)}")
    pack = model_pack or os.environ.get("SCREENALYTICS_MODEL_PACK") or DEFAULT_MODEL_PACK
    packs = doc.get("model_packs") or {}
    pack_values = packs.get(pack) or packs.get("default") or {}
    values = {**profiles[name], **{k: pack_values[k] for k in PACK_KEYS if k in pack_values}}
    values["model_pack"] = pack
    needed = {k for keys in ASSET_SETTINGS.values() for k in keys} | set(PACK_KEYS)
    missing = sorted(needed - set(values))
    if missing:
        raise SettingsError(f"profile {name!r} in {path} lacks: {', '.join(missing)}")
    return Settings(name, pack, values, str(path))
