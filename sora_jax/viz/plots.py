"""Matplotlib plots of object trajectories (ground truth vs what a tracker read back).

Axes: ``t`` frames, ``k`` objects. Positions are pixel coordinates ``(col,
row)`` with row 0 at the top (``Truth.to_pixels`` gives them), so trajectories
line up with the frame drawn underneath.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import Float, UInt8


def _rgb(colour: Any) -> tuple[float, float, float]:
    """A palette name, an (r, g, b) in 0..255, or any matplotlib colour spec -> (r, g, b) in 0..1."""
    from sora_jax.world.types import PALETTE   # lazy: importing sora_jax.viz stays cheap

    if isinstance(colour, str):
        if colour in PALETTE:
            return tuple(c / 255 for c in PALETTE[colour])
        from matplotlib.colors import to_rgb

        try:
            return to_rgb(colour)
        except ValueError:
            raise ValueError(f"colour {colour!r}: not a palette name ({', '.join(PALETTE)}) "
                             "nor a matplotlib colour") from None
    c = np.asarray(colour, float).reshape(-1)
    if c.shape != (3,):
        raise ValueError(f"colour {colour!r}: expected a name or an (r, g, b) triple")
    return tuple(c / 255 if c.max() > 1 else c)


def plot_trajectories(truth_positions_px: Float[np.ndarray, "t k 2"], colours: Sequence[Any],
                      tracked: Float[np.ndarray, "t k 2"] | None = None, ax: Any = None, *,
                      frame: UInt8[np.ndarray, "h w 3"] | None = None, size: tuple[int, int] | None = None,
                      current: int | None = None, title: str | None = None) -> Any:
    """Plot ground-truth trajectories (solid lines, dot at the start) and optionally tracked ones.

    truth_positions_px: ``(t, k, 2)`` pixel ``(col, row)``; NaN frames are skipped.
    colours: one per object (palette name or RGB).
    tracked: ``(t, k, 2)`` tracker output in the same coordinates (NaN where not
    found), drawn as crosses joined by dashed lines.
    frame: image drawn underneath (usually the first frame); ``size = (h, w)``
    sets the axes limits when there is no frame.
    current: frame index to mark with a ring (for frame sliders).
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    gt = np.asarray(truth_positions_px, float)
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(f"truth_positions_px: expected shape (t, k, 2), got {gt.shape}")
    T, K = gt.shape[:2]
    if len(colours) != K:
        raise ValueError(f"colours: got {len(colours)} colours for {K} objects")
    rgb = [_rgb(c) for c in colours]
    tr = None
    if tracked is not None:
        tr = np.asarray(tracked, float)
        if tr.shape != gt.shape:
            raise ValueError(f"tracked: shape {tr.shape} does not match truth_positions_px {gt.shape}")
    if current is not None and not 0 <= current < T:
        raise ValueError(f"current={current}: must be a frame index in 0..{T - 1}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    if frame is not None:
        img = np.asarray(frame)
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"frame: expected an (h, w, 3) image, got shape {img.shape}")
        h, w = img.shape[:2]
        ax.imshow(img, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest", alpha=0.6)
    elif size is not None:
        h, w = size
    else:
        h = w = None
    for k in range(K):
        ok = ~np.isnan(gt[:, k, 0])
        ax.plot(gt[ok, k, 0], gt[ok, k, 1], "-", color=rgb[k], lw=2, label="truth" if k == 0 else None)
        if ok.any():
            first = np.argmax(ok)
            ax.plot(gt[first, k, 0], gt[first, k, 1], "o", color=rgb[k], ms=5, mec="black", mew=0.5)
        if tr is not None:
            ax.plot(tr[:, k, 0], tr[:, k, 1], "x--", color=rgb[k], lw=1, ms=5, mec="black", mew=0.8,
                    label="tracked" if k == 0 else None)
        if current is not None and ok[current]:
            ax.plot(gt[current, k, 0], gt[current, k, 1], "o", mfc="none", mec="black", ms=12, mew=1.5)
    if h is not None:
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    else:
        ax.invert_yaxis()                  # rows grow downwards
    ax.set_aspect("equal")
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    if tr is not None:
        ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return ax
