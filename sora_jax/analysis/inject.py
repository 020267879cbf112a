"""Injected failures: corrupt ground-truth clips the way video models fail, and check the metrics catch it.

A metric is trusted only after it has caught injected failures (PHYSICS.md).
Each injection takes a ground-truth clip ``(video uint8 (t, h, w, 3), truth)``
and returns an :class:`Injection`: the corrupted video, what was done (objects,
frames, detail) and the metrics that must flag it (``targets``). The truth is
left as it was -- the metric compares the corrupted clip with what *should*
have happened.

Edits are exact: the scene is re-rendered with the change and only the pixels
that differ from a render of the untouched truth are copied into the clip, so
everything else stays byte-identical.

==============  =========================================================  ==============
kind            what is done                                               target metrics
==============  =========================================================  ==============
vanish          an object is gone for 3 frames                             permanence, count
teleport        an object jumps (>= 5 px) and carries on from there         velocity
flip            an object's horizontal motion is reversed (its path         direction
                mirrored about its middle)
mirror          the whole clip swapped left/right                          direction (camera on pans)
duplicate       a copy of an object appears for a few frames                count, permanence
swap_colours    two objects swap colours (one recoloured if alone),        attributes
                after an occlusion where there is one
reshape         an object turns into another shape (after an occlusion     attributes
                where there is one)
undo_effect     the block's new colour reverts (or never comes); colliding  cause_effect / collision
                bodies pass through each other
blur_contact    Gaussian blur (sigma 1.5 px) over a contact                blur
no_gravity      the scene re-simulated without gravity                     gravity
camera_freeze   the camera stands still while it should pan                camera
resize          an object grows (or shrinks) by 60% from some frame on     attributes
==============  =========================================================  ==============

:func:`injection_report` measures, over ``n_clips`` clips per injection, the
detection rate of every metric (targets must reach 95%) and the false-positive
rate of every metric on untouched clips (at most 5%).
"""

from __future__ import annotations

import dataclasses
import math
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from sora_jax.analysis._progress import progress_bar
from sora_jax.analysis.metrics import METRICS, check_metrics, evaluate_clip
from sora_jax.analysis.observe import check_truth, check_video
from sora_jax.analysis.resim import render_like, resimulate
from sora_jax.config import FAMILIES, WorldConfig
from sora_jax.world.track import expected_colours
from sora_jax.world.types import PALETTE, Truth

INJECTIONS: tuple[str, ...] = ("vanish", "teleport", "flip", "mirror", "duplicate", "swap_colours", "reshape",
                               "undo_effect", "blur_contact", "no_gravity", "camera_freeze", "resize")
# Families whose clips can carry each injection (the report samples these).
INJECTION_FAMILIES: dict[str, tuple[str, ...]] = {
    "vanish": FAMILIES,
    "teleport": FAMILIES,
    "flip": ("uniform", "parabola", "collision", "occlusion", "camera_pan"),
    "mirror": ("relation", "uniform", "camera_pan"),
    "duplicate": FAMILIES,
    "swap_colours": FAMILIES,
    "reshape": FAMILIES,
    "undo_effect": ("collision", "cause_effect"),
    "blur_contact": ("collision", "cause_effect"),
    "no_gravity": ("parabola", "bounce"),
    "camera_freeze": ("camera_pan",),
    "resize": FAMILIES,
}
FAR = 1.0e4          # metres: where an object goes to be out of every frame


class NotApplicable(ValueError):
    """This clip has nothing this injection can act on (e.g. no collision to blur)."""


