"""Scene families: seeded initial conditions for each kind of physics clip.

Axes: ``t`` frames, ``k`` bodies. Units: metres and seconds (see ``sim.py``).

Each family turns ``(cfg, family, seed)`` into a :class:`~sora_jax.world.sim.Scene`
-- bodies with position, velocity, radius, colour, shape, mass and restitution,
plus static boxes (walls, floor, occluders, landmarks, the cause-and-effect
block), gravity and camera motion. The same triple always gives the same scene.

Parameter ranges come in two presets (``cfg.ranges``) and two splits
(``cfg.split``); see :data:`RANGES` and :func:`param_ranges`.

* ``"phyworld"``: PhyWorld's numbers (Kang et al. 2024) in absolute metres for
  their 10 x 10 m view, 0.1 s steps and gravity 2.5 m/s^2 -- in distribution
  (ID) radius 0.7-1.5 m and speed 1-4 m/s; out of distribution (OOD) radius
  0.3-0.6 or 1.5-2.0 m and speed 0-0.8 or 4.5-6.0 m/s. Use
  :func:`phyworld_config` for their exact setting.
* ``"default"``: the same speeds with slightly smaller bodies (ID radius 0.6-1.2,
  OOD 0.3-0.5 or 1.3-1.8) so five objects fit a small frame; lengths scale with
  ``cfg.view_height / 10``.

Families (``config.FAMILIES``):

========== ==============================================================
uniform     1-2 bodies in straight lines at constant speed (no gravity)
parabola    a ball thrown under gravity over a floor
collision   2 (sometimes 3) discs that collide; elastic (e = 1) or not; both in view
            at the start and at contact (a very short clip may end before it)
bounce      1-3 discs in a closed box of walls, gravity on or off
occlusion   a body passes behind a static grey occluder (permanence); it starts
            fully visible when it is fast enough to reach the occluder in the clip
counting    1..max_objects slow bodies, one colour or several, never touching and
            always fully in view (grid-jitter placement when crowded)
relation    two still or slowly co-moving bodies, clearly left/right or above/below
camera_pan  the camera pans over a larger world with grey landmarks
cause_effect a ball hits a block; the block changes colour for good
========== ==============================================================

Bodies start inside the view (except where a fast body's path is longer than
the view) and never overlap.

Robustness. A world stream must never die, so every family produces a valid
clip for every seed at every frame size, aspect ratio and clip length. A
sampler whose random draw does not work out (e.g. a collision that cannot be
aimed in a short clip) raises the internal ``_Retry``; :func:`sample_scene`
then tries derived seeds ``(seed, family, attempt)`` -- deterministically --
and from attempt ``RELAX_FROM`` on the samplers relax (2-pixel instead of
3-pixel clearance, fewer optional bodies, radii below the preset's range in
crowded scenes). Only impossible requests raise ``ValueError``: an unknown
family, a non-positive size, fewer than one frame, or more objects than can
fit in the view even when relaxed.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import UInt8

from sora_jax.config import FAMILIES, WorldConfig, validate
from sora_jax.world.render import render, render_batch
from sora_jax.world.sim import BIG, EVENT_MIN_DV, Body, Scene, StaticBox, simulate, simulate_batch
from sora_jax.world.types import PALETTE, Truth

Intervals = tuple[tuple[float, float], ...]

# Ranges in metres for a 10 m tall view (the "default" preset scales with view_height / 10).
RANGES: dict[str, dict[str, dict[str, Intervals]]] = {
    "default": {
        "id": {"radius": ((0.6, 1.2),), "speed": ((1.0, 4.0),), "restitution": ((0.6, 1.0),),
               "camera_speed": ((0.5, 2.0),)},
        "ood": {"radius": ((0.3, 0.5), (1.3, 1.8)), "speed": ((0.0, 0.8), (4.5, 6.0)),
                "restitution": ((0.2, 0.5),), "camera_speed": ((2.5, 3.5),)},
    },
    "phyworld": {
        "id": {"radius": ((0.7, 1.5),), "speed": ((1.0, 4.0),), "restitution": ((0.6, 1.0),),
               "camera_speed": ((0.5, 2.0),)},
        "ood": {"radius": ((0.3, 0.6), (1.5, 2.0)), "speed": ((0.0, 0.8), (4.5, 6.0)),
                "restitution": ((0.2, 0.5),), "camera_speed": ((2.5, 3.5),)},
    },
}
PHYWORLD_GRAVITY = 2.5
# Families whose bodies only drift: their speed range is the split's range times this factor.
SLOW_FACTOR = {"counting": 0.25, "relation": 0.15, "camera_pan": 0.3}
# Most bodies a family uses (counting uses cfg.max_objects); least it needs.
MAX_BODIES = {"uniform": 2, "parabola": 1, "collision": 3, "bounce": 3, "occlusion": 1, "relation": 2,
              "camera_pan": 2, "cause_effect": 2}
MIN_BODIES = {"collision": 2, "relation": 2, "cause_effect": 2}
PACKING = 0.35     # bodies (plus half a gap around each) may cover at most this share of the area
ATTEMPTS = 8       # derived seeds sample_scene tries before giving up
RELAX_FROM = 4     # from this attempt on, samplers relax their constraints (see _Ctx)
R_FLOOR_PX = 1.5   # pixels: the smallest radius a crowded scene may shrink its bodies to
_MARGIN = 1e-6     # metres: keep placements strictly inside their bounds (rounding never pokes out)


def phyworld_config(**overrides: Any) -> WorldConfig:
    """PhyWorld's setting: 10 x 10 m view, 0.1 s per frame, gravity 2.5, their ranges, 32 frames."""
    kw = dict(height=64, width=64, num_frames=32, dt=0.1, view_height=10.0, gravity=PHYWORLD_GRAVITY,
              ranges="phyworld", families=("uniform", "collision", "parabola"))
    kw.update(overrides)
    cfg = WorldConfig(**kw)
    validate(cfg)
    return cfg


