"""MP4 video features with PyAV: encode frames into one file, decode frames at timestamps.

Real LeRobot v3.0 recordings store each camera as MP4 (often AV1), many episodes one after the
other in ``videos/<key>/chunk-XXX/file-XXX.mp4``. The frame ``t`` of an episode sits at time
``from_timestamp + timestamp`` in that file, where ``from_timestamp`` comes from the episodes
table. Decoding seeks to the key frame before the first wanted time and decodes forward.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from a1lib.data.errors import DatasetError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole config at INFO level otherwise
# First available wins: AV1 like real LeRobot recordings, else H.264, else MPEG-4 part 2.
CODEC_PREFERENCE = ("libsvtav1", "libaom-av1", "librav1e", "libx264", "h264", "mpeg4")


def pick_codec() -> str:
    for name in CODEC_PREFERENCE:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # av.codec.codec.UnknownCodecError
            continue
    raise DatasetError("PyAV has none of the video encoders " + ", ".join(CODEC_PREFERENCE))


class VideoEncoder:
    """Appends uint8 (H, W, 3) frames to one MP4 at ``fps``; frame k sits at time k / fps."""

    def __init__(self, path: str | Path, fps: int, height: int, width: int, codec: str | None = None):
        self.path = Path(path)
        self.codec = codec or pick_codec()
        self.fps = int(fps)
        self.container = av.open(str(self.path), "w", format="mp4")
        self.stream = self.container.add_stream(self.codec, rate=self.fps)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = Fraction(1, self.fps)
        # A key frame every 2 s bounds the decode work of a random-access read.
        opts = {"g": str(2 * self.fps)}
        if self.codec == "libsvtav1":
            opts.update({"preset": "8", "crf": "20"})
        elif self.codec in ("libx264", "h264"):
            opts.update({"crf": "18", "preset": "fast"})
        elif self.codec == "mpeg4":
            opts.update({"qscale": "2"})
        self.stream.options = opts
        self.frames_written = 0

    @property
    def codec_name(self) -> str:
        """The format's name (``"av1"``, ``"h264"``), not the encoder's: what LeRobot records in
        ``info.video.codec``."""
        return av.codec.Codec(self.codec, "w").canonical_name

    def add(self, frame: np.ndarray) -> None:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames_written
        for packet in self.stream.encode(vf):
            self.container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def decode_frames(path: str | Path, timestamps: list[float], tolerance: float) -> np.ndarray:
    """The frames of ``path`` nearest each time in ``timestamps`` -> uint8 (N, H, W, 3).

    Raises DatasetError if the file is missing or unreadable, or if a time has no frame within
    ``tolerance`` seconds (e.g. the episodes table and the video disagree).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: video file missing")
    want = np.asarray(timestamps, dtype=np.float64)
    lo, hi = float(want.min()), float(want.max())
    times, frames = [], []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb = stream.time_base
            container.seek(max(0, int(lo / tb)), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                t = float(frame.pts * tb)
                if t < lo - tolerance:
                    continue
                times.append(t)
                frames.append(frame.to_ndarray(format="rgb24"))
                if t >= hi + tolerance:
                    break
    except (av.error.FFmpegError, IndexError) as e:
        raise DatasetError(f"{path}: cannot decode video: {e}") from e
    if not frames:
        raise DatasetError(f"{path}: no frames decoded near t={lo:.3f}..{hi:.3f} s")
    times_arr = np.asarray(times)
    nearest = np.abs(times_arr[None, :] - want[:, None]).argmin(axis=1)  # (N,)
    err = np.abs(times_arr[nearest] - want)
    if np.any(err > tolerance):
        bad = float(want[err.argmax()])
        raise DatasetError(f"{path}: no frame within {tolerance:.4f} s of t={bad:.4f} s "
                           "(video shorter than its episodes table says?)")
    return np.stack([frames[i] for i in nearest])


def scan_video(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """Decode every frame of ``path`` (``a1 data info --deep``) -> the frame times in seconds.

    Raises DatasetError if the file is missing, cut or corrupt, or a frame is not ``shape``.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: video file missing")
    times = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                if (frame.height, frame.width) != tuple(shape[:2]):
                    raise DatasetError(f"{path}: frame at t={float(frame.pts * stream.time_base):.3f} s is "
                                       f"{frame.height}x{frame.width}, meta/info.json declares {list(shape)}")
                frame.to_ndarray(format="rgb24")  # the pixels really decode
                times.append(float(frame.pts * stream.time_base))
    except (av.error.FFmpegError, IndexError) as e:
        raise DatasetError(f"{path}: cannot decode video: {e}") from e
    return np.asarray(times)
