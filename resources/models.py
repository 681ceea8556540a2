"""InsightFace model packs through ONNX Runtime, loaded once per process.

A pack is a folder of ONNX files at ``<model root>/models/<pack>/`` (InsightFace's layout; default
root ``~/.insightface``). Each file is routed by ``insightface.model_zoo.get_model``; the pack must
hold one detection model with 5 landmarks (SCRFD/RetinaFace) and one recognition model (ArcFace).
"""

from __future__ import annotations

import glob
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
from dagster import ConfigurableResource

from screenalytics_assets.core.errors import ModelPackError

DEFAULT_MODEL_ROOT = "~/.insightface"
#: Packs InsightFace publishes and ``ensure_available`` can download.
DOWNLOADABLE_PACKS = ("buffalo_l", "buffalo_m", "buffalo_s", "buffalo_sc", "antelopev2")


@dataclass(frozen=True)
class FaceModels:
    """A loaded pack.

    Attributes:
        pack: pack name. root: model root. detector: InsightFace detection model.
        recognizer: InsightFace recognition model. provider: ONNX Runtime execution provider.
        embedding_dim: length of the recognizer's output vector.
    """

    pack: str
    root: str
    detector: object
    recognizer: object
    provider: str
    embedding_dim: int


_CACHE: dict[tuple[str, str, str], FaceModels] = {}
_LOCK = threading.Lock()


def choose_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime providers for ``device`` (``auto`` | ``cpu`` | ``cuda``).

    Raises:
        ModelPackError: ``cuda`` asked for but onnxruntime has no CUDA provider, or unknown device.
    """
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device in ("auto", "cuda"):
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "cuda":
            raise ModelPackError(
                "device=cuda but this onnxruntime has no CUDAExecutionProvider "
                f"(available: {available}); install onnxruntime-gpu or use device=auto/cpu")
        return ["CPUExecutionProvider"]
    raise ModelPackError(f"unknown device {device!r}: use auto, cpu or cuda")


def pack_dir(root: str, pack: str) -> Path:
    """``<root>/models/<pack>`` with ``~`` expanded."""
    return Path(os.path.expanduser(root)) / "models" / pack


def _ensure_pack(root: str, pack: str) -> Path:
    path = pack_dir(root, pack)
    if path.is_dir() and glob.glob(str(path / "*.onnx")):
        return path
    hint = (f"Put the pack's .onnx files in {path}, or point SCREENALYTICS_MODEL_ROOT at the folder "
            "holding models/<pack>/ (e.g. SCREENALYTICS_MODEL_ROOT=../shared "
            "SCREENALYTICS_MODEL_PACK=ci_pack).")
    if pack not in DOWNLOADABLE_PACKS:
        raise ModelPackError(f"model pack {pack!r} not found at {path}. {hint}")
    try:
        from insightface.utils.storage import ensure_available
        ensure_available("models", pack, root=os.path.expanduser(root))
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTP...)
        raise ModelPackError(
            f"model pack {pack!r} not found at {path} and could not be downloaded ({exc}). "
            f"{hint}") from exc
    if not glob.glob(str(path / "*.onnx")):
        raise ModelPackError(f"model pack {pack!r} downloaded to {path} holds no .onnx file")
    return path


def load_face_models(root: str = DEFAULT_MODEL_ROOT, pack: str = "buffalo_l",
                     device: str = "auto") -> FaceModels:
    """Load (or return the already loaded) detector and recognizer of a pack.

    ONNX Runtime sessions are created once per process per (root, pack, device) and shared by
    every asset and thread.

    Raises:
        ModelPackError: the pack is missing and cannot be downloaded, a file is not a valid ONNX
            model, or the pack lacks a detector or a recognizer.
    """
    key = (os.path.expanduser(root), pack, device)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        providers = choose_providers(device)
        path = _ensure_pack(root, pack)
        from insightface.model_zoo import get_model

        detector = recognizer = None
        for onnx_file in sorted(glob.glob(str(path / "*.onnx"))):
            try:
                model = get_model(onnx_file, providers=providers)
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
                raise ModelPackError(
                    f"cannot load model file {onnx_file} of pack {pack!r} ({exc}); the file is "
                    "corrupted or not an ONNX model: replace it with the pack's original file"
                ) from exc
            task = getattr(model, "taskname", None)
            if task == "detection" and detector is None:
                detector = model
            elif task == "recognition" and recognizer is None:
                recognizer = model
        if detector is None or recognizer is None:
            raise ModelPackError(
                f"model pack {pack!r} at {path} needs a face detection and a face recognition "
                "ONNX model; found " + ", ".join(
                    n for n, m in (("detection", detector), ("recognition", recognizer)) if m)
                + (" only" if detector or recognizer else "neither"))
        ctx = 0 if providers[0] == "CUDAExecutionProvider" else -1
        detector.prepare(ctx_id=ctx, input_size=(640, 640), det_thresh=0.5)
        recognizer.prepare(ctx_id=ctx)
        dim = int(recognizer.session.get_outputs()[0].shape[-1])
        models = FaceModels(pack, str(root), detector, recognizer,
                            detector.session.get_providers()[0], dim)
        _CACHE[key] = models
        return models


class FaceModelsResource(ConfigurableResource):
    """Dagster resource for the face models.

    ``device`` is ``auto`` (CUDA when onnxruntime has it), ``cpu`` or ``cuda``; see
    :meth:`from_env` for the environment variables.
    """

    model_root: str = DEFAULT_MODEL_ROOT
    model_pack: str = "buffalo_l"
    device: str = "auto"

    @classmethod
    def from_env(cls) -> "FaceModelsResource":
        """Build from ``SCREENALYTICS_MODEL_ROOT``, ``SCREENALYTICS_MODEL_PACK``,
        ``SCREENALYTICS_DEVICE``."""
        return cls(model_root=os.environ.get("SCREENALYTICS_MODEL_ROOT", DEFAULT_MODEL_ROOT),
                   model_pack=os.environ.get("SCREENALYTICS_MODEL_PACK", "buffalo_l"),
                   device=os.environ.get("SCREENALYTICS_DEVICE", "auto"))

    def load(self) -> FaceModels:
        """See :func:`load_face_models`."""
        return load_face_models(self.model_root, self.model_pack, self.device)
