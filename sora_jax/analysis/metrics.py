"""Physics-failure metrics (PHYSICS.md's table): where a clip breaks physics, per object and frame.

Axes: ``t`` frames, ``k`` ground-truth objects, ``c`` palette colours. Units:
world metres and seconds (m/s for velocities) unless a name says ``px``.

Every metric takes a clip -- a uint8 ``(t, h, w, 3)`` video, or an
:class:`~sora_jax.analysis.observe.Observation` that already holds its tracks --
and a reference:

* a :class:`~sora_jax.world.types.Truth` (**truth mode**): the ground truth of the
  very scene the clip shows (a ground-truth render, a VAE reconstruction, a
  re-simulation, a model's continuation of the scene's first frames);
* an :class:`~sora_jax.world.captions.Intent` or a prompt string (**intent mode**):
  what the text asked for, plus physical plausibility checks that need no truth.

and returns a :class:`MetricResult`: a headline ``value``, a ``flagged`` verdict,
a ``summary`` dict, ``per_object`` and ``per_frame`` detail, and
``measurable=False`` with a ``reason`` where the clip cannot be measured
(off-palette colours, nothing detected, nothing of the kind in the scene) --
never a misleading number.

=================  ================================================================  ==================
metric             truth mode                                                        intent mode
=================  ================================================================  ==================
velocity           mean |d mu/dt - v_gt| over fully visible frames (m/s, PhyWorld)   velocity jitter: |v_t - median(v_t-1, v_t, v_t+1)|
gravity            fit y = a t^2 + b t + c per free-flight segment; |2a - 2a_gt| / g  same fit vs the world's g (or 0 if the prompt has no gravity)
collision          post-collision velocity error; momentum and energy error           momentum conservation across the contact the prompt asks for
permanence         vanish (>= 2 frames) / emerge, occlusion and exits excused          tracklet deaths/births away from edges and grey occluders
count              per-frame components per colour vs truth: exact-match rate, drift  vs the prompt's counts
direction          sign of net displacement (camera removed), relations A left of B   the prompt's directions and relations
camera             scenery trajectory (phase correlation) vs gt camera (m)             pan direction the prompt asks for
cause_effect       effect within k frames of the event and persisting to the end      the prompt's state change appears and persists
attributes         radius drift, colour drift, colour/shape swaps                     same, along tracklets
blur               off-palette edge pixels in contact vs outside contact               same, contacts from tracklets
=================  ================================================================  ==================

Thresholds (module constants) are set so untouched ground-truth renders pass and
the injected failures of :mod:`sora_jax.analysis.inject` are flagged; see
:func:`sora_jax.analysis.inject.injection_report`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sora_jax.analysis.observe import (
    SHAPE_AREA,
    SHAPE_PERIMETER,
    NotMeasurable,
    Observation,
    Tracklet,
    classify_shape,
    observe,
)
from sora_jax.config import WorldConfig
from sora_jax.world.captions import STILL_SPEED, Intent
from sora_jax.world.types import PALETTE

# --------------------------------------------------------------------------- #
# Thresholds
# --------------------------------------------------------------------------- #

VELOCITY_FLAG_PX = 1.0        # px per frame: a velocity this far off in any frame flags the clip
GRAVITY_FLAG = 0.25           # |2a - g| / g
GRAVITY_MIN_PX = 2.0          # gravity must bend a free flight by this many pixels to be measured
COLLISION_FLAG_PX = 1.0       # px per frame, post-collision velocity error
MOMENTUM_FLAG = 0.25          # |dP| / sum m |v|
ENERGY_FLAG = 0.3             # |E_after / E_before - truth's ratio|
PERMANENCE_MIN_AREA = 0.3     # a visible object covering less than this share of its expected area is "gone"
RUN = 2                       # consecutive frames a violation must last (vanish, count, swaps)
DIRECTION_MIN = 0.05          # share of the view width a displacement must exceed to have a direction
DIRECTION_MIN_PX = 2.0        # ... and at least this many pixels
CAMERA_FLAG_PX = 2.0          # trajectory error (px) always allowed ...
CAMERA_FLAG_REL = 0.25        # ... plus this share of the true camera displacement
EFFECT_WITHIN = 2             # frames after the event in which the effect must appear
RADIUS_DRIFT_FLAG = 0.25      # (max r - min r) / r
COLOUR_DRIFT_FLAG = 35.0      # RGB distance of an object's core from its palette colour
BLUR_FLAG = 0.6               # excess off-palette edge pixels per pixel of perimeter, contact vs not
CONTACT_PX = 2.0              # gap (px) under which two objects are in contact


# --------------------------------------------------------------------------- #
# Result type
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """The outcome of one metric on one clip.

    value       headline number (NaN when not measurable); ``unit`` says what it is and
                ``better`` whether lower or higher is better
    flagged     the clip breaks physics by this metric's test (False when not measurable)
    summary     small dict of named numbers (JSON-ready)
    per_object  one dict per object (truth mode: ground-truth objects; intent mode: tracklets/groups)
    per_frame   named arrays with a leading frame axis
    reason      why the clip is not measurable ("" otherwise)
    mode        "truth" | "intent"
    """

    metric: str
    measurable: bool
    flagged: bool
    value: float
    unit: str
    better: str
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    per_object: tuple[dict[str, Any], ...] = ()
    per_frame: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    reason: str = ""
    mode: str = "truth"

    def to_json(self, detail: bool = True) -> dict[str, Any]:
        """JSON-ready dict (arrays become lists, NaN becomes None)."""
        out = {"metric": self.metric, "measurable": self.measurable, "flagged": self.flagged,
               "value": _clean(self.value), "unit": self.unit, "better": self.better, "mode": self.mode,
               "reason": self.reason, "summary": _clean(self.summary)}
        if detail:
            out["per_object"] = _clean(list(self.per_object))
            out["per_frame"] = _clean(dict(self.per_frame))
        return out


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return None if not math.isfinite(x) else round(x, 6)
    return x


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """How a metric is reported: unit of its value and whether lower or higher is better, per mode."""

    name: str
    truth_unit: str
    intent_unit: str
    better: str          # "lower" | "higher"
    intent_better: str
    about: str


SPECS: dict[str, MetricSpec] = {s.name: s for s in (
    MetricSpec("velocity", "m/s", "m/s", "lower", "lower", "velocity error |v - v_gt| (PhyWorld); intent: velocity jitter"),
    MetricSpec("gravity", "|2a-g|/g", "|2a-g|/g", "lower", "lower", "gravity fit error of y = a t^2 + b t + c"),
    MetricSpec("collision", "m/s", "|dP|/P", "lower", "lower", "post-collision velocity error; momentum/energy"),
    MetricSpec("permanence", "score", "score", "higher", "higher", "1 - objects that vanish or emerge / objects"),
    MetricSpec("count", "rate", "rate", "higher", "higher", "frames whose per-colour counts are right"),
    MetricSpec("direction", "accuracy", "accuracy", "higher", "higher", "directions and left/right/above/below right"),
    MetricSpec("camera", "m", "accuracy", "lower", "higher", "camera trajectory error; intent: pan direction right"),
    MetricSpec("cause_effect", "persistence", "persistence", "higher", "higher", "share of frames after the event showing the effect"),
    MetricSpec("attributes", "drift", "drift", "lower", "lower", "relative radius drift; colour drift, colour and shape swaps flag too"),
    MetricSpec("blur", "excess", "excess", "lower", "lower", "off-palette edge pixels per perimeter pixel, contact minus no contact"),
)}
METRICS: tuple[str, ...] = tuple(SPECS)


def _result(obs: Observation, name: str, *, value: float, flagged: bool, summary: dict, per_object=(),
            per_frame: dict | None = None) -> MetricResult:
    spec = SPECS[name]
    truth = obs.mode == "truth"
    return MetricResult(metric=name, measurable=True, flagged=bool(flagged), value=float(value),
                        unit=spec.truth_unit if truth else spec.intent_unit,
                        better=spec.better if truth else spec.intent_better, summary=summary,
                        per_object=tuple(per_object), per_frame=per_frame or {}, mode=obs.mode)


def _not_measurable(name: str, mode: str, reason: str) -> MetricResult:
    spec = SPECS[name]
    return MetricResult(metric=name, measurable=False, flagged=False, value=float("nan"),
                        unit=spec.truth_unit if mode == "truth" else spec.intent_unit,
                        better=spec.better if mode == "truth" else spec.intent_better, reason=reason, mode=mode)


# --------------------------------------------------------------------------- #
# Shared helpers
# --------------------------------------------------------------------------- #


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, length)]`` of the True runs of a 1-D boolean array."""
    out, start = [], None
    for i, m in enumerate(np.append(np.asarray(mask, bool), False)):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i - start))
            start = None
    return out


def _longest_run(mask: np.ndarray) -> int:
    return max((n for _, n in _runs(mask)), default=0)


def _min_disp(obs: Observation) -> float:
    """Smallest displacement (metres) that has a direction: ``DIRECTION_MIN`` of the view width, >= 2 px."""
    return max(DIRECTION_MIN * obs.view[0], DIRECTION_MIN_PX / obs.px_per_m)


def _contact_frames(obs: Observation) -> np.ndarray:
    """``(t, k)`` bool: object k is within ``CONTACT_PX`` of another object's circumcircle (ground truth)."""
    p = obs.gt_pixels
    r = obs.radius_px
    T, K = p.shape[:2]
    out = np.zeros((T, K), bool)
    for i in range(K):
        for j in range(i + 1, K):
            gap = np.linalg.norm(p[:, i] - p[:, j], axis=-1) - r[i] - r[j]
            c = gap < CONTACT_PX
            out[:, i] |= c
            out[:, j] |= c
    return out


