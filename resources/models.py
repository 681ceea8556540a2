"""InsightFace model packs through ONNX Runtime, loaded once per process.

A pack is a folder of ONNX files at ``<model root>/models/<pack>/`` (InsightFace's layout; default
root ``~/.insightface``). Each file is routed by ``insightface.model_zoo.get_model``; the pack must
hold one detection model with 5 landmarks (SCRFD/RetinaFace) and one recognition model (ArcFace).
"""

from __future__ import annotations

import glob
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING
from dagster import ConfigurableResource

from screenalytics_assets.core.errors import ModelPackError

if TYPE_CHECKING:  # imported where used: onnxruntime takes a second to load, and planning a
    import onnxruntime as ort  # run (`screenalytics run --stale-only`) needs no model

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
        parallel_calls: model calls to run at once (frames or face batches; see
            :func:`session_options`): the cores on the CPU provider, 1 on CUDA.
        session_options: the ONNX Runtime session options of both models and ``parallel_calls``
            (see :func:`session_options`), for materialization metadata.
    """

    pack: str
    root: str
    detector: object
    recognizer: object
    provider: str
    embedding_dim: int
    parallel_calls: int = 1
    session_options: dict = field(default_factory=dict)


_CACHE: dict[tuple[str, str, str, int], FaceModels] = {}
_LOCK = threading.Lock()


def choose_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime providers for ``device`` (``auto`` | ``cpu`` | ``cuda``).

    Raises:
        ModelPackError: ``cuda`` asked for but onnxruntime has no CUDA provider, or unknown device.
    """
    import onnxruntime as ort

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


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, so a container's or ``taskset``'s
    limit is respected), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int = 0, parallel: bool = True) -> tuple["ort.SessionOptions", dict]:
    """ONNX Runtime session options for the face models, and the same as a plain dict.

    - ``graph_optimization_level = ORT_ENABLE_ALL``: constant folding, node fusions and layout
      optimisations (the ORT default for the CPU provider is the same; set here so it does not
      depend on the onnxruntime build).
    - ``parallel`` (the CPU provider): each session call runs on one thread
      (``intra_op_num_threads = 1``) and ``threads`` calls run at once on different frames or
      faces (``parallel_calls``; ``core.parallel.ordered_map``). SCRFD-500M and the recognizers
      are too small for one call to be split well over the cores. Measured on 2 cores, each
      model alone: the detector at 640x384 11.4-11.9 ms per frame with 2 intra-op threads,
      10.1-10.3 ms with two 1-thread calls at once; ``ci_pack``'s batch-1 recognizer 360 crops in
      3.8-4.0 s with 2 spinning threads, 2.7-3.0 s with two calls at once; on a loaded machine
      2 intra-op threads wait for each other (the recognizer: 34 ms per face vs 17 ms). In the
      whole ``balanced`` run on 2 quiet cores the difference is within the noise
      (``benchmarks/bench.py``), ``fast`` about 9 % faster. One thread per call also needs no
      spinning setting: no idle pool thread competes with the decode thread.
      Without ``parallel`` (CUDA, where the GPU does the work): one call at a time, ``threads``
      intra-op threads for the operators left on the CPU.
    - ``threads``: when 0, the cores this process may use (ORT's own default counts physical
      cores of the whole machine, ignoring affinity).
    - ``execution_mode = ORT_SEQUENTIAL`` and ``inter_op_num_threads = 1``: the SCRFD and ArcFace
      graphs are chains, parallel branches gain nothing.

    Source: https://onnxruntime.ai/docs/performance/tune-performance/threading.html
    """
    threads = threads if threads > 0 else available_cores()
    intra = 1 if parallel else threads
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = intra
    opts.inter_op_num_threads = 1
    return opts, {"graph_optimization_level": "ORT_ENABLE_ALL", "execution_mode": "ORT_SEQUENTIAL",
                  "intra_op_num_threads": intra, "inter_op_num_threads": 1,
                  "parallel_calls": threads if parallel else 1}


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


def check_pack(root: str, pack: str) -> Path:
    """The pack's folder, after checking that it holds ONNX files (downloading a published pack
    that is missing), without loading any model. :func:`load_face_models` checks more (that
    every file loads, and that there are a detector and a recognizer).

    Raises:
        ModelPackError: the pack is missing and cannot be downloaded.
    """
    return _ensure_pack(root, pack)