@dataclasses.dataclass(frozen=True)
class Injection:
    """A corrupted clip and what was done to it.

    kind     one of ``INJECTIONS``
    video    uint8 (t, h, w, 3), the corrupted clip
    targets  metrics that must flag it
    objects  ground-truth objects acted on
    frames   frames changed
    detail   kind-specific facts (offset in pixels, colours, ...)
    """

    kind: str
    video: np.ndarray
    targets: tuple[str, ...]
    objects: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class _Clip:
    video: np.ndarray
    truth: Truth
    rng: np.random.Generator
    antialias: int

    @property
    def T(self) -> int:
        return self.truth.num_frames

    @property
    def K(self) -> int:
        return self.truth.num_objects

    @property
    def px_per_m(self) -> float:
        return self.video.shape[1] / self.truth.view[1]

    def r_px(self, k: int) -> float:
        return float(self.truth.radius[k]) * self.px_per_m

    def render(self, truth: Truth) -> np.ndarray:
        return render_like(truth, self.video, self.antialias)

    def apply(self, new: Truth, frames: Sequence[int] | None = None, base: Truth | None = None) -> np.ndarray:
        """The clip with the pixels where ``new`` renders differently from ``base`` (default: the truth)."""
        r0 = self.render(base or self.truth)
        r1 = self.render(new)
        diff = (r0 != r1).any(-1)
        if frames is not None:
            keep = np.zeros(self.T, bool)
            keep[list(frames)] = True
            diff &= keep[:, None, None]
        out = self.video.copy()
        out[diff] = r1[diff]
        return out

    def inside(self, k: int, p: np.ndarray, t: int, margin_px: float = 1.0, radius: float | None = None) -> bool:
        """Object ``k`` centred at world ``p`` in frame ``t`` is fully in view, clear of the edges."""
        r = float(self.truth.radius[k]) if radius is None else radius
        lo = self.truth.camera[t] + r + margin_px / self.px_per_m
        hi = self.truth.camera[t] + np.asarray(self.truth.view) - r - margin_px / self.px_per_m
        return bool(np.all(p >= lo) and np.all(p <= hi))

    def clear(self, k: int, p: np.ndarray, t: int, gap_px: float = 3.0, radius: float | None = None,
              skip: Sequence[int] = ()) -> bool:
        """``p`` keeps ``gap_px`` from every other object and every static box in frame ``t``."""
        tr = self.truth
        r = float(tr.radius[k]) if radius is None else radius
        gap = gap_px / self.px_per_m
        for j in range(self.K):
            if j == k or j in skip:
                continue
            if np.linalg.norm(p - tr.positions[t, j]) < r + float(tr.radius[j]) + gap:
                return False
        for s in tr.static:
            x0, y0, x1, y1 = s["box"]
            if x0 - r - gap < p[0] < x1 + r + gap and y0 - r - gap < p[1] < y1 + r + gap:
                return False
        return True


def _replace(truth: Truth, **kw: Any) -> Truth:
    return dataclasses.replace(truth, **kw)


def _with_params(truth: Truth, **kw: Any) -> Truth:
    params = dict(truth.params)
    params.update(kw)
    return dataclasses.replace(truth, params=params)


def _full_frames(c: _Clip, k: int, need: float = 1.0) -> np.ndarray:
    return np.nonzero(c.truth.visible[:, k] >= need)[0]


def _pick(c: _Clip, options: Sequence[Any], what: str) -> Any:
    if not options:
        raise NotApplicable(f"{what} (family {c.truth.family!r}, seed {c.truth.seed})")
    return options[int(c.rng.integers(len(options)))]


def _random_offsets(c: _Clip, magnitude_px: float, n: int = 48) -> np.ndarray:
    ang = c.rng.uniform(0, 2 * math.pi, n)
    mag = magnitude_px * c.rng.uniform(1.0, 1.6, n) / c.px_per_m
    return np.stack([np.cos(ang), np.sin(ang)], -1) * mag[:, None]


# --------------------------------------------------------------------------- #
# Injections
# --------------------------------------------------------------------------- #


def _vanish(c: _Clip, frames: int = 3) -> Injection:
    tr = c.truth
    opts = [(k, t) for k in range(c.K) for t in range(c.T - frames + 1)
            if (tr.visible[t:t + frames, k] >= 0.9).all()]
    k, t0 = _pick(c, opts, f"no object is in view for {frames} frames")
    pos = tr.positions.copy()
    pos[t0:t0 + frames, k] = FAR
    fr = tuple(range(t0, t0 + frames))
    return Injection("vanish", c.apply(_replace(tr, positions=pos)), ("permanence", "count"), (k,), fr, {})


def _teleport(c: _Clip) -> Injection:
    tr = c.truth
    opts = [(k, t) for k in range(c.K) for t in range(1, c.T) if tr.visible[t - 1, k] >= 1.0 and tr.visible[t, k] >= 1.0]
    order = c.rng.permutation(len(opts))
    for i in order:
        k, t0 = opts[i]
        for off in _random_offsets(c, max(5.0, 1.5 * c.r_px(k))):
            last = min(t0 + 1, c.T - 1)
            if all(c.inside(k, tr.positions[t, k] + off, t) and c.clear(k, tr.positions[t, k] + off, t)
                   for t in range(t0, last + 1)):
                pos = tr.positions.copy()
                pos[t0:, k] += off
                return Injection("teleport", c.apply(_replace(tr, positions=pos)), ("velocity",), (k,),
                                 tuple(range(t0, c.T)), {"offset_px": (off * c.px_per_m).tolist()})
    raise NotApplicable(f"no object can jump and stay in view (family {tr.family!r}, seed {tr.seed})")


