"""Show videos and frames in a notebook (mediapy), with crisp upscaling for tiny clips.

Axes: ``t`` frames, ``h, w`` pixel rows and columns, ``c`` = 3 RGB channels.
Videos are uint8 ``(t, h, w, 3)`` (the library's edge format); a browser would
blur a 64 x 64 clip into mush, so clips are enlarged by pixel repetition
(nearest neighbour) before encoding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import UInt8

DISPLAY_SIZE = 256          # auto upscale: the longer side is shown at least this many pixels


def _check_video(video: Any, name: str = "video") -> np.ndarray:
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or min(v.shape) < 1:
        raise ValueError(f"{name}: expected a video of shape (t, h, w, 3), got shape {v.shape}")
    if v.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 (0..255), got {v.dtype}; "
                         "convert float videos in [-1, 1] with ((x + 1) * 127.5).round().clip(0, 255).astype(np.uint8)")
    return v


def _check_image(image: Any, name: str = "image") -> np.ndarray:
    im = np.asarray(image)
    if im.ndim != 3 or im.shape[-1] != 3 or im.dtype != np.uint8 or min(im.shape) < 1:
        raise ValueError(f"{name}: expected a uint8 image of shape (h, w, 3), got {im.dtype} {im.shape}")
    return im


def _auto_factor(h: int, w: int, factor: int | None) -> int:
    if factor is None:
        return max(1, math.ceil(DISPLAY_SIZE / max(h, w)))
    if not isinstance(factor, (int, np.integer)) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"upscale={factor!r}: must be an integer >= 1 or None (automatic)")
    return int(factor)


def upscale(video: UInt8[np.ndarray, "t h w 3"] | UInt8[np.ndarray, "h w 3"],
            factor: int | None = None) -> UInt8[np.ndarray, "..."]:
    """Nearest-neighbour enlargement of a video ``(t, h, w, 3)`` or image ``(h, w, 3)``.

    ``factor=None`` picks the smallest integer that shows the longer side at
    >= ``DISPLAY_SIZE`` pixels (64 x 64 -> x4).
    """
    x = np.asarray(video)
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"upscale: expected (t, h, w, 3) or (h, w, 3), got shape {x.shape}")
    f = _auto_factor(x.shape[-3], x.shape[-2], factor)
    if f == 1:
        return x
    return x.repeat(f, axis=-3).repeat(f, axis=-2)


def _even(video: np.ndarray) -> np.ndarray:
    """H.264 needs even frame sizes: repeat the last row/column when odd."""
    pad_h, pad_w = video.shape[1] % 2, video.shape[2] % 2
    if pad_h or pad_w:
        video = np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return video


def show_video(video: UInt8[np.ndarray, "t h w 3"], fps: float = 10, title: str | None = None, *,
               upscale: int | None = None, codec: str = "h264", return_html: bool = False,
               **kwargs: Any) -> str | None:
    """Show one clip in the notebook (mediapy), enlarged with nearest-neighbour pixels.

    ``upscale``: integer factor, or None for automatic. ``return_html=True``
    returns the HTML instead of displaying it (handy in apps and tests).
    Extra keyword arguments go to ``mediapy.show_video`` (e.g. ``loop``, ``border``).
    """
    return show_videos([video], titles=None if title is None else [title], fps=fps, upscale=upscale,
                       codec=codec, return_html=return_html, **kwargs)


def show_videos(videos: Mapping[str, np.ndarray] | Sequence[np.ndarray], fps: float = 10, *,
                titles: Sequence[str] | None = None, upscale: int | None = None, columns: int | None = None,
                codec: str = "h264", return_html: bool = False, **kwargs: Any) -> str | None:
    """Show several clips side by side: a dict ``{title: video}`` or a list (with optional ``titles``).

    All clips share one upscale factor (automatic from the largest clip), so
    different resolutions keep their true relative size.
    """
    import mediapy

    if isinstance(videos, Mapping):
        if titles is not None:
            raise ValueError("show_videos: give titles either as dict keys or as titles=, not both")
        titles, videos = [str(k) for k in videos], list(videos.values())
    else:
        videos = list(videos)
        titles = None if titles is None else [str(t) for t in titles]
    if not videos:
        raise ValueError("show_videos: no videos given")
    if titles is not None and len(titles) != len(videos):
        raise ValueError(f"show_videos: {len(videos)} videos but {len(titles)} titles")
    vids = [_check_video(v, f"videos[{i}]") for i, v in enumerate(videos)]
    if codec not in ("h264", "gif"):
        raise ValueError(f"codec={codec!r}: valid: 'h264', 'gif'")
    if not fps > 0:
        raise ValueError(f"fps={fps!r}: must be > 0")
    f = _auto_factor(max(v.shape[1] for v in vids), max(v.shape[2] for v in vids), upscale)
    vids = [v.repeat(f, axis=1).repeat(f, axis=2) if f > 1 else v for v in vids]
    if codec == "h264":
        vids = [_even(v) for v in vids]
    return mediapy.show_videos(vids, titles, fps=fps, columns=columns, codec=codec, return_html=return_html,
                               **kwargs)


def show_image(image: UInt8[np.ndarray, "h w 3"], title: str | None = None, *, upscale: int | None = None,
               return_html: bool = False, **kwargs: Any) -> str | None:
    """Show one uint8 image (e.g. a :func:`frame_grid`), nearest-neighbour enlarged."""
    import mediapy

    im = _check_image(image)
    f = _auto_factor(im.shape[0], im.shape[1], upscale)
    if f > 1:
        im = im.repeat(f, axis=0).repeat(f, axis=1)
    return mediapy.show_image(im, title=title, return_html=return_html, **kwargs)


def frame_grid(video: UInt8[np.ndarray, "t h w 3"], *, every: int = 1, max_frames: int | None = None,
               columns: int | None = None, upscale: int = 1, gap: int = 1,
               gap_value: int = 255) -> UInt8[np.ndarray, "H W 3"]:
    """Frames side by side in one image (a "filmstrip"), left to right then top to bottom.

    Takes frames ``0, every, 2 * every, ...`` (at most ``max_frames``), lays
    them out in ``columns`` columns (default: all in one row), each enlarged by
    ``upscale`` and separated by ``gap`` pixels of ``gap_value``. Result shape:
    ``(rows * h' + (rows - 1) * gap, cols * w' + (cols - 1) * gap, 3)`` with
    ``h' = h * upscale``.
    """
    v = _check_video(video)
    if not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every={every!r}: must be an integer >= 1")
    if gap < 0 or not 0 <= gap_value <= 255:
        raise ValueError(f"gap={gap}, gap_value={gap_value}: need gap >= 0 and 0 <= gap_value <= 255")
    frames = v[::every]
    if max_frames is not None:
        if max_frames < 1:
            raise ValueError(f"max_frames={max_frames!r}: must be >= 1 or None")
        frames = frames[:max_frames]
    n = len(frames)
    cols = n if columns is None else max(1, min(int(columns), n))
    rows = math.ceil(n / cols)
    f = _auto_factor(1, 1, upscale)
    if f > 1:
        frames = frames.repeat(f, axis=1).repeat(f, axis=2)
    h, w = frames.shape[1:3]
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), gap_value, np.uint8)
    for i, fr in enumerate(frames):
        r, c = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = fr
    return out
