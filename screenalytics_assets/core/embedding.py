"""ArcFace embeddings of aligned face crops through an InsightFace recognition model."""

from __future__ import annotations

import numpy as np

from .parallel import ordered_map


def model_batch_size(recognizer) -> int | None:
    """The model's fixed batch size, or ``None`` when its batch dimension is dynamic."""
    dim = recognizer.session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Divide by the L2 norm along ``axis`` (zero vectors stay zero). Returns float32."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def embed_faces(recognizer, aligned: np.ndarray, batch_size: int = 32,
                progress=None, workers: int = 1) -> np.ndarray:
    """Embed ArcFace-aligned crops; L2-normalised.

    Batches of ``batch_size`` crops in all when the model's batch dimension is dynamic (each of
    the ``workers`` calls running at once takes ``batch_size / workers``); one crop per call when
    it is fixed (e.g. the ``ci_pack`` recognizer, batch 1). Calls run through
    :func:`.parallel.ordered_map`. Preprocessing (BGR->RGB, mean/std) is InsightFace's
    ``ArcFaceONNX.get_feat``.

    Args:
        recognizer: ``insightface.model_zoo`` recognition model (``ArcFaceONNX``).
        aligned: uint8 [F, 112, 112, 3] BGR crops from ``norm_crop``.
        progress: optional ``progress(done, total)``.
        workers: recognizer calls run at once (one per core with single-threaded ONNX Runtime
            sessions, see ``resources.models``).

    Returns:
        float32 [F, D] unit vectors (D = the model's output size, 512 for ArcFace).
    """
    n = len(aligned)
    fixed = model_batch_size(recognizer)
    # A dynamic batch is shared by the workers: ``workers`` calls at once hold about as many
    # crops as one call of ``batch_size`` (ONNX Runtime keeps buffers per concurrent call), and a
    # small episode's faces are split between them.
    workers = max(1, workers)
    step = fixed or max(1, min(-(-batch_size // workers), -(-n // workers)))
    dim = int(recognizer.session.get_outputs()[0].shape[-1])
    out = np.zeros((n, dim), np.float32)

    def embed(start: int) -> np.ndarray:
        batch = list(aligned[start:start + step])
        k = len(batch)
        if fixed and k < fixed:  # pad the last batch of a fixed-batch model
            batch += [np.zeros_like(batch[0])] * (fixed - k)
        return recognizer.get_feat(batch).reshape(len(batch), -1)[:k]

    for start, vectors in ordered_map(embed, range(0, n, step), workers):
        out[start:start + len(vectors)] = vectors
        if progress is not None:
            progress(min(start + step, n), n)
    if not np.isfinite(out).all():
        raise ValueError("the recognition model returned non-finite embeddings")
    return l2_normalize(out)