def _min_disp(c: _Clip) -> float:
    return max(0.05 * c.truth.view[0], 2.0 / c.px_per_m)


def _flip(c: _Clip) -> Injection:
    tr = c.truth
    delta = _min_disp(c)
    opts = []
    for k in range(c.K):
        full = _full_frames(c, k)
        if len(full) >= 3 and abs(tr.positions[full[-1], k, 0] - tr.positions[full[0], k, 0]) > 2 * delta:
            opts.append(k)
    k = _pick(c, opts, "no object moves far enough horizontally")
    x = tr.positions[:, k, 0]
    on = tr.visible[:, k] > 0
    lo, hi = x[on].min(), x[on].max()
    pos = tr.positions.copy()
    pos[:, k, 0] = lo + hi - x
    return Injection("flip", c.apply(_replace(tr, positions=pos)), ("direction",), (k,), tuple(range(c.T)), {})


def _mirror(c: _Clip) -> Injection:
    tr = c.truth
    delta = _min_disp(c)
    horiz_motion = any(len(f := _full_frames(c, k)) >= 3
                       and abs(tr.positions[f[-1], k, 0] - tr.positions[f[0], k, 0]) > 2 * delta for k in range(c.K))
    horiz_rel = False
    for i in range(c.K):
        for j in range(i + 1, c.K):
            both = (tr.visible[:, i] >= 1) & (tr.visible[:, j] >= 1)
            if both.sum() >= 3:
                d = tr.positions[both, i] - tr.positions[both, j]
                horiz_rel |= bool(np.all(np.abs(d[:, 0]) > np.abs(d[:, 1]) + delta))
    cam = tr.camera[-1] - tr.camera[0]
    pan = abs(cam[0]) * c.px_per_m > 4 and abs(cam[0]) > abs(cam[1])
    targets = (("direction",) if horiz_motion or horiz_rel else ()) + (("camera",) if pan else ())
    if not targets:
        raise NotApplicable(f"nothing in the clip tells left from right (family {tr.family!r}, seed {tr.seed})")
    return Injection("mirror", np.ascontiguousarray(c.video[:, :, ::-1]), targets, tuple(range(c.K)),
                     tuple(range(c.T)), {})


def _extend(truth: Truth, k: int, pos: np.ndarray, colour: str | None = None) -> Truth:
    """``truth`` with one more object: a copy of ``k`` at positions ``pos`` (t, 2)."""
    p = truth.params
    K = truth.num_objects
    cat = lambda a, b: np.concatenate([a, b], axis=1)     # noqa: E731
    vis = np.where(np.abs(pos[:, 0]) < FAR / 2, 1.0, 0.0)
    params = dict(p)
    for key in ("colour_after", "mass", "restitution", "static_body", "speed"):
        if key in p and p[key] is not None:
            params[key] = list(p[key]) + [None if key == "colour_after" else p[key][k]]
    return dataclasses.replace(
        truth, positions=cat(truth.positions, pos[:, None]), velocities=cat(truth.velocities, truth.velocities[:, k:k + 1]),
        radius=np.append(truth.radius, truth.radius[k]), colour=truth.colour + ((colour or truth.colour[k]),),
        shape=truth.shape + (truth.shape[k],), visible=cat(truth.visible, vis[:, None]),
        in_frame=cat(truth.in_frame, (vis > 0)[:, None]), state=cat(truth.state, np.zeros((truth.num_frames, 1), truth.state.dtype)),
        params=params)


