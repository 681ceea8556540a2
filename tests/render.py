"""Drawing and encoding for the generated test episodes (tests/known_answer.py,
tests/long_episode.py, tests/synthetic.py): a face cut out of a photo as a square sprite, pasted
into frames, and frames written as H.264 through PyAV."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import cv2
import numpy as np


def face_sprite(photo: np.ndarray, box: tuple[float, float, float, float], face_px: float,
                sprite_scale: float) -> np.ndarray:
    """The face and its surroundings, square, scaled so the face box is ``face_px`` high.

    Args:
        photo: BGR uint8 [H, W, 3]. box: the face box in the photo, (x1, y1, x2, y2) px.
        face_px: face box height in the sprite (px). sprite_scale: sprite side as a multiple of
            the box's longer side.

    Returns:
        BGR uint8 [S, S, 3], the face box centred; outside the photo, its edge pixels repeated.
    """
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * sprite_scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    scale = face_px / (y2 - y1)
    size = int(round(side * scale))
    # affine map: photo point (cx, cy) -> sprite centre, uniform scale; outside the photo: edge
    m = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]])
    return cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def paste(frame: np.ndarray, sprite: np.ndarray, cx: float, cy: float) -> None:
    """Paste ``sprite`` centred at (cx, cy) px into ``frame`` (in place), clipped by its edges."""
    s = sprite.shape[0]
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + s), min(frame.shape[0], y0 + s)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = sprite[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]


def write_h264(path: Path, frames: Iterable[np.ndarray], width: int, height: int, fps: int,
               options: dict[str, str] | None = None) -> int:
    """Encode frames to an H.264 MP4 (yuv420p) at ``fps``.

    Args:
        frames: BGR uint8 [height, width, 3] (converted by FFmpeg's swscale), or already
            converted to I420, uint8 [height * 3 // 2, width] (``cv2.COLOR_BGR2YUV_I420``, about
            five times faster than swscale's conversion at 720p).
        options: libx264 options (e.g. ``{"crf": "18", "preset": "ultrafast"}``).

    Returns:
        The number of frames written.
    """
    n = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if options:
            stream.options = dict(options)
        for frame in frames:
            pix = "yuv420p" if frame.ndim == 2 else "bgr24"
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format=pix)):
                container.mux(packet)
            n += 1
        for packet in stream.encode():
            container.mux(packet)
    return n
