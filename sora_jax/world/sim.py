"""A small, exact-as-possible 2D rigid-body simulator for the synthetic world.

Axes: ``b`` scenes in a batch, ``t`` frames, ``k`` bodies, ``m`` static boxes.
Units: metres, seconds, and mass in "kg" with mass = radius**2 (a disc of
density 1/pi), so momentum is ``sum r^2 v`` as in PHYSICS.md.

The physics, for a student
--------------------------
*Free flight.* Between contacts every body feels only a constant acceleration
``a`` (gravity ``(0, -g)`` or nothing). Constant acceleration has a closed form,
    x(t + h) = x(t) + v(t) h + a h^2 / 2,      v(t + h) = v(t) + a h,
so each step is *exact*: a parabola comes out as ``x0 + v t - g t^2 / 2`` to
floating-point precision, whatever the step size. (The popular semi-implicit
Euler step ``v += a h; x += v h`` is off by ``a h t / 2``.)

*Skip ahead while nothing can touch.* Because free flight is exact, a scene is
first predicted in closed form for the whole clip, and the first frame in
which a contact is *possible* is found (two bodies share their acceleration,
so their relative path is a straight line and its closest approach is exact;
a body can reach a wall within a frame only if its gap is below its reach).
Frames before that are the prediction. A scene that comes out of a contact is
predicted again from its new state, so a clip with one collision costs a few
stepped frames, not all of them.

*Contacts need small steps.* Collisions are detected by overlap at the end of a
step, so a step must be short enough that nothing jumps through anything. Each
stepped frame (``cfg.dt`` seconds) first runs a cheap *broad phase*: could any
pair of bodies, or a body and a wall, come into contact in this frame? If not,
the whole frame is one exact step. If so, the frame is cut into
``cfg.substeps`` sub-steps -- more if needed so no body moves more than half
its radius per sub-step, which makes tunnelling through walls impossible (they
are also thick: a wall extends far outside the view).

*Rewind to the moment of contact.* When two discs overlap at the end of a
sub-step we solve for the time ``s`` ago when they were exactly touching
(``|d - u s| = r_i + r_j`` with ``d`` the centre offset and ``u`` the relative
velocity; gravity cancels in relative motion, so this is exact), move both back
to that moment, apply the collision impulse there, and move them forward again
by ``s``. This gives the right contact normal, hence the right outgoing
directions, instead of the slightly wrong ones of "resolve where they overlap".

*The impulse.* At contact, with unit normal ``n`` from j to i and normal
relative speed ``u_n = (v_i - v_j) . n < 0`` (approaching), the impulse
    J = -(1 + e) u_n / (1/m_i + 1/m_j)
is added as ``v_i += J n / m_i`` and ``v_j -= J n / m_j``. Momentum is conserved
exactly (the two changes are equal and opposite). The coefficient of restitution
``e`` (the pair uses the smaller of the two bodies' values) sets the outgoing
normal speed to ``-e u_n``: ``e = 1`` is elastic (kinetic energy conserved),
``e < 1`` loses energy, ``e = 0`` makes the bodies stick along the normal.
Tangential velocity is untouched (frictionless).

*Walls, floors and blocks* are static axis-aligned boxes with infinite mass: the
body's normal velocity is reflected and scaled by ``e``:  ``v_n -> -e v_n``.
The contact is again found by rewinding to the moment of touching.

*Shapes.* Squares and triangles are axis-aligned and never rotate. For contacts
they are treated as their circumcircle (``radius`` is the circumradius), so a
square may stop a little short of a wall; the scene families only use circles
where contacts happen. The cause-and-effect block is a static body: it has a
palette colour and is tracked, but never moves; it collides through its box.

*Occluders and landmarks* are static boxes that do not collide; they only hide
(occluders are drawn over bodies) or mark the background (landmarks).

Events: every contact whose impulse changes a body's velocity by more than
``EVENT_MIN_DV`` m/s is recorded as ``Event(frame, "collision" | "bounce",
bodies, |J|)`` where ``frame`` is the first frame at or after the contact
(walls are body ``-1``); the first hit on a block adds ``"state_change"`` and
its ``state`` goes 0 -> 1 for the rest of the clip.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import Float

from sora_jax.config import FAMILIES, WorldConfig
from sora_jax.world.types import PALETTE, SHAPES, Event, Truth

EVENT_MIN_DV = 0.1      # m/s: smaller velocity changes (resting contact jitter) are not events
BIG = 1.0e3             # metres: walls extend this far outside the view
_EPS = 1e-12

# kinds of static boxes; the renderer draws UNDER ones below bodies and OVER ones above.
STATIC_KINDS = ("wall", "floor", "ceiling", "landmark", "occluder", "block")


@dataclasses.dataclass(frozen=True)
class Body:
    """Initial condition of one body.

    ``radius`` is the circumradius (circles: the radius). ``mass`` defaults to
    ``radius**2``. A ``static`` body (the cause-and-effect block) never moves;
    ``colour_after`` is the colour it shows once its state has switched to 1.
    """

    position: tuple[float, float]
    velocity: tuple[float, float]
    radius: float
    colour: str
    shape: str = "circle"
    mass: float | None = None
    restitution: float = 1.0
    static: bool = False
    colour_after: str | None = None

    @property
    def m(self) -> float:
        return float(self.radius) ** 2 if self.mass is None else float(self.mass)


@dataclasses.dataclass(frozen=True)
class StaticBox:
    """An axis-aligned static box ``(x0, y0, x1, y1)`` in world metres.

    kind: "wall" | "floor" | "ceiling" | "landmark" | "occluder" | "block".
    ``collides``: bodies bounce off it (walls, floor, ceiling, block).
    ``body``: for a block, the index of the static body it belongs to (else -1).
    """

    kind: str
    box: tuple[float, float, float, float]
    collides: bool = False
    body: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "box": [float(v) for v in self.box], "collides": bool(self.collides),
                "body": int(self.body)}


@dataclasses.dataclass(frozen=True)
class Scene:
    """Initial conditions of one clip; :func:`simulate` turns it into a :class:`Truth`.

    ``view`` is ``(width, height)`` in metres; the camera's bottom-left corner
    starts at ``camera_start`` and moves with constant ``camera_velocity`` (m/s).
    ``gravity`` is the downward acceleration in m/s^2 (0 = off).
    """

    family: str
    seed: int
    split: str
    view: tuple[float, float]
    bodies: tuple[Body, ...]
    statics: tuple[StaticBox, ...] = ()
    gravity: float = 0.0
    camera_start: tuple[float, float] = (0.0, 0.0)
    camera_velocity: tuple[float, float] = (0.0, 0.0)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def num_bodies(self) -> int:
        return len(self.bodies)


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


def _check_scene(scene: Scene) -> None:
    if not isinstance(scene, Scene):
        raise ValueError(f"simulate: expected a Scene, got {type(scene).__name__}")
    if scene.family not in FAMILIES:
        raise ValueError(f"scene.family={scene.family!r}: valid families are {', '.join(FAMILIES)}")
    if len(scene.view) != 2 or min(scene.view) <= 0:
        raise ValueError(f"scene.view={scene.view!r}: need (width, height) > 0 in metres")
    if scene.gravity < 0 or not math.isfinite(scene.gravity):
        raise ValueError(f"scene.gravity={scene.gravity}: must be a finite value >= 0 (m/s^2, pointing down)")
    for i, b in enumerate(scene.bodies):
        if not (b.radius > 0 and math.isfinite(b.radius)):
            raise ValueError(f"body {i}: radius={b.radius} must be > 0")
        if b.colour not in PALETTE or (b.colour_after is not None and b.colour_after not in PALETTE):
            raise ValueError(f"body {i}: colour={b.colour!r}/{b.colour_after!r}; valid: {', '.join(PALETTE)}")
        if b.shape not in SHAPES:
            raise ValueError(f"body {i}: shape={b.shape!r}; valid: {', '.join(SHAPES)}")
        if not b.static and not b.m > 0:
            raise ValueError(f"body {i}: mass={b.mass} must be > 0")
        if not 0.0 <= b.restitution <= 1.0:
            raise ValueError(f"body {i}: restitution={b.restitution} must be in [0, 1]")
        if not np.all(np.isfinite(b.position)) or not np.all(np.isfinite(b.velocity)):
            raise ValueError(f"body {i}: position {b.position} and velocity {b.velocity} must be finite")
    for s in scene.statics:
        x0, y0, x1, y1 = s.box
        if s.kind not in STATIC_KINDS:
            raise ValueError(f"static box kind={s.kind!r}; valid: {', '.join(STATIC_KINDS)}")
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"static box {s.kind} {s.box}: need x1 > x0 and y1 > y0")
        if s.body >= len(scene.bodies):
            raise ValueError(f"static box {s.kind}: body={s.body} but the scene has {len(scene.bodies)} bodies")


def _check_cfg(cfg: WorldConfig) -> None:
    if not isinstance(cfg, WorldConfig):
        raise ValueError(f"expected a WorldConfig, got {type(cfg).__name__}")
    if cfg.num_frames < 1:
        raise ValueError(f"world.num_frames={cfg.num_frames}: must be >= 1")
    if not (cfg.dt > 0) or cfg.substeps < 1:
        raise ValueError(f"world.dt={cfg.dt}, world.substeps={cfg.substeps}: need dt > 0 and substeps >= 1")


# --------------------------------------------------------------------------- #
# Batched state
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class _State:
    """Padded batch arrays; padding bodies are static with zero radius far away."""

    x: np.ndarray        # (b, k, 2) positions
    v: np.ndarray        # (b, k, 2) velocities
    a: np.ndarray        # (b, k, 2) constant acceleration (gravity on dynamic bodies)
    r: np.ndarray        # (b, k)    circumradius
    invm: np.ndarray     # (b, k)    1/mass, 0 for static and padding
    e: np.ndarray        # (b, k)    restitution
    dyn: np.ndarray      # (b, k)    bool: moves and collides
    boxes: np.ndarray    # (b, m, 4) colliding boxes
    box_on: np.ndarray   # (b, m)    bool
    box_body: np.ndarray  # (b, m)   int: owning static body or -1

    def take(self, idx: np.ndarray) -> "_State":
        return _State(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))


def _pack(scenes: Sequence[Scene]) -> _State:
    B = len(scenes)
    K = max(1, max(s.num_bodies for s in scenes))
    M = max(1, max(sum(st.collides for st in s.statics) for s in scenes))
    x = np.full((B, K, 2), 1e6)
    x[:, :, 0] += np.arange(K) * 10.0          # padding bodies far away and apart
    v = np.zeros((B, K, 2))
    a = np.zeros((B, K, 2))
    r = np.zeros((B, K))
    invm = np.zeros((B, K))
    e = np.ones((B, K))
    dyn = np.zeros((B, K), bool)
    boxes = np.tile(np.array([1e7, 1e7, 1e7 + 1, 1e7 + 1]), (B, M, 1))
    box_on = np.zeros((B, M), bool)
    box_body = np.full((B, M), -1, np.int64)
    for b, s in enumerate(scenes):
        for k, body in enumerate(s.bodies):
            x[b, k] = body.position
            r[b, k] = body.radius
            e[b, k] = body.restitution
            if not body.static:
                v[b, k] = body.velocity
                a[b, k] = (0.0, -s.gravity)
                invm[b, k] = 1.0 / body.m
                dyn[b, k] = True
        m = 0
        for st in s.statics:
            if st.collides:
                boxes[b, m] = st.box
                box_on[b, m] = True
                box_body[b, m] = st.body
                m += 1
    return _State(x, v, a, r, invm, e, dyn, boxes, box_on, box_body)


def _box_contact(x: np.ndarray, r: np.ndarray, box: np.ndarray, mask: np.ndarray | None = None):
    """Penetration of discs into boxes. x (..., 2), r (...), box (..., 4).

    Returns ``(pen, n)``: penetration depth (> 0 means overlapping) and the unit
    normal pointing from the box to the disc centre. A centre inside the box is
    pushed out through the nearest face. Entries where ``mask`` (broadcastable
    to ``r``) is False are not worth the inside case (static bodies sit inside
    their own block); they get ``pen = r`` and a zero normal.
    """
    q = np.clip(x, box[..., :2], box[..., 2:])
    d = x - q
    dist = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)
    inside = dist < _EPS
    if mask is not None:
        inside &= mask
    n = d / np.maximum(dist, _EPS)[..., None]
    pen = r - dist
    if np.any(inside):
        # distances to the four faces: left, bottom, right, top
        faces = np.stack([x[..., 0] - box[..., 0], x[..., 1] - box[..., 1],
                          box[..., 2] - x[..., 0], box[..., 3] - x[..., 1]], -1)
        f = np.argmin(faces, -1)
        normals = np.array([[-1.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.0, 1.0]])
        n = np.where(inside[..., None], normals[f], n)
        pen = np.where(inside, r + np.take_along_axis(faces, f[..., None], -1)[..., 0], pen)
    return pen, n


def _broad_phase(st: _State, T: float):
    """Which pairs / (body, box) could touch within the next ``T`` seconds?

    Each body moves at most ``reach = |v| T + |a| T^2 / 2``. A body is a box
    candidate when its gap to the box is below its reach. Two bodies in free
    flight share their acceleration, so their relative motion is a straight
    line and whether they touch within ``T`` is decided *exactly*. A contact
    can change a body's velocity mid-frame (up to about twice the faster
    body's speed), so bodies with a possible contact get a larger reach, and
    every pair involving one of them is a candidate when its gap is below the
    sum of the reaches. Returns boolean arrays ``pairs (b, k, k)`` (upper
    triangle), ``near (b, k, m)`` and the reach ``(b, k)``.
    """
    reach = (np.sqrt((st.v ** 2).sum(-1)) * T + 0.5 * np.sqrt((st.a ** 2).sum(-1)) * T * T) * st.dyn + 1e-9
    d = st.x[:, :, None, :] - st.x[:, None, :, :]                      # (b, k, k, 2)
    dd = (d * d).sum(-1)
    R = st.r[:, :, None] + st.r[:, None, :]
    gap = np.sqrt(dd) - R
    K = st.x.shape[1]
    both = st.dyn[:, :, None] & st.dyn[:, None, :] & np.triu(np.ones((K, K), bool), 1)
    # exact closest approach of the straight relative path within T
    u = st.v[:, :, None, :] - st.v[:, None, :, :]
    uu = (u * u).sum(-1)
    s = np.clip(-(d * u).sum(-1) / np.maximum(uu, _EPS), 0.0, T)
    m = d + u * s[..., None]
    pairs = ((m * m).sum(-1) <= (R * (1 + 1e-9) + 1e-9) ** 2) & both
    box_ok = st.dyn[:, :, None] & st.box_on[:, None, :]
    pen, _ = _box_contact(st.x[:, :, None, :], st.r[:, :, None], st.boxes[:, None, :, :], box_ok)
    involved = pairs.any(2) | pairs.any(1) | ((-pen <= reach[:, :, None]) & box_ok).any(2)
    reach = np.where(involved, np.maximum(reach, 3.0 * reach.max(-1, keepdims=True)), reach)
    pairs |= (gap <= reach[:, :, None] + reach[:, None, :]) & (involved[:, :, None] | involved[:, None, :]) & both
    near = (-pen <= reach[:, :, None]) & box_ok
    return pairs, near, reach


def _free_step(st: _State, h: float) -> None:
    """Exact constant-acceleration step (in place)."""
    st.x += st.v * h + 0.5 * st.a * (h * h)
    st.v += st.a * h


def _resolve_pair(st: _State, i: int, j: int, h: float, t_end: float, log: list) -> None:
    """Resolve a contact of bodies ``i`` and ``j`` in every scene row where they overlap and approach."""
    d = st.x[:, i] - st.x[:, j]
    u = st.v[:, i] - st.v[:, j]
    R = st.r[:, i] + st.r[:, j]
    dd = d[:, 0] ** 2 + d[:, 1] ** 2
    du = d[:, 0] * u[:, 0] + d[:, 1] * u[:, 1]
    hit = (dd < R * R) & (du < 0) & st.dyn[:, i] & st.dyn[:, j]
    if not hit.any():
        return
    rows = np.nonzero(hit)[0]
    d, u, R, dd, du = d[rows], u[rows], R[rows], dd[rows], du[rows]
    uu = np.maximum((u ** 2).sum(-1), _EPS)
    # time since touching: |d - u s| = R, the root with s > 0
    s = (du + np.sqrt(np.maximum(du * du - uu * (dd - R * R), 0.0))) / uu
    s = np.clip(s, 0.0, h)[:, None]
    xi, xj = st.x[rows, i], st.x[rows, j]
    vi, vj = st.v[rows, i], st.v[rows, j]
    ai, aj = st.a[rows, i], st.a[rows, j]
    # rewind both bodies to the moment of contact
    xi = xi - vi * s + 0.5 * ai * s * s
    xj = xj - vj * s + 0.5 * aj * s * s
    vi = vi - ai * s
    vj = vj - aj * s
    nrm = xi - xj
    nrm = nrm / np.maximum(np.sqrt((nrm ** 2).sum(-1, keepdims=True)), _EPS)
    un = ((vi - vj) * nrm).sum(-1)
    ee = np.minimum(st.e[rows, i], st.e[rows, j])
    mi, mj = st.invm[rows, i], st.invm[rows, j]
    J = np.where(un < 0, -(1.0 + ee) * un / (mi + mj), 0.0)
    vi = vi + (J * mi)[:, None] * nrm
    vj = vj - (J * mj)[:, None] * nrm
    # ... and replay the rest of the sub-step with the new velocities
    st.x[rows, i] = xi + vi * s + 0.5 * ai * s * s
    st.x[rows, j] = xj + vj * s + 0.5 * aj * s * s
    st.v[rows, i] = vi + ai * s
    st.v[rows, j] = vj + aj * s
    dv = J * np.maximum(mi, mj)
    for q, row in enumerate(rows):
        log.append((int(row), t_end - float(s[q, 0]), i, j, -1, float(J[q]), float(dv[q])))


def _resolve_box(st: _State, m: int, h: float, t_end: float, log: list) -> None:
    """Resolve contacts of every body with static box ``m`` in every scene row where they overlap and approach."""
    box = st.boxes[:, m][:, None, :]
    pen, nrm = _box_contact(st.x, st.r, box, st.dyn)
    vn = (st.v * nrm).sum(-1)
    hit = (pen > 0) & (vn < 0) & st.dyn & st.box_on[:, m][:, None]
    if not hit.any():
        return
    rows, ks = np.nonzero(hit)
    pen, nrm, vn = pen[rows, ks], nrm[rows, ks], vn[rows, ks]
    x, v, a = st.x[rows, ks], st.v[rows, ks], st.a[rows, ks]
    s = np.clip(pen / np.maximum(-vn, _EPS), 0.0, h)[:, None]
    x = x - v * s + 0.5 * a * s * s
    v = v - a * s
    vn_c = (v * nrm).sum(-1)
    ee = st.e[rows, ks]
    dvn = np.where(vn_c < 0, -(1.0 + ee) * vn_c, 0.0)
    v = v + dvn[:, None] * nrm
    x = x + v * s + 0.5 * a * s * s
    v = v + a * s
    # if the disc is still inside (it started there), push it out along the normal
    pen2, nrm2 = _box_contact(x, st.r[rows, ks], st.boxes[rows, m])
    x = x + np.maximum(pen2, 0.0)[:, None] * nrm2
    st.x[rows, ks] = x
    st.v[rows, ks] = v
    J = dvn / np.maximum(st.invm[rows, ks], _EPS)
    for q, (row, k) in enumerate(zip(rows, ks)):
        log.append((int(row), t_end - float(s[q, 0]), int(k), -1, int(m), float(J[q]), float(dvn[q])))


def _substeps(st: _State, t0: float, h: float, n: int, pair_list, box_list, log: list) -> None:
    """``n`` sub-steps of length ``h`` with contact resolution (in place).

    ``pair_list``: candidate body pairs (i, j); ``box_list``: candidate box
    indices. ``log`` collects ``(scene_row, time, i, j_or_-1, box_or_-1, |J|, dv)``.

    Contacts are resolved one pair (then one box) at a time, in list order,
    each seeing the velocities its predecessors left. A vectorised overlap
    test of all candidates (a superset of the contacts that need resolving)
    finds the first one that may be hit in any row; the ones before it cannot
    change anything, so resolution starts there -- the same result as walking
    the whole list, in a fraction of the time.
    """
    I = np.array([ij[0] for ij in pair_list], np.int64)
    J = np.array([ij[1] for ij in pair_list], np.int64)
    pair_dyn = st.dyn[:, I] & st.dyn[:, J]
    rr = st.r[:, I] + st.r[:, J]
    R2 = rr * rr
    M = np.array(box_list, np.int64)
    lo = st.boxes[:, M][:, None, :, :2]                             # (b, 1, m, 2)
    hi = st.boxes[:, M][:, None, :, 2:]
    box_ok = st.dyn[:, :, None] & st.box_on[:, M][:, None, :]      # (b, k, m)
    r2 = (st.r * st.r)[:, :, None]
    for step in range(n):
        _free_step(st, h)
        t_end = t0 + (step + 1) * h
        # ---- body-body contacts: a cheap superset test (overlap), then exact resolution ----
        if len(I):
            d = st.x[:, I] - st.x[:, J]
            hit = ((d * d).sum(-1) < R2) & pair_dyn
            if hit.any():
                for p in range(int(np.argmax(hit.any(0))), len(I)):
                    _resolve_pair(st, int(I[p]), int(J[p]), h, t_end, log)
        # ---- body-box contacts (walls, floor, block): overlap test, then exact resolution ----
        if len(M):
            x = st.x[:, :, None, :]
            d = x - np.minimum(np.maximum(x, lo), hi)                  # centre minus nearest box point
            hit = ((d * d).sum(-1) < r2) & box_ok                      # also true for a centre inside the box
            if hit.any():
                for q in range(int(np.argmax(hit.any((0, 1)))), len(M)):
                    _resolve_box(st, int(M[q]), h, t_end, log)


def _closed_form(st: _State, T: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Free-flight positions and velocities ``(t, b, k, 2)`` at every frame: ``x0 + v t + a t^2 / 2``."""
    t = (np.arange(T) * dt)[:, None, None, None]
    return st.x[None] + st.v[None] * t + 0.5 * st.a[None] * (t * t), st.v[None] + st.a[None] * t