def _duplicate(c: _Clip, frames: int = 3) -> Injection:
    tr = c.truth
    after = tr.params.get("colour_after") or [None] * c.K
    ks = [k for k in range(c.K) if after[k] is None and len(_full_frames(c, k, 0.5))]
    opts = [(k, t) for k in ks for t in range(0, c.T - frames + 1)]
    order = c.rng.permutation(len(opts))
    for i in order[:40]:
        k, t0 = opts[i]
        for off in _random_offsets(c, 2.5 * c.r_px(k) + 4.0, 16):
            ok = [t for t in range(t0, c.T) if c.inside(k, tr.positions[t, k] + off, t)
                  and c.clear(k, tr.positions[t, k] + off, t)]
            run = 0
            while run < len(ok) and ok[run] == t0 + run:
                run += 1
            if run >= frames:
                pos = np.full((c.T, 2), FAR)
                pos[t0:t0 + run] = tr.positions[t0:t0 + run, k] + off
                new = _extend(tr, k, pos)
                base = _extend(tr, k, np.full((c.T, 2), FAR))
                return Injection("duplicate", c.apply(new, base=base), ("count", "permanence"), (k,),
                                 tuple(range(t0, t0 + run)), {"offset_px": (off * c.px_per_m).tolist()})
    raise NotApplicable(f"no room for a copy of an object (family {tr.family!r}, seed {tr.seed})")


def _render_colours(c: _Clip, colours: list[list[str]], frames: Sequence[int]) -> np.ndarray:
    """The clip with object ``k`` drawn in ``colours[t][k]`` in ``frames`` (exact re-render per colour set)."""
    tr = c.truth
    out = c.video.copy()
    r0 = c.render(tr)
    groups: dict[tuple[str, ...], list[int]] = {}
    for t in frames:
        groups.setdefault(tuple(colours[t]), []).append(t)
    for cols, ts in groups.items():
        new = _with_params(_replace(tr, colour=cols, state=np.zeros_like(tr.state)), colour_after=[None] * c.K)
        r1 = c.render(new)
        for t in ts:
            diff = (r0[t] != r1[t]).any(-1)
            out[t][diff] = r1[t][diff]
    return out


def _swap_colours(c: _Clip) -> Injection:
    tr = c.truth
    want = expected_colours(tr)

    def start_frame(k: int) -> int | None:
        """After an occlusion if there is one (the object reappears), else a random frame; needs 2 full frames after."""
        hidden = np.nonzero((tr.visible[:, k] < 0.5) & tr.in_frame[:, k])[0]
        full = _full_frames(c, k)
        if len(hidden):
            after = full[full > hidden[-1]]
            return int(after[0]) if len(after) >= 2 and after[1] == after[0] + 1 else None
        cands = [int(t) for t in full if t + 1 in full and t >= 1]
        return int(c.rng.choice(cands)) if cands else None

    ks = [k for k in range(c.K) if start_frame(k) is not None]
    k = _pick(c, ks, "no object is in full view for two frames")
    t0 = start_frame(k)
    others = [j for j in range(c.K) if j != k and all(want[t][j] != want[t][k] for t in range(t0, c.T))
              and (tr.visible[t0:, j] >= 1).sum() >= 2]
    new = [list(row) for row in want]
    if others:
        j = int(c.rng.choice(others))
        for t in range(t0, c.T):
            new[t][k], new[t][j] = want[t][j], want[t][k]
        objs, detail = (k, j), {"swapped": [tr.colour[k], tr.colour[j]]}
    else:
        used = {x for row in want for x in row}
        free = [p for p in PALETTE if p not in used]
        col = str(c.rng.choice(free))
        for t in range(t0, c.T):
            new[t][k] = col
        objs, detail = (k,), {"recoloured": [tr.colour[k], col]}
    frames = tuple(range(t0, c.T))
    return Injection("swap_colours", _render_colours(c, new, frames), ("attributes",), objs, frames, detail)


def _reshape(c: _Clip) -> Injection:
    tr = c.truth
    for k in c.rng.permutation(c.K):
        full = [int(t) for t in _full_frames(c, k) if t >= 1]
        hidden = np.nonzero((tr.visible[:, k] < 0.5) & tr.in_frame[:, k])[0]
        if len(hidden):                                        # after an occlusion where there is one
            full = [t for t in full if t > hidden[-1]][:1]
        starts = [t for t in full if t + 1 in _full_frames(c, k)]
        if not starts or c.r_px(k) < 3.0:
            continue
        t0 = int(c.rng.choice(starts))
        new_shape = str(c.rng.choice([s for s in ("circle", "square", "triangle") if s != tr.shape[k]]))
        shapes = list(tr.shape)
        shapes[k] = new_shape
        frames = tuple(range(t0, c.T))
        return Injection("reshape", c.apply(_replace(tr, shape=tuple(shapes)), frames), ("attributes",), (int(k),),
                         frames, {"shapes": [tr.shape[k], new_shape]})
    raise NotApplicable(f"no object of >= 3 px in full view for two frames (family {tr.family!r}, seed {tr.seed})")


