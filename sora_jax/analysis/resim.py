"""Re-simulating a clip's scene from its ground truth, exactly or with tiny perturbations.

A :class:`~sora_jax.world.types.Truth` holds everything a
:class:`~sora_jax.world.sim.Scene` needs (initial positions and velocities,
radii, colours, shapes, masses, restitution, static boxes, gravity, camera),
so :func:`scene_from_truth` rebuilds the scene and ``simulate`` reproduces the
truth exactly. Perturbed copies give two physically valid outcomes of "the
same" scene -- the physical-variance floor of Physics-IQ.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sora_jax.config import WorldConfig
from sora_jax.world.render import render
from sora_jax.world.sim import Body, Scene, StaticBox, simulate
from sora_jax.world.types import Truth


def scene_from_truth(truth: Truth, *, gravity: float | None = None) -> Scene:
    """The scene whose simulation is ``truth`` (``gravity`` overrides the truth's)."""
    p = truth.params
    K = truth.num_objects
    mass = p.get("mass") or [None] * K
    rest = p.get("restitution") or [1.0] * K
    static = p.get("static_body") or [False] * K
    after = p.get("colour_after") or [None] * K
    bodies = tuple(
        Body(position=(float(truth.positions[0, k, 0]), float(truth.positions[0, k, 1])),
             velocity=(float(truth.velocities[0, k, 0]), float(truth.velocities[0, k, 1])),
             radius=float(truth.radius[k]), colour=truth.colour[k], shape=truth.shape[k],
             mass=None if mass[k] is None else float(mass[k]), restitution=float(rest[k]), static=bool(static[k]),
             colour_after=after[k])
        for k in range(K))
    statics = tuple(StaticBox(s["kind"], tuple(float(v) for v in s["box"]), bool(s.get("collides", False)),
                              int(s.get("body", -1))) for s in truth.static)
    g = float(p.get("gravity", 0.0) or 0.0) if gravity is None else float(gravity)
    return Scene(family=truth.family, seed=truth.seed, split=truth.split, view=tuple(truth.view), bodies=bodies,
                 statics=statics, gravity=g, camera_start=(float(truth.camera[0, 0]), float(truth.camera[0, 1])),
                 camera_velocity=tuple(float(v) for v in (p.get("camera_velocity") or (0.0, 0.0))),
                 params={k: v for k, v in p.items()})


def world_for(truth: Truth, height: int = 64, width: int | None = None, *, antialias: int = 4,
              substeps: int = 16) -> WorldConfig:
    """A WorldConfig that simulates and renders ``truth``'s scene (its frames, dt and view)."""
    vw, vh = truth.view
    width = int(round(height * vw / vh)) if width is None else width
    return WorldConfig(height=int(height), width=int(width), num_frames=truth.num_frames, dt=float(truth.dt),
                       substeps=substeps, view_height=float(vh), antialias=antialias)


def resimulate(truth: Truth, *, gravity: float | None = None) -> Truth:
    """Simulate ``truth``'s scene again (identical to ``truth`` unless ``gravity`` changes)."""
    return simulate(scene_from_truth(truth, gravity=gravity), world_for(truth))


def perturbed(truth: Truth, seed: int, *, position: float = 0.02, velocity: float = 0.01) -> Truth:
    """Re-simulate with tiny random changes of the initial state.

    Positions move by ``position`` times the body's radius (Gaussian, per
    axis), velocities by ``velocity`` times its speed (plus the same share of
    1 m/s so still bodies move a hair too). Bodies stay where they were when
    a change would make them overlap.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(truth.seed), 7]))
    scene = scene_from_truth(truth)
    bodies = list(scene.bodies)
    for k, b in enumerate(bodies):
        if b.static:
            continue
        dp = rng.normal(0.0, position * b.radius, 2)
        speed = math.hypot(*b.velocity)
        dv = rng.normal(0.0, velocity * (speed + 1.0), 2)
        new = np.asarray(b.position) + dp
        ok = all(np.linalg.norm(new - np.asarray(o.position)) > b.radius + o.radius
                 for j, o in enumerate(bodies) if j != k)
        bodies[k] = dataclasses.replace(b, position=tuple(map(float, new if ok else b.position)),
                                        velocity=tuple(map(float, np.asarray(b.velocity) + dv)))
    return simulate(dataclasses.replace(scene, bodies=tuple(bodies)), world_for(truth))


def render_like(truth: Truth, video: np.ndarray, antialias: int = 4) -> np.ndarray:
    """Render ``truth`` at ``video``'s size."""
    return render(truth, int(video.shape[1]), int(video.shape[2]), antialias)