def _label_at(obs: Observation, t: int, xy: np.ndarray, r: float) -> tuple[str | None, int | None]:
    """Colour (and detection index) of the largest detection within ``max(2, 0.6 r)`` px of ``xy`` in frame t."""
    tr = obs.tracks
    sel = np.nonzero(tr.frame == t)[0]
    if len(sel) == 0 or not np.all(np.isfinite(xy)):
        return None, None
    d = np.linalg.norm(tr.centroid[sel] - xy[None], axis=-1)
    near = sel[d <= max(2.0, 0.6 * r)]
    if len(near) == 0:
        return None, None
    i = int(near[np.argmax(tr.area[near])])
    return tr.colours[tr.colour_index[i]], i


def _near_edge(obs: Observation, xy: np.ndarray, r: float) -> bool:
    return bool(xy[0] < r + 1.5 or xy[1] < r + 1.5 or xy[0] > obs.width - 1 - r - 1.5 or xy[1] > obs.height - 1 - r - 1.5)


def _good_tracklets(obs: Observation, min_len: int = 3) -> list[Tracklet]:
    return [tr for tr in obs.tracklets if len(tr) >= min_len]


def _whole_points(obs: Observation, tr: Tracklet) -> np.ndarray:
    """Bool ``(n,)``: detections of a tracklet that are whole (not cut by the frame edge or an occluder)."""
    full = float(np.percentile(tr.area, 90))
    r = math.sqrt(full / math.pi)
    edge = np.array([_near_edge(obs, c, 1.2 * r) for c in tr.centroid])
    return (tr.area >= 0.85 * full) & ~edge


def _clean_points(obs: Observation, tr: Tracklet) -> np.ndarray:
    """Bool ``(n,)``: whole detections that do not touch grey scenery either (walls, floors, occluders)."""
    r = math.sqrt(float(np.percentile(tr.area, 90)) / math.pi)
    near = np.array([_scenery_near(obs, c, r, int(t)) for c, t in zip(tr.centroid, tr.frames)])
    return _whole_points(obs, tr) & ~near


def _scenery_near(obs: Observation, xy: np.ndarray, r: float, t: int = 0) -> bool:
    """Grey scenery (an occluder, a wall) within ``r + 2`` px of ``xy`` in frame ``t``."""
    grey = obs.cache.get("grey")
    if grey is None:
        from sora_jax.analysis.camera import scenery_map

        grey = scenery_map(obs.video) > 0.5
        obs.cache["grey"] = grey
    R = int(math.ceil(r + 2))
    c, rw = int(round(xy[0])), int(round(xy[1]))
    return bool(grey[t, max(0, rw - R):rw + R + 1, max(0, c - R):c + R + 1].any())


def _colour_changes(intent: Intent) -> set[tuple[str, str]]:
    """``(before, after)`` colour pairs the prompt's state changes allow."""
    return {(intent.objects[e.subject].colour, e.detail) for e in intent.events
            if e.kind == "state_change" and e.detail in PALETTE and intent.objects[e.subject].colour is not None}


def _changed_into(obs: Observation, a: Tracklet, b: Tracklet, legit: set[tuple[str, str]]) -> bool:
    """Tracklet ``b`` continues ``a`` in a new colour the prompt allows (within 2 frames, same place)."""
    if (a.colour, b.colour) not in legit:
        return False
    gap = int(b.frames[0] - a.frames[-1])
    return 0 <= gap <= 2 and float(np.linalg.norm(b.centroid[0] - a.centroid[-1])) <= float(np.median(a.radius)) + 2


