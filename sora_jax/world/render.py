"""Render a simulated clip (a :class:`Truth`) to uint8 pixels.

Axes: ``b`` clips, ``t`` frames, ``h, w`` pixel rows and columns, ``c`` RGB,
``p`` pixels across a square patch around one object, ``n`` pixels of a
flattened patch.

Picture model: a white background; grey scenery (walls, floor, landmarks)
under the bodies; palette-coloured bodies in index order (later ones on top);
grey occluders over everything, so a body behind an occluder disappears.

Anti-aliasing by *coverage*: a pixel's colour is ``below * (1 - a) +
colour * a`` where ``a`` is the share of the pixel's square the shape covers.

* Axis-aligned boxes (squares, walls, occluders) have exact coverage that
  factorises: ``a = overlap_x * overlap_y``, each the length of the overlap of
  the pixel's ``[i, i + 1)`` interval with the box's interval.
* Circles and triangles use the signed distance ``d`` (in pixels, negative
  inside) from the pixel centre to an edge, and the exact share of a pixel
  cut by a straight edge at that distance and angle (:func:`_edge_coverage`:
  ``clip(0.5 - d, 0, 1)`` for an axis-aligned edge, a ramp with quadratic
  ends for a slanted one). For a circle the edge is the tangent (only the
  curvature is left as error); a triangle multiplies the coverage of its
  three edges (exact except in the pixels at a corner). Tracked centroids
  of ground-truth discs and squares come out within ~0.002 px. It is one
  evaluation per pixel, not ``k x k`` supersamples.

``antialias=1`` gives hard edges (a pixel is in or out at its centre); any
larger value gives the analytic coverage above (it replaces ``k x k``
supersampling, so the factor itself does not change the result).

How it stays fast (about a millisecond for 17 x 64 x 64 with a few objects):

* the static layer under the bodies is drawn once when the camera does not
  move, then repeated for every frame; a box only touches the rows and
  columns its pixel interval covers (a slice, not the whole frame);
* a body is drawn only inside its bounding patch, for all frames at once
  (one vectorised computation over ``(t, p, p)``), in float32, and composited
  straight into the uint8 frames (rounded once per layer);
* :func:`render_batch` draws the bodies of many clips together: every body of
  every clip with the same shape and patch size is one vectorised call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from jaxtyping import UInt8

from sora_jax.world.sim import triangle_sdf
from sora_jax.world.types import BACKGROUND, PALETTE, SCENERY, Truth

UNDER = ("wall", "floor", "ceiling", "landmark")    # drawn below bodies
OVER = ("occluder",)                                 # drawn above bodies (they hide)
# "block" boxes are not drawn as scenery: the block is a body with a palette colour.

CHUNK = 16          # clips rendered together by render_batch (their frames stay in the CPU cache)
_SIN60 = math.sqrt(3.0) / 2
_GREY = np.asarray(SCENERY, np.float32)
_WHITE = np.asarray(BACKGROUND, np.float32)
_RGB = {k: np.asarray(v, np.float32) for k, v in PALETTE.items()}


def _check(truth: Truth, height: int, width: int, antialias: int) -> None:
    if not isinstance(truth, Truth):
        raise ValueError(f"render: expected a Truth, got {type(truth).__name__}")
    for name, v in (("height", height), ("width", width), ("antialias", antialias)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"render: {name}={v!r} must be an integer >= 1")
    vw, vh = truth.view
    expect = height * vw / vh
    if abs(expect - width) > 1.0:
        raise ValueError(
            f"render: {height}x{width} pixels do not match the clip's {vw:.3g} x {vh:.3g} m view "
            f"(aspect {vw / vh:.3f}); render at width ~{expect:.0f} for height {height}, or sample the scene "
            "with this height and width")
    for c in truth.colour:
        if c not in PALETTE:
            raise ValueError(f"render: colour {c!r} is not in the palette ({', '.join(PALETTE)})")


# --------------------------------------------------------------------------- #
# Static boxes
# --------------------------------------------------------------------------- #


def _axis_cover(lo: np.ndarray, hi: np.ndarray, i0: int, i1: int, hard: bool) -> np.ndarray:
    """Coverage of pixels ``[i, i + 1)``, ``i0 <= i < i1``, by intervals ``[lo, hi)`` -> (t, i1 - i0)."""
    i = np.arange(i0, i1, dtype=np.float32)
    lo = np.asarray(lo, np.float32)[:, None]
    hi = np.asarray(hi, np.float32)[:, None]
    if hard:
        c = i + 0.5
        return ((c >= lo) & (c < hi)).astype(np.float32)
    return np.clip(np.minimum(hi, i + 1) - np.maximum(lo, i), 0.0, 1.0)


def _box_layer(truth: Truth, kinds: Sequence[str], cam: np.ndarray, H: int, W: int, sx: float, sy: float,
               hard: bool):
    """Yield ``(rows slice, cols slice, coverage (t, h', w'))`` for each static box of ``kinds``.

    ``cam`` is ``(t, 2)``: one row for a still camera (the layer is the same in
    every frame), one per frame otherwise. Only the rows and columns the box
    touches in some frame are covered.
    """
    vh = truth.view[1]
    for s in truth.static:
        if s["kind"] not in kinds:
            continue
        x0, y0, x1, y1 = s["box"]
        c_lo, c_hi = (x0 - cam[:, 0]) * sx, (x1 - cam[:, 0]) * sx                   # (t,) pixel columns
        r_lo, r_hi = (vh - (y1 - cam[:, 1])) * sy, (vh - (y0 - cam[:, 1])) * sy     # (t,) pixel rows
        ca, cb = max(0, int(math.floor(c_lo.min()))), min(W, int(math.ceil(c_hi.max())))
        ra, rb = max(0, int(math.floor(r_lo.min()))), min(H, int(math.ceil(r_hi.max())))
        if ca >= cb or ra >= rb:
            continue
        cx = _axis_cover(c_lo, c_hi, ca, cb, hard)                                 # (t, w')
        cy = _axis_cover(r_lo, r_hi, ra, rb, hard)                                 # (t, h')
        yield slice(ra, rb), slice(ca, cb), cy[:, :, None] * cx[:, None, :]


def _background(out: np.ndarray, truth: Truth, H: int, W: int, sx: float, sy: float, hard: bool) -> None:
    """Fill ``out`` (uint8 ``(t, h, w, 3)``) with white and the grey scenery under the bodies."""
    cam = np.asarray(truth.camera, np.float64)
    still = bool(np.all(cam == cam[:1]))
    cam = cam[:1] if still else cam
    layers = list(_box_layer(truth, UNDER, cam, H, W, sx, sy, hard))
    if not layers:
        out[:] = 255
        return
    bg = np.empty((len(cam), H, W, 3), np.float32)
    bg[:] = _WHITE
    for rs, cs, a in layers:
        sub = bg[:, rs, cs]
        sub += a[..., None] * (_GREY - sub)
    out[:] = (bg + 0.5).astype(np.uint8)          # a still camera: one frame, repeated


def _draw_over(img: np.ndarray, truth: Truth, H: int, W: int, sx: float, sy: float, hard: bool) -> None:
    """Composite the occluders over ``img`` (uint8 ``(t, h, w, 3)``) in place."""
    cam = np.asarray(truth.camera, np.float64)
    cam = cam[:1] if bool(np.all(cam == cam[:1])) else cam
    for rs, cs, a in _box_layer(truth, OVER, cam, H, W, sx, sy, hard):
        sub = img[:, rs, cs].astype(np.float32)
        sub += a[..., None] * (_GREY - sub)
        img[:, rs, cs] = (sub + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- #
# Bodies
# --------------------------------------------------------------------------- #


class _Stamp:
    """One body of one clip, ready to draw: patch origin per frame and the shape's geometry."""

    __slots__ = ("clip", "k", "shape", "P", "R", "cx", "cy", "t", "colour")

    def __init__(self, clip, k, shape, P, R, cx, cy, t, colour):
        self.clip, self.k, self.shape, self.P, self.R = clip, k, shape, P, R
        self.cx, self.cy, self.t, self.colour = cx, cy, t, colour


