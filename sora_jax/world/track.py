"""Read a clip back into per-frame object states by colour segmentation.

Axes: ``t`` frames, ``h, w`` pixel rows and columns, ``c`` palette colours,
``n`` detections (all frames and colours), ``k`` ground-truth objects.

This is the measuring instrument of the physics metrics (PHYSICS.md), in the
spirit of PhyWorld's parser, with sub-pixel accuracy:

1. **Core mask.** For palette colour ``c`` a pixel is *core* when its RGB is
   within ``tol`` of ``c`` (Euclidean distance in 0..255 units), or when it
   is almost exactly a mix of at least ``SOFT_ALPHA`` of ``c`` with the white
   background or grey scenery (so a tiny object whose pixels are all partly
   covered is still found).
2. **Clean.** Where a red and a yellow body touch, the mixed pixels along the
   contact look orange. A core pixel is *ambiguous* when a mix of two other
   known colours explains it better than ``c`` does; ambiguous pixels are
   kept only if they survive a morphological opening with a 3x3 cross (which
   removes isolated pixels and one-pixel slivers). Unambiguous core pixels are
   always kept, so even a tiny object (a triangle of 2-pixel circumradius has
   no 3x3 core) is found.
3. **Components.** Connected components of the cleaned core, frame by frame:
   one component per visible object (``count``).
4. **Soft pixels.** Anti-aliased edges carry a fraction of the object. Around
   each component (2 pixels out) every pixel is *unmixed*: it is explained as
   ``alpha * c + (1 - alpha) * o`` for the best other known colour ``o``
   (background white, scenery grey, or another palette colour whose core is
   within 3 pixels -- so a grey edge is never read as "yellow + blue") and keeps
   ``alpha`` if that explanation is good (residual below ``tol``). Each
   pixel goes to the nearest component.
5. **Measure.** ``area = sum(alpha)`` (pixels), centroid = alpha-weighted mean
   of pixel centres ``(col, row)``, radius ``sqrt(area / pi)``.

Pixel centres follow :meth:`Truth.to_pixels`: pixel ``(row, col)`` has centre
``(col, row)``. On ground-truth renders centroids of fully visible objects are
within about 0.005 px of the truth on average (0.2 px at worst, for objects
touching another), and every fully visible object of 2 px radius or more is
found; objects of about 1 px (OOD radii at 36 px tall frames) may be missed.

:func:`match` pairs detections with ground-truth objects (same colour, then
nearest by optimal assignment) and converts them to metres and m/s like
PhyWorld (``v = diff(position) / dt``), with the camera motion added back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
from jaxtyping import Float, Int, UInt8
from scipy import ndimage, optimize

from sora_jax.world.types import BACKGROUND, PALETTE, SCENERY, Truth

DEFAULT_TOL = 35.0        # RGB distance; the closest palette pair (yellow/orange) is 71 apart
DEFAULT_MIN_AREA = 2.0    # pixels (soft area); smaller components are dropped as noise
GROW = 2                  # pixels around a component searched for anti-aliased edge pixels
SOFT_ALPHA = 0.6          # an exact mix with white/grey at least this much colour c is core too
SOFT_RES = 12.0           # RGB distance allowed from an exact mix (uint8 rounding, a third colour's hint)

_CROSS = np.zeros((3, 3, 3), bool)   # 2D cross in every frame, no links across frames
_CROSS[1] = ndimage.generate_binary_structure(2, 1)
_SQUARE = np.zeros((3, 3, 3), bool)  # 8-connectivity within a frame
_SQUARE[1] = True


@dataclasses.dataclass(frozen=True)
class Tracks:
    """Detections of palette-coloured objects in a video.

    colours      tuple of palette names, index ``c``
    height, width  frame size in pixels
    counts       (t, c)  int    components per frame and colour
    frame        (n,)    int    frame of each detection
    colour_index (n,)    int    index into ``colours``
    centroid     (n, 2)  float  (col, row) pixel coordinates, sub-pixel
    area         (n,)    float  soft area in pixels
    radius       (n,)    float  sqrt(area / pi) in pixels
    """

    colours: tuple[str, ...]
    height: int
    width: int
    counts: np.ndarray
    frame: np.ndarray
    colour_index: np.ndarray
    centroid: np.ndarray
    area: np.ndarray
    radius: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.counts.shape[0])

    def count(self, colour: str | None = None) -> Int[np.ndarray, "t"]:
        """Objects per frame, of one colour or of all colours."""
        if colour is None:
            return self.counts.sum(1)
        return self.counts[:, self._ci(colour)]

    def detections(self, t: int, colour: str) -> Float[np.ndarray, "m 2"]:
        """Centroids ``(col, row)`` of the ``colour`` objects found in frame ``t``."""
        sel = (self.frame == t) & (self.colour_index == self._ci(colour))
        return self.centroid[sel]

    def _ci(self, colour: str) -> int:
        if colour not in self.colours:
            raise ValueError(f"colour {colour!r} was not tracked; tracked colours: {', '.join(self.colours)}")
        return self.colours.index(colour)


def _check_video(video: np.ndarray) -> None:
    if not isinstance(video, np.ndarray):
        raise ValueError(f"track: video must be a numpy array, got {type(video).__name__}")
    if video.dtype != np.uint8:
        raise ValueError(f"track: video dtype is {video.dtype}; expected uint8 pixels (t, h, w, 3) "
                         "(convert float [-1, 1] with ((x + 1) * 127.5).round().clip(0, 255).astype(np.uint8))")
    if video.ndim != 4 or video.shape[-1] != 3 or min(video.shape[:3]) < 1:
        raise ValueError(f"track: video shape {video.shape}; expected (t, h, w, 3) with t, h, w >= 1")


def _soft_core(x: np.ndarray, d2: np.ndarray, c: np.ndarray, scenery: np.ndarray) -> np.ndarray:
    """Pixels that are at least ``SOFT_ALPHA`` colour ``c`` over background or scenery, almost exactly.

    A small object (a triangle of 2-pixel circumradius) may have no pixel
    within ``tol`` of its colour; its mostly covered edge pixels are still
    exact mixes ``a c + (1 - a) o`` with ``o`` white or grey.
    """
    out = np.zeros(d2.shape, bool)
    cand = d2 < (1.0 - SOFT_ALPHA) ** 2 * 3 * 255.0 ** 2         # cheap prefilter: close enough to c
    if not cand.any():
        return out
    xs = x[cand]                                                  # (n, 3)
    d = c[None, :] - scenery                                      # (q, 3)
    y = xs[:, None, :] - scenery[None]                            # (n, q, 3)
    a = np.clip((y * d[None]).sum(-1) / (d * d).sum(-1)[None], 0.0, 1.0)
    res = ((y - a[..., None] * d[None]) ** 2).sum(-1)
    out[cand] = ((a >= SOFT_ALPHA) & (res <= SOFT_RES ** 2)).any(-1)
    return out


def _ambiguous(x: np.ndarray, core: np.ndarray, d2: np.ndarray,
               pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Core pixels that a mix ``a p + (1 - a) q`` of two other known colours explains better than ``c``."""
    out = np.zeros_like(core)
    core = core & (d2 > 4.0)                                  # a (nearly) exact pixel of c is never ambiguous
    if not core.any():
        return out
    xs = x[core]                                              # (n, 3)
    p, q = pairs                                              # (m, 3) each
    d = p - q
    y = xs[:, None, :] - q[None]                              # (n, m, 3)
    a = np.clip((y * d[None]).sum(-1) / (d * d).sum(-1)[None], 0.0, 1.0)
    res = ((y - a[..., None] * d[None]) ** 2).sum(-1).min(1)  # (n,) squared residual of the best mix
    out[core] = res + 4.0 < d2[core]
    return out