def _first_contact_frame(st: _State, xs: np.ndarray, vs: np.ndarray, dt: float) -> np.ndarray:
    """Per scene, the first frame ``f`` such that a contact may happen between frames f and f + 1.

    ``T - 1`` when no contact can happen in the whole clip (then the closed form
    is the answer). Two dynamic bodies share the same acceleration, so their
    relative motion is a straight line and its closest approach in each frame
    interval is exact; a body can only reach a box within a frame if its gap
    at the frame start is below its reach ``|v| dt + |a| dt^2 / 2``.
    """
    T, B, K, _ = xs.shape
    busy = np.zeros((max(T - 1, 0), B), bool)
    if T < 2:
        return np.zeros(B, np.int64)
    upper = np.triu(np.ones((K, K), bool), 1)
    both = st.dyn[:, :, None] & st.dyn[:, None, :] & upper               # (b, k, k)
    if both.any():
        d = xs[:-1, :, :, None, :] - xs[:-1, :, None, :, :]               # (t-1, b, k, k, 2)
        u = (st.v[:, :, None, :] - st.v[:, None, :, :])[None]             # (1, b, k, k, 2)
        uu = (u * u).sum(-1)
        s = np.clip(-(d * u).sum(-1) / np.maximum(uu, _EPS), 0.0, dt)     # time of closest approach
        m = d + u * s[..., None]
        dist = np.sqrt((m * m).sum(-1))
        R = st.r[:, :, None] + st.r[:, None, :]
        busy |= ((dist <= R * (1 + 1e-9) + 1e-9) & both[None]).any((2, 3))
    if st.box_on.any():
        reach = np.sqrt((vs[:-1] ** 2).sum(-1)) * dt + 0.5 * np.sqrt((st.a ** 2).sum(-1))[None] * dt * dt
        pen, _ = _box_contact(xs[:-1, :, :, None, :], st.r[None, :, :, None], st.boxes[None, :, None, :, :],
                              st.dyn[None, :, :, None])
        near = (pen >= -(reach[..., None] + 1e-9)) & st.dyn[None, :, :, None] & st.box_on[None, :, None, :]
        busy |= near.any((2, 3))
    return np.where(busy.any(0), busy.argmax(0), T - 1)