def param_ranges(cfg: WorldConfig, family: str) -> dict[str, Any]:
    """The parameter ranges ``family`` samples from under ``cfg`` (metres, m/s).

    Keys: radius, speed, restitution, camera_speed (unions of intervals),
    gravity (m/s^2), count ((min, max) number of bodies).
    """
    _check(cfg, family, 0)
    preset = RANGES[cfg.ranges][cfg.split]
    scale = cfg.view_height / 10.0 if cfg.ranges == "default" else 1.0
    f = SLOW_FACTOR.get(family, 1.0)
    out = {
        "radius": tuple((a * scale, b * scale) for a, b in preset["radius"]),
        "speed": tuple((a * scale * f, b * scale * f) for a, b in preset["speed"]),
        "restitution": preset["restitution"],
        "camera_speed": tuple((a * scale, b * scale) for a, b in preset["camera_speed"]),
        "gravity": PHYWORLD_GRAVITY if cfg.ranges == "phyworld" else float(cfg.gravity),
    }
    hi = cfg.max_objects if family == "counting" else min(MAX_BODIES[family], cfg.max_objects)
    out["count"] = (1 if family == "counting" else MIN_BODIES.get(family, 1), hi)
    return out


# --------------------------------------------------------------------------- #
# Validation and small helpers
# --------------------------------------------------------------------------- #


def _check(cfg: WorldConfig, family: str, seed: int) -> None:
    if not isinstance(cfg, WorldConfig):
        raise ValueError(f"expected a WorldConfig, got {type(cfg).__name__}")
    if family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r}; valid: {', '.join(FAMILIES)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r}: must be an integer >= 0")
    if cfg.num_frames < 1:
        raise ValueError(f"world.num_frames={cfg.num_frames}: must be >= 1")
    if cfg.height < 1 or cfg.width < 1:
        raise ValueError(f"world size {cfg.height}x{cfg.width}: height and width must be >= 1 pixel")
    if not cfg.view_height > 0:
        raise ValueError(f"world.view_height={cfg.view_height}: must be > 0 metres")
    if cfg.split not in ("id", "ood"):
        raise ValueError(f"world.split={cfg.split!r}: valid: 'id', 'ood'")
    if cfg.ranges not in RANGES:
        raise ValueError(f"world.ranges={cfg.ranges!r}: valid: {', '.join(map(repr, RANGES))}")
    if cfg.gravity < 0:
        raise ValueError(f"world.gravity={cfg.gravity}: must be >= 0 (m/s^2, pointing down)")
    validate(cfg)
    need = MIN_BODIES.get(family, 1)
    if cfg.max_objects < need:
        raise ValueError(f"family {family!r} needs {need} objects but world.max_objects={cfg.max_objects}")


class _Retry(Exception):
    """This draw of a family's parameters did not work out; :func:`sample_scene` tries a derived seed."""


def _uniform(rng: np.random.Generator, intervals: Intervals, hi: float = math.inf) -> float:
    """Sample from a union of intervals (weighted by length), clipped to <= hi."""
    iv = [(a, min(b, hi)) for a, b in intervals if a <= hi]
    if not iv:
        raise _Retry(f"no value in {intervals} is <= {hi:.3g}")
    w = np.array([b - a for a, b in iv]) + 1e-9
    a, b = iv[rng.choice(len(iv), p=w / w.sum())]
    return float(rng.uniform(a, b))


def _shape(rng: np.random.Generator) -> str:
    return str(rng.choice(["circle", "square", "triangle"], p=[0.5, 0.25, 0.25]))


def _colours(rng: np.random.Generator, n: int, exclude: Sequence[str] = ()) -> list[str]:
    names = [c for c in PALETTE if c not in exclude]
    return [str(c) for c in rng.choice(names, n, replace=n > len(names))]


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


@dataclasses.dataclass
class _Ctx:
    """Everything a family sampler needs: config, ranges and the view in metres.

    ``attempt`` counts the derived seeds tried so far; from ``RELAX_FROM`` on
    the sampler is *relaxed*: the clearance between bodies drops from 3 to 2
    pixels, radii may go below the preset's range when a scene is crowded
    (never below ``R_FLOOR_PX`` pixels) and optional extra bodies are dropped.
    """

    cfg: WorldConfig
    family: str
    rng: np.random.Generator
    ranges: dict[str, Any]
    W: float                  # view width (m)
    H: float                  # view height (m)
    T: float                  # clip duration (s), at least one dt
    gap: float                # minimal clearance between bodies (m)
    scale: float              # length scale of the preset (view_height / 10 or 1)
    px: float = 0.0           # metres per pixel
    attempt: int = 0

    @property
    def relaxed(self) -> bool:
        return self.attempt >= RELAX_FROM

    @property
    def min_gap(self) -> float:
        """The relaxed clearance: 2 pixels (or 0.1 m at the 10 m scale, whichever is larger)."""
        return max(0.1 * self.scale, 2.0 * self.px)

    @property
    def r_floor(self) -> float:
        """Smallest radius a crowded relaxed scene may use (metres)."""
        return R_FLOOR_PX * self.px

    def radius(self, n: int, cap: float = math.inf) -> float:
        """A radius from the preset's range that lets ``n`` bodies fit (and is <= ``cap``)."""
        hi = min(self.fit_radius(n), cap)
        try:
            return _uniform(self.rng, self.ranges["radius"], hi)
        except _Retry:
            if not self.relaxed or hi < self.r_floor:
                raise
            return float(self.rng.uniform(max(self.r_floor, 0.6 * hi), hi))

    def speed(self, lo: float = 0.0) -> float:
        return max(lo, _uniform(self.rng, self.ranges["speed"]))

    def restitution(self) -> float:
        return _uniform(self.rng, self.ranges["restitution"])

    def count(self, lo: int, hi: int, p: np.ndarray | None = None) -> int:
        """Number of bodies in ``[lo, hi]``; relaxed attempts use fewer (down to ``lo``)."""
        n = int(self.rng.choice(np.arange(lo, hi + 1), p=p))
        if self.relaxed:
            n = min(n, max(lo, hi - (self.attempt - RELAX_FROM + 1)))
        return n

    def fit_radius(self, n: int, area: float | None = None) -> float:
        """Largest radius at which ``n`` bodies (with clearance) comfortably fit."""
        area = self.W * self.H if area is None else area
        return math.sqrt(PACKING * area / (n * math.pi)) - self.gap / 2


