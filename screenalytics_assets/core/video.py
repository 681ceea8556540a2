"""Video decoding with PyAV: one streaming pass, and targeted reads of a few frames.

Frames are decoded one at a time and never collected, so memory does not grow with the length of
the episode. Timestamps come from each frame's presentation timestamp (pts) in the container's time
base, relative to the stream's start, so they stay right for variable-frame-rate files.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from .errors import VideoError

# Largest frame accepted (px): 8192 x 8192, above the largest H.264/HEVC level (8192 x 4320).
# A bigger frame is almost surely a mistake (an image sequence or a corrupt header) and one decoded
# frame alone would take 200+ MB.
MAX_FRAME_PIXELS = 8192 * 8192

# Width (px) of the small copy of every frame that shot-cut detection looks at. PySceneDetect's
# SceneManager downscales 640-px video by 2 by default; 320 px keeps its content scores comparable.
SCENE_WIDTH = 320

# Decoded frames waiting for the consumer (see :class:`Prefetcher`). A few frames absorb the jitter
# between decoding and detection; more would only hold memory (a 1080p BGR frame is 6 MB).
PREFETCH_FRAMES = 8


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video stream.

    Attributes:
        fps: frames per second used for frame-duration math (container's average rate, or the
            ``fps`` setting when it is > 0).
        n_frames: frames in the stream as the container declares them (0 when unknown); after a
            full decode, the number actually decoded.
        duration_s: stream duration in seconds.
        width, height: frame size in pixels.
        time_base: the stream's time base as a string fraction (``"1/11988"``).
        start_pts: pts of the stream's first frame, in time-base units.
    """

    fps: float
    n_frames: int
    duration_s: float
    width: int
    height: int
    time_base: str
    start_pts: int

    def to_dict(self) -> dict:
        return asdict(self)

    def pts_to_ts(self, pts: int) -> float:
        """Presentation timestamp (time-base units) -> seconds from the stream's start."""
        return float((pts - self.start_pts) * Fraction(self.time_base))

    def ts_to_pts(self, ts: float) -> int:
        """Seconds from the stream's start -> the nearest pts in time-base units."""
        return int(round(ts / Fraction(self.time_base))) + self.start_pts