def _substep_count(cfg: WorldConfig, st: _State, reach: np.ndarray) -> np.ndarray:
    """Sub-steps per scene: ``cfg.substeps``, more if a body would move > r/2 per sub-step."""
    r_min = np.where(st.dyn, st.r, np.inf).min(-1)
    need = np.ceil(np.where(st.dyn, reach, 0.0).max(-1) / np.maximum(0.5 * r_min, _EPS))
    return np.maximum(cfg.substeps, need).astype(np.int64)


def _visibility(pos, radius, shape, camera, view, occluders):
    """Visible fraction ``(t, k)`` after frame edges and occluders, and the in-frame flag.

    Exactly 1.0 when the whole shape is inside the view and touches no occluder,
    exactly 0.0 when it is entirely outside or entirely hidden; in between the
    fraction is estimated from a fixed grid of points inside the shape.
    """
    T, K = pos.shape[:2]
    vw, vh = view
    lo = camera[:, None, :]                     # (t, 1, 2)
    hi = lo + np.array([vw, vh])
    half = np.zeros((K, 2, 2))                  # per body: (lower offset, upper offset) as multiples of r
    for k, s in enumerate(shape):
        half[k] = _SHAPE_EXTENT[s]
    r = radius[None, :, None]
    bb_lo = pos + half[None, :, 0] * r          # (t, k, 2)
    bb_hi = pos + half[None, :, 1] * r
    inside_view = np.all((bb_lo >= lo) & (bb_hi <= hi), -1)
    outside_view = np.any((bb_hi <= lo) | (bb_lo >= hi), -1)
    touch = np.zeros((T, K), bool)
    hidden = np.zeros((T, K), bool)
    is_circle = np.array([s == "circle" for s in shape])
    for (x0, y0, x1, y1) in occluders:
        blo, bhi = np.array([x0, y0]), np.array([x1, y1])
        q = np.clip(pos, blo, bhi)
        dcirc = np.sqrt(((pos - q) ** 2).sum(-1))
        overlap_bb = np.all((bb_hi > blo) & (bb_lo < bhi), -1)
        touch |= np.where(is_circle[None], dcirc < radius[None], overlap_bb)
        hidden |= np.all((bb_lo >= blo) & (bb_hi <= bhi), -1)
    visible = np.where(inside_view & ~touch, 1.0, 0.0)
    partial = ~(inside_view & ~touch) & ~outside_view & ~hidden
    for k in np.nonzero(partial.any(0))[0]:
        tt = np.nonzero(partial[:, k])[0]
        pts = pos[tt, k][:, None, :] + _SHAPE_POINTS[shape[k]][None] * radius[k]     # (n, p, 2)
        ok = np.all((pts >= lo[tt]) & (pts <= hi[tt]), -1)
        for (x0, y0, x1, y1) in occluders:
            ok &= ~((pts[..., 0] > x0) & (pts[..., 0] < x1) & (pts[..., 1] > y0) & (pts[..., 1] < y1))
        visible[tt, k] = np.clip(ok.mean(-1), 0.001, 0.999)
    centre_in = np.all((pos >= lo) & (pos <= hi), -1)
    return visible, centre_in


