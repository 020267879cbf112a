"""Camera motion read back from a clip: phase correlation on the static grey scenery.

Axes: ``t`` frames, ``h, w`` pixel rows and columns.

Static scenery (walls, floors, occluders, landmarks) is grey; palette-coloured
bodies move on their own, so only the *grey* share of each pixel is used. For
each pair of consecutive frames:

1. **Integer shift.** Phase correlation of the Hann-windowed grey maps: the
   peak of ``ifft(F1 conj(F0) / |F1 conj(F0)|)`` is the shift ``s`` with
   ``g1(x) ~ g0(x - s)``.
2. **Sub-pixel.** A few Lucas-Kanade steps refine ``s``: linearise
   ``g1 - shift(g0, s) ~ -grad . ds`` over the pixels away from the border
   (where scenery enters or leaves) and solve the 2x2 normal equations. A
   direction without texture (a floor seen along its length) keeps its
   integer estimate (minimum-norm solution).

The camera trajectory is the running sum of the shifts. When the camera moves
right, the world moves left in the frame: the scenery's shift is minus the
camera's displacement in pixels (rows point down, world ``y`` up).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from sora_jax.world.types import BACKGROUND, SCENERY

MIN_SCENERY_PX = 12.0    # grey pixels (soft) a frame needs for its shift to be measured
_LK_STEPS = 4
_MOTION_ENERGY = 0.01    # a change smaller than this share of the scenery's energy is noise, not motion
_GREY_RES = 12.0         # RGB distance from the white-grey line (anti-aliased palette edges are farther)


@dataclasses.dataclass(frozen=True)
class CameraTrack:
    """Scenery motion of a clip.

    shift       (t-1, 2) float  (dcol, drow) pixels of the scenery between frames t and t+1
    known       (t-1,)   bool   both frames had enough scenery to measure the shift
    trajectory  (t, 2)   float  cumulative scenery shift from frame 0 (unknown shifts filled with the
                                median of the known ones: the world's pans are at constant speed)
    scenery_px  (t,)     float  soft count of grey pixels per frame
    """

    shift: np.ndarray
    known: np.ndarray
    trajectory: np.ndarray
    scenery_px: np.ndarray

    @property
    def measurable(self) -> bool:
        return bool(self.known.any())


def scenery_map(video: np.ndarray) -> np.ndarray:
    """Grey share ``(t, h, w)`` in [0, 1] of every pixel (a mix of scenery grey and white; 0 for anything else)."""
    x = video.astype(np.float32)
    bg = np.asarray(BACKGROUND, np.float32)
    d = np.asarray(SCENERY, np.float32) - bg
    y = x - bg
    a = np.clip((y * d).sum(-1) / float((d * d).sum()), 0.0, 1.0)
    res = ((y - a[..., None] * d) ** 2).sum(-1)
    return np.where((res <= _GREY_RES ** 2) & (a >= 0.1), a, 0.0).astype(np.float32)


def _phase_peak(a: np.ndarray, b: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Integer shift ``s`` (dcol, drow) with ``b(x) ~ a(x - s)``."""
    fa = np.fft.rfft2((a - a.mean()) * win)
    fb = np.fft.rfft2((b - b.mean()) * win)
    r = fb * np.conj(fa)
    r /= np.maximum(np.sqrt(np.abs(r)), 1e-9)          # half-whitened: sharp peak, robust to noise
    c = np.fft.irfft2(r, s=a.shape)
    i, j = np.unravel_index(int(np.argmax(c)), c.shape)
    h, w = a.shape
    dy = i - h if i > h // 2 else i
    dx = j - w if j > w // 2 else j
    return np.array([dx, dy], float)


def _refine(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Lucas-Kanade refinement of the shift ``s`` (dcol, drow) between grey maps ``a`` -> ``b``."""
    h, w = a.shape
    for _ in range(_LK_STEPS):
        m = int(np.ceil(np.abs(s).max())) + 2
        if 2 * m >= min(h, w):
            break
        warped = ndimage.shift(a, (s[1], s[0]), order=3, mode="nearest", prefilter=True)
        gy, gx = np.gradient(warped)
        e = (b - warped)[m:h - m, m:w - m].ravel()
        G = np.stack([gx[m:h - m, m:w - m].ravel(), gy[m:h - m, m:w - m].ravel()], -1)
        A = G.T @ G
        if np.trace(A) < 1e-6:
            break
        ds = -np.linalg.lstsq(A, G.T @ e, rcond=1e-3)[0]
        ds = np.clip(ds, -1.0, 1.0)
        s = s + ds
        if np.abs(ds).max() < 1e-3:
            break
    return s


def estimate_camera(video: np.ndarray) -> CameraTrack:
    """Scenery shift between consecutive frames of a uint8 ``(t, h, w, 3)`` clip (see the module docstring)."""
    g = scenery_map(video)
    T, H, W = g.shape
    px = g.reshape(T, -1).sum(-1)
    win = np.outer(np.hanning(H), np.hanning(W)).astype(np.float32) if min(H, W) > 2 else np.ones((H, W), np.float32)
    shift = np.zeros((max(T - 1, 0), 2))
    known = np.zeros(max(T - 1, 0), bool)
    for t in range(T - 1):
        if px[t] < MIN_SCENERY_PX or px[t + 1] < MIN_SCENERY_PX:
            continue
        if np.array_equal(g[t], g[t + 1]):
            known[t] = True
            continue
        s = _refine(g[t], g[t + 1], _phase_peak(g[t], g[t + 1], win))
        # keep a shift only if it explains the change much better than "no motion" does
        # (scenery without texture along one direction -- a lone floor -- cannot show motion along it)
        m = int(np.ceil(np.abs(s).max())) + 2
        if 2 * m < min(H, W):
            inner = (slice(m, H - m), slice(m, W - m))
            warped = ndimage.shift(g[t], (s[1], s[0]), order=3, mode="nearest")
            still = float(((g[t + 1] - g[t])[inner] ** 2).sum())
            moved = float(((g[t + 1] - warped)[inner] ** 2).sum())
            energy = float((g[t + 1][inner] ** 2).sum())
            if moved < 0.5 * still and still > _MOTION_ENERGY * energy and energy >= MIN_SCENERY_PX:
                shift[t] = s
        known[t] = True
    fill = np.median(shift[known], axis=0) if known.any() else np.zeros(2)
    steps = np.where(known[:, None], shift, fill[None])
    traj = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)], 0) if T else np.zeros((0, 2))
    return CameraTrack(shift=shift, known=known, trajectory=traj, scenery_px=px)