def _min_dist(d: np.ndarray, u: np.ndarray, T: float) -> float:
    """Smallest |d + u t| for t in [0, T] (relative motion of two bodies)."""
    uu = float(u @ u)
    t = 0.0 if uu < 1e-15 else float(np.clip(-(d @ u) / uu, 0.0, T))
    return float(np.linalg.norm(d + u * t))


def _place_free(ctx: _Ctx, radii: Sequence[float], speeds: Sequence[float], *,
                region: tuple[float, float, float, float] | None = None, keep_in: bool = True,
                common_velocity: bool = False, tries: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities for bodies in straight-line motion that never touch.

    Directions are uniform on the circle. With ``keep_in`` each whole path stays
    in ``region`` (the view by default) when it is short enough; a path longer
    than the region is centred on it so the body crosses the view. Raises
    :class:`_Retry` when ``tries`` random layouts all fail.
    """
    rng = ctx.rng
    x0, y0, x1, y1 = region or (0.0, 0.0, ctx.W, ctx.H)
    n = len(radii)
    r = np.asarray(radii, float)
    lo_b, hi_b = np.array([x0, y0]), np.array([x1, y1])
    if np.any(hi_b - lo_b < 2 * r[:, None]):
        raise _Retry(f"objects of radius {r.max():.2f} m do not fit the region {region}")
    lo, hi = lo_b + r[:, None] + _MARGIN, hi_b - r[:, None] - _MARGIN   # (n, 2)
    need = r[:, None] + r[None, :] + ctx.gap                            # (n, n) centre distance needed
    iu = np.triu_indices(n, 1)
    chunk = 16                                   # layouts tried at once (vectorised)
    for _ in range(0, tries, chunk):
        ang = rng.uniform(0, 2 * math.pi, (chunk, 1 if common_velocity else n))
        v = np.asarray(speeds, float)[None, :, None] * np.stack([np.cos(ang), np.sin(ang)], -1)  # (c, n, 2)
        travel = v * ctx.T
        if keep_in:
            a, b = np.maximum(lo, lo - travel), np.minimum(hi, hi - travel)
            c = 0.5 * (lo + hi) - 0.5 * travel                         # path longer than the region: centre it
            long = a > b
            a = np.where(long, c - 0.1 * (hi - lo), a)
            b = np.where(long, c + 0.1 * (hi - lo), b)
        else:
            a, b = np.broadcast_to(lo, travel.shape), np.broadcast_to(hi, travel.shape)
        pos = rng.uniform(a, b)                                        # (c, n, 2)
        if n > 1:
            # closest approach of every pair's straight relative path within the clip
            d = (pos[:, :, None] - pos[:, None])[:, iu[0], iu[1]]       # (c, p, 2)
            u = (v[:, :, None] - v[:, None])[:, iu[0], iu[1]]
            uu = (u * u).sum(-1)
            t = np.clip(-(d * u).sum(-1) / np.maximum(uu, 1e-15), 0.0, ctx.T)
            m = d + u * t[..., None]
            ok = np.all(np.sqrt((m * m).sum(-1)) >= need[iu], -1)
        else:
            ok = np.ones(chunk, bool)
        if ok.any():
            i = int(np.argmax(ok))
            return pos[i], v[i]
    raise _Retry(f"could not place {n} objects of radius {', '.join(f'{x:.2f}' for x in r)} m without contact "
                 f"in a {x1 - x0:.1f} x {y1 - y0:.1f} m region after {tries} tries")


def _grid(n: int, W: float, H: float) -> tuple[int, int]:
    """Rows and columns of the grid with >= n cells whose cells are largest (squarest)."""
    best: tuple[tuple[float, int], int, int] | None = None
    for nc in range(1, n + 1):
        nr = -(-n // nc)
        key = (min(W / nc, H / nr), -nr * nc)
        if best is None or key > best[0]:
            best = (key, nr, nc)
    assert best is not None
    return best[1], best[2]


def _grid_radius_cap(ctx: _Ctx, n: int, region: tuple[float, float, float, float] | None = None) -> float:
    """Largest radius of ``n`` bodies in separate grid cells of ``region`` with clearance ``ctx.gap``."""
    x0, y0, x1, y1 = region or (0.0, 0.0, ctx.W, ctx.H)
    nr, nc = _grid(n, x1 - x0, y1 - y0)
    return (min((x1 - x0) / nc, (y1 - y0) / nr) - ctx.gap) / 2


def _place_grid(ctx: _Ctx, n: int, speeds: Sequence[float], *,
                region: tuple[float, float, float, float] | None = None,
                keep_in: bool = True) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Grid-jitter placement that cannot fail: ``(positions, velocities, radii)``.

    The region is cut into the squarest grid with at least ``n`` cells; each
    body gets its own random cell and a radius that fits it (from the preset's
    range when possible, smaller for crowded scenes, never below
    ``R_FLOOR_PX`` pixels). With ``keep_in`` its whole straight path stays in
    its cell -- the speed is lowered when the path is longer than the cell --
    so no two bodies ever touch and all stay fully in view. Without
    ``keep_in`` only the start lies in the cell (bodies in a walled box may
    meet later; the simulator handles that).
    """
    rng = ctx.rng
    x0, y0, x1, y1 = region or (0.0, 0.0, ctx.W, ctx.H)
    nr, nc = _grid(n, x1 - x0, y1 - y0)
    cell = np.array([(x1 - x0) / nc, (y1 - y0) / nr])
    gap = ctx.gap
    cap = (cell.min() - gap) / 2
    if cap < ctx.r_floor:                    # crowded: 2-pixel clearance instead of 3
        gap = min(gap, ctx.min_gap)
        cap = (cell.min() - gap) / 2
    if cap < ctx.r_floor:
        raise _Retry(f"{n} objects do not fit a {x1 - x0:.1f} x {y1 - y0:.1f} m region")
    cells = rng.permutation(nr * nc)[:n]
    pos = np.empty((n, 2))
    vel = np.empty((n, 2))
    radii = []
    for k, c in enumerate(cells):
        try:
            r = _uniform(rng, ctx.ranges["radius"], 0.85 * cap)
        except _Retry:
            r = float(rng.uniform(max(ctx.r_floor, 0.6 * cap), cap))
        lo = np.array([x0, y0]) + cell * np.array([c % nc, c // nc]) + gap / 2 + r + _MARGIN
        hi = lo + cell - gap - 2 * r - 2 * _MARGIN
        v = speeds[k] * _unit(rng.uniform(0, 2 * math.pi))
        if keep_in:
            travel = v * ctx.T
            room = hi - lo
            f = min(1.0, float(np.min(room / np.maximum(np.abs(travel), 1e-12))))
            v, travel = v * f, travel * f
            lo, hi = lo + np.maximum(0.0, -travel), hi - np.maximum(0.0, travel)
        pos[k] = rng.uniform(lo, np.maximum(lo, hi))
        vel[k] = v
        radii.append(r)
    return pos, vel, radii


def _walls(ctx: _Ctx, sides: Sequence[str], thick: float) -> tuple[list[StaticBox], tuple[float, float, float, float]]:
    """Thick static boxes along the view's edges; returns them and the free inner region."""
    W, H = ctx.W, ctx.H
    boxes = {
        "floor": StaticBox("floor", (-BIG, -BIG, W + BIG, thick), True),
        "ceiling": StaticBox("ceiling", (-BIG, H - thick, W + BIG, H + BIG), True),
        "left": StaticBox("wall", (-BIG, -BIG, thick, H + BIG), True),
        "right": StaticBox("wall", (W - thick, -BIG, W + BIG, H + BIG), True),
    }
    inner = (thick if "left" in sides else -BIG, thick if "floor" in sides else -BIG,
             W - thick if "right" in sides else W + BIG, H - thick if "ceiling" in sides else H + BIG)
    return [boxes[s] for s in sides], inner


def _inside(p: np.ndarray, r: float, W: float, H: float) -> bool:
    return bool(r <= p[0] <= W - r and r <= p[1] <= H - r)


def _weights(n: int) -> np.ndarray:
    w = 0.5 ** np.arange(n)
    return w / w.sum()


# --------------------------------------------------------------------------- #
# Families
# --------------------------------------------------------------------------- #


def _uniform_family(ctx: _Ctx):
    rng = ctx.rng
    lo, hi = ctx.ranges["count"]
    n = ctx.count(lo, hi)
    radii = [ctx.radius(n) for _ in range(n)]
    speeds = [ctx.speed() for _ in range(n)]
    pos, vel = _place_free(ctx, radii, speeds)
    cols = _colours(rng, n)
    shapes = [_shape(rng) for _ in range(n)]
    bodies = [Body(tuple(pos[k]), tuple(vel[k]), radii[k], cols[k], shapes[k]) for k in range(n)]
    return bodies, [], 0.0, {}


def _parabola_family(ctx: _Ctx):
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    g = ctx.ranges["gravity"]
    thick = 0.5 * ctx.scale
    walls, _ = _walls(ctx, ["floor"], thick)
    r = ctx.radius(1, cap=0.45 * (H - thick))
    s = ctx.speed()
    sign = 1.0 if rng.random() < 0.5 else -1.0
    theta = math.radians(rng.uniform(0.0, 50.0))
    vx, vy = sign * s * math.cos(theta), s * math.sin(theta)
    y_lo = min(max(thick + r + 0.05 * H, 0.45 * H), H - r)
    y_hi = H - r - (vy * vy / (2 * g) if g > 0 else 0.0)
    if y_hi < y_lo:                                    # too fast upwards for the view: throw flat
        theta, vy = 0.0, 0.0
        vx = sign * s
        y_hi = H - r
    y = rng.uniform(y_lo, max(y_lo, y_hi))
    x = float(np.clip(0.5 * W - 0.5 * vx * T + rng.uniform(-0.1, 0.1) * W, r, max(r, W - r)))
    e = ctx.restitution()
    body = Body((x, y), (vx, vy), r, _colours(rng, 1)[0], "circle", restitution=e)
    return [body], walls, g, {"launch_angle_deg": math.degrees(theta), "floor_top": thick}


def _collision_family(ctx: _Ctx):
    """Two discs aimed to touch at a chosen time ``tc``; sometimes a third at rest is hit next.

    Construction: pick radii, the contact normal ``n`` (from body 1 to body 2)
    and velocities that close the gap along ``n``; then pick the contact time
    ``tc`` and the contact point ``c``. Both bodies must be inside the view at
    the start (``c - n r1 - v1 tc`` and ``c + n r2 - v2 tc``) and at contact,
    which confines ``c`` to an intersection of four boxes -- sampled directly,
    with ``tc`` shortened until the intersection is not empty. The bodies
    start at least one clearance apart, so in a very short clip the contact
    may fall after the last frame (the clip shows them approaching).
    """
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    elastic = bool(rng.random() < 0.5)
    e = 1.0 if elastic else ctx.restitution()
    three = ctx.ranges["count"][1] >= 3 and rng.random() < 0.3 and not ctx.relaxed
    vmin = 0.3 * ctx.scale
    cols = _colours(rng, 3)
    view = np.array([W, H])
    start_gap = max(ctx.gap / 2, 1.5 * ctx.px)
    tries = 160
    for attempt in range(tries):
        if three and attempt == tries // 2:          # a third body does not fit this clip: two will do
            three = False
        n = 3 if three else 2
        # the two bodies side by side along the normal must fit in the view
        r1 = ctx.radius(n, cap=0.24 * min(W, H))
        r2 = ctx.radius(n, cap=0.24 * min(W, H))
        s1, s2 = ctx.speed(), ctx.speed()
        if s1 + s2 < vmin:
            s1 = vmin
        normal = _unit(rng.uniform(0, 2 * math.pi))              # from body 1 towards body 2 at contact
        v1 = s1 * _unit(math.atan2(normal[1], normal[0]) + rng.uniform(-0.5, 0.5))
        v2 = s2 * _unit(math.atan2(-normal[1], -normal[0]) + rng.uniform(-0.5, 0.5))
        un = float((v2 - v1) @ normal)                           # < 0: approaching
        m1, m2 = r1 * r1, r2 * r2
        dv_min = (1 + e) * -un * min(m1, m2) / (m1 + m2)         # smaller body's velocity change
        if un > -0.2 * vmin or dv_min < 2 * EVENT_MIN_DV:
            continue
        # start clearance >= start_gap: |d0| - R grows by at least -un * tc
        tc_min = start_gap / -un
        tc = max(tc_min, rng.uniform(0.3, 0.55) * T)
        offs = (-normal * r1, normal * r2)
        rad = (r1, r2)
        for _ in range(6):
            lo = np.full(2, -np.inf)
            hi = np.full(2, np.inf)
            for o, v, r in zip(offs, (v1, v2), rad):
                for shift in (np.zeros(2), v * tc):             # at contact and at the start
                    lo = np.maximum(lo, r - o + shift + 1e-6)
                    hi = np.minimum(hi, view - r - o + shift - 1e-6)
            if np.all(lo <= hi) or tc <= tc_min:
                break
            tc = max(tc_min, 0.6 * tc)
        if not np.all(lo <= hi):
            continue
        c = rng.uniform(lo, hi)
        p1, p2 = c + offs[0] - v1 * tc, c + offs[1] - v2 * tc
        bodies = [Body(tuple(p1), tuple(v1), r1, cols[0], "circle", restitution=e),
                  Body(tuple(p2), tuple(v2), r2, cols[1], "circle", restitution=e)]
        if three:
            third = _third_body(ctx, bodies, tc, normal, e, cols[2])
            if third is None:
                continue
            bodies.append(third)
        return bodies, [], 0.0, {"elastic": elastic, "contact_time": tc}
    raise _Retry(f"could not aim two bodies at each other in a {W:.1f} x {H:.1f} m view")


def _third_body(ctx: _Ctx, bodies: list[Body], tc: float, normal: np.ndarray, e: float, colour: str) -> Body | None:
    """A body at rest placed where body 2 goes after the first collision (head-on hit)."""
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    b1, b2 = bodies
    m1, m2 = b1.m, b2.m
    v1, v2 = np.array(b1.velocity), np.array(b2.velocity)
    un = float((v2 - v1) @ normal)
    J = -(1 + e) * un / (1 / m1 + 1 / m2)           # impulse on body 2 along +normal
    v2p = v2 + J / m2 * normal
    v1p = v1 - J / m1 * normal
    sp = float(np.linalg.norm(v2p))
    if sp < 0.3 * ctx.scale:
        return None
    r3 = ctx.radius(3)
    t2 = tc + rng.uniform(0.2, 0.35) * T
    p2c = np.array(b2.position) + v2 * tc
    p3 = p2c + v2p * (t2 - tc) + v2p / sp * (b2.radius + r3)
    if not _inside(p3, r3, W, H):
        return None
    p1 = np.array(b1.position)
    # body 3 must not overlap body 2 at contact, and body 1 must stay clear of it throughout
    if np.linalg.norm(p2c - p3) < b2.radius + r3 + ctx.gap:
        return None
    if _min_dist(p1 - p3, v1, tc) < b1.radius + r3 + ctx.gap:
        return None
    if _min_dist(p1 + v1 * tc - p3, v1p, T - tc) < b1.radius + r3 + ctx.gap:
        return None
    if _min_dist(np.array(b2.position) - p3, v2, tc) < b2.radius + r3 + ctx.gap:
        return None
    return Body(tuple(p3), (0.0, 0.0), r3, colour, "circle", restitution=e)


def _bounce_family(ctx: _Ctx):
    rng = ctx.rng
    thick = 0.4 * ctx.scale
    walls, inner = _walls(ctx, ["floor", "ceiling", "left", "right"], thick)
    lo, hi = ctx.ranges["count"]
    n = ctx.count(lo, hi, p=_weights(hi - lo + 1))
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    cap = 0.45 * min(inner[2] - inner[0], inner[3] - inner[1])
    speeds = [ctx.speed() for _ in range(n)]
    gravity = ctx.ranges["gravity"] if rng.random() < 0.5 else 0.0
    if ctx.relaxed:                      # bodies may meet later: the walls keep them in, the sim handles it
        pos, vel, radii = _place_grid(ctx, n, speeds, region=inner, keep_in=False)
    else:
        radii = [ctx.radius(n, cap=min(cap, ctx.fit_radius(n, area))) for _ in range(n)]
        pos, vel = _place_free(ctx, radii, speeds, region=inner, keep_in=False)
    cols = _colours(rng, n)
    e = ctx.restitution()
    bodies = [Body(tuple(pos[k]), tuple(vel[k]), radii[k], cols[k], "circle", restitution=e) for k in range(n)]
    return bodies, walls, gravity, {"wall_thickness": thick}


def _occlusion_family(ctx: _Ctx):
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    r = ctx.radius(1, cap=0.2 * W)
    shape = _shape(rng)
    ow = min(rng.uniform(2.2, 3.0) * r, 0.4 * W)
    oh = min(max(rng.uniform(0.45, 0.9) * H, 2.6 * r), H)
    ox = rng.uniform(0.4, 0.6) * W
    oy = rng.uniform(oh / 2, H - oh / 2)
    occ = (ox - ow / 2, oy - oh / 2, ox + ow / 2, oy + oh / 2)
    s = ctx.speed()
    sign = 1.0 if rng.random() < 0.5 else -1.0
    y = float(np.clip(oy + rng.uniform(-0.5, 0.5) * max(oh / 2 - r, 0.0), r, H - r))
    tm = rng.uniform(0.35, 0.65) * T
    room = (ox - r) if sign > 0 else (W - r - ox)        # distance from the edge to the occluder centre
    # start fully visible (clear of the occluder) when the body is fast enough to reach the
    # occluder's centre within the clip; a slow body starts half behind it instead
    d_full = ow / 2 + r + 1.5 * ctx.px
    d_min = d_full if s * T >= d_full else ow / 2 + 0.5 * r
    D = float(np.clip(s * tm, min(d_min, room), room))
    x = ox - sign * D
    body = Body((x, y), (sign * s, 0.0), r, _colours(rng, 1)[0], shape)
    return [body], [StaticBox("occluder", occ)], 0.0, {"occluder": list(occ)}


def _counting_family(ctx: _Ctx):
    """1..max_objects slow bodies that never touch and stay in view, so the count is the same in every frame.

    A free random layout is tried first; crowded scenes (many objects, a
    narrow view) fall back to grid-jitter placement with smaller bodies.
    """
    rng = ctx.rng
    lo, hi = ctx.ranges["count"]
    n = int(rng.integers(lo, hi + 1))
    same = n > 1 and rng.random() < 0.5
    cols = [_colours(rng, 1)[0]] * n if same else _colours(rng, n)
    one_shape = rng.random() < 0.5
    shapes = [_shape(rng)] * n if one_shape else [_shape(rng) for _ in range(n)]
    speeds = [ctx.speed() for _ in range(n)]
    try:
        radii = [_uniform(rng, ctx.ranges["radius"], ctx.fit_radius(n)) for _ in range(n)]
        pos, vel = _place_free(ctx, radii, speeds, tries=40)
        # a path longer than the view is centred on it: not allowed here, every object stays in view
        travel = vel * ctx.T
        ends = np.concatenate([pos, pos + travel])
        rr = np.tile(np.asarray(radii), 2)[:, None]
        if np.any(ends - rr < 0) or np.any(ends + rr > np.array([ctx.W, ctx.H])):
            raise _Retry("a path leaves the view")
    except _Retry:
        pos, vel, radii = _place_grid(ctx, n, speeds)
    bodies = [Body(tuple(pos[k]), tuple(vel[k]), radii[k], cols[k], shapes[k]) for k in range(n)]
    return bodies, [], 0.0, {"count": n, "same_colour": bool(same)}


def _relation_family(ctx: _Ctx):
    """Two bodies clearly side by side (or one above the other), still or drifting together.

    Built directly: along the *major* axis of the relation the two bodies are
    at least ``sep`` apart (edge to edge); across it they are offset by at most
    0.3 of their distance, so ``|d_major| > |d_minor|`` in every frame.
    """
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    axis = "horizontal" if rng.random() < 0.5 else "vertical"
    cols = _colours(rng, 2)
    shapes = [_shape(rng), _shape(rng)]
    moving = rng.random() < 0.5
    major, minor = (0, 1) if axis == "horizontal" else (1, 0)
    L, Lm = (W, H)[major], (W, H)[minor]
    sep = max(1.0 * ctx.scale, 0.15 * L)
    if ctx.relaxed:
        sep = max(ctx.gap, 0.5 * sep)
    s = ctx.speed() if moving else 0.0
    v = s * _unit(rng.uniform(0, 2 * math.pi))
    travel = v * T
    # the common drift may use at most 30% of the view on each axis
    f = min(1.0, float(np.min(0.3 * np.array([W, H]) / np.maximum(np.abs(travel), 1e-12))))
    v, travel = v * f, travel * f
    avail = L - abs(travel[major])
    cap = min((avail - sep) / 4, (Lm - abs(travel[minor])) / 2)
    r = [ctx.radius(2, cap=cap), ctx.radius(2, cap=cap)]
    m_lo, m_hi = np.maximum(0.0, -travel) + _MARGIN, np.maximum(0.0, travel) + _MARGIN
    # body a is the lower one along the major axis, body b the higher one
    ra, rb = r
    d = rng.uniform(ra + rb + sep, max(ra + rb + sep, avail - ra - rb))
    pa, pb = np.empty(2), np.empty(2)
    pa[major] = rng.uniform(ra + m_lo[major], max(ra + m_lo[major], L - m_hi[major] - rb - d))
    pb[major] = pa[major] + d
    lo_a, hi_a = ra + m_lo[minor], Lm - ra - m_hi[minor]
    lo_b, hi_b = rb + m_lo[minor], Lm - rb - m_hi[minor]
    pa[minor] = rng.uniform(lo_a, hi_a)
    pb[minor] = float(np.clip(pa[minor] + rng.uniform(-0.3, 0.3) * d, lo_b, hi_b))
    pos = np.stack([pa, pb])
    if rng.random() < 0.5:                               # which one is body 0
        pos, r = pos[::-1], r[::-1]
    dd = pos[0] - pos[1]
    if axis == "horizontal":
        rel = "left_of" if dd[0] < 0 else "right_of"
    else:
        rel = "below" if dd[1] < 0 else "above"
    bodies = [Body(tuple(pos[k]), tuple(v), r[k], cols[k], shapes[k]) for k in range(2)]
    return bodies, [], 0.0, {"relation": rel, "axis": axis}


def _camera_pan_family(ctx: _Ctx):
    """The camera moves at constant velocity over a world larger than the view."""
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    direction = str(rng.choice(["right", "left", "up", "down"], p=[0.35, 0.35, 0.15, 0.15]))
    speed = _uniform(rng, ctx.ranges["camera_speed"])
    cam_v = {"right": (1, 0), "left": (-1, 0), "up": (0, 1), "down": (0, -1)}[direction]
    cam_v = np.array(cam_v, float) * speed
    cam_mid = cam_v * ctx.T / 2
    lo, hi = ctx.ranges["count"]
    n = ctx.count(lo, hi)
    radii = [ctx.radius(n) for _ in range(n)]
    moving = rng.random() < 0.5
    speeds = [ctx.speed() if moving else 0.0 for _ in range(n)]
    mid_view = (cam_mid[0], cam_mid[1], cam_mid[0] + W, cam_mid[1] + H)
    pos, vel = _place_free(ctx, radii, speeds, region=mid_view)
    cols = _colours(rng, n)
    shapes = [_shape(rng) for _ in range(n)]
    bodies = [Body(tuple(pos[k]), tuple(vel[k]), radii[k], cols[k], shapes[k]) for k in range(n)]
    # landmarks anywhere the camera looks, clear of the bodies' paths
    end = cam_v * T
    world = (min(0.0, end[0]), min(0.0, end[1]), max(W, end[0] + W), max(H, end[1] + H))
    landmarks: list[tuple[float, float, float, float]] = []
    want = int(rng.integers(5, 9))
    lm_min = 0.06 * H
    for attempt in range(300):
        if len(landmarks) >= want:
            break
        first = len(landmarks) < 2                       # two landmarks in the first frame
        reg = (0.0, 0.0, W, H) if first else world
        w, h = rng.uniform(0.06, 0.16, 2) * H
        x0 = rng.uniform(reg[0], reg[2] - w)
        y0 = rng.uniform(reg[1], reg[3] - h)
        box = (x0, y0, x0 + w, y0 + h)
        if any(_box_gap(box, b) < ctx.gap for b in landmarks):
            continue
        if any(_path_box_dist(pos[k], vel[k], T, box) < radii[k] + ctx.gap for k in range(n)):
            continue
        landmarks.append(box)
    if not landmarks and lm_min > 0:
        raise _Retry("no room for a landmark")
    statics = [StaticBox("landmark", b) for b in landmarks]
    params = {"camera_direction": direction, "camera_speed": speed}
    return bodies, statics, 0.0, params, (0.0, 0.0), tuple(cam_v)


def _box_gap(a, b) -> float:
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return math.hypot(dx, dy)


def _path_box_dist(p: np.ndarray, v: np.ndarray, T: float, box) -> float:
    """Smallest distance from a straight path p + v t (t in [0, T]) to a box (sampled)."""
    t = np.linspace(0.0, T, 33)[:, None]
    pts = p + v * t
    q = np.clip(pts, box[:2], box[2:])
    return float(np.sqrt(((pts - q) ** 2).sum(-1)).min())


def _cause_effect_family(ctx: _Ctx):
    """A ball is aimed at a static block's near face; the first hit switches the block's colour.

    The ball starts at least a clearance left of the block (mirrored half the
    time) and inside the view; when the clip is too short for a slow ball to
    arrive, the clip shows it approaching (no state change yet).
    """
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    Rb = ctx.radius(2, cap=0.3 * min(W, H))
    a = Rb / math.sqrt(2)                               # half side of the square block
    clear = max(ctx.gap / 2, 1.5 * ctx.px)
    r = ctx.radius(2, cap=min(0.45 * (W - 2 * a - clear - 0.03 * W), 0.3 * H))
    right = rng.random() < 0.5                          # block on the right, ball comes from the left
    xb_lo = 2 * r + a + clear                           # the ball fits left of the block with clearance
    xb_hi = W - a - 0.03 * W
    if xb_lo > xb_hi:
        raise _Retry("ball and block do not fit side by side")
    xb = rng.uniform(max(xb_lo, min(0.6 * W, xb_hi)), max(xb_lo, min(0.8 * W, xb_hi)))
    yb = rng.uniform(max(0.3 * H, a + r), max(max(0.3 * H, a + r), min(0.7 * H, H - a - r)))
    s = ctx.speed(lo=0.3 * ctx.scale)
    theta = rng.uniform(-0.25, 0.25)
    v = s * np.array([math.cos(theta), math.sin(theta)])
    off = rng.uniform(-0.6, 0.6) * a
    contact = np.array([xb - a - r, float(np.clip(yb + off, r, H - r))])
    th = rng.uniform(0.3, 0.6) * T
    # start inside the view: contact - v th >= r (x), and within [r, H - r] (y)
    th_max = (contact[0] - r) / v[0]
    if v[1] > 1e-12:
        th_max = min(th_max, (contact[1] - r) / v[1])
    elif v[1] < -1e-12:
        th_max = min(th_max, (H - r - contact[1]) / -v[1])
    th_max *= 0.999                                     # strictly inside, not on the edge
    th_min = clear / v[0]
    if th_max < th_min:
        raise _Retry("no room for the ball's run-up")
    th = float(np.clip(th, th_min, th_max))
    start = contact - v * th
    if not right:                                       # mirror left-right
        xb = W - xb
        start = np.array([W - start[0], start[1]])
        v = np.array([-v[0], v[1]])
    c_ball, c0, c1 = _colours(rng, 3)
    e = ctx.restitution()
    ball = Body(tuple(start), tuple(v), r, c_ball, "circle", restitution=e)
    block = Body((xb, yb), (0.0, 0.0), Rb, c0, "square", static=True, colour_after=c1, restitution=1.0)
    box = StaticBox("block", (xb - a, yb - a, xb + a, yb + a), collides=True, body=1)
    return [ball, block], [box], 0.0, {"block_colour": [c0, c1], "hit_time": th}


_SAMPLERS = {
    "uniform": _uniform_family,
    "parabola": _parabola_family,
    "collision": _collision_family,
    "bounce": _bounce_family,
    "occlusion": _occlusion_family,
    "counting": _counting_family,
    "relation": _relation_family,
    "camera_pan": _camera_pan_family,
    "cause_effect": _cause_effect_family,
}


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def _rng(family: str, seed: int, attempt: int = 0) -> np.random.Generator:
    """The generator of one attempt; attempt 0 is the plain ``(seed, family)`` stream."""
    # crc32, not hash(): Python salts str hashes per process.
    key = [int(seed), zlib.crc32(family.encode())] + ([int(attempt)] if attempt else [])
    return np.random.default_rng(np.random.SeedSequence(key))


def sample_scene(cfg: WorldConfig, family: str, seed: int) -> Scene:
    """Seeded initial conditions of one clip of ``family``.

    The view is ``cfg.view_height`` metres tall and ``view_height * width /
    height`` wide, so the aspect ratio of ``cfg`` is part of the scene.
    Raises ``ValueError`` for an unknown family, a bad seed, non-positive sizes,
    fewer than one frame, or more objects than fit in the view.
    """
    _check(cfg, family, seed)
    ranges = param_ranges(cfg, family)
    H = float(cfg.view_height)
    W = H * cfg.width / cfg.height
    px = H / cfg.height
    scale = H / 10.0 if cfg.ranges == "default" else 1.0
    T = max(cfg.num_frames - 1, 1) * cfg.dt
    gap, relaxed_gap = max(0.2 * scale, 3.0 * px), max(0.1 * scale, 2.0 * px)   # see _Ctx.min_gap

    def ctx(attempt: int) -> _Ctx:
        return _Ctx(cfg, family, _rng(family, seed, attempt), ranges, W, H, T,
                    gap if attempt < RELAX_FROM else relaxed_gap, scale, px, attempt)

    _check_fits(ctx(RELAX_FROM), cfg)
    last: _Retry | None = None
    for attempt in range(ATTEMPTS):
        try:
            out = _SAMPLERS[family](ctx(attempt))
        except _Retry as e:
            last = e
            continue
        bodies, statics, gravity, params = out[:4]
        cam0, camv = (out[4], out[5]) if len(out) > 4 else ((0.0, 0.0), (0.0, 0.0))
        params = {"ranges": cfg.ranges, "num_objects": len(bodies), "attempt": attempt, **_jsonable(params)}
        return Scene(family=family, seed=int(seed), split=cfg.split, view=(W, H),
                     bodies=tuple(_clean(b) for b in bodies), statics=tuple(statics), gravity=float(gravity),
                     camera_start=tuple(map(float, cam0)), camera_velocity=tuple(map(float, camv)), params=params)
    raise ValueError(f"family {family!r} seed {seed}: no valid scene in a {W:.2f} x {H:.2f} m view "
                     f"({cfg.height}x{cfg.width} px, {cfg.num_frames} frames) after {ATTEMPTS} derived seeds "
                     f"(last problem: {last}); use a larger frame or smaller radii")


def _check_fits(ctx: _Ctx, cfg: WorldConfig) -> None:
    """Raise ``ValueError`` when the family's bodies cannot fit the view even when relaxed.

    Checked before sampling, for the largest count the family may draw, so
    either every seed works or none does (a stream never dies half-way).
    """
    lo, hi = ctx.ranges["count"]
    need = hi if ctx.family == "counting" else lo
    if _grid_radius_cap(ctx, need) < ctx.r_floor:
        what = f"world.max_objects={hi} objects" if ctx.family == "counting" else f"{need} object(s)"
        raise ValueError(f"family {ctx.family!r}: {what} do not fit in a {ctx.W:.2f} x {ctx.H:.2f} m view "
                         f"({cfg.height}x{cfg.width} px) with radius >= {R_FLOOR_PX} px and "
                         f"{ctx.gap / ctx.px:.0f} px between them; lower world.max_objects or use a larger frame")


def _clean(b: Body) -> Body:
    """Plain Python floats (not numpy scalars) so scenes and truths serialise to JSON."""
    return dataclasses.replace(b, position=tuple(float(x) for x in b.position),
                               velocity=tuple(float(x) for x in b.velocity), radius=float(b.radius),
                               restitution=float(b.restitution))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _sized(cfg: WorldConfig, height: int | None, width: int | None) -> WorldConfig:
    if height is None and width is None:
        return cfg
    return dataclasses.replace(cfg, height=cfg.height if height is None else int(height),
                               width=cfg.width if width is None else int(width))


def make_clip(cfg: WorldConfig, family: str, seed: int, *, height: int | None = None,
              width: int | None = None) -> tuple[UInt8[np.ndarray, "t h w 3"], Truth]:
    """Sample, simulate and render one clip: ``(video uint8 (t, h, w, 3), truth)``.

    ``height``/``width`` default to ``cfg.height``/``cfg.width``; the scene is
    sampled for that aspect ratio (the view is ``view_height`` metres tall).
    """
    cfg = _sized(cfg, height, width)
    truth = simulate(sample_scene(cfg, family, seed), cfg)
    return render(truth, cfg.height, cfg.width, cfg.antialias), truth


def make_clips(cfg: WorldConfig, families: Sequence[str], seeds: Sequence[int], *, height: int | None = None,
               width: int | None = None) -> tuple[UInt8[np.ndarray, "b t h w 3"], list[Truth]]:
    """Many clips at once (batched simulation and rendering): ``(videos (b, t, h, w, 3), truths)``.

    Clip ``i`` is ``make_clip(cfg, families[i], seeds[i])`` (same pixels, same truth).
    """
    if len(families) != len(seeds):
        raise ValueError(f"make_clips: {len(families)} families but {len(seeds)} seeds; give one family per seed")
    cfg = _sized(cfg, height, width)
    scenes = [sample_scene(cfg, f, s) for f, s in zip(families, seeds)]
    truths = simulate_batch(scenes, cfg)
    return render_batch(truths, cfg.height, cfg.width, cfg.antialias), truths