def _shape_points(shape: str, n: int = 24) -> np.ndarray:
    g = (np.arange(n) + 0.5) / n * 2 - 1
    p = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    if shape == "circle":
        keep = (p ** 2).sum(-1) <= 1
    elif shape == "square":
        keep = np.all(np.abs(p) <= 1 / math.sqrt(2), -1)
    else:
        keep = triangle_sdf(p, 1.0) <= 0
    return p[keep]


def triangle_sdf(p: np.ndarray, R: float | np.ndarray) -> np.ndarray:
    """Signed distance to an upward equilateral triangle with centroid 0, circumradius R.

    Inigo Quilez's formula: fold by symmetry into one edge's region and
    measure the distance to that edge segment; negative inside.
    """
    k = math.sqrt(3.0)
    hs = np.asarray(R) * (k / 2)                  # half the side length
    px = np.abs(p[..., 0]) - hs
    py = p[..., 1] + hs / k
    flip = px + k * py > 0
    qx = np.where(flip, (px - k * py) / 2, px)
    qy = np.where(flip, (-k * px - py) / 2, py)
    qx = qx - np.clip(qx, -2 * hs, 0.0)
    return -np.sqrt(qx * qx + qy * qy) * np.sign(qy)


_SQ = 1 / math.sqrt(2)
# bounding box of each unit-circumradius shape: ((x_lo, y_lo), (x_hi, y_hi))
_SHAPE_EXTENT = {
    "circle": np.array([[-1.0, -1.0], [1.0, 1.0]]),
    "square": np.array([[-_SQ, -_SQ], [_SQ, _SQ]]),
    "triangle": np.array([[-math.sqrt(3) / 2, -0.5], [math.sqrt(3) / 2, 1.0]]),
}
_SHAPE_POINTS = {s: _shape_points(s) for s in SHAPES}


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def simulate(scene: Scene, cfg: WorldConfig) -> Truth:
    """Simulate one scene for ``cfg.num_frames`` frames of ``cfg.dt`` seconds.

    Deterministic: the same scene and config always give the same Truth, and
    the result does not depend on which other scenes share a batch in
    :func:`simulate_batch`.
    """
    return simulate_batch([scene], cfg)[0]