def _unmix(x: np.ndarray, c: np.ndarray, others: np.ndarray, tol: float,
           allowed: np.ndarray | None = None) -> np.ndarray:
    """Share ``alpha`` of colour ``c`` in pixels ``x`` (n, 3), mixed with one of ``others`` (q, 3).

    ``allowed`` (n, q) says which other colours may take part for each pixel.
    """
    d = c[None, :] - others                               # (q, 3)
    dd = (d * d).sum(-1)                                  # (q,)
    y = x[:, None, :] - others[None, :, :]                # (n, q, 3)
    a = np.clip((y * d[None]).sum(-1) / dd[None], 0.0, 1.0)   # (n, q)
    res = ((y - a[..., None] * d[None]) ** 2).sum(-1)     # (n, q)
    if allowed is not None:
        res = np.where(allowed, res, np.inf)
    best = res.argmin(1)
    rows = np.arange(len(x))
    alpha = a[rows, best]
    return np.where(res[rows, best] <= tol * tol, alpha, 0.0)


def track(video: UInt8[np.ndarray, "t h w 3"], palette: Mapping[str, tuple[int, int, int]] = PALETTE, *,
          tol: float = DEFAULT_TOL, min_area: float = DEFAULT_MIN_AREA) -> Tracks:
    """Segment every palette colour in ``video`` and measure each object.

    ``tol``: RGB distance for core pixels and for accepting an unmixed edge
    pixel. ``min_area``: components with a smaller soft area (pixels) are
    dropped. Raises ``ValueError`` for a non-uint8 or non-(t, h, w, 3) video.
    """
    _check_video(video)
    if not isinstance(palette, Mapping) or not palette:
        raise ValueError("track: palette must be a non-empty dict of colour name -> (r, g, b)")
    names = tuple(palette)
    cols = np.array([palette[n] for n in names], np.float32)
    if cols.shape != (len(names), 3):
        raise ValueError(f"track: palette values must be (r, g, b) triples, got {list(palette.values())!r}")
    if not tol > 0 or min_area < 0:
        raise ValueError(f"track: tol={tol} must be > 0 and min_area={min_area} >= 0")
    T, H, W, _ = video.shape
    x = video.astype(np.float32)
    counts = np.zeros((T, len(names)), np.int64)
    out_f, out_c, out_xy, out_a = [], [], [], []
    scenery = np.array([BACKGROUND, SCENERY], np.float32)
    known = np.concatenate([scenery, cols])
    # for colour ci: every pair of *other* known colours (the mixes that could fake ci)
    mixers = []
    for ci in range(len(names)):
        oth = np.delete(known, 2 + ci, 0)
        i, j = np.triu_indices(len(oth), 1)
        mixers.append((oth[i], oth[j]))
    # squared RGB distance to every palette colour, |x|^2 - 2 x.c + |c|^2 in one matrix product (t, h, w, c)
    d2_all = np.maximum((x * x).sum(-1, keepdims=True) - 2.0 * (x @ cols.T) + (cols * cols).sum(-1), 0.0)
    d2s = [d2_all[..., ci] for ci in range(len(names))]
    cores = [(d2 < tol * tol) | _soft_core(x, d2, c, scenery) for d2, c in zip(d2s, cols)]
    # a palette colour may explain an edge pixel (as the other half of a mix) only near that colour's core
    near = [ndimage.binary_dilation(cr, structure=_SQUARE, iterations=GROW + 1) if cr.any() else cr for cr in cores]
    for ci, c in enumerate(cols):
        d2, core = d2s[ci], cores[ci]
        if not core.any():
            continue
        core = ndimage.binary_opening(core, structure=_CROSS) | (core & ~_ambiguous(x, core, d2, mixers[ci]))
        labels, n = ndimage.label(core, structure=_SQUARE)
        if n == 0:
            continue
        region = ndimage.binary_dilation(core, structure=_SQUARE, iterations=GROW)
        # every region pixel belongs to the nearest core pixel's component (same frame only)
        _, (it, ir, ic) = ndimage.distance_transform_edt(~core, sampling=(1e6, 1.0, 1.0), return_indices=True)
        tt, rr, cc = np.nonzero(region)
        lab = labels[it[tt, rr, cc], ir[tt, rr, cc], ic[tt, rr, cc]]
        others = np.concatenate([scenery, np.delete(cols, ci, 0)])
        allowed = np.ones((len(tt), len(others)), bool)
        for q, cj in enumerate(j for j in range(len(cols)) if j != ci):
            allowed[:, 2 + q] = near[cj][tt, rr, cc]
        alpha = _unmix(x[tt, rr, cc], c, others, tol, allowed)
        w = np.bincount(lab, alpha, n + 1)[1:]
        sx = np.bincount(lab, alpha * cc, n + 1)[1:]
        sy = np.bincount(lab, alpha * rr, n + 1)[1:]
        fr = np.zeros(n + 1, np.int64)
        fr[labels[core]] = np.nonzero(core)[0]
        fr = fr[1:]
        keep = w >= max(min_area, 1e-9)
        if not keep.any():
            continue
        w, sx, sy, fr = w[keep], sx[keep], sy[keep], fr[keep]
        np.add.at(counts[:, ci], fr, 1)
        out_f.append(fr)
        out_c.append(np.full(len(fr), ci))
        out_xy.append(np.stack([sx / w, sy / w], -1))
        out_a.append(w)
    if out_f:
        frame, ci_all = np.concatenate(out_f), np.concatenate(out_c)
        xy, area = np.concatenate(out_xy), np.concatenate(out_a)
        order = np.lexsort((xy[:, 0], ci_all, frame))
        frame, ci_all, xy, area = frame[order], ci_all[order], xy[order], area[order]
    else:
        frame, ci_all = np.zeros(0, np.int64), np.zeros(0, np.int64)
        xy, area = np.zeros((0, 2)), np.zeros(0)
    return Tracks(colours=names, height=H, width=W, counts=counts, frame=frame, colour_index=ci_all,
                  centroid=xy, area=area, radius=np.sqrt(area / math.pi))


