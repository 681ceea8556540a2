"""Short, low-resolution cuts of the real Hamilton clip, made at test time with PyAV: a run on
one takes seconds instead of the whole clip's minute on a busy 2-core machine."""

from __future__ import annotations

from pathlib import Path

import av

from tests.conftest import HAMILTON


def cut_clip(out: Path, start: int = 82, frames: int = 45, width: int = 320,
             src: Path = HAMILTON) -> Path:
    """Write frames ``[start, start + frames)`` of ``src`` to ``out`` (H.264 MP4, ``width`` px
    wide, same frame rate); different ``start`` values give different content (and sha256)."""
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        rate = vin.average_rate
        height = int(round(vin.height * width / vin.width / 2)) * 2
        with av.open(str(out), "w") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for i, frame in enumerate(inp.decode(vin)):
                if i >= start + frames:
                    break
                if i < start:
                    continue
                img = frame.reformat(width=width, height=height, format="yuv420p")
                img.pts, img.time_base = i - start, 1 / rate
                for packet in stream.encode(img):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return out


def faststart_truncated(src: Path, out: Path) -> Path:
    """``src`` remuxed with its index first (as streaming uploads are), then cut in half, written
    to ``out``: it opens fine and breaks off half-way (a half-copied upload)."""
    full = out.with_name(out.stem + ".faststart.mp4")
    with av.open(str(src)) as inp, av.open(str(full), "w",
                                           options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    data = full.read_bytes()
    full.unlink()
    out.write_bytes(data[: len(data) // 2])
    return out


def unknown_codec(src: Path, out: Path) -> Path:
    """``src`` (an H.264 MP4) with its sample entry's codec tag ``avc1`` renamed ``zzzz``: the
    container opens, but FFmpeg has no decoder for the stream."""
    data = bytearray(src.read_bytes())
    at = data.rfind(b"avc1")  # the last one is the stsd sample entry (the first: ftyp's brands)
    assert at > 0, f"{src} is not an H.264 MP4"
    data[at:at + 4] = b"zzzz"
    out.write_bytes(bytes(data))
    return out