def simulate_batch(scenes: Sequence[Scene], cfg: WorldConfig) -> list[Truth]:
    """Simulate many scenes at once (vectorised over scenes and bodies).

    Scenes that need contact sub-steps in a frame are stepped together; the
    others take one exact free-flight step, so a scene's result is the same
    alone or in any batch.
    """
    _check_cfg(cfg)
    scenes = list(scenes)
    if not scenes:
        return []
    for s in scenes:
        _check_scene(s)
    st = _pack(scenes)
    B, K = st.r.shape
    T = cfg.num_frames
    dt = float(cfg.dt)
    # Free flight is exact in closed form: every scene follows it up to the first frame in
    # which a contact is possible (``f0``); only from there on is it stepped frame by frame.
    # A scene that comes out of a contact is re-anchored: a new closed-form prediction
    # from its current state, and a new ``f0``.
    xs, vs = _closed_form(st, T, dt)                                # (t, b, k, 2) predictions
    f0 = _first_contact_frame(st, xs, vs, dt)                       # (b,)
    pos, vel = xs.copy(), vs.copy()
    log: list[tuple] = []                        # (scene, time, i, j, box, J, dv)
    prev_busy = np.zeros(B, bool)
    f = int(f0.min()) if B else T
    if f < T - 1:
        st.x, st.v = xs[f].copy(), vs[f].copy()  # invariant: st holds every scene's state at frame f
    while f < T - 1:
        active = f0 <= f
        if not active.any():                     # everybody in free flight: jump ahead
            f = int(f0.min())
            if f < T - 1:
                st.x, st.v = xs[f].copy(), vs[f].copy()
            prev_busy[:] = False
            continue
        pairs, near, reach = _broad_phase(st, dt)
        busy = (pairs.any((1, 2)) | near.any((1, 2))) & active
        quiet = np.nonzero(~busy & active)[0]
        if len(quiet):
            sub = st.take(quiet)
            _free_step(sub, dt)
            st.x[quiet], st.v[quiet] = sub.x, sub.v
        if busy.any():
            nsub = _substep_count(cfg, st, reach)
            for n in np.unique(nsub[busy]):
                rows = np.nonzero(busy & (nsub == n))[0]
                sub = st.take(rows)
                pl = [tuple(int(i) for i in ij) for ij in np.argwhere(pairs[rows].any(0))]
                bl = [int(m) for m in np.nonzero(near[rows].any((0, 1)))[0]]
                sublog: list[tuple] = []
                _substeps(sub, f * dt, dt / int(n), int(n), pl, bl, sublog)
                st.x[rows], st.v[rows] = sub.x, sub.v
                log.extend((int(rows[q]),) + tuple(rest) for q, *rest in sublog)
        # scenes still in free flight take their prediction (exactly what a free step would give)
        wait = np.nonzero(~active)[0]
        st.x[wait], st.v[wait] = xs[f + 1, wait], vs[f + 1, wait]
        # scenes whose contacts are over get a fresh prediction from frame f + 1
        again = np.nonzero(active & ~busy & prev_busy)[0]
        if len(again) and f + 1 < T - 1:
            sub = st.take(again)
            xr, vr = _closed_form(sub, T - f - 1, dt)
            xs[f + 1:, again], vs[f + 1:, again] = xr, vr
            pos[f + 1:, again], vel[f + 1:, again] = xr, vr
            f0[again] = f + 1 + _first_contact_frame(sub, xr, vr, dt)
        prev_busy = busy
        pos[f + 1], vel[f + 1] = st.x, st.v
        f += 1
    return [_to_truth(scenes[b], cfg, pos[:, b, : scenes[b].num_bodies], vel[:, b, : scenes[b].num_bodies],
                      [e for e in log if e[0] == b], st.box_body[b]) for b in range(B)]