def _undo_effect(c: _Clip) -> Injection:
    tr = c.truth
    after = tr.params.get("colour_after") or [None] * c.K
    blocks = [k for k in range(c.K) if after[k] is not None and (tr.state[:, k] > 0).any()]
    if blocks:
        k = blocks[0]
        f = int(np.argmax(tr.state[:, k] > 0))
        state = tr.state.copy()
        if f <= c.T - 3:
            state[f + 1:, k] = 0                               # the effect shows once, then reverts
            how, frames = "reverts", tuple(range(f + 1, c.T))
        else:
            state[:, k] = 0                                    # the effect never shows
            how, frames = "never", tuple(range(f, c.T))
        return Injection("undo_effect", c.apply(_replace(tr, state=state)), ("cause_effect",), (k,), frames,
                         {"effect": how, "event_frame": f})
    dyn = ~np.asarray(tr.params.get("static_body") or [False] * c.K, bool)
    g = float(tr.params.get("gravity", 0.0) or 0.0)
    for e in tr.events:
        if e.kind != "collision" or len(e.bodies) != 2 or min(e.bodies) < 0 or not dyn[list(e.bodies)].all():
            continue
        f = int(e.frame)
        b = list(e.bodies)
        if f < 2 or f > c.T - 3 or not (tr.visible[f - 2:f + 2][:, b] >= 1).all():
            continue
        pos = tr.positions.copy()
        tau = (np.arange(f, c.T) - (f - 1))[:, None] * tr.dt
        for k in b:                                            # keep flying as if nothing was there
            pos[f:, k] = tr.positions[f - 1, k] + tr.velocities[f - 1, k] * tau + 0.5 * np.array([0.0, -g]) * tau ** 2
        return Injection("undo_effect", c.apply(_replace(tr, positions=pos)), ("collision",), tuple(b),
                         tuple(range(f, c.T)), {"effect": "pass_through", "event_frame": f})
    raise NotApplicable(f"no state change and no collision in view (family {tr.family!r}, seed {tr.seed})")


def _blur_contact(c: _Clip, sigma: float = 1.5) -> Injection:
    tr = c.truth
    p = tr.to_pixels(c.video.shape[1], c.video.shape[2])
    for e in tr.events:
        if e.kind != "collision" or len(e.bodies) != 2 or min(e.bodies) < 0:
            continue
        i, j = e.bodies
        frames = [t for t in (e.frame - 1, e.frame) if 0 <= t < c.T and tr.visible[t, i] >= 0.5 and tr.visible[t, j] >= 0.5]
        if not frames:
            continue
        out = c.video.copy()
        H, W = c.video.shape[1:3]
        for t in frames:
            blurred = ndimage.gaussian_filter(c.video[t].astype(np.float32), sigma=(sigma, sigma, 0))
            lo = np.minimum(p[t, i] - c.r_px(i), p[t, j] - c.r_px(j)) - 3
            hi = np.maximum(p[t, i] + c.r_px(i), p[t, j] + c.r_px(j)) + 3
            c0, r0 = max(0, int(lo[0])), max(0, int(lo[1]))
            c1, r1 = min(W, int(math.ceil(hi[0])) + 1), min(H, int(math.ceil(hi[1])) + 1)
            out[t, r0:r1, c0:c1] = np.clip(blurred[r0:r1, c0:c1] + 0.5, 0, 255).astype(np.uint8)
        return Injection("blur_contact", out, ("blur",), (int(i), int(j)), tuple(frames), {"sigma": sigma})
    raise NotApplicable(f"no contact between two objects in view (family {tr.family!r}, seed {tr.seed})")


def _no_gravity(c: _Clip) -> Injection:
    tr = c.truth
    if not float(tr.params.get("gravity", 0.0) or 0.0) > 0:
        raise NotApplicable(f"no gravity in this scene (family {tr.family!r}, seed {tr.seed})")
    new = resimulate(tr, gravity=0.0)
    return Injection("no_gravity", c.apply(new), ("gravity",), tuple(range(c.K)), tuple(range(c.T)), {})