# --------------------------------------------------------------------------- #
# Matching detections to ground truth
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class Matched:
    """Tracked state of each ground-truth object.

    pixels     (t, k, 2)   (col, row) of the matched detection, NaN if none
    positions  (t, k, 2)   world metres (camera offset added back), NaN if none
    velocities (t-1, k, 2) m/s, ``diff(positions) / dt`` (PhyWorld's definition)
    found      (t, k)      bool
    area       (t, k)      soft area in pixels, NaN if none
    height, width          frame size in pixels of the tracked video (``pixels`` are in its grid)
    """

    pixels: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    found: np.ndarray
    area: np.ndarray
    height: int
    width: int


def expected_colours(truth: Truth) -> list[list[str]]:
    """Colour of each object in each frame (a block shows ``colour_after`` once its state is 1)."""
    after = truth.params.get("colour_after") or [None] * truth.num_objects
    return [[after[k] if (after[k] is not None and truth.state[t, k] > 0) else truth.colour[k]
             for k in range(truth.num_objects)] for t in range(truth.num_frames)]


def match(tracks: Tracks, truth: Truth, *, max_dist: float | None = None) -> Matched:
    """Assign detections to ground-truth objects: same colour, then nearest (Hungarian).

    Only objects with ``truth.visible > 0`` are candidates. ``max_dist``
    (pixels) rejects assignments further than that (default: no limit, so a
    teleported object is still matched and its jump shows in the velocities).
    """
    if not isinstance(tracks, Tracks) or not isinstance(truth, Truth):
        raise ValueError("match: expected (Tracks, Truth)")
    if tracks.num_frames != truth.num_frames:
        raise ValueError(f"match: tracks have {tracks.num_frames} frames but the truth has {truth.num_frames}")
    T, K = truth.num_frames, truth.num_objects
    H, W = tracks.height, tracks.width
    gt = truth.to_pixels(H, W)
    pix = np.full((T, K, 2), np.nan)
    area = np.full((T, K), np.nan)
    cols = expected_colours(truth)
    for t in range(T):
        for colour in set(cols[t]):
            ks = [k for k in range(K) if cols[t][k] == colour and truth.visible[t, k] > 0]
            if not ks or colour not in tracks.colours:
                continue
            sel = np.nonzero((tracks.frame == t) & (tracks.colour_index == tracks.colours.index(colour)))[0]
            if len(sel) == 0:
                continue
            cost = np.linalg.norm(gt[t, ks][:, None, :] - tracks.centroid[sel][None, :, :], axis=-1)
            gi, di = optimize.linear_sum_assignment(cost)
            for g, d in zip(gi, di):
                if max_dist is None or cost[g, d] <= max_dist:
                    pix[t, ks[g]] = tracks.centroid[sel[d]]
                    area[t, ks[g]] = tracks.area[sel[d]]
    vw, vh = truth.view
    sx, sy = W / vw, H / vh
    world = np.stack([(pix[..., 0] + 0.5) / sx + truth.camera[:, None, 0],
                      vh - (pix[..., 1] + 0.5) / sy + truth.camera[:, None, 1]], -1)
    vel = np.diff(world, axis=0) / truth.dt
    return Matched(pixels=pix, positions=world, velocities=vel, found=~np.isnan(pix[..., 0]), area=area,
                   height=int(H), width=int(W))


