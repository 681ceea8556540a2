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
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SETTINGS_PATH = Path(__file__).with_name("settings.yaml")
DEFAULT_MODEL_PACK = "buffalo_l"

#: Keys each asset reads. ``model_pack`` is the recognizer/detector pack in use.
ASSET_SETTINGS: dict[str, tuple[str, ...]] = {
    "detections": ("model_pack", "stride", "min_detection_fps", "fps", "det_thresh", "det_size",
                   "scene_threshold", "min_scene_len_s", "refine_below_px", "adaptive_stride"),
    "tracks": ("track_thresh", "match_thresh", "track_buffer", "low_score_track_s"),
    "faces": ("max_samples_per_track", "save_crops", "thumb_size", "jpeg_quality"),
    "embeddings": ("model_pack",),
    "identities": ("cluster_thresh", "min_identity_sim", "min_track_faces", "stitch_gap_s",
                   "stitch_min_sim"),
    "track_reps": (),
    "facebank": ("model_pack", "facebank_det_size", "facebank_det_thresh"),
    "cast_links": ("cast_link_thresh", "cast_link_margin"),
    "screentime": ("stitch_gap_s",),
}

#: Per-asset code revision: bump it when an asset's algorithm changes its output.
CODE_REVISIONS: dict[str, str] = {
    "detections": "3",
    "tracks": "4",
    "faces": "3",  # 2: aligned faces stored JPEG-coded (faces_aligned.zip); 3: spread samples
    "embeddings": "1",
    "identities": "2",
    "track_reps": "2",
    "facebank": "2",
    "cast_links": "3",
    "screentime": "4",
}

PACK_KEYS = ("cluster_thresh", "min_identity_sim", "cast_link_thresh", "cast_link_margin",
             "stitch_min_sim")


class SettingsError(ValueError):
    """The settings file, profile or an override is invalid."""


@dataclass(frozen=True)
class SettingSpec:
    """The declared type and range of one setting.

    Attributes:
        type: ``int``, ``float``, ``bool`` or ``str``. An ``int`` is accepted for a ``float``.
        lo, hi: inclusive bounds (None: unbounded); ``lo_open`` makes the lower bound exclusive.
        help: what the setting does, with its unit.
        multiple_of: the value must be a multiple of it (ints only).
    """

    type: type
    lo: float | None = None
    hi: float | None = None
    help: str = ""
    lo_open: bool = False
    multiple_of: int | None = None

    def describe(self) -> str:
        """``"int, 1 to 300"``: the type and range, as error messages and the launchpad show."""
        if self.type is bool:
            return "true or false"
        if self.type is str:
            return "a name"
        if self.lo is not None and self.hi is not None and not self.lo_open:
            rng = f"{self.lo} to {self.hi}"
        else:
            parts = []
            if self.lo is not None:
                parts.append(f"above {self.lo}" if self.lo_open else f"at least {self.lo}")
            if self.hi is not None:
                parts.append(f"at most {self.hi}")
            rng = " and ".join(parts)
        extra = f", a multiple of {self.multiple_of}" if self.multiple_of else ""
        return f"{self.type.__name__}, {rng}{extra}" if rng else self.type.__name__

    def check(self, key: str, raw: Any) -> Any:
        """``raw`` (a value, or a string from ``--set``) as this setting's type, range-checked.

        Raises:
            SettingsError: wrong type or out of range; the message names the key, the range and
                the fix.
        """
        value = self._coerce(key, raw)
        if self.type in (int, float):
            low_bad = self.lo is not None and (value <= self.lo if self.lo_open
                                                else value < self.lo)
            high_bad = self.hi is not None and value > self.hi
            odd = bool(self.multiple_of) and value % self.multiple_of != 0
            if low_bad or high_bad or odd:
                raise SettingsError(f"setting {key}={raw!r} is out of range: {self.fix(key)}")
        return value

    def fix(self, key: str) -> str:
        return f"use {key} = {self.describe()} ({self.help})"

    def _coerce(self, key: str, raw: Any) -> Any:
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _BOOLS:
                return _BOOLS[raw.strip().lower()]
            raise SettingsError(f"setting {key}={raw!r} is not true or false: {self.fix(key)}")
        if self.type is str:
            if isinstance(raw, str) and raw:
                return raw
            raise SettingsError(f"setting {key}={raw!r} is not a name: {self.fix(key)}")
        try:
            if isinstance(raw, bool):
                raise TypeError(raw)
            if self.type is int:
                if isinstance(raw, float) and not raw.is_integer():
                    raise ValueError(raw)
                value = int(raw.strip()) if isinstance(raw, str) else int(raw)
            else:
                # a number from the file stays as written: the code version hashes its text
                value = raw if isinstance(raw, (int, float)) else float(str(raw).strip())
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"setting {key}={raw!r} is not a{'n' if self.type is int else ''}"
                                f" {self.type.__name__}: {self.fix(key)}") from exc
        if not math.isfinite(value):
            raise SettingsError(f"setting {key}={raw!r} is not a finite number: {self.fix(key)}")
        return value


_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}

