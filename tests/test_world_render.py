"""The renderer: shapes and sizes, visible objects, exact coverage, occlusion, camera pan."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sora_jax.config import FAMILIES, WorldConfig
from sora_jax.world import families as F
from sora_jax.world.render import render, render_batch
from sora_jax.world.sim import Body, Scene, StaticBox, simulate, simulate_batch
from sora_jax.world.types import BACKGROUND, PALETTE, SCENERY

KNOWN = np.array([BACKGROUND, SCENERY, *PALETTE.values()], np.float32)
NAMES = ["white", "grey", *PALETTE]


def nearest_colour(video: np.ndarray) -> np.ndarray:
    """Index into NAMES of the nearest known colour of every pixel ``(t, h, w)``."""
    d = ((video[..., None, :].astype(np.float32) - KNOWN) ** 2).sum(-1)
    return d.argmin(-1)


def colour_pixels(video: np.ndarray, colour: str, tol: float = 40.0) -> np.ndarray:
    """Pixels per frame within ``tol`` (RGB distance) of ``colour``: mostly covered by that colour."""
    d = ((video.astype(np.float32) - np.asarray(PALETTE[colour], np.float32)) ** 2).sum(-1)
    return (d < tol * tol).sum((1, 2))


@pytest.mark.parametrize("h,w", [(64, 64), (36, 64), (64, 36)])
def test_every_family_renders_with_visible_objects(h, w):
    cfg = WorldConfig(height=h, width=w, num_frames=9)
    for family in FAMILIES:
        for seed in range(2):
            video, truth = F.make_clip(cfg, family, seed)
            assert video.dtype == np.uint8 and video.shape == (9, h, w, 3), family
            near = nearest_colour(video)
            after = truth.params["colour_after"]
            centres = truth.to_pixels(h, w)
            rows, cols = np.mgrid[:h, :w]
            for k in range(truth.num_objects):
                reach = truth.radius[k] * h / truth.view[1] + 1.0
                for t in np.nonzero(truth.visible[:, k] >= 1.0)[0]:
                    c = after[k] if after[k] and truth.state[t, k] else truth.colour[k]
                    inside = np.hypot(cols - centres[t, k, 0], rows - centres[t, k, 1]) <= reach
                    assert (near[t][inside] == NAMES.index(c)).any(), (family, seed, k, t)
            assert (near == 0).any()                               # white background shows


def test_coverage_is_exact_area():
    """Anti-aliased pixels carry the covered share: summed coverage equals the shape's area."""
    cfg = WorldConfig(height=97, width=97, num_frames=1)
    px = 97 / 10.0
    for shape, area in (("circle", math.pi), ("square", 2.0), ("triangle", 3 * math.sqrt(3) / 4)):
        for cx in (3.03, 4.51, 6.77):
            body = Body((cx, 5.29), (0.0, 0.0), 1.3, "blue", shape)
            truth = simulate(Scene("uniform", 0, "id", (10.0, 10.0), (body,)), cfg)
            video = render(truth, 97, 97, antialias=4).astype(np.float32)
            white, blue = np.float32(255.0), np.asarray(PALETTE["blue"], np.float32)
            alpha = ((white - video[0]) * (white - blue)).sum(-1) / ((white - blue) ** 2).sum()
            expect = area * (1.3 * px) ** 2
            assert abs(alpha.sum() - expect) / expect < 0.01, (shape, cx, alpha.sum(), expect)


def test_hard_edges_use_only_known_colours():
    cfg = WorldConfig(height=48, width=48, num_frames=5, antialias=1)
    for family in ("bounce", "occlusion", "camera_pan", "counting"):
        video, _ = F.make_clip(cfg, family, 1)
        d = ((video[..., None, :].astype(np.float32) - KNOWN) ** 2).sum(-1).min(-1)
        assert d.max() == 0, family


def test_render_batch_equals_render():
    cfg = WorldConfig(height=36, width=64, num_frames=5)
    truths = simulate_batch([F.sample_scene(cfg, f, 3) for f in FAMILIES * 3], cfg)
    batch = render_batch(truths, 36, 64, 4)
    for truth, video in zip(truths, batch):
        assert np.array_equal(video, render(truth, 36, 64, 4))


def test_occluder_hides_the_object():
    cfg = WorldConfig(height=64, width=64, num_frames=17)
    hidden_seen = 0
    for seed in range(6):
        video, truth = F.make_clip(cfg, "occlusion", seed)
        pixels = colour_pixels(video, truth.colour[0])
        full = truth.visible[:, 0] >= 1.0
        hidden = truth.visible[:, 0] < 0.5
        if full.any() and hidden.any():
            hidden_seen += 1
            assert pixels[hidden].max() < pixels[full].min(), (seed, pixels, truth.visible[:, 0])
        grey = (nearest_colour(video) == 1).sum((1, 2))
        assert grey.min() > 0                                      # the occluder is drawn in every frame
    assert hidden_seen >= 3


