"""Physics of the synthetic world: conservation laws, closed forms, no tunnelling,
determinism, robust sampling at every size, and clear errors for bad requests."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sora_jax.config import FAMILIES, WorldConfig
from sora_jax.world import families as F
from sora_jax.world import make_clip, make_clips
from sora_jax.world.sim import Body, Scene, StaticBox, kinetic_energy, momentum, simulate, simulate_batch

# Every frame size / clip length the shipped configs use (configs/world.py, configs/demo.py).
SIZES = [(32, 32, 5), (32, 32, 9), (64, 64, 17), (64, 64, 33), (64, 112, 17), (112, 64, 17),
         (36, 64, 17), (64, 36, 17), (128, 128, 17), (16, 16, 5)]


def cfg_of(h=64, w=64, t=17, **kw) -> WorldConfig:
    return WorldConfig(height=h, width=w, num_frames=t, **kw)


# --------------------------------------------------------------------------- #
# Conservation laws
# --------------------------------------------------------------------------- #


def test_elastic_collisions_conserve_energy_and_momentum():
    cfg = cfg_of(t=33)
    checked = 0
    for seed in range(40):
        truth = simulate(F.sample_scene(cfg, "collision", seed), cfg)
        if not truth.params["elastic"]:
            continue
        assert any(e.kind == "collision" for e in truth.events), seed
        ke = kinetic_energy(truth)
        assert np.max(np.abs(ke - ke[0])) / ke[0] < 1e-6, (seed, ke)
        p = momentum(truth)
        assert np.max(np.abs(p - p[0])) < 1e-9 * (1 + np.abs(p[0]).max()), seed
        checked += 1
    assert checked >= 10


def test_any_collision_conserves_momentum_and_inelastic_loses_energy():
    cfg = cfg_of(t=33)
    lost = 0
    for seed in range(40):
        truth = simulate(F.sample_scene(cfg, "collision", seed), cfg)
        p = momentum(truth)
        assert np.max(np.abs(p - p[0])) < 1e-9 * (1 + np.abs(p[0]).max()), seed
        ke = kinetic_energy(truth)
        assert ke[-1] <= ke[0] * (1 + 1e-9)
        if not truth.params["elastic"] and ke[-1] < ke[0] * (1 - 1e-3):
            lost += 1
    assert lost >= 5


def test_oblique_elastic_hit_of_unequal_discs():
    """A hand-built off-centre hit: energy and momentum exact, bodies leave at new angles."""
    cfg = cfg_of(t=21)
    bodies = (Body((2.0, 5.0), (3.0, 0.0), 0.8, "red", restitution=1.0),
              Body((6.0, 5.6), (-1.0, 0.0), 1.1, "blue", restitution=1.0))
    truth = simulate(Scene("collision", 0, "id", (10.0, 10.0), bodies), cfg)
    ke, p = kinetic_energy(truth), momentum(truth)
    assert abs(ke[-1] - ke[0]) / ke[0] < 1e-9
    assert np.allclose(p, p[0], atol=1e-12)
    assert truth.velocities[-1, 0, 1] < -0.1 and truth.velocities[-1, 1, 1] > 0.1   # deflected apart
    (event,) = [e for e in truth.events if e.kind == "collision"]
    assert event.bodies == (0, 1) and event.impulse > 0
    # at the contact frame the discs never overlap by more than a hair
    d = np.linalg.norm(truth.positions[:, 0] - truth.positions[:, 1], axis=-1)
    assert d.min() > (0.8 + 1.1) - 1e-6


# --------------------------------------------------------------------------- #
# Closed forms
# --------------------------------------------------------------------------- #


def test_parabola_matches_closed_form_until_first_bounce():
    for split in ("id", "ood"):
        cfg = cfg_of(t=33, split=split)
        for seed in range(12):
            truth = simulate(F.sample_scene(cfg, "parabola", seed), cfg)
            g = truth.params["gravity"]
            bounces = [e.frame for e in truth.events if e.kind == "bounce"]
            end = min(bounces) if bounces else truth.num_frames        # the event frame is after the contact
            t = np.arange(end) * truth.dt
            (x0, y0), (vx, vy) = truth.positions[0, 0], truth.velocities[0, 0]
            np.testing.assert_allclose(truth.positions[:end, 0, 0], x0 + vx * t, atol=1e-9)
            np.testing.assert_allclose(truth.positions[:end, 0, 1], y0 + vy * t - g * t * t / 2, atol=1e-9)
            np.testing.assert_allclose(truth.velocities[:end, 0, 1], vy - g * t, atol=1e-9)


def test_uniform_motion_is_exactly_linear():
    cfg = cfg_of(t=17)
    truth = simulate(F.sample_scene(cfg, "uniform", 3), cfg)
    t = np.arange(truth.num_frames)[:, None, None] * truth.dt
    np.testing.assert_allclose(truth.positions, truth.positions[:1] + truth.velocities[:1] * t, atol=1e-12)


# --------------------------------------------------------------------------- #
# No tunnelling
# --------------------------------------------------------------------------- #


def test_no_tunnelling_at_max_ood_speed_and_smallest_radius():
    """6 m/s bodies of radius 0.3 m (the OOD extremes) stay inside the walled box, many seeds."""
    cfg = cfg_of(t=33, split="ood")
    rng = np.random.default_rng(0)
    scenes = []
    for seed in range(30):
        scene = F.sample_scene(cfg, "bounce", seed)
        bodies = []
        for b in scene.bodies:
            ang = rng.uniform(0, 2 * math.pi)
            bodies.append(dataclasses.replace(b, radius=0.3, velocity=(6 * math.cos(ang), 6 * math.sin(ang))))
        scenes.append(dataclasses.replace(scene, bodies=tuple(bodies)))
    for scene, truth in zip(scenes, simulate_batch(scenes, cfg)):
        thick = scene.params["wall_thickness"]
        W, H = scene.view
        x, r = truth.positions, truth.radius
        tol = 1e-6
        assert np.all(x[..., 0] >= thick + r - tol) and np.all(x[..., 0] <= W - thick - r + tol), scene.seed
        assert np.all(x[..., 1] >= thick + r - tol) and np.all(x[..., 1] <= H - thick - r + tol), scene.seed
        # bodies never pass through each other either
        K = truth.num_objects
        for i in range(K):
            for j in range(i + 1, K):
                d = np.linalg.norm(x[:, i] - x[:, j], axis=-1)
                assert d.min() > r[i] + r[j] - 1e-6, (scene.seed, i, j)
        if scene.gravity == 0:     # elastic or not, a closed box keeps every ball moving: no energy appears
            ke = kinetic_energy(truth)
            assert ke[-1] <= ke[0] * (1 + 1e-9)


def test_parabola_never_sinks_into_the_floor():
    cfg = cfg_of(t=33, split="ood")
    scenes = [F.sample_scene(cfg, "parabola", s) for s in range(30)]
    for scene, truth in zip(scenes, simulate_batch(scenes, cfg)):
        assert np.all(truth.positions[..., 1] >= scene.params["floor_top"] + truth.radius - 1e-6)


# --------------------------------------------------------------------------- #
# Determinism
# --------------------------------------------------------------------------- #


def test_same_seed_same_bytes_other_seed_differs():
    cfg = cfg_of(h=37, w=53, t=9)
    for family in FAMILIES:
        a, b = make_clip(cfg, family, 5), make_clip(cfg, family, 5)
        assert a.video.tobytes() == b.video.tobytes(), family
        assert a.truth.to_json() == b.truth.to_json()
        assert a.caption == b.caption and a.prompt == b.prompt
        c = make_clip(cfg, family, 6)
        assert c.video.tobytes() != a.video.tobytes(), family


def test_make_clips_equals_make_clip_per_item():
    cfg = cfg_of(h=37, w=53, t=9)
    fams = list(FAMILIES) * 2
    seeds = list(range(len(fams)))
    batch = make_clips(cfg, fams, seeds)
    for f, s, clip in zip(fams, seeds, batch):
        one = make_clip(cfg, f, s)
        assert np.array_equal(clip.video, one.video), (f, s)
        assert clip.truth.to_json() == one.truth.to_json()
        assert clip.caption == one.caption and clip.prompt == one.prompt


def test_simulate_batch_does_not_depend_on_the_batch():
    cfg = cfg_of(t=17)
    scenes = [F.sample_scene(cfg, f, 7) for f in FAMILIES]
    together = simulate_batch(scenes, cfg)
    reversed_ = simulate_batch(scenes[::-1], cfg)[::-1]
    for s, a, b in zip(scenes, together, reversed_):
        alone = simulate(s, cfg)
        assert np.array_equal(a.positions, alone.positions) and np.array_equal(b.positions, alone.positions)
        assert a.events == alone.events


# --------------------------------------------------------------------------- #
# Robust sampling: the stream never dies
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("t,seeds", [(5, [1, 2, 8, 12, 14]), (9, [8, 28, 39])])
def test_collision_seeds_that_used_to_fail(t, seeds):
    cfg = cfg_of(32, 32, t)
    for seed in seeds:
        truth = simulate(F.sample_scene(cfg, "collision", seed), cfg)
        assert truth.num_objects >= 2
        assert np.all(truth.visible[0] == 1.0)                     # both start fully in view
        if truth.params["contact_time"] < (t - 1) * cfg.dt:
            assert any(e.kind == "collision" and e.bodies == (0, 1) for e in truth.events), seed


@pytest.mark.parametrize("h,w,split,max_objects", [(64, 36, "id", 4), (64, 36, "id", 5), (36, 64, "ood", 4),
                                                   (36, 64, "id", 5), (16, 16, "id", 5)])
def test_counting_places_every_count(h, w, split, max_objects):
    cfg = cfg_of(h, w, 17, split=split, max_objects=max_objects)
    seen = set()
    for seed in range(40):
        truth = simulate(F.sample_scene(cfg, "counting", seed), cfg)
        n = truth.num_objects
        seen.add(n)
        assert truth.params["count"] == n
        assert np.all(truth.visible == 1.0), seed                   # the count is the same in every frame
        px = cfg.view_height / h
        for i in range(n):
            for j in range(i + 1, n):
                d = np.linalg.norm(truth.positions[:, i] - truth.positions[:, j], axis=-1)
                assert d.min() >= truth.radius[i] + truth.radius[j] + 1.9 * px, (seed, i, j)
    assert seen == set(range(1, max_objects + 1))


def test_every_family_every_size_split_and_length():
    """A compact sweep (the full one runs ~200k scenes): no exception, sane clips."""
    for split in ("id", "ood"):
        for h, w, t in SIZES:
            cfg = cfg_of(h, w, t, split=split)
            for family in FAMILIES:
                scenes = [F.sample_scene(cfg, family, s) for s in range(3)]
                for truth in simulate_batch(scenes, cfg):
                    assert np.isfinite(truth.positions).all()
                    assert 1 <= truth.num_objects <= cfg.max_objects
                    assert np.all(truth.visible.max(0) > 0), (family, h, w, t)   # every object is seen


@pytest.mark.parametrize("t", [1, 2])
def test_one_and_two_frame_clips(t):
    cfg = cfg_of(32, 32, t)
    for family in FAMILIES:
        clip = make_clip(cfg, family, 0)
        assert clip.video.shape == (t, 32, 32, 3)


# --------------------------------------------------------------------------- #
# Bad requests
# --------------------------------------------------------------------------- #


def test_unknown_family_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown scene family 'teleport'.*uniform.*cause_effect"):
        F.sample_scene(cfg_of(), "teleport", 0)


@pytest.mark.parametrize("kw,match", [(dict(height=0), "height and width must be >= 1"),
                                      (dict(width=-3), "height and width must be >= 1"),
                                      (dict(num_frames=0), "num_frames=0"),
                                      (dict(max_objects=1), "needs 2 objects")])
def test_bad_config_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        F.sample_scene(dataclasses.replace(cfg_of(), **kw), "collision", 0)


def test_too_many_objects_raises_for_every_seed():
    cfg = cfg_of(32, 32, 5, max_objects=60)
    for seed in (0, 1):
        with pytest.raises(ValueError, match="max_objects=60 objects do not fit"):
            F.sample_scene(cfg, "counting", seed)
    # a crowded but possible request works
    assert F.sample_scene(cfg_of(32, 32, 5, max_objects=12), "counting", 0).num_bodies >= 1


def test_bad_seed_and_scene_raise():
    with pytest.raises(ValueError, match="seed=-1"):
        F.sample_scene(cfg_of(), "uniform", -1)
    with pytest.raises(ValueError, match="radius"):
        simulate(Scene("uniform", 0, "id", (10.0, 10.0), (Body((1.0, 1.0), (0.0, 0.0), -1.0, "red"),)), cfg_of())
    with pytest.raises(ValueError, match="colour"):
        simulate(Scene("uniform", 0, "id", (10.0, 10.0), (Body((1.0, 1.0), (0.0, 0.0), 1.0, "pink"),)), cfg_of())
    with pytest.raises(ValueError, match="static box"):
        simulate(Scene("uniform", 0, "id", (10.0, 10.0), (), (StaticBox("occluder", (2.0, 2.0, 1.0, 3.0)),)),
                 cfg_of())