def load_face_models(root: str = DEFAULT_MODEL_ROOT, pack: str = "buffalo_l",
                     device: str = "auto", intra_op_threads: int = 0) -> FaceModels:
    """Load (or return the already loaded) detector and recognizer of a pack.

    ONNX Runtime sessions are created once per process per (root, pack, device, threads) and
    shared by every asset and thread, with :func:`session_options`.

    Raises:
        ModelPackError: the pack is missing and cannot be downloaded, a file is not a valid ONNX
            model, or the pack lacks a detector or a recognizer.
    """
    key = (os.path.expanduser(root), pack, device, intra_op_threads)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        providers = choose_providers(device)
        path = _ensure_pack(root, pack)
        from insightface.model_zoo import get_model

        opts, opts_dict = session_options(intra_op_threads,
                                          parallel=providers[0] == "CPUExecutionProvider")
        detector = recognizer = None
        for onnx_file in sorted(glob.glob(str(path / "*.onnx"))):
            model = _load_model(get_model, onnx_file, pack, providers, opts)
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
        used = detector.session.get_providers()[0]
        if device == "cuda" and used != "CUDAExecutionProvider":
            # onnxruntime lists the providers it was built with; one whose libraries (CUDA,
            # cuDNN) fail to load is skipped with a log line, and the session runs on the CPU
            raise ModelPackError(
                f"device=cuda but ONNX Runtime runs {pack!r} on {used}: the CUDA provider did "
                "not load (see ONNX Runtime's log above: missing CUDA 12/13 or cuDNN 9 "
                "libraries?); install the CUDA libraries onnxruntime-gpu needs or use "
                "device=auto/cpu")
        ctx = 0 if used == "CUDAExecutionProvider" else -1
        detector.prepare(ctx_id=ctx, input_size=(640, 640), det_thresh=0.5)
        recognizer.prepare(ctx_id=ctx)
        dim = int(recognizer.session.get_outputs()[0].shape[-1])
        models = FaceModels(pack, str(root), detector, recognizer, used, dim,
                            opts_dict["parallel_calls"], opts_dict)
        _CACHE[key] = models
        return models


def _load_model(get_model, onnx_file: str, pack: str, providers: list[str], opts):
    """``insightface.model_zoo.get_model`` on one file of the pack.

    Raises:
        ModelPackError: the file is not a valid ONNX model.
    """
    try:
        return get_model(onnx_file, providers=providers, sess_options=opts)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ModelPackError(
            f"cannot load model file {onnx_file} of pack {pack!r} ({exc}); the file is "
            "corrupted or not an ONNX model: replace it with the pack's original file") from exc


class FaceModelsResource(ConfigurableResource):
    """Dagster resource for the face models.

    ``device`` is ``auto`` (CUDA when onnxruntime has it), ``cpu`` or ``cuda``;
    ``intra_op_threads`` is the threads the models use (0: the cores available): on the CPU
    provider, that many single-threaded calls at once, on CUDA the intra-op threads of the one
    call (see :func:`session_options`); see :meth:`from_env` for the environment variables.
    """

    model_root: str = DEFAULT_MODEL_ROOT
    model_pack: str = "buffalo_l"
    device: str = "auto"
    intra_op_threads: int = 0

    @classmethod
    def from_env(cls) -> "FaceModelsResource":
        """Build from ``SCREENALYTICS_MODEL_ROOT``, ``SCREENALYTICS_MODEL_PACK``,
        ``SCREENALYTICS_DEVICE``, ``SCREENALYTICS_ORT_THREADS``.

        Raises:
            ModelPackError: ``SCREENALYTICS_ORT_THREADS`` is not a whole number >= 0.
        """
        raw = os.environ.get("SCREENALYTICS_ORT_THREADS", "0").strip() or "0"
        if not raw.isdigit():
            raise ModelPackError(
                f"SCREENALYTICS_ORT_THREADS={raw!r}: expected a whole number of threads >= 0 "
                "(0 = every core this process may use)")
        return cls(model_root=os.environ.get("SCREENALYTICS_MODEL_ROOT", DEFAULT_MODEL_ROOT),
                   model_pack=os.environ.get("SCREENALYTICS_MODEL_PACK", "buffalo_l"),
                   device=os.environ.get("SCREENALYTICS_DEVICE", "auto"),
                   intra_op_threads=int(raw))

    def load(self) -> FaceModels:
        """See :func:`load_face_models`."""
        return load_face_models(self.model_root, self.model_pack, self.device,
                                self.intra_op_threads)