def test_camera_pan_moves_landmarks_by_the_camera_offset():
    """Landmark centroids (grey coverage) shift by -camera offset * pixels per metre."""
    h = w = 64
    cfg = WorldConfig(height=h, width=w, num_frames=17)
    checked = 0
    for seed in range(12):
        video, truth = F.make_clip(cfg, "camera_pan", seed)
        s = h / truth.view[1]
        shift = (truth.camera[-1] - truth.camera[0]) * s               # metres -> pixels, x right / y up
        expect = np.array([-shift[0], shift[1]])                       # (col, row): rows grow downwards
        assert np.abs(shift).max() > 1.0                               # the camera does move
        grey = np.clip((255.0 - video.astype(np.float32).mean(-1)) / (255.0 - SCENERY[0]), 0, 1)
        for st in truth.static:
            x0, y0, x1, y1 = st["box"]
            cents = []
            for t in (0, truth.num_frames - 1):
                cx, cy = truth.camera[t]
                c0, c1 = (x0 - cx) * s, (x1 - cx) * s
                r0, r1 = (truth.view[1] - (y1 - cy)) * s, (truth.view[1] - (y0 - cy)) * s
                ca, cb, ra, rb = int(c0) - 2, int(math.ceil(c1)) + 2, int(r0) - 2, int(math.ceil(r1)) + 2
                if ca < 0 or ra < 0 or cb > w or rb > h:
                    break                                               # not fully in view
                centres = truth.to_pixels(h, w)[t]
                if np.any((centres[:, 0] + truth.radius * s > ca - 1) & (centres[:, 0] - truth.radius * s < cb + 1)
                          & (centres[:, 1] + truth.radius * s > ra - 1) & (centres[:, 1] - truth.radius * s < rb + 1)):
                    break                                               # a body covers part of it
                g = grey[t, ra:rb, ca:cb]
                rows, cols = np.mgrid[ra:rb, ca:cb]
                cents.append(np.array([(g * cols).sum(), (g * rows).sum()]) / g.sum())
            if len(cents) == 2:
                np.testing.assert_allclose(cents[1] - cents[0], expect, atol=0.05)   # uint8 rounding
                checked += 1
    assert checked >= 3


def test_block_changes_colour_after_the_hit():
    cfg = WorldConfig(height=64, width=64, num_frames=33)
    for seed in range(8):
        video, truth = F.make_clip(cfg, "cause_effect", seed)
        changes = [e.frame for e in truth.events if e.kind == "state_change"]
        if not changes:
            continue
        c0, c1 = truth.colour[1], truth.params["colour_after"][1]
        assert len({truth.colour[0], c0, c1}) == 3                 # ball, block before, block after
        f = changes[0]
        assert colour_pixels(video[:f], c0).min() > 0 and colour_pixels(video[:f], c1).max() == 0
        assert colour_pixels(video[f:], c1).min() > 0 and colour_pixels(video[f:], c0).max() == 0
        return
    pytest.fail("no cause_effect clip with a hit")


def test_bad_render_requests():
    truth = simulate(F.sample_scene(WorldConfig(height=32, width=32, num_frames=3), "uniform", 0),
                     WorldConfig(height=32, width=32, num_frames=3))
    with pytest.raises(ValueError, match="height=0"):
        render(truth, 0, 32)
    with pytest.raises(ValueError, match="do not match"):
        render(truth, 32, 64)
    with pytest.raises(ValueError, match="antialias"):
        render(truth, 32, 32, antialias=0)
    with pytest.raises(ValueError, match="palette"):
        render(dataclasses.replace(truth, colour=("pink",) * truth.num_objects), 32, 32)
    with pytest.raises(ValueError, match="frame counts"):
        short = simulate(F.sample_scene(WorldConfig(height=32, width=32, num_frames=2), "uniform", 0),
                         WorldConfig(height=32, width=32, num_frames=2))
        render_batch([truth, short], 32, 32)
    with pytest.raises(ValueError, match="expected a Truth"):
        render("clip", 32, 32)   # type: ignore[arg-type]


def test_occluder_and_walls_are_drawn_where_the_truth_says():
    """Scenery boxes: exact coverage at their pixel edges (no off-by-one)."""
    body = Body((2.0, 2.0), (0.0, 0.0), 0.5, "red")
    occ = StaticBox("occluder", (5.0, 2.5, 7.5, 8.0))
    truth = simulate(Scene("occlusion", 0, "id", (10.0, 10.0), (body,), (occ,)), WorldConfig(height=40, width=40,
                                                                                               num_frames=1))
    video = render(truth, 40, 40)
    g = (255.0 - video[0].astype(np.float32).mean(-1)) / (255.0 - SCENERY[0])
    # columns 20..29 and rows 8..29 fully grey (5.0 m * 4 px/m = 20, 7.5 -> 30; top 8.0 m -> row 8, 2.5 m -> row 30)
    assert np.allclose(g[8:30, 20:30], 1.0, atol=0.01)
    assert np.allclose(g[:, :20][:, 12:], 0.0, atol=0.01) and np.allclose(g[:8, :], 0.0, atol=0.01)


def test_bench_world_reports_throughput():
    from sora_jax.world.bench import bench_world

    cfg = WorldConfig(height=32, width=32, num_frames=5)
    for batched in (True, False):
        r = bench_world(cfg, n_clips=9, num_objects=3, batched=batched, repeats=1, warmup=1, captions=True)
        assert r["clip"] == "5x32x32" and r["clips"] == 9 and 1 <= r["objects_mean"] <= 3
        assert r["clips_per_s"] > 0 and r["ms_per_clip"] >= r["render_ms"] > 0 and r["caption_ms"] > 0
    r = bench_world(cfg, n_clips=4, num_objects=4, exact_objects=True, repeats=1, warmup=0)
    assert r["objects_mean"] == 4.0 and "counting" in r["mode"]
    with pytest.raises(ValueError, match="n_clips=0"):
        bench_world(cfg, n_clips=0)