def position_error(matched: Matched, truth: Truth, *, min_visible: float = 1.0) -> Float[np.ndarray, "n"]:
    """Pixel distance between tracked and true centres over objects/frames with ``visible >= min_visible``.

    The true centres are ``truth.to_pixels`` at the tracked video's size
    (``matched.height``, ``matched.width``).
    """
    _check_matched(matched, truth)
    gt = truth.to_pixels(matched.height, matched.width)
    ok = (truth.visible >= min_visible) & matched.found
    return np.linalg.norm(matched.pixels[ok] - gt[ok], axis=-1)


def velocity_error(matched: Matched, truth: Truth, *, min_visible: float = 1.0) -> Float[np.ndarray, "n"]:
    """|v_tracked - v_true| (m/s) per object and frame pair, PhyWorld-style.

    The true velocity is the same finite difference of the true positions,
    ``diff(positions) / dt`` (for uniform motion it equals ``truth.velocities``);
    only pairs of frames where the object is visible enough and found count.
    """
    _check_matched(matched, truth)
    v_gt = np.diff(truth.positions, axis=0) / truth.dt
    vis = truth.visible >= min_visible
    ok = vis[1:] & vis[:-1] & matched.found[1:] & matched.found[:-1]
    return np.linalg.norm(matched.velocities[ok] - v_gt[ok], axis=-1)


def _check_matched(matched: Matched, truth: Truth) -> None:
    if not isinstance(matched, Matched) or not isinstance(truth, Truth):
        raise ValueError(f"expected (Matched, Truth), got ({type(matched).__name__}, {type(truth).__name__})")
    if matched.found.shape != truth.visible.shape:
        raise ValueError(f"matched objects {matched.found.shape} (t, k) do not fit the truth's {truth.visible.shape}; "
                         "match() the tracks against this truth first")