@dataclass
class DecodedFrame:
    """One decoded frame.

    Attributes:
        frame_idx: 0-based index in decode order.
        ts: seconds from the start of the stream.
        pts: presentation timestamp in time-base units.
        image: BGR uint8 [H, W, 3] on processed frames (every ``stride``-th), else ``None``; the
            full frame, or the frame scaled to the ``image_size`` asked of :func:`iter_frames`.
        small: BGR uint8 [h, SCENE_WIDTH, 3] downscaled copy for shot-cut detection, every frame.
        full: the full-size frame, BGR uint8 [H, W, 3], on processed frames when
            :func:`iter_frames` is asked to keep it, else ``None``; the same pixels as
            :func:`read_frames_at` gives for that frame.
        shot_offset: frames since the first frame of this frame's shot, the frame the stride
            counts from (since the first frame of the video without ``new_shot``).
    """

    frame_idx: int
    ts: float
    pts: int
    image: np.ndarray | None
    small: np.ndarray
    full: np.ndarray | None = None
    shot_offset: int = 0


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"video not found: {path}. Check the path, or upload the episode first.")
    if not path.is_file():
        raise VideoError(f"video path is not a file: {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"video is empty (0 bytes): {path}. Re-upload or re-copy the file.")


def _open(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    _check_file(path)
    try:
        container = av.open(os.fspath(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(
            f"cannot read {path} as a video ({exc}). It is not a video file, or it is truncated "
            "or corrupted: re-encode it (e.g. `ffmpeg -i in -c:v libx264 out.mp4`) or re-upload it."
        ) from exc
    if not container.streams.video:
        kind = ("it is audio-only" if container.streams.audio
                else "no video frames at all (an empty or data-only container)")
        container.close()
        raise VideoError(f"{path} has no video stream: {kind}. Provide the episode's video.")
    return container, container.streams.video[0]


def probe_video(path: str | os.PathLike, fps: float = 0.0) -> VideoInfo:
    """Read stream metadata without decoding.

    Args:
        path: video file.
        fps: frames per second to use instead of the container's rate; 0 means auto.

    Raises:
        VideoError: missing, empty, unreadable or audio-only file, a stream with no frame rate, a
            frame larger than :data:`MAX_FRAME_PIXELS`, or fewer frames than one second of video
            (a still image; see :func:`check_episode_length`).
    """
    path = Path(path)
    container, stream = _open(path)
    try:
        info = _info(path, stream, fps)
        check_episode_length(path, container, stream, info)
        return info
    finally:
        container.close()


def check_episode_length(path: Path, container, stream, info: VideoInfo) -> None:
    """Refuse what is not an episode: no frame at all, a still image (one frame: a JPEG renamed
    ``.mp4`` opens as a one-frame ``jpeg_pipe`` stream at a nominal 25 fps), or a stream shorter
    than one second of video: fewer than ``ceil(fps)`` frames, unless its frames, each lasting
    the stream's mean frame interval, cover at least 1 s (a low or variable frame rate, where the
    container's average rate says little).

    Frames are counted from the demuxed packets (one per frame; nothing is decoded), and only up
    to one second's worth; a declared frame count of at least that many is trusted.

    Raises:
        VideoError: naming the file, the frames found and why it is refused.
    """
    need = math.ceil(info.fps - 1e-6)
    if info.n_frames >= need:
        return
    found = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                found += 1
                if found >= need:
                    return
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoError(f"cannot read {path} as a video ({exc}); it is truncated or corrupted: "
                         "re-encode or re-upload it.") from exc
    if found == 0:
        raise VideoError(f"{path} has no video frames (its video stream is empty). Provide the "
                         "episode's video.")
    # found < need: every frame was counted. A stream's duration spans found - 1 frame
    # intervals (first to last pts); the last frame lasts one interval too.
    if found > 1 and info.duration_s * found / (found - 1) >= 1.0 - 1e-6:
        return
    still = " (a still image, not a video)" if found == 1 else ""
    raise VideoError(
        f"{path} is not an episode: {found} video frame{'s' if found != 1 else ''}{still}, fewer "
        f"than one second of video ({need} frames at {info.fps:g} fps). Provide the episode's "
        "video file.")


def _info(path: Path, stream, fps: float) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    use_fps = float(fps) if fps and fps > 0 else (float(rate) if rate else 0.0)
    if use_fps <= 0:
        raise VideoError(f"{path}: the container declares no frame rate; set the `fps` setting.")
    tb = stream.time_base or Fraction(1, 90000)
    start = stream.start_time or 0
    if stream.duration:
        duration = float(stream.duration * tb)
    elif stream.container.duration:
        duration = stream.container.duration / av.time_base
    else:
        duration = stream.frames / use_fps if stream.frames else 0.0
    ctx = stream.codec_context
    if ctx is None:  # FFmpeg has no decoder for the stream's codec (an unknown fourcc)
        raise VideoError(
            f"{path}: its video codec is not one FFmpeg can decode; re-encode it (e.g. "
            "`ffmpeg -i in -c:v libx264 out.mp4`) and upload that.")
    if ctx.width * ctx.height > MAX_FRAME_PIXELS:
        raise VideoError(
            f"{path}: frame size {ctx.width}x{ctx.height} is larger than the {MAX_FRAME_PIXELS} "
            "pixels supported; downscale it first (e.g. `ffmpeg -i in -vf scale=3840:-2 out.mp4`)")
    if ctx.width <= 0 or ctx.height <= 0:
        raise VideoError(f"{path}: the video stream declares no frame size; re-encode it")
    return VideoInfo(
        fps=use_fps,
        n_frames=int(stream.frames or 0),
        duration_s=duration,
        width=int(ctx.width),
        height=int(ctx.height),
        time_base=f"{tb.numerator}/{tb.denominator}",
        start_pts=int(start),
    )


def _small_size(width: int, height: int) -> tuple[int, int]:
    return SCENE_WIDTH, max(2, int(round(height * SCENE_WIDTH / max(width, 1))) // 2 * 2)


def _to_small(frame: av.VideoFrame, convert: Callable[..., np.ndarray]) -> np.ndarray:
    w, h = _small_size(frame.width, frame.height)
    return convert(frame, width=w, height=h)


def bgr_converter() -> Callable[..., np.ndarray]:
    """``convert(frame, **size) -> uint8 [H, W, 3] BGR`` of decoded frames, through one libswscale
    context kept for every frame (PyAV's :class:`~av.video.reformatter.VideoReformatter`).

    ``frame.to_ndarray(format="bgr24")`` gives the same pixels, but sets up a new context for
    every frame, which can cost more than the conversion: :func:`iter_frames` over the 720p
    benchmark clip x16 (4,400 frames, each to 160x90, every other one to 480x288, on 2 cores)
    took 10.7-11.3 s that way and takes 7.3-7.5 s with kept contexts. PyAV's documentation
    advises one reformatter per set of parameters: use one converter per output size, in one
    thread at a time.
    """
    reformatter = VideoReformatter()

    def convert(frame: av.VideoFrame, **size) -> np.ndarray:
        return reformatter.reformat(frame, format="bgr24", **size).to_ndarray()

    return convert


def iter_frames(
    path: str | os.PathLike, info: VideoInfo, stride: int = 1,
    image_size: tuple[int, int] | None = None,
    new_shot: Callable[[int, np.ndarray], bool] | None = None,
    keep_full: bool = False,
) -> Iterator[DecodedFrame]:
    """Decode every frame once, in order; convert every ``stride``-th to a BGR image.

    Every frame also gets a small copy for shot-cut detection, so cuts are found at single-frame
    precision whatever the stride. At stride 1 with an ``image_size`` at least
    :data:`SCENE_WIDTH` wide, every frame is converted once, to that size, and the small copy is
    taken from it (OpenCV's area resize) instead of converting the full decoded frame a second
    time: on the 720p benchmark clip that thread's work per frame drops by a quarter (1,100
    frames: 7.2-7.7 s -> 5.3-5.8 s, the same cuts). At a larger stride most frames are only
    needed small, and converting them to the detector's size first would cost more. Memory use
    is one frame at a time. FFmpeg decodes with its own threads (``thread_type="AUTO"``: frame
    and slice threading).

    With ``new_shot``, the stride restarts at every shot: the first frame of each shot is
    processed, then every ``stride``-th frame after it, so that no shot starts with frames that
    no processed frame stands for.

    Args:
        path: video file.
        info: from :func:`probe_video` on the same file.
        stride: process every ``stride``-th frame (frames 0, stride, 2*stride, ...); >= 1.
        image_size: ``(width, height)`` in pixels to scale processed frames to, in the same
            conversion from the decoder's pixel format to BGR (libswscale, bilinear), so a
            detector that needs a smaller image never gets the full-size one; ``None`` keeps
            the full frame.
        new_shot: called as ``new_shot(frame_idx, small)`` on every frame, in order, before the
            frame is converted; returns True when a new shot starts at this frame (e.g.
            :meth:`.shots.ShotCutDetector.feed`).
        keep_full: also give processed frames their full-size BGR image (``DecodedFrame.full``),
            so that faces can be cut out at full resolution from the frame scaled for the
            detector. It is converted here, in the decode thread, rather than where the faces are
            cut: large arrays allocated and freed in the detector's worker threads made glibc's
            per-thread heaps grow with the length of the video (measured: 380 MiB -> 1 GiB
            over the 2.4-minute benchmark input at ``balanced``).

    Raises:
        VideoError: the stream breaks off while decoding, or ends well before the number of frames
            the container declares (a truncated upload).
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    size = {} if image_size is None else {"width": int(image_size[0]),
                                          "height": int(image_size[1])}
    small_from_image = stride == 1 and image_size is not None and image_size[0] >= SCENE_WIDTH
    small_size = _small_size(*image_size) if small_from_image else None
    path = Path(path)
    container, stream = _open(path)
    stream.thread_type = "AUTO"
    to_image, to_small, to_full = bgr_converter(), bgr_converter(), bgr_converter()
    n = 0
    phase = 0  # the frame the stride counts from: 0, or the start of the current shot
    try:
        try:
            for frame in container.decode(stream):
                pts = frame.pts if frame.pts is not None else info.ts_to_pts(n / info.fps)
                if small_from_image:
                    scaled = to_image(frame, **size)
                    small = cv2.resize(scaled, small_size, interpolation=cv2.INTER_AREA)
                else:
                    scaled, small = None, _to_small(frame, to_small)
                if new_shot is not None and new_shot(n, small):
                    phase = n
                if (n - phase) % stride:
                    image = None
                else:
                    image = scaled if scaled is not None else to_image(frame, **size)
                full = None
                if keep_full and image is not None:
                    full = image if image_size is None else to_full(frame)
                yield DecodedFrame(n, info.pts_to_ts(pts), int(pts), image, small, full, n - phase)
                n += 1
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{path}: decoding failed after {n} frames ({exc}); the file is truncated or "
                "corrupted. Re-upload the complete video."
            ) from exc
    finally:
        container.close()
    _check_frame_count(path, n, info, "decoded")


def _check_frame_count(path: Path, n: int, info: VideoInfo, verb: str) -> None:
    """Refuse a stream with no frame, or well short of (under 98 % of, less 2) the frames the
    container declares: a truncated upload. ``verb``: how the ``n`` frames were counted."""
    if n == 0:
        raise VideoError(f"{path}: no frame could be {verb}; the file is truncated or corrupted.")
    if info.n_frames and n < 0.98 * info.n_frames - 2:
        raise VideoError(
            f"{path}: {verb} {n} of the {info.n_frames} frames the container declares; the file "
            "is truncated. Re-upload the complete video."
        )


def validate_video(path: str | os.PathLike, fps: float = 0.0) -> VideoInfo:
    """Check a whole video before it is accepted as an episode's video (before it replaces a
    good one): everything :func:`probe_video` checks, then every packet of the video stream
    read to the end of the file and every keyframe decoded, so that a file cut short (e.g. an
    upload with its index first that breaks off half-way), a stream whose keyframes do not
    decode, or an unknown codec is refused here rather than by the ``detections`` step, with the
    same frame-count rule that step applies (see :func:`iter_frames`).

    Why not decode every frame, as ``detections`` does: that costs a decode of the whole
    episode. On a busy 2-core machine (best of 7): the 275-frame 640x360 Hamilton clip decodes
    in 105-350 ms, this check takes 10-60 ms; the clip at 1920x1080 (550 frames, a keyframe
    every 60) 4.0 s against 0.22 s, i.e. about ten minutes against half a minute for a
    44-minute episode. Reading every packet still reads every byte of the file, which is what a
    truncated or half-copied upload lacks; a keyframe decodes on its own, so decoding only
    keyframes (1 frame in 46 on the Hamilton clip, one per GOP of 0.5-10 s in broadcast video)
    proves that the codec, its parameters and each GOP's start are good. A damaged frame inside
    a GOP is not looked at; FFmpeg's decoder mostly conceals such damage in ``detections`` too
    (a cut-off last frame is decoded without an error) rather than failing the run.

    Args:
        path: video file.
        fps: frames per second to use instead of the container's rate; 0 means auto.

    Returns:
        The stream's :class:`VideoInfo` (as :func:`probe_video`).

    Raises:
        VideoError: anything :func:`probe_video` refuses; a packet that cannot be read; a
            keyframe that does not decode; fewer packets than the frames the container
            declares (truncated).
    """
    path = Path(path)
    info = probe_video(path, fps)
    container, stream = _open(path)
    ctx = stream.codec_context
    n = keyframes = 0
    try:
        for packet in container.demux(stream):
            if not packet.size:  # the demuxer's end-of-stream flush packet
                continue
            n += 1
            # a partial last packet (is_corrupt) is counted, not decoded: detections would
            # decode the frames before it and drop it, as the frame-count rule allows
            if packet.is_keyframe and not packet.is_corrupt:
                keyframes += len(ctx.decode(packet))
        keyframes += len(ctx.decode(None))  # frames the decoder's threads still hold
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoError(
            f"{path}: reading failed after {n} of its packets ({exc}); the file is truncated "
            "or corrupted. Re-upload the complete video, or re-encode it (e.g. `ffmpeg -i in "
            "-c:v libx264 out.mp4`).") from exc
    finally:
        container.close()
    _check_frame_count(path, n, info, "read")
    if keyframes == 0:
        raise VideoError(f"{path}: no keyframe among its {n} frames decodes; the file is "
                         "corrupted. Re-encode or re-upload it.")
    return info


_END = object()


class Prefetcher(Iterator):
    """Run an iterator in a background thread, ``maxsize`` items ahead of the consumer.

    The producer/consumer pattern of a decode thread feeding a bounded ``queue.Queue``: the
    producer (decoding, pixel-format conversion) runs while the consumer (the detector, on the
    caller's thread) works, and blocks when ``maxsize`` items wait, so memory stays bounded
    whatever the episode's length. FFmpeg and ONNX Runtime release the GIL while they work, so
    the two overlap on separate cores. An exception raised by the producer is raised again in
    the consumer, at the point where the item it failed to make would have been. Use as a
    context manager (or call :meth:`close`) so that a consumer that stops early also stops the
    thread.

    Args:
        make: called in the thread to create the iterator (so that the file is opened there).
        maxsize: items held at most (>= 1).
    """

    def __init__(self, make: Callable[[], Iterable], maxsize: int = PREFETCH_FRAMES) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(make,), daemon=True,
                                        name="screenalytics-decode")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make) -> None:
        try:
            it = iter(make())
            try:
                for item in it:
                    if not self._put(item):
                        return
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            self._thread.join()
            raise item
        return item

    def close(self) -> None:
        """Stop the producer and wait for its thread to end."""
        self._done = True
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_frames_at(
    path: str | os.PathLike, pts_list: Iterable[int], seek_gap_s: float = 4.0
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(pts, BGR uint8 [H, W, 3])`` for each requested pts, in increasing pts order.

    Only the frames between a keyframe and the frames asked for are decoded: when the next wanted
    frame is more than ``seek_gap_s`` seconds ahead, the reader seeks to the keyframe before it
    instead of decoding everything in between.

    Raises:
        VideoError: the file cannot be opened, or a requested frame is not in the stream.
    """
    wanted = sorted(set(int(p) for p in pts_list))
    if not wanted:
        return
    path = Path(path)
    container, stream = _open(path)
    gap = int(seek_gap_s / float(stream.time_base))
    to_bgr = bgr_converter()
    i = 0
    try:
        while i < len(wanted):
            container.seek(wanted[i], stream=stream, backward=True, any_frame=False)
            reseek = False
            for frame in container.decode(stream):
                if frame.pts is None or frame.pts < wanted[i]:
                    continue
                if frame.pts > wanted[i]:
                    break  # the wanted frame is not in the stream
                yield wanted[i], to_bgr(frame)
                i += 1
                if i < len(wanted) and wanted[i] - frame.pts > gap:
                    reseek = True
                if i >= len(wanted) or reseek:
                    break
            if i < len(wanted) and not reseek:
                raise VideoError(
                    f"{path}: no frame with pts {wanted[i]} in the stream; the video changed "
                    "since detection ran. Re-materialize `detections`."
                )
    finally:
        container.close()