def _stamps(truth: Truth, clip: int, H: int, W: int, sx: float, sy: float) -> list[_Stamp]:
    """Every body of ``truth`` in the frames where its patch overlaps the view."""
    centres = truth.to_pixels(H, W)                                # (t, k, 2) (col, row), pixel centres
    after = truth.params.get("colour_after") or [None] * truth.num_objects
    out = []
    t_all = np.arange(truth.num_frames)
    for k in range(truth.num_objects):
        R = float(truth.radius[k])
        P = 2 * int(math.ceil(R * max(sx, sy) + 1.0)) + 1
        cx, cy = centres[:, k, 0], centres[:, k, 1]
        half = P / 2
        on = (cx + half > -1) & (cx - half < W + 1) & (cy + half > -1) & (cy - half < H + 1)
        if not on.any():
            continue
        colour = np.broadcast_to(_RGB[truth.colour[k]], (truth.num_frames, 3))
        if after[k] is not None:
            colour = np.where((truth.state[:, k] > 0)[:, None], _RGB[after[k]], colour)
        out.append(_Stamp(clip, k, truth.shape[k], P, R, cx[on], cy[on], t_all[on], colour[on]))
    return out


def _coverage(shape: str, P: int, R: np.ndarray, cx: np.ndarray, cy: np.ndarray, sx: float, sy: float,
              hard: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage ``(n, p, p)`` of ``n`` patches of one shape and size, and their top-left pixel (row, col)."""
    c0 = np.floor(cx).astype(np.int64) - P // 2                    # (n,)
    r0 = np.floor(cy).astype(np.int64) - P // 2
    ar = np.arange(P, dtype=np.float32)
    dx = ((c0 - cx).astype(np.float32)[:, None] + ar) / np.float32(sx)   # (n, p) metres, x right
    dy = ((cy - r0).astype(np.float32)[:, None] - ar) / np.float32(sy)   # (n, p) metres, y up
    R = R.astype(np.float32)[:, None]
    s = np.float32(min(sx, sy))
    if shape == "square":
        h = R / np.float32(math.sqrt(2))                            # half side (n, 1)
        if hard:
            ax = (np.abs(dx) <= h).astype(np.float32)
            ay = (np.abs(dy) <= h).astype(np.float32)
        else:
            hx, hy = h * np.float32(sx), h * np.float32(sy)
            px, py = dx * np.float32(sx), dy * np.float32(sy)
            ax = np.clip(np.minimum(px + 0.5, hx) - np.maximum(px - 0.5, -hx), 0.0, 1.0)
            ay = np.clip(np.minimum(py + 0.5, hy) - np.maximum(py - 0.5, -hy), 0.0, 1.0)
        a = ay[:, :, None] * ax[:, None, :]
    else:
        if shape == "circle":
            dist = np.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2)
            d = dist - R[:, :, None]
            if not hard:          # the edge's normal is radial: |cos|, |sin| of the pixel's direction
                inv = 1.0 / np.maximum(dist, np.float32(1e-12))
                nx, ny = np.abs(dx)[:, None, :] * inv, np.abs(dy)[:, :, None] * inv
                return _edge_coverage(d * s, np.maximum(nx, ny), np.minimum(nx, ny)), r0, c0
        elif hard:
            p = np.stack(np.broadcast_arrays(dx[:, None, :], dy[:, :, None]), -1)
            d = triangle_sdf(p, R[:, :, None]).astype(np.float32)
        else:
            # the triangle is three half-planes, each at the inradius R / 2 from the centroid:
            # exact coverage for each edge, multiplied (exact except in the pixels at a corner)
            a = np.ones((len(R), P, P), np.float32)
            half = R[:, :, None] * np.float32(0.5)
            for nx, ny in ((0.0, -1.0), (_SIN60, 0.5), (-_SIN60, 0.5)):
                d = (np.float32(nx) * dx[:, None, :] + np.float32(ny) * dy[:, :, None] - half) * s
                a *= _edge_coverage(d, np.float32(max(abs(nx), abs(ny))), np.float32(min(abs(nx), abs(ny))))
            return a, r0, c0
        a = (d <= 0).astype(np.float32) if hard else np.clip(0.5 - d * s, 0.0, 1.0)
    return a, r0, c0


def _edge_coverage(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact share of a unit pixel inside a straight edge at signed distance ``d`` (pixels, < 0 inside).

    ``a >= b`` are the absolute components of the edge's unit normal. Along the
    normal, a point of the pixel lies at the sum of two uniform offsets of
    widths ``a`` and ``b``; the covered share is that sum's CDF at ``-d``: a
    ramp with quadratic ends, ``clip(0.5 - d, 0, 1)`` for an axis-aligned edge.
    For a disc it leaves only the edge's curvature as error (the plain ramp
    also errs with the edge's angle, up to 1/8 of a pixel on a diagonal).
    """
    t = -d
    h1, h0 = (a + b) * 0.5, (a - b) * 0.5
    ab2 = np.maximum(2.0 * a * b, np.float32(1e-12))
    lo = (t + h1) ** 2 / ab2
    mid = (t + 0.5 * a) / a
    hi = 1.0 - (h1 - t) ** 2 / ab2
    out = np.where(t <= -h0, lo, np.where(t <= h0, mid, hi))
    return np.clip(np.where(t <= -h1, 0.0, np.where(t >= h1, 1.0, out)), 0.0, 1.0).astype(np.float32)


def _composite(flat: np.ndarray, frames: np.ndarray, r0: np.ndarray, c0: np.ndarray, a: np.ndarray,
               colour: np.ndarray, H: int, W: int) -> None:
    """Blend patches ``a (n, p, p)`` of ``colour (n, 3)`` into ``flat`` (uint8 ``(b t h w, 3)``) in place.

    ``frames`` are indices into the leading ``b * t`` axis. Pixels outside the
    frame or with zero coverage are skipped, so every index is written once.
    """
    P = a.shape[-1]
    ar = np.arange(P)
    rows = r0[:, None] + ar                                        # (n, p)
    cols = c0[:, None] + ar
    ok = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :] & (a > 0)
    n, i, j = np.nonzero(ok)
    idx = (frames[n] * H + rows[n, i]) * W + cols[n, j]
    al = a[n, i, j][:, None]
    sub = flat[idx].astype(np.float32)
    sub += al * (colour[n] - sub)
    flat[idx] = (sub + 0.5).astype(np.uint8)