def _consecutive_velocities(tr: Tracklet, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Velocities (px/frame) between consecutive clean detections one frame apart: ``(frames, v (m, 2))``."""
    f = tr.frames
    good = ok[:-1] & ok[1:] & (np.diff(f) == 1)
    v = np.diff(tr.centroid, axis=0)[good]
    return f[:-1][good], v


# --------------------------------------------------------------------------- #
# Velocity
# --------------------------------------------------------------------------- #


def _velocity_truth(obs: Observation, threshold: float) -> MetricResult:
    tr, m = obs.truth, obs.matched
    v_gt = np.diff(tr.positions, axis=0) / tr.dt
    vis = tr.visible >= 1.0
    ok = vis[1:] & vis[:-1] & m.found[1:] & m.found[:-1]
    if not ok.any():
        raise NotMeasurable("no object is fully visible and detected in two consecutive frames")
    err = np.full(ok.shape, np.nan)
    err[ok] = np.linalg.norm(m.velocities[ok] - v_gt[ok], axis=-1)
    err_px = err * tr.dt * obs.px_per_m
    bad = np.nan_to_num(err_px, nan=0.0) > threshold
    per_object = []
    for k in range(tr.num_objects):
        e = err[:, k][ok[:, k]]
        per_object.append({"object": k, "colour": tr.colour[k], "pairs": int(len(e)),
                           "mean": float(e.mean()) if len(e) else None, "max": float(e.max()) if len(e) else None,
                           "flag_frames": np.nonzero(bad[:, k])[0].tolist()})
    return _result(obs, "velocity", value=float(np.nanmean(err)), flagged=bad.any(),
                   summary={"mean_m_s": float(np.nanmean(err)), "max_m_s": float(np.nanmax(err)),
                            "max_px_per_frame": float(np.nanmax(err_px)), "pairs": int(ok.sum()), "split": tr.split},
                   per_object=per_object, per_frame={"error": np.nanmax(np.where(ok, err, -np.inf), 1).clip(0)})


def _velocity_intent(obs: Observation, threshold: float) -> MetricResult:
    scale = 1.0 / (obs.px_per_m * obs.dt)          # px/frame -> m/s
    per_object, jit_all, frame_jit = [], [], np.zeros(max(obs.num_frames - 1, 0))
    for i, tr in enumerate(_good_tracklets(obs, 4)):
        f, v = _consecutive_velocities(tr, _clean_points(obs, tr))
        if len(v) < 3:
            continue
        # jitter of the middle velocity of each run of three consecutive pairs
        trip = (f[2:] - f[:-2]) == 2
        if not trip.any():
            continue
        med = np.median(np.stack([v[:-2], v[1:-1], v[2:]]), axis=0)
        jit = np.linalg.norm(v[1:-1] - med, axis=-1)[trip]
        fr = f[1:-1][trip]
        np.maximum.at(frame_jit, fr, jit)
        jit_all.append(jit)
        per_object.append({"tracklet": i, "colour": tr.colour, "pairs": int(len(jit)),
                           "mean": float(jit.mean() * scale), "max_px_per_frame": float(jit.max()),
                           "flag_frames": fr[jit > threshold].tolist()})
    if not jit_all:
        raise NotMeasurable("no object was followed through four consecutive frames")
    jit = np.concatenate(jit_all)
    return _result(obs, "velocity", value=float(jit.mean() * scale), flagged=bool((jit > threshold).any()),
                   summary={"mean_m_s": float(jit.mean() * scale), "max_px_per_frame": float(jit.max()),
                            "triples": int(len(jit))}, per_object=per_object, per_frame={"jitter_px": frame_jit})


# --------------------------------------------------------------------------- #
# Gravity
# --------------------------------------------------------------------------- #


def _fit_curvature(tau: np.ndarray, y: np.ndarray, seg: np.ndarray) -> float | None:
    """Shared ``a`` of ``y = a tau^2 + b_s tau + c_s`` over segments ``seg`` with >= 3 points; None if unfit."""
    keep = np.zeros(len(tau), bool)
    segs = []
    for s in np.unique(seg):
        m = seg == s
        if m.sum() >= 3:
            keep |= m
            segs.append(s)
    if not segs:
        return None
    tau, y, seg = tau[keep], y[keep], seg[keep]
    cols = [tau ** 2]
    for s in segs:
        m = (seg == s).astype(float)
        cols += [m * tau, m]
    A = np.stack(cols, -1)
    if np.linalg.matrix_rank(A) < A.shape[1]:
        return None
    return float(np.linalg.lstsq(A, y, rcond=None)[0][0])


def _gravity_truth(obs: Observation, threshold: float) -> MetricResult:
    tr, m = obs.truth, obs.matched
    g = float(tr.params.get("gravity", 0.0) or 0.0)
    if g <= 0:
        raise NotMeasurable("no gravity in this scene (the truth's gravity is 0)")
    tau = np.arange(tr.num_frames) * tr.dt
    per_object, rels = [], []
    for k in np.nonzero(obs.dynamic & ~obs.tiny)[0]:
        ok = (tr.visible[:, k] >= 1.0) & m.found[:, k]
        ev = sorted(e.frame for e in tr.events if e.kind in ("collision", "bounce") and k in e.bodies)
        seg = np.searchsorted(np.asarray(ev, int), np.arange(tr.num_frames), side="right")
        # gravity must bend the longest free flight by >= GRAVITY_MIN_PX, or pixel noise decides the fit
        longest = max((np.ptp(tau[ok][seg[ok] == s_]) for s_ in np.unique(seg[ok])), default=0.0)
        if 0.5 * g * longest ** 2 * obs.px_per_m < GRAVITY_MIN_PX:
            continue
        a_m = _fit_curvature(tau[ok], m.positions[ok, k, 1], seg[ok])
        a_g = _fit_curvature(tau[ok], tr.positions[ok, k, 1], seg[ok])
        if a_m is None or a_g is None:
            continue
        rel = abs(2 * a_m - 2 * a_g) / g
        rels.append(rel)
        per_object.append({"object": int(k), "colour": tr.colour[k], "g_fit": -2 * a_m, "g_truth": -2 * a_g,
                           "rel_error": rel, "points": int(ok.sum()), "segments": int(len(np.unique(seg[ok])))})
    if not rels:
        raise NotMeasurable("no moving object is fully visible in 3 frames of one free flight long enough "
                            f"for gravity to bend it by {GRAVITY_MIN_PX} px")
    return _result(obs, "gravity", value=float(np.mean(rels)), flagged=max(rels) > threshold,
                   summary={"rel_error": float(np.mean(rels)), "max_rel_error": float(max(rels)), "g": g},
                   per_object=per_object)


def _segments_by_jumps(v: np.ndarray, thr: float) -> np.ndarray:
    """Segment id per velocity sample: a new segment after each jump larger than ``thr``."""
    if len(v) < 2:
        return np.zeros(len(v), int)
    jump = np.linalg.norm(np.diff(v, axis=0), axis=-1) > thr
    return np.concatenate([[0], np.cumsum(jump)])


def _gravity_intent(obs: Observation, threshold: float) -> MetricResult:
    intent = obs.intent
    falls = bool(intent.gravity or intent.falls or any(o.falls for o in intent.objects))
    if not falls:
        # a prompt without gravity words does not promise weightlessness ("a ball is thrown")
        raise NotMeasurable("the prompt does not mention gravity (falling, arcing, dropping)")
    g = float(obs.world.gravity) if obs.world.gravity > 0 else 2.5
    per_object, rels = [], []
    for i, tr in enumerate(_good_tracklets(obs, 5)):
        ok = _clean_points(obs, tr) & ~_contact_points(obs, tr)
        f, xy = tr.frames[ok], tr.centroid[ok]
        if len(f) < 5 or np.ptp(xy, axis=0).max() < 2.0:
            continue                                       # too short, or not moving
        # free flights: split where frames are missing (contacts, walls) and at velocity jumps (bounces)
        v = np.diff(xy, axis=0) / np.maximum(np.diff(f), 1)[:, None]
        seg = np.concatenate([[0], _segments_by_jumps(v, 0.5) + (np.diff(f) > 1).cumsum()])
        a = _fit_curvature(f * obs.dt, -xy[:, 1] / obs.px_per_m, seg)
        if a is None:
            continue
        rel = abs(-2 * a - g) / g
        rels.append(rel)
        per_object.append({"tracklet": i, "colour": tr.colour, "g_fit": -2 * a, "expected_g": g, "rel_error": rel})
    if not rels:
        raise NotMeasurable("no moving object was followed through 5 clean frames")
    return _result(obs, "gravity", value=float(np.mean(rels)), flagged=max(rels) > threshold,
                   summary={"rel_error": float(np.mean(rels)), "max_rel_error": float(max(rels)), "g": g},
                   per_object=per_object)


# --------------------------------------------------------------------------- #
# Collision
# --------------------------------------------------------------------------- #

_WINDOW = 2   # velocity pairs on each side of a collision


def _collision_truth(obs: Observation, thr_px: float, thr_p: float, thr_e: float) -> MetricResult:
    tr, m = obs.truth, obs.matched
    T = tr.num_frames
    v_gt = np.diff(tr.positions, axis=0) / tr.dt                  # (t-1, k, 2)
    vis = (tr.visible >= 1.0) & m.found
    pair_ok = vis[1:] & vis[:-1]
    mass = np.asarray(tr.radius, float) ** 2
    rows, flags = [], []
    for e in tr.events:
        if e.kind != "collision" or len(e.bodies) != 2 or min(e.bodies) < 0:
            continue
        i, j = e.bodies
        if not (obs.dynamic[i] and obs.dynamic[j]) or obs.tiny[i] or obs.tiny[j]:
            continue
        f = int(e.frame)
        others = [x.frame for x in tr.events if x is not e and x.kind in ("collision", "bounce")
                  and (i in x.bodies or j in x.bodies)]
        prev_f = max([x for x in others if x < f], default=0)
        next_f = min([x for x in others if x > f], default=T)
        pre = [t for t in range(max(prev_f, f - 1 - _WINDOW), f - 1) if pair_ok[t, i] and pair_ok[t, j]]
        post = [t for t in range(f, min(next_f - 1, f + _WINDOW)) if t < T - 1 and pair_ok[t, i] and pair_ok[t, j]]
        if not pre or not post:
            continue
        b = [i, j]
        vm_pre, vm_post = m.velocities[pre][:, b].mean(0), m.velocities[post][:, b].mean(0)     # (2, 2)
        vg_pre, vg_post = v_gt[pre][:, b].mean(0), v_gt[post][:, b].mean(0)
        mm = mass[b][:, None]
        post_err = float(np.linalg.norm(vm_post - vg_post, axis=-1).mean())
        scale = float((mm[:, 0] * np.linalg.norm(vg_pre, axis=-1)).sum()) + 1e-9
        dp_m = (mm * vm_post).sum(0) - (mm * vm_pre).sum(0)
        dp_g = (mm * vg_post).sum(0) - (mm * vg_pre).sum(0)
        mom_err = float(np.linalg.norm(dp_m - dp_g)) / scale
        e_ratio = lambda pre_v, post_v: float((mm[:, 0] * (post_v ** 2).sum(-1)).sum()
                                              / max((mm[:, 0] * (pre_v ** 2).sum(-1)).sum(), 1e-12))
        en_err = abs(e_ratio(vm_pre, vm_post) - e_ratio(vg_pre, vg_post))
        post_px = post_err * tr.dt * obs.px_per_m
        bad = post_px > thr_px or mom_err > thr_p or en_err > thr_e
        flags.append(bad)
        rows.append({"frame": f, "bodies": [int(i), int(j)], "post_velocity_error": post_err,
                     "post_error_px_per_frame": post_px, "momentum_error": mom_err, "energy_error": en_err,
                     "energy_ratio": e_ratio(vm_pre, vm_post), "energy_ratio_truth": e_ratio(vg_pre, vg_post),
                     "flagged": bool(bad)})
    if not rows:
        raise NotMeasurable("no collision between two moving bodies with both in full view around it")
    return _result(obs, "collision", value=float(np.mean([r["post_velocity_error"] for r in rows])), flagged=any(flags),
                   summary={"post_velocity_error": float(np.mean([r["post_velocity_error"] for r in rows])),
                            "momentum_error": float(np.mean([r["momentum_error"] for r in rows])),
                            "energy_error": float(np.mean([r["energy_error"] for r in rows])), "collisions": len(rows)},
                   per_object=rows)


def _tracklets_of(obs: Observation, colour: str | None, n: int = 1) -> list[Tracklet]:
    """The ``n`` longest tracklets of ``colour`` (any colour when None)."""
    cands = [tr for tr in obs.tracklets if colour is None or tr.colour == colour]
    return sorted(cands, key=lambda tr: -len(tr))[:n]


def _at(tr: Tracklet, t: int) -> np.ndarray | None:
    i = np.searchsorted(tr.frames, t)
    return tr.centroid[i] if i < len(tr) and tr.frames[i] == t else None


def _collision_intent(obs: Observation, thr_p: float, thr_e: float) -> MetricResult:
    intent = obs.intent
    evs = [e for e in intent.events if e.kind == "collision" and e.object is not None and e.object != e.subject]
    if not evs:
        raise NotMeasurable("the prompt asks for no collision between two objects")
    rows = []
    for e in evs:
        ca, cb = intent.objects[e.subject].colour, intent.objects[e.object].colour
        if ca is None or cb is None or ca == cb:
            continue
        ta, tb = _tracklets_of(obs, ca), _tracklets_of(obs, cb)
        if not ta or not tb:
            rows.append({"colours": [ca, cb], "contact": False, "momentum_error": 1.0, "reason": "not both detected"})
            continue
        ta, tb = ta[0], tb[0]
        ra, rb = float(np.median(ta.radius)), float(np.median(tb.radius))
        common = np.intersect1d(ta.frames, tb.frames)
        gaps = np.array([np.linalg.norm(_at(ta, t) - _at(tb, t)) - 1.15 * (ra + rb) for t in common])
        if len(common) == 0 or gaps.min() > CONTACT_PX:
            rows.append({"colours": [ca, cb], "contact": False, "momentum_error": 1.0,
                         "closest_gap_px": float(gaps.min()) if len(gaps) else None})
            continue
        f = int(common[int(np.argmin(gaps))])

        def vel(tr: Tracklet, frames: range) -> np.ndarray | None:
            vs = [_at(tr, t + 1) - _at(tr, t) for t in frames if _at(tr, t) is not None and _at(tr, t + 1) is not None]
            return np.mean(vs, 0) if vs else None

        pre = range(f - 1 - _WINDOW, f - 1)
        post = range(f + 1, f + 1 + _WINDOW)
        va0, vb0, va1, vb1 = vel(ta, pre), vel(tb, pre), vel(ta, post), vel(tb, post)
        if any(v is None for v in (va0, vb0, va1, vb1)):
            rows.append({"colours": [ca, cb], "contact": True, "frame": f, "momentum_error": None})
            continue
        ma, mb = ra * ra, rb * rb
        scale = ma * np.linalg.norm(va0) + mb * np.linalg.norm(vb0) + 1e-9
        mom = float(np.linalg.norm(ma * va1 + mb * vb1 - ma * va0 - mb * vb0) / scale)
        e0 = ma * (va0 ** 2).sum() + mb * (vb0 ** 2).sum()
        e1 = ma * (va1 ** 2).sum() + mb * (vb1 ** 2).sum()
        ratio = float(e1 / max(e0, 1e-12))
        rows.append({"colours": [ca, cb], "contact": True, "frame": f, "momentum_error": mom, "energy_ratio": ratio})
    scored = [r for r in rows if r.get("momentum_error") is not None]
    if not scored:
        raise NotMeasurable("the colliding objects were not followed on both sides of the contact")
    flags = [(not r["contact"]) or r["momentum_error"] > thr_p or r.get("energy_ratio", 1.0) > 1.0 + thr_e for r in scored]
    return _result(obs, "collision", value=float(np.mean([r["momentum_error"] for r in scored])), flagged=any(flags),
                   summary={"momentum_error": float(np.mean([r["momentum_error"] for r in scored])),
                            "contacts": int(sum(r["contact"] for r in scored)), "collisions_asked": len(evs)},
                   per_object=rows)


# --------------------------------------------------------------------------- #
# Permanence
# --------------------------------------------------------------------------- #


def _assigned(obs: Observation) -> np.ndarray:
    """``(t, c)`` detections assigned to a ground-truth object, per colour."""
    m, tr = obs.matched, obs.tracks
    out = np.zeros(tr.counts.shape, int)
    cols = obs.expected_colours
    for t in range(obs.num_frames):
        for k in range(obs.truth.num_objects):
            if m.found[t, k] and cols[t][k] in tr.colours:
                out[t, tr.colours.index(cols[t][k])] += 1
    return out


def _permanence_truth(obs: Observation, min_share: float) -> MetricResult:
    tr, m = obs.truth, obs.matched
    obs.require_objects()
    expected = (tr.visible >= 0.5) & ~obs.tiny[None]
    if not expected.any():
        raise NotMeasurable("no object is at least half visible in any frame")
    area = np.nan_to_num(m.area, nan=0.0)
    present = m.found & (area >= np.maximum(min_share * obs.expected_area, 1.0))
    missing = expected & ~present
    extra = obs.tracks.counts - _assigned(obs)                    # (t, c) detections with no ground truth
    per_object, vanished = [], 0
    for k in range(tr.num_objects):
        run = _longest_run(missing[:, k])
        v = run >= RUN
        vanished += v
        per_object.append({"object": k, "colour": tr.colour[k], "vanished": bool(v),
                           "missing_frames": np.nonzero(missing[:, k])[0].tolist(), "longest_gap": int(run)})
    ghosts = []
    for c, name in enumerate(obs.tracks.colours):
        for start, n in _runs(extra[:, c] > 0):
            if n >= RUN:
                ghosts.append({"colour": name, "first_frame": start, "frames": n})
    objects = int(expected.any(0).sum())
    violations = vanished + len(ghosts)
    score = max(0.0, 1.0 - violations / max(objects, 1))
    return _result(obs, "permanence", value=score, flagged=violations > 0,
                   summary={"score": score, "vanished": int(vanished), "emerged": len(ghosts), "objects": objects},
                   per_object=per_object + [{"emerged": g} for g in ghosts],
                   per_frame={"missing": missing.sum(1), "extra": extra.sum(1)})


def _permanence_intent(obs: Observation) -> MetricResult:
    T = obs.num_frames
    per_object, violations = [], 0
    tls = [tr for tr in obs.tracklets if len(tr) >= 2]
    if not tls:
        raise NotMeasurable("no object was detected in two frames")
    legit = _colour_changes(obs.intent)
    for i, tr in enumerate(tls):
        r = float(np.median(tr.radius))
        first, last = int(tr.frames[0]), int(tr.frames[-1])
        born = (first > 0 and not _near_edge(obs, tr.centroid[0], 1.2 * r)
                and not _scenery_near(obs, tr.centroid[0], r, first)
                and not any(_changed_into(obs, o, tr, legit) for o in tls))
        died = (last < T - 1 and not _near_edge(obs, tr.centroid[-1], 1.2 * r)
                and not _scenery_near(obs, tr.centroid[-1], r, last)
                and not any(_changed_into(obs, tr, o, legit) for o in tls))
        gaps = np.diff(tr.frames) - 1
        blink = bool((gaps >= RUN).any())
        bad = born or died or blink
        violations += bad
        per_object.append({"tracklet": i, "colour": tr.colour, "frames": [first, last], "emerged": bool(born),
                           "vanished": bool(died), "blinked": blink})
    objects = max(sum((o.count or 1) for o in obs.intent.objects), 1)
    score = max(0.0, 1.0 - violations / objects)
    return _result(obs, "permanence", value=score, flagged=violations > 0,
                   summary={"score": score, "violations": int(violations), "tracklets": len(tls)},
                   per_object=per_object)


# --------------------------------------------------------------------------- #
# Count
# --------------------------------------------------------------------------- #


def _count_truth(obs: Observation) -> MetricResult:
    tr = obs.truth
    obs.require_objects()
    cols = obs.expected_colours
    names = obs.tracks.colours
    T, C = obs.tracks.counts.shape
    lo = np.zeros((T, C), int)
    hi = np.zeros((T, C), int)
    for t in range(T):
        for k in range(tr.num_objects):
            c = names.index(cols[t][k])
            lo[t, c] += tr.visible[t, k] >= 0.5 and not obs.tiny[k]      # a tiny object may be missed
            hi[t, c] += tr.visible[t, k] > 0
    if not hi.any():
        raise NotMeasurable("no object is visible in any frame")
    n = obs.tracks.counts
    over, under = n > hi, n < lo
    drift = (n - np.clip(n, lo, hi)).sum(1)                         # (t,) signed
    frame_ok = ~(over | under).any(1)
    # fusion: fewer components than objects, and one of them is (at least) two objects' worth of area
    fusion = 0
    for t, c in zip(*np.nonzero(under)):
        ks = [k for k in range(tr.num_objects) if cols[t][k] == names[c] and tr.visible[t, k] >= 0.5]
        sel = (obs.tracks.frame == t) & (obs.tracks.colour_index == c)
        if len(ks) >= 2 and sel.any() and obs.tracks.area[sel].max() > 1.6 * obs.expected_area[t, ks].max():
            fusion += 1
    bad_runs = [(names[c], s, L) for c in range(C) for s, L in _runs((over | under)[:, c]) if L >= RUN]
    rate = float(frame_ok.mean())
    return _result(obs, "count", value=rate, flagged=bool(bad_runs),
                   summary={"exact_match_rate": rate, "max_drift": int(np.abs(drift).max()),
                            "fission_frames": int(over.sum()), "fusion_frames": int(fusion),
                            "missing_frames": int(under.sum()) - int(fusion)},
                   per_object=[{"colour": c, "first_frame": s, "frames": L} for c, s, L in bad_runs],
                   per_frame={"observed": n.sum(1), "expected_min": lo.sum(1), "expected_max": hi.sum(1),
                              "drift": drift})


def _count_intent(obs: Observation) -> MetricResult:
    intent = obs.intent
    counts = intent.counts_by_colour()
    if not counts or any(v is None for v in counts.values()):
        raise NotMeasurable("the prompt gives no exact number of objects")
    n = obs.tracks.counts
    names = obs.tracks.colours
    T = obs.num_frames
    if None in counts:                                   # "three balls": compare the total
        want: dict[Any, int] = {"*": sum(counts.values())}
        observed = {"*": n.sum(1)}
        colours_of: dict[Any, tuple[str, ...] | None] = {"*": None}
    else:
        # an object that changes colour counts under either colour
        change = dict(_colour_changes(intent))
        want, observed, colours_of = {}, {}, {}
        for c, w in counts.items():
            group = (c, change[c]) if c in change and change[c] not in counts else (c,)
            key = "|".join(group)
            want[key] = w
            observed[key] = sum(n[:, names.index(x)] for x in group)
            colours_of[key] = group
    occluded = {intent.objects[e.subject].colour for e in intent.events if e.kind == "occlusion"}
    rows, ok_frames = [], np.ones(T, bool)
    flagged = False
    for key, w in want.items():
        obs_n = observed[key]
        under, over = obs_n < w, obs_n > w
        # a deficit is excused where an object of this colour left through an edge or went behind scenery
        excused = np.zeros(T, bool)
        for tr in obs.tracklets:
            if colours_of[key] is not None and tr.colour not in colours_of[key]:
                continue
            r = float(np.median(tr.radius))
            f0, f1 = int(tr.frames[0]), int(tr.frames[-1])
            if (_near_edge(obs, tr.centroid[-1], 1.2 * r) or _scenery_near(obs, tr.centroid[-1], r, f1)
                    or tr.colour in occluded):
                excused[f1 + 1:] = True
            if (_near_edge(obs, tr.centroid[0], 1.2 * r) or _scenery_near(obs, tr.centroid[0], r, f0)
                    or tr.colour in occluded):
                excused[:f0] = True
        bad = over | (under & ~excused)
        ok_frames &= ~(over | under)
        runs = [(s, L) for s, L in _runs(bad) if L >= RUN]
        flagged |= bool(runs)
        rows.append({"colour": None if key == "*" else key, "expected": int(w), "observed_mode": int(np.bincount(obs_n).argmax()),
                     "bad_runs": runs})
    rate = float(ok_frames.mean())
    return _result(obs, "count", value=rate, flagged=flagged,
                   summary={"exact_match_rate": rate, "expected_total": int(sum(want.values()))},
                   per_object=rows, per_frame={"observed": n.sum(1)})


# --------------------------------------------------------------------------- #
# Direction and relations
# --------------------------------------------------------------------------- #

_REL = ("left of", "right of", "above", "below")


def _relation_codes(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Per frame: 0 A left of B, 1 right of, 2 above, 3 below (world coordinates, y up)."""
    dx, dy = pa[:, 0] - pb[:, 0], pa[:, 1] - pb[:, 1]
    horiz = np.abs(dx) > np.abs(dy)
    return np.where(horiz, np.where(dx < 0, 0, 1), np.where(dy > 0, 2, 3))


def _direction_truth(obs: Observation) -> MetricResult:
    tr, m = obs.truth, obs.matched
    delta = _min_disp(obs)
    rows = []
    for k in range(tr.num_objects):
        ok = np.nonzero((tr.visible[:, k] >= 1.0) & m.found[:, k])[0]      # a cut-off object's centroid is biased
        if len(ok) < 3:
            continue
        t0, t1 = ok[0], ok[-1]
        d_gt = tr.positions[t1, k] - tr.positions[t0, k]
        d_m = m.positions[t1, k] - m.positions[t0, k]
        for ax, name in ((0, "horizontal"), (1, "vertical")):
            if abs(d_gt[ax]) > delta:
                good = bool(np.sign(d_m[ax]) == np.sign(d_gt[ax]) and abs(d_m[ax]) > 0.5 * delta)
                rows.append({"object": k, "colour": tr.colour[k], "check": name, "truth": float(d_gt[ax]),
                             "measured": float(d_m[ax]), "ok": good})
    K = tr.num_objects
    for i in range(K):
        for j in range(i + 1, K):
            both = (tr.visible[:, i] >= 1.0) & (tr.visible[:, j] >= 1.0) & m.found[:, i] & m.found[:, j]
            if both.sum() < 3:
                continue
            pg_i, pg_j = tr.positions[both, i], tr.positions[both, j]
            major = np.maximum(np.abs(pg_i - pg_j)[:, 0], np.abs(pg_i - pg_j)[:, 1])
            if major.min() < delta:
                continue
            codes = _relation_codes(pg_i, pg_j)
            gt = int(np.bincount(codes, minlength=4).argmax())
            if (codes == gt).mean() < 0.8:
                continue                                        # no stable relation to check
            mc = _relation_codes(m.positions[both, i], m.positions[both, j])
            got = int(np.bincount(mc, minlength=4).argmax())
            rows.append({"object": i, "other": j, "check": "relation", "truth": _REL[gt], "measured": _REL[got],
                         "ok": got == gt})
    if not rows:
        raise NotMeasurable("no object moves far enough and no pair has a stable relation")
    acc = float(np.mean([r["ok"] for r in rows]))
    return _result(obs, "direction", value=acc, flagged=acc < 1.0,
                   summary={"accuracy": acc, "checks": len(rows), "wrong": int(sum(not r["ok"] for r in rows))},
                   per_object=rows)


def _world_displacement(obs: Observation, tr: Tracklet, i0: int = 0, i1: int = -1) -> np.ndarray:
    """Displacement (metres, x right, y up) of a tracklet from detection ``i0`` to ``i1``, camera motion removed."""
    d = tr.centroid[i1] - tr.centroid[i0]                     # (dcol, drow) on screen
    ct = obs.camera_track
    if ct.measurable:
        d = d - (ct.trajectory[tr.frames[i1]] - ct.trajectory[tr.frames[i0]])
    return np.array([d[0], -d[1]]) / obs.px_per_m


def _contact_points(obs: Observation, tr: Tracklet) -> np.ndarray:
    """Bool ``(n,)``: the tracklet's detection touches another detection (gap below ``CONTACT_PX``)."""
    tk = obs.tracks
    r = float(np.percentile(tr.radius, 90))
    out = np.zeros(len(tr), bool)
    for n, (t, xy) in enumerate(zip(tr.frames, tr.centroid)):
        sel = tk.frame == t
        d = np.linalg.norm(tk.centroid[sel] - xy, axis=-1)
        other = d > 0.5
        gap = d - 1.15 * (r + np.sqrt(tk.area[sel] / math.pi))
        out[n] = bool((other & (gap <= CONTACT_PX)).any())
    return out


def _first_leg(tr: Tracklet, contact: np.ndarray | None = None) -> int:
    """Index of the last detection before the first velocity jump or contact (a bounce, a collision)."""
    n = len(tr)
    end = n - 1
    if contact is not None and contact.any():
        end = max(int(np.argmax(contact)) - 1, 0)
    if n >= 3:
        v = np.diff(tr.centroid, axis=0) / np.maximum(np.diff(tr.frames), 1)[:, None]
        dv = np.linalg.norm(np.diff(v, axis=0), axis=-1)
        # a contact mid-frame splits the change over two velocity steps: look two steps apart as well
        dv2 = np.concatenate([np.linalg.norm(v[2:] - v[:-2], axis=-1), [0.0]]) if len(v) >= 3 else np.zeros_like(dv)
        jump = np.maximum(dv, dv2) > np.maximum(0.5, 0.4 * np.linalg.norm(v[:-1], axis=-1))
        if jump.any():
            end = min(end, int(np.argmax(jump)) + 1)
    return end


def _tracklet_shape(obs: Observation, tr: Tracklet) -> str | None:
    """Majority shape of a tracklet over up to 5 clean detections (None when undecided)."""
    cache = obs.cache.setdefault("shapes", {})
    key = id(tr)
    if key not in cache:
        ok = np.nonzero(_clean_points(obs, tr))[0]
        idx = ok[np.linspace(0, len(ok) - 1, min(5, len(ok))).astype(int)] if len(ok) else []
        votes = [classify_shape(obs.video[tr.frames[i]], tr.colour, tr.centroid[i], float(tr.radius[i]) * 1.2)
                 for i in idx]
        votes = [v for v in votes if v is not None]
        cache[key] = max(set(votes), key=votes.count) if votes else None
    return cache[key]


def _direction_checks(obs: Observation, o: Any, g: int, tr: Tracklet, delta: float) -> list[dict[str, Any]]:
    """Direction (or stillness) checks of one intent group ``o`` against one tracklet."""
    # the prompt's direction (or stillness) is the motion before the first collision or bounce
    leg = _first_leg(tr, _contact_points(obs, tr))
    whole = np.nonzero(_whole_points(obs, tr)[:leg + 1])[0]        # a cut-off object's centroid is biased
    if len(whole) < 2 or whole[-1] - whole[0] < 2:
        return [{"group": g, "colour": o.colour, "check": "leg", "ok": True,
                 "note": "too little of its first motion in full view"}]
    i0, leg = int(whole[0]), int(whole[-1])
    d = _world_displacement(obs, tr, i0, leg)
    if o.still:
        return [{"group": g, "colour": o.colour, "check": "still", "measured": d.tolist(),
                 "ok": bool(np.abs(d).max() <= delta)}]
    leg_time = float(tr.frames[leg] - tr.frames[i0]) * obs.dt
    need = min(0.5 * delta, STILL_SPEED * obs.view[1] * leg_time)      # it must move at all
    dx, dy = o.direction
    diagonal = bool(dx and dy and not o.falls)
    rows = []
    for ax, want in ((0, dx), (1, 0.0 if o.falls and dx else dy)):
        if want:
            # the asked-for component has the right sign and is a real motion: on an axis, more than
            # ``need``; on a diagonal, the whole motion is more than ``need`` and this component a real share of it
            good = bool(np.sign(d[ax]) == np.sign(want))
            if diagonal:
                good = good and float(np.hypot(*d)) > need and abs(d[ax]) >= 0.25 * float(np.hypot(*d))
            else:
                good = good and abs(d[ax]) > need
            rows.append({"group": g, "colour": o.colour, "check": ("horizontal", "vertical")[ax],
                         "expected": float(np.sign(want)), "measured": float(d[ax]), "ok": bool(good)})
    return rows


def _assign(obs: Observation) -> dict[int, list[Tracklet]]:
    """Tracklets for each intent group (by colour, then the reading most favourable to the prompt).

    Within a colour, groups are expanded to one slot per object and matched to
    tracklets (length >= 3) by optimal assignment: a shape that contradicts the
    prompt costs 2, a failed direction check 1, so look-alikes are told apart
    by shape and motion wherever the clip allows.
    """
    cache = obs.cache.get("assign")
    if cache is not None:
        return cache
    intent = obs.intent
    delta = _min_disp(obs)
    out: dict[int, list[Tracklet]] = {g: [] for g in range(len(intent.objects))}
    colours = {o.colour for o in intent.objects if o.colour is not None}
    for colour in colours:
        slots = [g for g, o in enumerate(intent.objects) if o.colour == colour for _ in range(o.count or 1)]
        cands = sorted([tr for tr in obs.tracklets if tr.colour == colour and len(tr) >= 3], key=lambda t: -len(t))
        if not cands:
            continue
        cost = np.zeros((len(slots), len(cands)))
        for a, g in enumerate(slots):
            o = intent.objects[g]
            for b, tr in enumerate(cands):
                shp = _tracklet_shape(obs, tr) if o.shape is not None and len(cands) > 1 else None
                cost[a, b] = 2.0 * (shp is not None and shp != o.shape) - 1e-3 * len(tr)
                if o.direction is not None or o.still:
                    if len(cands) > 1 and not o.mixed:
                        cost[a, b] += sum(not r["ok"] for r in _direction_checks(obs, o, g, tr, delta))
        from scipy import optimize

        ai, bi = optimize.linear_sum_assignment(cost)
        for a, b in zip(ai, bi):
            out[slots[a]].append(cands[b])
    obs.cache["assign"] = out
    return out


def _direction_intent(obs: Observation) -> MetricResult:
    intent = obs.intent
    delta = _min_disp(obs)
    groups = _assign(obs)
    rows = []
    for g, o in enumerate(intent.objects):
        if o.colour is None or o.mixed or (o.direction is None and not o.still):
            continue
        if not groups[g]:
            rows.append({"group": g, "colour": o.colour, "check": "found", "ok": False})
            continue
        for tr in groups[g]:
            rows += _direction_checks(obs, o, g, tr, delta)
    for r in intent.relations:
        a, b = intent.objects[r.subject], intent.objects[r.object]
        if a.colour is None or b.colour is None:
            continue
        ta, tb = _assign(obs)[r.subject], _assign(obs)[r.object]
        if not ta or not tb:
            rows.append({"check": "relation", "expected": r.relation, "measured": None, "ok": False})
            continue
        common = np.intersect1d(ta[0].frames, tb[0].frames)
        if len(common) == 0:
            rows.append({"check": "relation", "expected": r.relation, "measured": None, "ok": False})
            continue
        pa = np.array([_at(ta[0], t) for t in common]) * [1, -1]
        pb = np.array([_at(tb[0], t) for t in common]) * [1, -1]
        got = _REL[int(np.bincount(_relation_codes(pa, pb), minlength=4).argmax())]
        rows.append({"check": "relation", "subject": a.colour, "object": b.colour, "expected": r.relation,
                     "measured": got, "ok": got == r.relation})
    if not rows:
        raise NotMeasurable("the prompt asks for no direction, stillness or relation")
    acc = float(np.mean([r["ok"] for r in rows]))
    return _result(obs, "direction", value=acc, flagged=acc < 1.0,
                   summary={"accuracy": acc, "checks": len(rows), "wrong": int(sum(not r["ok"] for r in rows))},
                   per_object=rows)


# --------------------------------------------------------------------------- #
# Camera
# --------------------------------------------------------------------------- #


def _camera_truth(obs: Observation) -> MetricResult:
    tr = obs.truth
    ct = obs.camera_track
    if not ct.measurable:
        raise NotMeasurable("no static grey scenery in view to measure the camera against")
    vw, vh = tr.view
    sx, sy = obs.width / vw, obs.height / vh
    d = tr.camera - tr.camera[0]
    gt = np.stack([-d[:, 0] * sx, d[:, 1] * sy], -1)              # the scenery moves against the camera
    err = np.linalg.norm(ct.trajectory - gt, axis=-1)
    total = float(np.linalg.norm(gt[-1]))
    limit = max(CAMERA_FLAG_PX, CAMERA_FLAG_REL * total)
    value = float(err.mean() / obs.px_per_m)
    return _result(obs, "camera", value=value, flagged=float(err.max()) > limit,
                   summary={"mean_error_m": value, "max_error_px": float(err.max()), "limit_px": limit,
                            "truth_total_px": gt[-1].tolist(), "measured_total_px": ct.trajectory[-1].tolist(),
                            "known_frame_pairs": float(ct.known.mean())},
                   per_frame={"trajectory_px": ct.trajectory, "truth_px": gt, "error_px": err})


def _camera_intent(obs: Observation) -> MetricResult:
    intent = obs.intent
    if intent.camera is None and not intent.camera_static:
        raise NotMeasurable("the prompt says nothing about the camera")
    ct = obs.camera_track
    if not ct.measurable:
        raise NotMeasurable("no static grey scenery in view to measure the camera against")
    s = ct.trajectory[-1]                                       # scenery shift (dcol, drow)
    cam = np.array([-s[0], s[1]])                               # camera motion in (x right, y up) pixels
    if intent.camera_static:
        ok = float(np.abs(cam).max()) <= CAMERA_FLAG_PX
    else:
        axis, sign = {"right": (0, 1), "left": (0, -1), "up": (1, 1), "down": (1, -1)}[intent.camera]
        ok = bool(cam[axis] * sign > CAMERA_FLAG_PX and abs(cam[axis]) > abs(cam[1 - axis]))
    return _result(obs, "camera", value=float(ok), flagged=not ok,
                   summary={"expected": intent.camera or "static", "camera_motion_px": cam.tolist(),
                            "camera_motion_m": (cam / obs.px_per_m).tolist()},
                   per_frame={"trajectory_px": ct.trajectory})


# --------------------------------------------------------------------------- #
# Cause and effect
# --------------------------------------------------------------------------- #


def _effect_row(labels: list[str | None], after: str, f: int | None, k_frames: int) -> dict[str, Any]:
    """Did ``after`` appear at the object within ``k_frames`` of event frame ``f`` and stay (labels: colour per frame)?"""
    T = len(labels)
    shows = np.array([lab == after for lab in labels])
    if f is None:
        spont = _longest_run(shows)
        return {"event_frame": None, "persistence": None, "spontaneous_frames": int(shows.sum()),
                "ok": spont < RUN}
    post = shows[f:]
    persistence = float(post.mean()) if len(post) else 1.0
    after_frames = np.nonzero(shows[max(f - 1, 0):])[0]
    first = int(after_frames[0]) + max(f - 1, 0) if len(after_frames) else None
    in_time = first is not None and first <= f + k_frames
    persists = first is not None and bool(shows[first:].all())
    early = bool(shows[:max(f - 1, 0)].any())
    return {"event_frame": f, "first_effect_frame": first, "persistence": persistence, "in_time": bool(in_time),
            "persists": bool(persists), "early": early,
            "ok": bool((in_time or f >= T) and (persists or f >= T) and not early)}


def _cause_effect_truth(obs: Observation, k_frames: int) -> MetricResult:
    tr = obs.truth
    after = tr.params.get("colour_after") or [None] * tr.num_objects
    blocks = [k for k in range(tr.num_objects) if after[k] is not None]
    if not blocks:
        raise NotMeasurable("no object in this scene changes state")
    obs.require_objects(blocks)
    blocks = [k for k in blocks if not obs.tiny[k]]
    rows = []
    for k in blocks:
        on = np.nonzero(tr.state[:, k] > 0)[0]
        f = int(on[0]) if len(on) else None
        r = obs.radius_px[k]
        labels = [_label_at(obs, t, obs.gt_pixels[t, k], r)[0] if tr.visible[t, k] >= 0.5 else None
                  for t in range(tr.num_frames)]
        row = _effect_row(labels, after[k], f, k_frames)
        row.update(object=k, before=tr.colour[k], after=after[k], observed=labels)
        rows.append(row)
    scored = [r for r in rows if r["persistence"] is not None]
    value = float(np.mean([r["persistence"] for r in scored])) if scored else 1.0
    return _result(obs, "cause_effect", value=value, flagged=not all(r["ok"] for r in rows),
                   summary={"persistence": value, "events": len(scored), "ok": all(r["ok"] for r in rows)},
                   per_object=rows)


def _cause_effect_intent(obs: Observation, k_frames: int) -> MetricResult:
    intent = obs.intent
    evs = [e for e in intent.events if e.kind == "state_change" and e.detail in PALETTE]
    if not evs:
        raise NotMeasurable("the prompt asks for no change of colour")
    rows = []
    for e in evs:
        o = intent.objects[e.subject]
        if o.colour is None:
            continue
        tls = _tracklets_of(obs, o.colour)
        if not tls:
            rows.append({"before": o.colour, "after": e.detail, "persistence": 0.0, "ok": False,
                         "reason": "the object is not there"})
            continue
        tr = tls[0]
        xy, r = tr.centroid[0], float(np.median(tr.radius))
        labels = [_label_at(obs, t, xy, 1.2 * r)[0] for t in range(obs.num_frames)]
        shows = np.array([lab == e.detail for lab in labels])
        if not shows.any():
            rows.append({"before": o.colour, "after": e.detail, "persistence": 0.0, "ok": False,
                         "reason": "the effect never appears", "observed": labels})
            continue
        first = int(np.argmax(shows))
        persistence = float(shows[first:].mean())
        # the cause: another object touches this one at most one frame after the change
        caused = any(
            (p := _at(other, t)) is not None and np.linalg.norm(p - xy) <= 1.15 * (r + float(np.median(other.radius))) + CONTACT_PX
            for other in obs.tracklets if other is not tr and other.colour != e.detail
            for t in range(0, min(first + 2, obs.num_frames)))
        rows.append({"before": o.colour, "after": e.detail, "first_effect_frame": first, "persistence": persistence,
                     "caused": bool(caused), "ok": persistence == 1.0 and bool(caused), "observed": labels})
    if not rows:
        raise NotMeasurable("the prompt's changing object has no colour")
    value = float(np.mean([r["persistence"] for r in rows]))
    return _result(obs, "cause_effect", value=value, flagged=not all(r["ok"] for r in rows),
                   summary={"persistence": value, "events": len(rows)}, per_object=rows)


# --------------------------------------------------------------------------- #
# Attribute stability
# --------------------------------------------------------------------------- #


def _core_colour(frame: np.ndarray, xy: np.ndarray, r: float) -> np.ndarray | None:
    """Mean RGB of the pixels within ``0.5 r`` of ``xy`` (the object's core), None if none."""
    h, w = frame.shape[:2]
    rr = max(0.75, 0.5 * r)
    r0, r1 = max(0, int(math.floor(xy[1] - rr))), min(h, int(math.ceil(xy[1] + rr)) + 1)
    c0, c1 = max(0, int(math.floor(xy[0] - rr))), min(w, int(math.ceil(xy[0] + rr)) + 1)
    if r0 >= r1 or c0 >= c1:
        return None
    rows, cols = np.mgrid[r0:r1, c0:c1]
    m = np.hypot(cols - xy[0], rows - xy[1]) <= rr
    if not m.any():
        return None
    return frame[r0:r1, c0:c1][m].astype(float).mean(0)


def _attributes_truth(obs: Observation, thr: float) -> MetricResult:
    tr, m = obs.truth, obs.matched
    obs.require_objects()
    contact = _contact_frames(obs)
    rows, flags = [], []
    for k in range(tr.num_objects):
        if obs.tiny[k]:
            continue
        ok = (tr.visible[:, k] >= 1.0) & m.found[:, k] & ~contact[:, k]
        r_eq = math.sqrt(SHAPE_AREA[tr.shape[k]] / math.pi) * obs.radius_px[k]
        want = [obs.expected_colours[t][k] for t in range(tr.num_frames)]
        labels = [(_label_at(obs, t, obs.gt_pixels[t, k], obs.radius_px[k])[0] if tr.visible[t, k] >= 0.5 else None)
                  for t in range(tr.num_frames)]
        swap = np.array([lab is not None and lab != w for lab, w in zip(labels, want)])
        row: dict[str, Any] = {"object": k, "colour": tr.colour[k], "shape": tr.shape[k],
                               "swap_frames": np.nonzero(swap)[0].tolist()}
        drift = cdrift = 0.0
        shape_bad = 0
        if ok.sum() >= 2:
            rad = np.sqrt(m.area[ok, k] / math.pi)
            drift = float((rad.max() - rad.min()) / r_eq)
            cd = [np.linalg.norm(c - np.asarray(PALETTE[want[t]], float))
                  for t in np.nonzero(ok)[0] if (c := _core_colour(obs.video[t], m.pixels[t, k], r_eq)) is not None]
            cdrift = float(max(cd)) if cd else 0.0
            shape_bad = np.zeros(tr.num_frames, bool)
            for t in np.nonzero(ok)[0]:
                got = classify_shape(obs.video[t], want[t], m.pixels[t, k], float(rad[np.searchsorted(np.nonzero(ok)[0], t)]))
                shape_bad[t] = got is not None and got != tr.shape[k]
            row.update(radius_px=[float(rad.min()), float(rad.max())],
                       shape_mismatch_frames=np.nonzero(shape_bad)[0].tolist())
            shape_bad = _longest_run(shape_bad)
        row.update(radius_drift=drift, colour_drift=cdrift)
        bad = drift > thr or _longest_run(swap) >= RUN or cdrift > COLOUR_DRIFT_FLAG or shape_bad >= RUN
        row["flagged"] = bool(bad)
        flags.append(bad)
        rows.append(row)
    if not any("radius_px" in r or r["swap_frames"] for r in rows):
        raise NotMeasurable("no object is in full view (and out of contact) in two frames")
    value = float(max(r["radius_drift"] for r in rows))
    return _result(obs, "attributes", value=value, flagged=any(flags),
                   summary={"radius_drift": value, "colour_drift": float(max(r["colour_drift"] for r in rows)),
                            "swap_frames": int(sum(len(r["swap_frames"]) for r in rows)),
                            "shape_mismatch_frames": int(sum(len(r.get("shape_mismatch_frames", ())) for r in rows))},
                   per_object=rows)


def _attributes_intent(obs: Observation, thr: float) -> MetricResult:
    intent = obs.intent
    legit = {(intent.objects[e.subject].colour, e.detail) for e in intent.events if e.kind == "state_change"}
    tls = _good_tracklets(obs, 3)
    if not tls:
        raise NotMeasurable("no object was followed through three frames")
    rows, flags = [], []
    all_xy = obs.tracks.centroid
    for i, tr in enumerate(tls):
        ok = _clean_points(obs, tr)
        r_med = float(np.median(tr.radius))
        for n, t in enumerate(tr.frames):                  # out of contact with every other detection
            sel = (obs.tracks.frame == t)
            d = np.linalg.norm(all_xy[sel] - tr.centroid[n], axis=-1)
            others = (d > 0.5) & (d < 2.3 * r_med + CONTACT_PX + np.sqrt(obs.tracks.area[sel] / math.pi))
            ok[n] &= not others.any()
        drift = cdrift = 0.0
        if ok.sum() >= 2:
            rad = tr.radius[ok]
            drift = float((rad.max() - rad.min()) / np.median(rad))
            cd = [np.linalg.norm(c - np.asarray(PALETTE[tr.colour], float))
                  for t, xy in zip(tr.frames[ok], tr.centroid[ok]) if (c := _core_colour(obs.video[t], xy, r_med)) is not None]
            cdrift = float(max(cd)) if cd else 0.0
        shapes = [classify_shape(obs.video[t], tr.colour, xy, float(r)) if o else None
                  for t, xy, r, o in zip(tr.frames, tr.centroid, tr.radius, ok)]
        known = [x for x in shapes if x is not None]
        major = max(set(known), key=known.count) if known else None
        odd = _longest_run(np.array([x is not None and x != major for x in shapes]))
        rows.append({"tracklet": i, "colour": tr.colour, "frames": [int(tr.frames[0]), int(tr.frames[-1])],
                     "radius_drift": drift, "colour_drift": cdrift, "shape": major, "shape_changes": int(odd)})
        flags.append(drift > thr or cdrift > COLOUR_DRIFT_FLAG or odd >= RUN)
    # a colour swap: one tracklet ends where another of a different colour starts, a frame or two later
    swaps = []
    for a in obs.tracklets:
        for b in obs.tracklets:
            if a.colour == b.colour or (a.colour, b.colour) in legit or len(a) < 2 or len(b) < 2:
                continue
            gap = int(b.frames[0] - a.frames[-1])
            if 1 <= gap <= 3:
                v = a.centroid[-1] - a.centroid[-2]
                if np.linalg.norm(a.centroid[-1] + v * gap - b.centroid[0]) <= 1.5 * float(np.median(a.radius)) + 2:
                    swaps.append({"from": a.colour, "to": b.colour, "frame": int(b.frames[0])})
    value = float(max(r["radius_drift"] for r in rows))
    return _result(obs, "attributes", value=value, flagged=any(flags) or bool(swaps),
                   summary={"radius_drift": value, "colour_drift": float(max(r["colour_drift"] for r in rows)),
                            "swaps": len(swaps)}, per_object=rows + [{"swap": s} for s in swaps])


# --------------------------------------------------------------------------- #
# Interaction blur
# --------------------------------------------------------------------------- #


def _edge_index(obs: Observation, t: int, boxes: Sequence[tuple[np.ndarray, float]], perimeter: float) -> float:
    """Off-palette pixels next to palette pixels in the union of ``(centre, half-size)`` boxes, per perimeter pixel."""
    H, W = obs.height, obs.width
    mask = np.zeros((H, W), bool)
    for c, half in boxes:
        r0, r1 = max(0, int(math.floor(c[1] - half))), min(H, int(math.ceil(c[1] + half)) + 1)
        c0, c1 = max(0, int(math.floor(c[0] - half))), min(W, int(math.ceil(c[0] + half)) + 1)
        mask[r0:r1, c0:c1] = True
    return float((obs.off_palette[t] & _near_palette(obs)[t] & mask).sum()) / max(perimeter, 1e-9)


def _near_palette(obs: Observation) -> np.ndarray:
    """``(t, h, w)``: within 2 px of a palette-coloured pixel (so scenery edges do not count as blur)."""
    got = obs.cache.get("near_palette")
    if got is None:
        from scipy import ndimage

        x = obs.video.astype(np.float32)
        pal = np.asarray(list(PALETTE.values()), np.float32)
        d2 = (x * x).sum(-1, keepdims=True) - 2.0 * (x @ pal.T) + (pal * pal).sum(-1)
        core = d2.min(-1) <= 35.0 ** 2
        st = np.zeros((3, 3, 3), bool)
        st[1] = True
        got = ndimage.binary_dilation(core, structure=st, iterations=2) if core.any() else core
        obs.cache["near_palette"] = got
    return got


def _blur_truth(obs: Observation, thr: float) -> MetricResult:
    tr = obs.truth
    T = tr.num_frames
    p, r = obs.gt_pixels, obs.radius_px
    per = np.array([SHAPE_PERIMETER[s] for s in tr.shape]) * r
    evs = [e for e in tr.events if e.kind == "collision" and len(e.bodies) == 2 and min(e.bodies) >= 0]
    contact = _contact_frames(obs)
    busy = np.zeros((T, tr.num_objects), bool)
    for e in evs:
        for b in e.bodies:
            busy[max(0, e.frame - 2):e.frame + 2, b] = True
    rows = []
    for e in evs:
        i, j = e.bodies
        if obs.tiny[i] or obs.tiny[j]:
            continue
        frames = [t for t in (e.frame - 1, e.frame) if 0 <= t < T and tr.visible[t, i] >= 0.5 and tr.visible[t, j] >= 0.5]
        if not frames:
            continue
        inside = [_edge_index(obs, t, [(p[t, i], r[i] + 1.5), (p[t, j], r[j] + 1.5)],
                              per[i] * tr.visible[t, i] + per[j] * tr.visible[t, j]) for t in frames]
        outside = [_edge_index(obs, t, [(p[t, b], r[b] + 1.5)], per[b])
                   for b in (i, j) for t in range(T) if not busy[t, b] and tr.visible[t, b] >= 1.0
                   and not contact[t, b]]
        if not outside:
            continue
        excess = float(np.mean(inside) - np.median(outside))
        rows.append({"frame": int(e.frame), "bodies": [int(i), int(j)], "contact_index": float(np.mean(inside)),
                     "outside_index": float(np.median(outside)), "excess": excess})
    if not rows:
        raise NotMeasurable("no contact between two objects in view (and the same objects out of contact)")
    value = float(max(rr["excess"] for rr in rows))
    return _result(obs, "blur", value=value, flagged=value > thr,
                   summary={"excess": value, "contacts": len(rows)}, per_object=rows)


def _blur_intent(obs: Observation, thr: float) -> MetricResult:
    tls = _good_tracklets(obs, 3)
    rows = []
    for a_i, a in enumerate(tls):
        for b in tls[a_i + 1:]:
            common = np.intersect1d(a.frames, b.frames)
            if len(common) == 0:
                continue
            ra, rb = float(np.median(a.radius)), float(np.median(b.radius))
            gaps = np.array([np.linalg.norm(_at(a, t) - _at(b, t)) - 1.15 * (ra + rb) for t in common])
            touch = common[gaps <= CONTACT_PX]
            if len(touch) == 0:
                continue
            pa, pb = 2 * math.pi * ra, 2 * math.pi * rb
            inside = [_edge_index(obs, int(t), [(_at(a, t), 1.2 * ra + 1.5), (_at(b, t), 1.2 * rb + 1.5)], pa + pb)
                      for t in touch]
            outside = [_edge_index(obs, int(t), [(_at(tr, t), 1.2 * rr + 1.5)], 2 * math.pi * rr)
                       for tr, rr in ((a, ra), (b, rb)) for t in tr.frames
                       if np.all(np.abs(touch - t) > 2)]
            if not outside:
                continue
            rows.append({"colours": [a.colour, b.colour], "frames": touch.tolist(),
                         "contact_index": float(np.mean(inside)), "outside_index": float(np.median(outside)),
                         "excess": float(np.mean(inside) - np.median(outside))})
    if not rows:
        raise NotMeasurable("no two objects touch (with frames out of contact to compare)")
    value = float(max(r["excess"] for r in rows))
    return _result(obs, "blur", value=value, flagged=value > thr, summary={"excess": value, "contacts": len(rows)},
                   per_object=rows)


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def _obs(clip: Any, ref: Any, world: WorldConfig | None) -> Observation:
    if isinstance(clip, Observation):
        if ref is not None:
            raise ValueError("pass the reference to observe(), not with an Observation")
        return clip
    return observe(clip, ref, world=world)


def _run(name: str, obs: Observation, truth_fn: Callable[[], MetricResult],
         intent_fn: Callable[[], MetricResult] | None) -> MetricResult:
    try:
        obs.require()
        if obs.truth is not None:
            return truth_fn()
        if obs.intent is None:
            raise NotMeasurable("needs a reference: the ground truth or the prompt")
        if intent_fn is None:
            raise NotMeasurable("needs the ground truth")
        return intent_fn()
    except NotMeasurable as e:
        return _not_measurable(name, obs.mode, str(e))


def velocity_error(clip: Any, ref: Any = None, *, world: WorldConfig | None = None,
                   threshold_px: float = VELOCITY_FLAG_PX) -> MetricResult:
    """Velocity error (PhyWorld): mean ``|d mu/dt - v_gt|`` (m/s) over objects and fully visible frame pairs.

    Flags a clip where any object's velocity is more than ``threshold_px``
    pixels per frame off (a teleport). Intent mode: velocity jitter, the
    distance of each velocity from the median of it and its neighbours (0 for
    uniform motion, gravity and single collisions; large for a jump).
    """
    obs = _obs(clip, ref, world)
    return _run("velocity", obs, lambda: _velocity_truth(obs, threshold_px), lambda: _velocity_intent(obs, threshold_px))


def gravity_error(clip: Any, ref: Any = None, *, world: WorldConfig | None = None,
                  threshold: float = GRAVITY_FLAG) -> MetricResult:
    """Gravity fit: ``y = a t^2 + b_s t + c_s`` per free-flight segment ``s``; value ``|2a - 2a_gt| / g``.

    ``a_gt`` is the same fit on the true positions (``-g / 2`` in free flight,
    so this is PHYSICS.md's ``|2a - g| / g``; a ball resting on the floor has
    its own). Intent mode: compared with the world's ``g`` when the prompt has
    gravity, with 0 otherwise (things must not fall that should not).
    """
    obs = _obs(clip, ref, world)
    return _run("gravity", obs, lambda: _gravity_truth(obs, threshold), lambda: _gravity_intent(obs, threshold))


def collision_error(clip: Any, ref: Any = None, *, world: WorldConfig | None = None,
                    threshold_px: float = COLLISION_FLAG_PX, momentum: float = MOMENTUM_FLAG,
                    energy: float = ENERGY_FLAG) -> MetricResult:
    """Collisions between two moving bodies: post-collision velocity error (m/s), momentum and energy error.

    Momentum is ``sum r^2 v`` (mass = radius squared); both errors compare the
    measured change across the event with the truth's (so inelastic losses and
    gravity between the windows are not errors). Intent mode: the two objects
    the prompt says collide must touch, and momentum (tracked radii) must be
    conserved across the contact.
    """
    obs = _obs(clip, ref, world)
    return _run("collision", obs, lambda: _collision_truth(obs, threshold_px, momentum, energy),
                lambda: _collision_intent(obs, momentum, energy))


def permanence(clip: Any, ref: Any = None, *, world: WorldConfig | None = None,
               min_share: float = PERMANENCE_MIN_AREA) -> MetricResult:
    """Object permanence: score ``1 - violating objects / objects``.

    Vanish: an object at least half visible in the truth covers less than
    ``min_share`` of its expected area for ``RUN`` or more consecutive frames.
    Emerge: detections of a colour with no ground-truth object for ``RUN``
    frames. Occlusions and exits are excused by the truth's visibility. Intent
    mode: tracklets that are born, die or blink away from the frame edges and
    grey occluders.
    """
    obs = _obs(clip, ref, world)
    return _run("permanence", obs, lambda: _permanence_truth(obs, min_share), lambda: _permanence_intent(obs))


def count_consistency(clip: Any, ref: Any = None, *, world: WorldConfig | None = None) -> MetricResult:
    """Per-frame connected components per colour vs the truth (or the prompt's numbers).

    Value: exact-match frame rate. Summary: max drift, fission (too many),
    fusion (too few, one component the size of two objects) and missing frames.
    Flags a wrong count lasting ``RUN`` frames. Objects between 0 and 50%
    visible may or may not be counted.
    """
    obs = _obs(clip, ref, world)
    return _run("count", obs, lambda: _count_truth(obs), lambda: _count_intent(obs))


def direction_relations(clip: Any, ref: Any = None, *, world: WorldConfig | None = None) -> MetricResult:
    """Motion directions and spatial relations (left/right, above/below).

    Direction: the sign of each object's net displacement (world frame: camera
    motion removed) on every axis where it moves more than ``DIRECTION_MIN`` of
    the view width. Relation "A left of B" iff ``x_A < x_B`` and ``|dx| > |dy|``
    (majority of frames) -- unlike VBench, left and right are told apart.
    Value: share of checks passed.
    """
    obs = _obs(clip, ref, world)
    return _run("direction", obs, lambda: _direction_truth(obs), lambda: _direction_intent(obs))


def camera_error(clip: Any, ref: Any = None, *, world: WorldConfig | None = None) -> MetricResult:
    """Camera trajectory: scenery shift by phase correlation vs the true camera offset (value: mean error, m).

    Flags an error above ``CAMERA_FLAG_PX`` px plus ``CAMERA_FLAG_REL`` of the
    true displacement. Intent mode: the pan direction (or a still camera).
    Not measurable without grey scenery in view.
    """
    obs = _obs(clip, ref, world)
    return _run("camera", obs, lambda: _camera_truth(obs), lambda: _camera_intent(obs))


def cause_effect(clip: Any, ref: Any = None, *, world: WorldConfig | None = None,
                 within: int = EFFECT_WITHIN) -> MetricResult:
    """Cause and effect: the block's new colour appears within ``within`` frames of the hit and persists.

    Value: share of frames from the event on that show the effect. Flags a late,
    reverting or premature effect (or a spontaneous change when nothing hits).
    Intent mode: the prompt's colour change appears, persists, and follows a contact.
    """
    obs = _obs(clip, ref, world)
    return _run("cause_effect", obs, lambda: _cause_effect_truth(obs, within), lambda: _cause_effect_intent(obs, within))


def attribute_stability(clip: Any, ref: Any = None, *, world: WorldConfig | None = None,
                        threshold: float = RADIUS_DRIFT_FLAG) -> MetricResult:
    """Attribute stability: radius drift ``(max r - min r) / r``, colour drift, colour and shape swaps.

    Measured in frames where the object is fully visible and not touching
    another. A colour swap is the object's place showing another palette colour
    for ``RUN`` frames; a shape swap is the object read as another shape
    (circle/square/triangle from pixel moments, see
    :func:`~sora_jax.analysis.observe.classify_shape`) for ``RUN`` frames.
    """
    obs = _obs(clip, ref, world)
    return _run("attributes", obs, lambda: _attributes_truth(obs, threshold), lambda: _attributes_intent(obs, threshold))


def interaction_blur(clip: Any, ref: Any = None, *, world: WorldConfig | None = None,
                     threshold: float = BLUR_FLAG) -> MetricResult:
    """Interaction blur: off-palette edge pixels per perimeter pixel, in contact minus out of contact.

    Anti-aliased edges are off-palette too, so the same objects out of contact
    are the baseline; a blurred contact widens the band of mixed pixels.
    """
    obs = _obs(clip, ref, world)
    return _run("blur", obs, lambda: _blur_truth(obs, threshold), lambda: _blur_intent(obs, threshold))


METRIC_FUNCTIONS: dict[str, Callable[..., MetricResult]] = {
    "velocity": velocity_error,
    "gravity": gravity_error,
    "collision": collision_error,
    "permanence": permanence,
    "count": count_consistency,
    "direction": direction_relations,
    "camera": camera_error,
    "cause_effect": cause_effect,
    "attributes": attribute_stability,
    "blur": interaction_blur,
}


def check_metrics(metrics: Sequence[str] | None) -> tuple[str, ...]:
    """Validate metric names (None = all)."""
    if metrics is None:
        return METRICS
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    bad = [m for m in metrics if m not in METRIC_FUNCTIONS]
    if bad or not metrics:
        raise ValueError(f"unknown metrics {bad}; valid: {', '.join(METRICS)}")
    return tuple(metrics)


def evaluate_clip(video: Any, ref: Any = None, *, metrics: Sequence[str] | None = None,
                  world: WorldConfig | None = None) -> dict[str, MetricResult]:
    """Every metric (or ``metrics``) on one clip, tracking it once: ``{name: MetricResult}``.

    ``ref``: the clip's :class:`Truth`, or an :class:`Intent` / prompt string.
    """
    names = check_metrics(metrics)
    obs = _obs(video, ref, world)
    return {n: METRIC_FUNCTIONS[n](obs) for n in names}


def aggregate(results: Sequence[Mapping[str, MetricResult]]) -> dict[str, dict[str, Any]]:
    """Per metric over clips: mean value (measurable clips), flagged rate, measurable rate, n.

    ``flagged_rate`` is over measurable clips; ``measurable_rate`` says how
    many clips could be measured at all (a model that draws nothing is not
    rewarded: its clips are unmeasurable, and that shows).
    """
    out: dict[str, dict[str, Any]] = {}
    names = list(dict.fromkeys(n for r in results for n in r))
    for n in names:
        rs = [r[n] for r in results if n in r]
        ok = [r for r in rs if r.measurable]
        vals = [r.value for r in ok if math.isfinite(r.value)]
        out[n] = {"value": float(np.mean(vals)) if vals else None,
                  "flagged_rate": float(np.mean([r.flagged for r in ok])) if ok else None,
                  "measurable_rate": float(len(ok) / len(rs)) if rs else None,
                  "n": len(rs), "n_measurable": len(ok),
                  "unit": ok[0].unit if ok else (rs[0].unit if rs else ""),
                  "better": ok[0].better if ok else (rs[0].better if rs else "")}
    return out


__all__ = [
    "METRICS", "METRIC_FUNCTIONS", "MetricResult", "SPECS", "aggregate", "attribute_stability", "camera_error",
    "cause_effect", "check_metrics", "collision_error", "count_consistency", "direction_relations",
    "evaluate_clip", "gravity_error", "interaction_blur", "permanence", "velocity_error",
]