#: Every setting's type and range: the one schema behind the settings file, ``--set`` and the run
#: config of the Dagster launchpad. A key that a profile or an asset uses must be declared here.
SCHEMA: dict[str, SettingSpec] = {
    "model_pack": SettingSpec(str, help="InsightFace model pack, set by SCREENALYTICS_MODEL_PACK"),
    "stride": SettingSpec(int, 1, 300, "process every k-th frame"),
    "min_detection_fps": SettingSpec(float, 0, 240, "processed frames per second the stride may "
                                     "not go under (0: no floor)"),
    "fps": SettingSpec(float, 0, 240, "frames per second; 0 reads the rate from the container"),
    "det_thresh": SettingSpec(float, 0, 1, "minimum SCRFD score", lo_open=True),
    # SCRFD's feature strides are 8, 16 and 32: its input side must divide by 32
    "det_size": SettingSpec(int, 160, 2048, "largest detector input side in pixels; a smaller "
                            "frame keeps its own size", multiple_of=32),
    "scene_threshold": SettingSpec(float, 0, 255, "PySceneDetect content threshold",
                                   lo_open=True),
    "min_scene_len_s": SettingSpec(float, 0, 60, "shortest shot in seconds"),
    "refine_below_px": SettingSpec(int, 0, 2048, "faces under this many pixels in the detector "
                                   "input get their landmarks from the full-size frame (0: "
                                   "never)"),
    "adaptive_stride": SettingSpec(bool, help="skip every other processed frame of a shot where "
                                   "the detections on either side of it agree"),
    "track_thresh": SettingSpec(float, 0, 1, "score that starts a track", lo_open=True),
    "match_thresh": SettingSpec(float, 0, 1, "minimum IoU to match a track"),
    "track_buffer": SettingSpec(int, 0, 3000, "frames (at 30 fps) a lost track is kept"),
    "low_score_track_s": SettingSpec(float, 0, 60, "seconds a chain of low-score detections "
                                     "must last to become a track (0: never)"),
    "max_samples_per_track": SettingSpec(int, 1, 1000, "faces embedded per track"),
    "save_crops": SettingSpec(bool, help="write JPEG face crops and thumbnails"),
    "thumb_size": SettingSpec(int, 16, 1024, "thumbnail side in pixels"),
    "jpeg_quality": SettingSpec(int, 1, 100, "JPEG quality of crops and thumbnails"),
    "min_track_faces": SettingSpec(int, 1, 1000, "faces a track needs to start an identity"),
    "cluster_thresh": SettingSpec(float, 0, 2, "cosine distance below which clusters merge",
                                  lo_open=True),
    "min_identity_sim": SettingSpec(float, -1, 1, "cosine similarity that attaches weak tracks"),
    "cast_link_thresh": SettingSpec(float, -1, 1, "cosine similarity that links a cast member"),
    "cast_link_margin": SettingSpec(float, 0, 2, "cosine similarity by which a linked cast member "
                                    "must beat the runner-up"),
    "stitch_gap_s": SettingSpec(float, 0, 60, "seconds without a detection that stitch two "
                                "tracks of one face in a shot and count as on screen"),
    "stitch_min_sim": SettingSpec(float, -1, 1, "cosine similarity two tracks need to stitch"),
    "facebank_det_size": SettingSpec(int, 160, 2048, "largest detector input side tried on cast "
                                     "photos in pixels (then halved down to 160)",
                                     multiple_of=32),
    "facebank_det_thresh": SettingSpec(float, 0, 1, "minimum SCRFD score on cast photos",
                                       lo_open=True),
}

#: Settings a run may override (the model pack is chosen by the environment, for every asset).
OVERRIDABLE = tuple(k for k in SCHEMA if k != "model_pack")


def check_value(key: str, raw: Any) -> Any:
    """``raw`` checked against :data:`SCHEMA` (see :meth:`SettingSpec.check`).

    Raises:
        SettingsError: an undeclared key, a wrong type or a value out of range.
    """
    if key not in SCHEMA:
        raise SettingsError(f"unknown setting {key!r}; known settings: {', '.join(OVERRIDABLE)}")
    return SCHEMA[key].check(key, raw)


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
        """A copy with some values replaced, each checked against :data:`SCHEMA` (strings from
        the command line are converted to the setting's type).

        Raises:
            SettingsError: an unknown key or ``model_pack`` (chosen by the environment), a value
                of the wrong type or out of range.
        """
        values = dict(self.values)
        for key, raw in overrides.items():
            if key == "model_pack":
                raise SettingsError("setting 'model_pack' cannot be overridden per run: choose "
                                    "the pack with SCREENALYTICS_MODEL_PACK")
            values[key] = check_value(key, raw)
        return Settings(self.profile, self.model_pack, values, self.path)


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
    for key, raw in values.items():
        if key not in SCHEMA:
            raise SettingsError(
                f"setting {key!r} in profile {name!r} of {path} is not a known setting: remove "
                "it, or declare its type and range in screenalytics_assets.settings.SCHEMA")
        try:
            values[key] = SCHEMA[key].check(key, raw)
        except SettingsError as exc:
            raise SettingsError(f"{path}, profile {name!r}: {exc}") from None
    return Settings(name, pack, values, str(path))