def _draw_bodies(video: np.ndarray, stamps: Sequence[_Stamp], T: int, H: int, W: int, sx: float, sy: float,
                 hard: bool) -> None:
    """Draw bodies into ``video`` (uint8 ``(b, t, h, w, 3)``), body ``k`` of every clip over bodies ``< k``.

    Bodies of different clips never overlap, so all clips' body ``k`` of one
    shape and patch size are drawn in one vectorised call.
    """
    flat = video.reshape(-1, 3)
    groups: dict[tuple[int, str, int], list[_Stamp]] = {}
    for s in stamps:
        groups.setdefault((s.k, s.shape, s.P), []).append(s)
    for (k, shape, P), group in sorted(groups.items(), key=lambda g: g[0]):
        cx = np.concatenate([s.cx for s in group])
        cy = np.concatenate([s.cy for s in group])
        R = np.concatenate([np.full(len(s.t), s.R) for s in group])
        frames = np.concatenate([s.clip * T + s.t for s in group])
        colour = np.concatenate([s.colour for s in group])
        a, r0, c0 = _coverage(shape, P, R, cx, cy, sx, sy, hard)
        _composite(flat, frames, r0, c0, a, colour, H, W)


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def render(truth: Truth, height: int, width: int, antialias: int = 4) -> UInt8[np.ndarray, "t h w 3"]:
    """Draw ``truth`` as a uint8 video ``(t, height, width, 3)``.

    The view ``truth.view`` (metres) fills the frame; ``width / height`` must
    match its aspect ratio (within a pixel). The camera offset
    ``truth.camera[t]`` shifts the world in frame ``t``.
    """
    return render_batch([truth], height, width, antialias)[0]