def _camera_freeze(c: _Clip) -> Injection:
    tr = c.truth
    if np.linalg.norm(tr.camera[-1] - tr.camera[0]) * c.px_per_m < 4.0:
        raise NotApplicable(f"the camera does not move (family {tr.family!r}, seed {tr.seed})")
    cam = np.repeat(tr.camera[:1], c.T, 0)
    return Injection("camera_freeze", c.apply(_replace(tr, camera=cam)), ("camera",), (), tuple(range(c.T)), {})


def _resize(c: _Clip, factor: float = 1.6) -> Injection:
    tr = c.truth
    for k in c.rng.permutation(c.K):
        full = [int(t) for t in _full_frames(c, k) if t >= 1]
        starts = [t for t in full if t + 1 in full]
        if not starts:
            continue
        t0 = int(c.rng.choice(starts))
        for f in (factor, 1.0 / factor):
            r = float(tr.radius[k]) * f
            if r * c.px_per_m < 2.0:
                continue
            ok = [t for t in range(t0, c.T) if tr.visible[t, k] >= 1 and c.inside(k, tr.positions[t, k], t, radius=r)
                  and c.clear(k, tr.positions[t, k], t, radius=r)]
            if len(ok) >= 2 and ok[1] == ok[0] + 1 and ok[0] == t0:
                radius = tr.radius.copy()
                radius[k] = r
                frames = tuple(range(t0, c.T))
                return Injection("resize", c.apply(_replace(tr, radius=radius), frames), ("attributes",), (int(k),),
                                 frames, {"factor": f})
    raise NotApplicable(f"no object can change size in full view (family {tr.family!r}, seed {tr.seed})")


_FUNCS: dict[str, Callable[[_Clip], Injection]] = {
    "vanish": _vanish, "teleport": _teleport, "flip": _flip, "mirror": _mirror, "duplicate": _duplicate,
    "swap_colours": _swap_colours, "reshape": _reshape, "undo_effect": _undo_effect, "blur_contact": _blur_contact,
    "no_gravity": _no_gravity, "camera_freeze": _camera_freeze, "resize": _resize,
}


def inject(kind: str, video: np.ndarray, truth: Truth, *, seed: int = 0, antialias: int = 4) -> Injection:
    """Corrupt a ground-truth clip with one failure (see the module table). Seeded: same input, same output.

    ``antialias`` should be the one the clip was rendered with (the world's
    default is 4). Raises :class:`NotApplicable` (a ``ValueError``) when the
    clip has nothing to act on, ``ValueError`` for an unknown kind or a
    video that does not fit its truth.
    """
    if kind not in _FUNCS:
        raise ValueError(f"unknown injection {kind!r}; valid: {', '.join(INJECTIONS)}")
    video = check_video(video)
    check_truth(truth, video)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(kind.encode()), int(truth.seed)]))
    return _FUNCS[kind](_Clip(video, truth, rng, int(antialias)))


# --------------------------------------------------------------------------- #
# The measurement
# --------------------------------------------------------------------------- #


