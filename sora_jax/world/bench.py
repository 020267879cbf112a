"""How fast the synthetic world makes clips: sample -> simulate -> render (-> caption).

``sora-jax bench world`` calls :func:`bench_world` with the experiment's
``WorldConfig``; the figure to watch is ``clips_per_s``: training is never
data-bound when it is well above the trainer's clips per second.

Two modes:

* ``batched=True``: :func:`~sora_jax.world.families.make_clips` style --
  scenes simulated together by ``simulate_batch`` and drawn by
  ``render_batch`` (the fast path for exporting a data set).
* ``batched=False``: one clip at a time, as a streaming data loader does.

Timings are wall-clock on whatever else the machine is doing; run twice.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from sora_jax.config import WorldConfig, validate
from sora_jax.world import families as _families
from sora_jax.world.render import render, render_batch
from sora_jax.world.sim import simulate, simulate_batch


def bench_world(cfg: WorldConfig, *, n_clips: int = 256, num_objects: int = 4, batched: bool = True,
                captions: bool = False, exact_objects: bool = False, warmup: int = 8,
                repeats: int = 2) -> dict[str, Any]:
    """Clips per second of the world at ``cfg``'s size, families cycling, up to ``num_objects`` objects.

    ``exact_objects=True`` times a heavier, fixed workload instead: ``counting``
    clips with exactly ``num_objects`` objects each (seeds chosen before timing).

    Returns a dict: ``mode``, ``clip`` (``"t x h x w"``), ``max_objects``,
    ``objects_mean`` (objects per clip actually drawn), ``clips``, per-clip
    milliseconds of each stage (``sample_ms``, ``sim_ms``, ``render_ms``, and
    ``caption_ms`` when ``captions``), ``ms_per_clip`` and ``clips_per_s``.
    Seeds are ``0 .. n_clips - 1`` (or the first matching ones), so two runs
    time the same clips. The whole pass runs ``repeats`` times and the fastest
    is reported (the machine may be shared; the fastest pass is the least
    disturbed one).
    """
    if not isinstance(cfg, WorldConfig):
        raise ValueError(f"bench_world: expected a WorldConfig, got {type(cfg).__name__}")
    if n_clips < 1 or num_objects < 1 or warmup < 0 or repeats < 1:
        raise ValueError(f"bench_world: n_clips={n_clips}, num_objects={num_objects}, warmup={warmup}, "
                         f"repeats={repeats}: need n_clips, num_objects, repeats >= 1 and warmup >= 0")
    cfg = dataclasses.replace(cfg, max_objects=int(num_objects))
    validate(cfg)
    if exact_objects:
        cfg = dataclasses.replace(cfg, families=("counting",))
        seeds = [s for s in range(50 * n_clips)
                 if _families.sample_scene(cfg, "counting", s).num_bodies == num_objects][:n_clips]
        if len(seeds) < n_clips:
            raise ValueError(f"bench_world: found only {len(seeds)} counting clips with {num_objects} objects")
    else:
        seeds = list(range(n_clips))
    fams = [cfg.families[i % len(cfg.families)] for i in range(n_clips)]
    if warmup:                                      # imports, caches, first-call overheads
        w = min(warmup, n_clips)
        render_batch(simulate_batch([_families.sample_scene(cfg, f, s) for f, s in zip(fams[:w], seeds[:w])], cfg),
                     cfg.height, cfg.width, cfg.antialias)
    best: tuple[float, float, float, float] | None = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        scenes = [_families.sample_scene(cfg, f, s) for f, s in zip(fams, seeds)]
        t1 = time.perf_counter()
        if batched:
            truths = simulate_batch(scenes, cfg)
            t2 = time.perf_counter()
            render_batch(truths, cfg.height, cfg.width, cfg.antialias)
        else:
            truths = [simulate(s, cfg) for s in scenes]
            t2 = time.perf_counter()
            for t in truths:
                render(t, cfg.height, cfg.width, cfg.antialias)
        t3 = time.perf_counter()
        if best is None or t3 - t0 < best[3] - best[0]:
            best = (t0, t1, t2, t3)
    t0, t1, t2, t3 = best
    out: dict[str, Any] = {
        "mode": ("batched" if batched else "per-clip") + (", counting" if exact_objects else ""),
        "clip": f"{cfg.num_frames}x{cfg.height}x{cfg.width}",
        "max_objects": int(num_objects),
        "objects_mean": sum(t.num_objects for t in truths) / n_clips,
        "clips": n_clips,
        "sample_ms": 1e3 * (t1 - t0) / n_clips,
        "sim_ms": 1e3 * (t2 - t1) / n_clips,
        "render_ms": 1e3 * (t3 - t2) / n_clips,
    }
    total = t3 - t0
    if captions:
        from sora_jax.world.captions import dense_caption, short_prompt

        t4 = time.perf_counter()
        for t, s in zip(truths, seeds):
            dense_caption(t)
            short_prompt(t, s)
        t5 = time.perf_counter()
        out["caption_ms"] = 1e3 * (t5 - t4) / n_clips
        total += t5 - t4
    out["ms_per_clip"] = 1e3 * total / n_clips
    out["clips_per_s"] = n_clips / total
    return out