def render_batch(truths: Sequence[Truth], height: int, width: int,
                 antialias: int = 4) -> UInt8[np.ndarray, "b t h w 3"]:
    """Render many clips of equal length into one array ``(b, t, h, w, 3)``.

    Clip ``i`` is exactly ``render(truths[i], height, width, antialias)``.
    """
    truths = list(truths)
    if not truths:
        return np.zeros((0, 0, height, width, 3), np.uint8)
    for t in truths:
        _check(t, height, width, antialias)
    lengths = {t.num_frames for t in truths}
    if len(lengths) > 1:
        raise ValueError(f"render_batch: clips have different frame counts {sorted(lengths)}; render them separately")
    hard = antialias == 1
    T = truths[0].num_frames
    out = np.empty((len(truths), T, height, width, 3), np.uint8)
    for c0 in range(0, len(truths), CHUNK):           # a few clips at a time stay in the CPU cache
        _render_chunk(out[c0:c0 + CHUNK], truths[c0:c0 + CHUNK], height, width, hard)
    return out


def _render_chunk(out: np.ndarray, truths: Sequence[Truth], height: int, width: int, hard: bool) -> None:
    T = out.shape[1]
    stamps: list[_Stamp] = []
    for i, t in enumerate(truths):
        vw, vh = t.view
        sx, sy = width / vw, height / vh
        _background(out[i], t, height, width, sx, sy, hard)
        stamps += _stamps(t, i, height, width, sx, sy)
    # bodies of clips with the same pixel scale are drawn together
    scales: dict[tuple[float, float], list[_Stamp]] = {}
    for s in stamps:
        vw, vh = truths[s.clip].view
        scales.setdefault((width / vw, height / vh), []).append(s)
    for (sx, sy), group in scales.items():
        _draw_bodies(out, group, T, height, width, sx, sy, hard)
    for i, t in enumerate(truths):
        vw, vh = t.view
        _draw_over(out[i], t, height, width, width / vw, height / vh, hard)