def injection_report(n_clips: int = 50, *, world: WorldConfig | None = None, kinds: Sequence[str] | None = None,
                     metrics: Sequence[str] | None = None, seed: int = 0, false_positive_clips: int | None = None,
                     progress: bool = False) -> dict[str, Any]:
    """Detection rate of every metric for every injection, and false positives on untouched clips.

    For each injection, clips of the families in ``INJECTION_FAMILIES`` are
    drawn (seeds ``seed * 100_000 + i``, round-robin over the families) until
    ``n_clips`` of them can carry it; every metric runs on each corrupted clip
    against the untouched truth. ``detection[kind][metric]`` is the share of
    those clips the metric flags (a clip the metric cannot measure counts as
    missed). ``false_positive[metric]`` is the share of measurable untouched
    clips it flags, over ``false_positive_clips`` clips per family (default
    ``n_clips``). ``targets`` lists the (injection, metric) pairs that must
    reach 95% detection; ``passed`` says whether all targets and the 5%
    false-positive bound hold.
    """
    from sora_jax.world import families as F

    world = WorldConfig() if world is None else world
    kinds = INJECTIONS if kinds is None else tuple(kinds)
    bad = [k for k in kinds if k not in _FUNCS]
    if bad:
        raise ValueError(f"unknown injections {bad}; valid: {', '.join(INJECTIONS)}")
    if n_clips < 1:
        raise ValueError(f"n_clips={n_clips}: must be >= 1")
    names = check_metrics(metrics)
    fp_n = n_clips if false_positive_clips is None else int(false_positive_clips)
    start = time.perf_counter()
    bar = progress_bar(progress, len(kinds) * n_clips + fp_n * len(world.families), "injections")
    detection: dict[str, dict[str, float]] = {}
    target_pairs: dict[str, tuple[str, ...]] = {}
    examples: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        fams = [f for f in INJECTION_FAMILIES[kind] if f in FAMILIES]
        flags: list[dict[str, bool]] = []
        targets: set[str] = set()
        missed: list[dict[str, Any]] = []
        i = 0
        while len(flags) < n_clips:
            if i > 40 * n_clips:
                raise RuntimeError(f"injection {kind!r}: only {len(flags)} of {i} clips could carry it")
            family = fams[i % len(fams)]
            clip_seed = seed * 100_000 + i
            i += 1
            video, truth = F.make_clip(world, family, clip_seed)
            try:
                inj = inject(kind, video, truth, seed=clip_seed, antialias=world.antialias)
            except NotApplicable:
                continue
            res = evaluate_clip(inj.video, truth, metrics=names, world=world)
            flags.append({m: r.flagged for m, r in res.items()} | {"_targets": inj.targets})
            targets.update(t for t in inj.targets if t in names)
            for t in inj.targets:
                if t in res and not res[t].flagged and len(missed) < 5:
                    missed.append({"family": family, "seed": clip_seed, "metric": t, "measurable": res[t].measurable,
                                   "reason": res[t].reason, "value": _num(res[t].value)})
            bar.update(1)
        detection[kind] = {m: float(np.mean([f[m] for f in flags])) for m in names}
        # a target is scored on the clips where it was a target (undo_effect: collision or cause_effect)
        for t in targets:
            sel = [f[t] for f in flags if t in f["_targets"]]
            detection[kind][t] = float(np.mean(sel))
        target_pairs[kind] = tuple(sorted(targets))
        examples[kind] = missed
    fp_flags: dict[str, list[bool]] = {m: [] for m in names}
    measurable: dict[str, int] = {m: 0 for m in names}
    for family in world.families:
        for i in range(fp_n):
            video, truth = F.make_clip(world, family, seed * 100_000 + 50_000 + i)
            res = evaluate_clip(video, truth, metrics=names, world=world)
            for m, r in res.items():
                if r.measurable:
                    fp_flags[m].append(r.flagged)
                    measurable[m] += 1
            bar.update(1)
    bar.close()
    false_positive = {m: (float(np.mean(v)) if v else None) for m, v in fp_flags.items()}
    ok_targets = all(detection[k][t] >= 0.95 for k, ts in target_pairs.items() for t in ts)
    ok_fp = all(v is None or v <= 0.05 for v in false_positive.values())
    return {"n_clips": n_clips, "false_positive_clips_per_family": fp_n, "world": dataclasses.asdict(world),
            "detection": detection, "targets": {k: list(v) for k, v in target_pairs.items()},
            "false_positive": false_positive, "false_positive_measurable": measurable,
            "missed_examples": examples, "passed": bool(ok_targets and ok_fp),
            "seconds": time.perf_counter() - start}


def format_injection_report(report: dict[str, Any]) -> str:
    """A plain-text table: one row per injection (target metrics starred), then false positives."""
    names = list(next(iter(report["detection"].values())).keys()) if report["detection"] else list(METRICS)
    short = {m: m[:9] for m in names}
    lines = ["detection rate (target metrics marked *; need >= 0.95)",
             f"{'injection':14s}" + "".join(f"{short[m]:>11s}" for m in names)]
    for kind, row in report["detection"].items():
        cells = []
        for m in names:
            star = "*" if m in report["targets"].get(kind, ()) else " "
            cells.append(f"{row[m]:>10.2f}{star}")
        lines.append(f"{kind:14s}" + "".join(cells))
    fp = report["false_positive"]
    lines.append(f"{'false pos.':14s}" + "".join(f"{(fp[m] if fp[m] is not None else float('nan')):>11.3f}" for m in names))
    lines.append(f"passed: {report['passed']}  ({report['seconds']:.0f} s, {report['n_clips']} clips per injection, "
                 f"{report['false_positive_clips_per_family']} untouched clips per family)")
    return "\n".join(lines)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


__all__ = ["INJECTIONS", "INJECTION_FAMILIES", "Injection", "NotApplicable", "format_injection_report", "inject",
           "injection_report"]
