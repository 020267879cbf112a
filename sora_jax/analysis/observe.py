"""What every physics metric starts from: a validated clip, its tracks, and what it is compared with.

Axes: ``t`` frames, ``h, w`` pixel rows and columns, ``k`` ground-truth objects,
``n`` detections. Pixel coordinates are ``(col, row)`` with row 0 at the top
(as in :func:`sora_jax.world.track.track`); world coordinates are metres with
``y`` up (as in :class:`~sora_jax.world.types.Truth`).

A clip is compared with one of two references:

* a :class:`~sora_jax.world.types.Truth` (``mode == "truth"``): the exact
  ground truth of the scene the clip shows -- a ground-truth render, a VAE
  reconstruction, a re-simulation, or a model's continuation of the scene's
  first frames (PhyWorld's protocol). Detections are paired with objects by
  :func:`sora_jax.world.track.match`.
* an :class:`~sora_jax.world.captions.Intent` (``mode == "intent"``), usually
  :func:`~sora_jax.world.captions.parse_prompt` of the prompt a clip was
  generated from: the clip is scored for doing what the text says and for
  physical plausibility. Detections are linked into :class:`Tracklet` s by
  :func:`link` (nearest neighbour with a constant-velocity prediction).

:func:`observe` validates the input once (``ValueError`` naming the bad value
and what is valid) and tracks the clip once; every metric takes the resulting
:class:`Observation`, so a clip is tracked once however many metrics run.
Problems with the *content* of a clip (off-palette colours, no object found)
are not errors: :attr:`Observation.problem` says what is wrong and the metrics
report "not measurable" with that reason instead of a misleading number.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
from scipy import ndimage, optimize

from sora_jax.config import WorldConfig
from sora_jax.world.captions import Intent, parse_prompt
from sora_jax.world.track import DEFAULT_TOL, Matched, Tracks, expected_colours, match, track
from sora_jax.world.types import BACKGROUND, PALETTE, SCENERY, Truth

# Area of a shape of circumradius 1 (pixels^2 per pixel^2 of radius) and its perimeter.
SHAPE_AREA = {"circle": math.pi, "square": 2.0, "triangle": 3.0 * math.sqrt(3.0) / 4.0}
SHAPE_PERIMETER = {"circle": 2.0 * math.pi, "square": 4.0 * math.sqrt(2.0), "triangle": 3.0 * math.sqrt(3.0)}

MIN_RADIUS_PX = 1.5       # objects smaller than this (equivalent radius, pixels) are not measured
OFF_PALETTE_MAX = 0.5     # a clip whose coloured pixels are more than half off-palette is not measurable
_OFF_PALETTE_MIN_PX = 24  # ... and only when there are at least this many such pixels

_PAL_NAMES = tuple(PALETTE)
_PAL_RGB = np.array([PALETTE[c] for c in _PAL_NAMES], np.float32)          # (c, 3)
_KNOWN_RGB = np.concatenate([np.array([BACKGROUND, SCENERY], np.float32), _PAL_RGB])   # (2 + c, 3)


class NotMeasurable(Exception):
    """Raised inside a metric when the clip cannot be measured; carries the reason."""


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


def check_video(video: Any, name: str = "video") -> np.ndarray:
    """Return ``video`` as a uint8 ``(t, h, w, 3)`` array or raise ``ValueError`` saying what is valid."""
    if not isinstance(video, np.ndarray):
        try:
            video = np.asarray(video)
        except Exception:  # noqa: BLE001 - anything that is not array-like
            raise ValueError(f"{name}: expected a uint8 array (t, h, w, 3), got {type(video).__name__}") from None
    if video.dtype != np.uint8:
        raise ValueError(f"{name}: dtype is {video.dtype}; expected uint8 pixels (t, h, w, 3) "
                         "(convert floats in [-1, 1] with ((x + 1) * 127.5).round().clip(0, 255).astype(np.uint8))")
    if video.ndim != 4 or video.shape[-1] != 3 or min(video.shape[:3]) < 1:
        raise ValueError(f"{name}: shape {video.shape}; expected (t, h, w, 3) with t, h, w >= 1 "
                         "(one clip; for a batch pass clips one at a time)")
    return video


def check_truth(truth: Any, video: np.ndarray | None = None) -> Truth:
    """Validate a ground truth (and that it fits ``video``): palette, array shapes, frame count, aspect ratio."""
    if not isinstance(truth, Truth):
        raise ValueError(f"expected a sora_jax.world.Truth, got {type(truth).__name__}")
    bad = [c for c in truth.colour if c not in PALETTE]
    after = [c for c in (truth.params.get("colour_after") or ()) if c is not None and c not in PALETTE]
    if bad or after:
        raise ValueError(f"truth colours {bad + after} are not in the world's palette; valid: {', '.join(PALETTE)}")
    T, K = truth.num_frames, truth.num_objects
    for name, shape in (("velocities", (T, K, 2)), ("visible", (T, K)), ("in_frame", (T, K)), ("camera", (T, 2)),
                        ("state", (T, K)), ("radius", (K,))):
        got = np.shape(getattr(truth, name))
        if got != shape:
            raise ValueError(f"truth.{name} has shape {got}; expected {shape} for {T} frames and {K} objects")
    if video is not None:
        t, h, w, _ = video.shape
        if t != T:
            raise ValueError(f"the clip has {t} frames but its ground truth has {T}; pass the clip the truth "
                             f"describes (or slice both to the same frames, e.g. with truth_frames(truth, start, stop))")
        vw, vh = truth.view
        if abs(h * vw / vh - w) > 1.0:
            raise ValueError(f"the clip is {h}x{w} pixels but the truth's view is {vw:.3g} x {vh:.3g} m "
                             f"(aspect {vw / vh:.3f}); valid: width ~{h * vw / vh:.0f} for height {h}")
    return truth


def truth_frames(truth: Truth, start: int, stop: int | None = None) -> Truth:
    """The ground truth of frames ``start:stop`` only (events re-indexed, outside ones dropped)."""
    T = truth.num_frames
    stop = T if stop is None else stop
    if not 0 <= start < stop <= T:
        raise ValueError(f"truth_frames: frames {start}:{stop} are not inside 0:{T}")
    sl = slice(start, stop)
    events = tuple(dataclasses.replace(e, frame=e.frame - start) for e in truth.events if start <= e.frame < stop)
    return dataclasses.replace(truth, positions=truth.positions[sl], velocities=truth.velocities[sl],
                               visible=truth.visible[sl], in_frame=truth.in_frame[sl], camera=truth.camera[sl],
                               state=truth.state[sl], events=events)


def as_reference(ref: Any) -> Truth | Intent:
    """A Truth or Intent as given; a prompt string is parsed with :func:`parse_prompt`."""
    if isinstance(ref, (Truth, Intent)):
        return ref
    if isinstance(ref, str):
        return parse_prompt(ref)
    raise ValueError(f"reference: expected a Truth (ground truth), an Intent or a prompt string, "
                     f"got {type(ref).__name__}")


# --------------------------------------------------------------------------- #
# Palette check
# --------------------------------------------------------------------------- #


def off_palette(video: np.ndarray, tol: float = DEFAULT_TOL) -> np.ndarray:
    """Boolean ``(t, h, w)``: pixels farther than ``tol`` (RGB) from every world colour.

    The world's colours are the palette, the white background and the grey
    scenery. Anti-aliased edges (a mix of two colours) are off-palette too;
    :func:`palette_problem` excuses those that lie next to palette pixels.
    """
    x = video.astype(np.float32)
    d2 = (x * x).sum(-1, keepdims=True) - 2.0 * (x @ _KNOWN_RGB.T) + (_KNOWN_RGB * _KNOWN_RGB).sum(-1)
    return d2.min(-1) > tol * tol


def palette_problem(video: np.ndarray, tol: float = DEFAULT_TOL) -> str:
    """``""`` when the clip's coloured pixels are the world's; else a sentence saying what is wrong.

    A pixel is *stray* when it is off-palette (see :func:`off_palette`) and
    not within 2 pixels of a palette-coloured pixel (so anti-aliased and
    slightly blurred edges do not count). A clip is off-palette when more than
    ``OFF_PALETTE_MAX`` of its non-background pixels are stray -- real
    footage, a colour-shifted model, a clip in another palette.
    """
    x = video.astype(np.float32)
    d2 = np.maximum((x * x).sum(-1, keepdims=True) - 2.0 * (x @ _KNOWN_RGB.T) + (_KNOWN_RGB * _KNOWN_RGB).sum(-1), 0)
    near_pal = d2[..., 2:].min(-1) <= tol * tol
    # background: white, grey, or an anti-aliased mix of the two (the edge of a wall)
    bg = np.asarray(BACKGROUND, np.float32)
    d = np.asarray(SCENERY, np.float32) - bg
    y = x - bg
    a = np.clip((y * d).sum(-1) / float((d * d).sum()), 0.0, 1.0)
    near_bg = ((y - a[..., None] * d) ** 2).sum(-1) <= tol * tol
    off = ~near_pal & ~near_bg
    if not off.any():
        return ""
    struct = np.zeros((3, 3, 3), bool)
    struct[1] = True
    grown = ndimage.binary_dilation(near_pal, structure=struct, iterations=2) if near_pal.any() else near_pal
    stray = off & ~grown
    coloured = int((~near_bg).sum())
    n = int(stray.sum())
    if n >= _OFF_PALETTE_MIN_PX and n > OFF_PALETTE_MAX * coloured:
        names = ", ".join(f"{k} {v}" for k, v in PALETTE.items())
        return (f"off-palette clip: {n / coloured:.0%} of its {coloured} coloured pixels are not world colours "
                f"(valid: white background {BACKGROUND}, grey scenery {SCENERY}, palette {names})")
    return ""


# --------------------------------------------------------------------------- #
# Linking detections into tracklets (intent mode)
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class Tracklet:
    """One object followed through the frames where it was detected.

    colour    palette name
    frames    (n,)    int    frames with a detection (increasing, gaps allowed)
    centroid  (n, 2)  float  (col, row) pixels
    area      (n,)    float  soft area in pixels
    """

    colour: str
    frames: np.ndarray
    centroid: np.ndarray
    area: np.ndarray

    @property
    def radius(self) -> np.ndarray:
        return np.sqrt(self.area / math.pi)

    def __len__(self) -> int:
        return int(len(self.frames))


def link(tracks: Tracks, *, max_gap: int = 2, gate: float = 4.0) -> list[Tracklet]:
    """Link detections of the same colour frame to frame (optimal assignment on predicted positions).

    A tracklet predicts its next centroid with its last velocity; a detection
    joins it when within ``gate + radius + |velocity| / 2`` pixels of the
    prediction. A tracklet survives up to ``max_gap`` frames without a
    detection (a blink); after that a new detection starts a new tracklet.
    Sorted by colour, then first frame.
    """
    out: list[Tracklet] = []
    for ci, colour in enumerate(tracks.colours):
        sel = tracks.colour_index == ci
        if not sel.any():
            continue
        fr, xy, ar = tracks.frame[sel], tracks.centroid[sel], tracks.area[sel]
        live: list[dict[str, list]] = []
        done: list[dict[str, list]] = []
        for t in range(tracks.num_frames):
            idx = np.nonzero(fr == t)[0]
            live_now = []
            for tr in live:
                (live_now if t - tr["f"][-1] <= max_gap + 1 else done).append(tr)
            live = live_now
            if len(idx) == 0:
                continue
            used = np.zeros(len(idx), bool)
            if live:
                pred, lim = [], []
                for tr in live:
                    p = np.asarray(tr["c"][-1])
                    v = np.zeros(2)
                    if len(tr["f"]) >= 2:
                        v = (p - np.asarray(tr["c"][-2])) / max(tr["f"][-1] - tr["f"][-2], 1)
                    pred.append(p + v * (t - tr["f"][-1]))
                    lim.append(gate + math.sqrt(tr["a"][-1] / math.pi) + 0.5 * float(np.hypot(*v)) * (t - tr["f"][-1]))
                cost = np.linalg.norm(np.asarray(pred)[:, None] - xy[idx][None], axis=-1)
                big = 1e6
                gi, di = optimize.linear_sum_assignment(np.where(cost <= np.asarray(lim)[:, None], cost, big))
                for g, d in zip(gi, di):
                    if cost[g, d] <= lim[g]:
                        live[g]["f"].append(t)
                        live[g]["c"].append(xy[idx[d]])
                        live[g]["a"].append(ar[idx[d]])
                        used[d] = True
            for d in np.nonzero(~used)[0]:
                live.append({"f": [t], "c": [xy[idx[d]]], "a": [ar[idx[d]]]})
        for tr in done + live:
            out.append(Tracklet(colour, np.asarray(tr["f"], np.int64), np.asarray(tr["c"], float).reshape(-1, 2),
                                np.asarray(tr["a"], float)))
    out.sort(key=lambda tr: (tr.colour, int(tr.frames[0]), float(tr.centroid[0, 0])))
    return out


# --------------------------------------------------------------------------- #
# Shape classification (moments of the pixels around a detection)
# --------------------------------------------------------------------------- #


def colour_alpha(frame: np.ndarray, colour: str) -> np.ndarray:
    """Share ``alpha`` (h, w) of palette ``colour`` in each pixel, unmixed against white (0 where it does not fit)."""
    c = np.asarray(PALETTE[colour], np.float32)
    bg = np.asarray(BACKGROUND, np.float32)
    x = frame.astype(np.float32) - bg
    d = c - bg
    a = np.clip((x * d).sum(-1) / float((d * d).sum()), 0.0, 1.0)
    res = ((x - a[..., None] * d) ** 2).sum(-1)
    return np.where(res <= DEFAULT_TOL ** 2, a, 0.0)


def shape_moments(frame: np.ndarray, colour: str, centroid: np.ndarray, radius: float) -> tuple[float, float] | None:
    """``(q4, t3)`` of the ``colour`` blob around ``centroid``; None if there is none.

    With ``(x, y)`` pixel offsets from the blob's centre (y up) and weights the
    colour share ``alpha``: ``q4 = sum a (x^4 + y^4) / sum 6 a x^2 y^2`` is 1 for
    anything with no four-fold anisotropy (a disc, a triangle) and 0.6 for an
    axis-aligned square (1.67 turned by 45 degrees); ``t3 = sum a r^3 sin 3 theta /
    sum a r^3`` is 0 for discs and squares and -0.65 for an upward triangle.
    Sub-pixel exact on anti-aliased renders down to a 3-pixel radius.
    """
    h, w = frame.shape[:2]
    R = int(math.ceil(1.6 * radius + 3))
    c0, r0 = int(round(centroid[0])), int(round(centroid[1]))
    rs, cs = slice(max(0, r0 - R), min(h, r0 + R + 1)), slice(max(0, c0 - R), min(w, c0 + R + 1))
    a = colour_alpha(frame[rs, cs], colour)
    lab, n = ndimage.label(a > 0.05)
    if n == 0:
        return None
    rr, cc = np.mgrid[rs, cs]
    dist = np.hypot(cc - centroid[0], rr - centroid[1])
    best = min(range(1, n + 1), key=lambda i: float(dist[lab == i].min()))
    wgt = a * (lab == best)
    tot = float(wgt.sum())
    if tot <= 0:
        return None
    x = cc - float((wgt * cc).sum()) / tot
    y = -(rr - float((wgt * rr).sum()) / tot)
    cross = float((wgt * x * x * y * y).sum())
    q4 = float((wgt * (x ** 4 + y ** 4)).sum()) / max(6.0 * cross, 1e-12)
    r3 = np.hypot(x, y) ** 3
    t3 = float((wgt * r3 * np.sin(3 * np.arctan2(y, x))).sum()) / max(float((wgt * r3).sum()), 1e-12)
    return q4, t3


def classify_shape(frame: np.ndarray, colour: str, centroid: np.ndarray, radius: float) -> str | None:
    """``"circle" | "square" | "triangle"`` of the ``colour`` blob around ``centroid`` (None if undecidable).

    From :func:`shape_moments`: ``|t3| > 0.3`` is a triangle, ``q4`` below 0.8
    (or above 1.25, a turned square) a square, else a circle. ``radius`` (pixels,
    the blob's size) must be at least 2; a blob cut by the frame edge is None.
    """
    if radius < 2.0:
        return None
    h, w = frame.shape[:2]
    if (centroid[0] < radius + 1 or centroid[1] < radius + 1 or centroid[0] > w - 2 - radius
            or centroid[1] > h - 2 - radius):
        return None
    m = shape_moments(frame, colour, centroid, radius)
    if m is None:
        return None
    q4, t3 = m
    if abs(t3) > 0.3:
        return "triangle"
    return "square" if q4 < 0.8 or q4 > 1.25 else "circle"


# --------------------------------------------------------------------------- #
# Observation
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class Observation:
    """A validated clip, its tracks and its reference, shared by all metrics.

    video   uint8 (t, h, w, 3)
    tracks  :class:`Tracks` of the clip
    truth   the ground truth (truth mode) or None
    intent  the parsed prompt (intent mode) or None
    world   geometry for intent mode: ``dt``, ``view_height`` (metres), ``gravity``
    problem ``""`` or why nothing in this clip can be measured
    """

    video: np.ndarray
    tracks: Tracks
    truth: Truth | None
    intent: Intent | None
    world: WorldConfig
    problem: str = ""
    cache: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)   # metrics share derived arrays

    @property
    def mode(self) -> str:
        return "truth" if self.truth is not None else "intent"

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def height(self) -> int:
        return int(self.video.shape[1])

    @property
    def width(self) -> int:
        return int(self.video.shape[2])

    @property
    def dt(self) -> float:
        return float(self.truth.dt) if self.truth is not None else float(self.world.dt)

    @property
    def view(self) -> tuple[float, float]:
        """(width, height) of the view in metres."""
        if self.truth is not None:
            return (float(self.truth.view[0]), float(self.truth.view[1]))
        vh = float(self.world.view_height)
        return (vh * self.width / self.height, vh)

    @property
    def px_per_m(self) -> float:
        """Pixels per metre (vertical; the world's pixels are square to within one pixel per frame)."""
        return self.height / self.view[1]

    @functools.cached_property
    def matched(self) -> Matched:
        """Detections paired with ground-truth objects (truth mode only)."""
        if self.truth is None:
            raise NotMeasurable("needs the ground truth (this clip is compared with a prompt)")
        return match(self.tracks, self.truth)

    @functools.cached_property
    def gt_pixels(self) -> np.ndarray:
        """``(t, k, 2)`` ground-truth centres ``(col, row)`` at this clip's size."""
        return self.truth.to_pixels(self.height, self.width)

    @functools.cached_property
    def radius_px(self) -> np.ndarray:
        """``(k,)`` ground-truth circumradius in pixels."""
        return np.asarray(self.truth.radius, float) * self.px_per_m

    @functools.cached_property
    def tiny(self) -> np.ndarray:
        """``(k,)`` bool: too small to measure reliably (equivalent radius below ``MIN_RADIUS_PX`` pixels)."""
        eq = np.sqrt(np.array([SHAPE_AREA[s] for s in self.truth.shape]) / math.pi) * self.radius_px
        return eq < MIN_RADIUS_PX

    def require_objects(self, k: Any = None) -> None:
        """Raise :class:`NotMeasurable` when every object (of ``k``) is too small to measure."""
        tiny = self.tiny if k is None else self.tiny[k]
        if np.all(tiny):
            raise NotMeasurable(f"the objects are below {MIN_RADIUS_PX} px in radius at {self.height}x{self.width}; "
                                "measure clips at least 32 pixels tall (the tracker misses objects of ~1 px)")

    @functools.cached_property
    def expected_area(self) -> np.ndarray:
        """``(t, k)`` pixels each object should cover (its visible share of the shape)."""
        full = np.array([SHAPE_AREA[s] for s in self.truth.shape]) * self.radius_px ** 2
        return np.asarray(self.truth.visible, float) * full[None]

    @functools.cached_property
    def expected_colours(self) -> list[list[str]]:
        return expected_colours(self.truth)

    @functools.cached_property
    def dynamic(self) -> np.ndarray:
        """``(k,)`` bool: the object moves (not the static cause-and-effect block)."""
        st = self.truth.params.get("static_body") or [False] * self.truth.num_objects
        return ~np.asarray(st, bool)

    @functools.cached_property
    def tracklets(self) -> list[Tracklet]:
        return link(self.tracks)

    @functools.cached_property
    def off_palette(self) -> np.ndarray:
        return off_palette(self.video)

    @functools.cached_property
    def camera_track(self) -> Any:
        from sora_jax.analysis.camera import estimate_camera   # local: camera imports this module

        return estimate_camera(self.video)

    def require(self) -> None:
        """Raise :class:`NotMeasurable` when the clip has a problem or no object was detected."""
        if self.problem:
            raise NotMeasurable(self.problem)
        if len(self.tracks.frame) == 0:
            raise NotMeasurable("no object of the world's palette was detected in any frame "
                                f"(valid colours: {', '.join(PALETTE)})")


def observe(video: Any, ref: Any = None, *, world: WorldConfig | None = None,
            tracks: Tracks | None = None) -> Observation:
    """Validate ``video`` (uint8 ``(t, h, w, 3)``) and its reference, and track it once.

    ``ref``: a :class:`Truth` (truth mode), an :class:`Intent` or a prompt
    string (intent mode), or None (only reference-free checks can run).
    ``world``: the world's geometry in intent mode (``dt``, ``view_height``,
    ``gravity``; default ``WorldConfig()``). ``tracks``: reuse tracks of this
    video. Raises ``ValueError`` for a bad video, a truth whose palette, frame
    count or aspect ratio does not fit the clip.
    """
    video = check_video(video)
    world = WorldConfig() if world is None else world
    if not isinstance(world, WorldConfig):
        raise ValueError(f"world: expected a WorldConfig, got {type(world).__name__}")
    truth = intent = None
    if ref is not None:
        ref = as_reference(ref)
        if isinstance(ref, Truth):
            truth = check_truth(ref, video)
        else:
            intent = ref
    if tracks is None:
        tracks = track(video)
    elif not isinstance(tracks, Tracks) or tracks.counts.shape[0] != video.shape[0] or \
            (tracks.height, tracks.width) != video.shape[1:3]:
        raise ValueError("tracks: expected sora_jax.world.Tracks of this video (same frames and size)")
    return Observation(video=video, tracks=tracks, truth=truth, intent=intent, world=world,
                       problem=palette_problem(video))