def _to_truth(scene: Scene, cfg: WorldConfig, pos, vel, log, box_body) -> Truth:
    T, K = cfg.num_frames, scene.num_bodies
    dt = float(cfg.dt)
    state = np.zeros((T, K), np.int32)
    merged: dict[tuple, list] = {}
    first_hit: dict[int, int] = {}
    for _, time, i, j, m, J, dv in sorted(log, key=lambda e: e[1]):
        frame = min(T - 1, int(math.ceil(time / dt - 1e-9)))
        if m >= 0:
            blk = int(box_body[m])
            if blk >= 0:
                kind, bodies = "collision", (i, blk)
                first_hit.setdefault(blk, frame)
            else:
                kind, bodies = "bounce", (i, -1)
        else:
            kind, bodies = "collision", (i, j)
        if dv < EVENT_MIN_DV:
            continue
        key = (kind, bodies, frame)
        if key in merged:
            merged[key][1] += J
        else:
            merged[key] = [frame, J]
    events = [Event(frame, kind, bodies, float(J)) for (kind, bodies, _), (frame, J) in merged.items()]
    for blk, frame in first_hit.items():
        state[frame:, blk] = 1
        events.append(Event(frame, "state_change", (blk,), 0.0))
    events.sort(key=lambda e: (e.frame, e.kind, e.bodies))
    t = np.arange(T)[:, None] * dt
    camera = np.asarray(scene.camera_start, float)[None] + t * np.asarray(scene.camera_velocity, float)[None]
    radius = np.array([b.radius for b in scene.bodies], float)
    shapes = tuple(b.shape for b in scene.bodies)
    occluders = [s.box for s in scene.statics if s.kind == "occluder"]
    visible, in_frame = _visibility(pos, radius, shapes, camera, scene.view, occluders)
    params = dict(scene.params)
    params.update(
        gravity=float(scene.gravity),
        mass=[None if b.static else b.m for b in scene.bodies],
        restitution=[float(b.restitution) for b in scene.bodies],
        static_body=[bool(b.static) for b in scene.bodies],
        colour_after=[b.colour_after for b in scene.bodies],
        speed=[float(np.hypot(*b.velocity)) for b in scene.bodies],
        camera_velocity=[float(c) for c in scene.camera_velocity],
    )
    return Truth(
        family=scene.family, seed=int(scene.seed), split=scene.split, dt=dt,
        view=(float(scene.view[0]), float(scene.view[1])),
        positions=np.ascontiguousarray(pos), velocities=np.ascontiguousarray(vel), radius=radius,
        colour=tuple(b.colour for b in scene.bodies), shape=shapes,
        visible=visible, in_frame=in_frame, camera=camera, state=state, events=tuple(events),
        static=tuple(s.to_dict() for s in scene.statics), params=params,
    )


def kinetic_energy(truth: Truth) -> Float[np.ndarray, "t"]:
    """Total kinetic energy ``sum m |v|^2 / 2`` per frame (static bodies excluded)."""
    m = np.array([0.0 if x is None else x for x in truth.params["mass"]])
    return 0.5 * (m[None] * (truth.velocities ** 2).sum(-1)).sum(-1)


def momentum(truth: Truth) -> Float[np.ndarray, "t 2"]:
    """Total momentum ``sum m v`` per frame (static bodies excluded)."""
    m = np.array([0.0 if x is None else x for x in truth.params["mass"]])
    return (m[None, :, None] * truth.velocities).sum(1)
