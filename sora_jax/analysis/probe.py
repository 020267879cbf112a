"""Combinatorial-generalisation probe: when a prompt's attributes conflict with training, which one survives?

PhyWorld (Kang et al. 2024) found video models generalise "case-based": given a
combination never seen in training, a model copies the closest training case,
and it weighs attributes colour > size > velocity > shape when deciding what is
"close". This probe asks a generator for one object with a chosen colour,
shape, size and speed, reads those four attributes back from each clip
(tracker colour, shape from pixel moments, radius -> size word, speed -> speed word),
and reports how often each attribute is kept -- overall, on the combinations
the caller marks as unseen in training, and pairwise (how often ``a`` is kept
while ``b`` is lost).

The words follow :mod:`sora_jax.world.captions`: size is the radius as a share
of the view height (< 0.065 small, < 0.11 medium, else large); speed is the mean
speed in view heights per second (< 0.08 slow, > 0.45 fast).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sora_jax.analysis._progress import progress_bar
from sora_jax.analysis.metrics import _clean_points, _tracklet_shape
from sora_jax.analysis.observe import SHAPE_AREA, check_video, observe
from sora_jax.config import WorldConfig
from sora_jax.world.captions import FAST_SPEED, SIZE_THRESHOLDS, SLOW_SPEED
from sora_jax.world.render import render
from sora_jax.world.sim import Body, Scene, simulate
from sora_jax.world.types import PALETTE, SHAPES, SIZES

ATTRIBUTES: tuple[str, ...] = ("colour", "shape", "size", "speed")
SPEEDS: tuple[str, ...] = ("slow", "medium", "fast")
_NOUN = {"circle": "ball", "square": "square", "triangle": "triangle"}
_ADVERB = {"slow": "slowly ", "medium": "", "fast": "quickly "}
# representative values (share of the view height; per second for speeds), inside each word's band
_SIZE_VALUE = {"small": 0.05, "medium": 0.085, "large": 0.13}
_SPEED_VALUE = {"slow": 0.05, "medium": 0.25, "fast": 0.5}


def probe_prompts(colours: Sequence[str] = ("red", "blue"), shapes: Sequence[str] = ("circle", "square"),
                  sizes: Sequence[str] = ("small", "large"), speeds: Sequence[str] = ("slow", "fast")) -> list[dict[str, str]]:
    """Every combination as ``{"prompt", "colour", "shape", "size", "speed"}`` (objects move to the right)."""
    for name, vals, valid in (("colours", colours, PALETTE), ("shapes", shapes, SHAPES), ("sizes", sizes, SIZES),
                              ("speeds", speeds, SPEEDS)):
        bad = [v for v in vals if v not in valid]
        if bad or not vals:
            raise ValueError(f"probe_prompts: {name}={list(vals)!r}: unknown {bad}; valid: {', '.join(valid)}")
    out = []
    for c, s, z, v in itertools.product(colours, shapes, sizes, speeds):
        prompt = f"a {z} {c} {_NOUN[s]} moves {_ADVERB[v]}to the right"
        out.append({"prompt": prompt, "colour": c, "shape": s, "size": z, "speed": v})
    return out


def attribute_clip(attrs: Mapping[str, str], world: WorldConfig | None = None) -> np.ndarray:
    """A ground-truth clip of one object with these attributes moving right (the probe's floor).

    ``attrs``: colour, shape, size, speed words as in :func:`probe_prompts`.
    """
    world = WorldConfig() if world is None else world
    vh = float(world.view_height)
    vw = vh * world.width / world.height
    r = _SIZE_VALUE[attrs["size"]] * vh
    v = _SPEED_VALUE[attrs["speed"]] * vh
    T = max(world.num_frames - 1, 1) * world.dt
    x0 = float(np.clip(0.5 * vw - 0.5 * v * T, r + 0.02 * vw, vw - r - 0.02 * vw))
    body = Body((x0, 0.5 * vh), (v, 0.0), r, attrs["colour"], attrs["shape"])
    scene = Scene(family="uniform", seed=0, split="id", view=(vw, vh), bodies=(body,))
    truth = simulate(scene, world)
    return render(truth, world.height, world.width, world.antialias)


def read_attributes(video: np.ndarray, world: WorldConfig | None = None) -> dict[str, str | None]:
    """Colour, shape, size word and speed word of the main object (the longest tracklet) of a clip."""
    world = WorldConfig() if world is None else world
    obs = observe(check_video(video), None, world=world)
    out: dict[str, str | None] = dict.fromkeys(ATTRIBUTES)
    if obs.problem or not obs.tracklets:
        return out
    tr = max(obs.tracklets, key=len)
    out["colour"] = tr.colour
    shape = _tracklet_shape(obs, tr)
    out["shape"] = shape
    ok = _clean_points(obs, tr)
    area = float(np.median(tr.area[ok])) if ok.any() else float(np.median(tr.area))
    r_px = math.sqrt(area / SHAPE_AREA[shape or "circle"])          # circumradius
    rel = r_px / obs.height
    out["size"] = SIZES[0] if rel < SIZE_THRESHOLDS[0] else SIZES[1] if rel < SIZE_THRESHOLDS[1] else SIZES[2]
    f = tr.frames[ok] if ok.sum() >= 2 else tr.frames
    xy = tr.centroid[ok] if ok.sum() >= 2 else tr.centroid
    if len(f) >= 2 and f[-1] > f[0]:
        speed = float(np.linalg.norm(xy[-1] - xy[0])) / (f[-1] - f[0]) / obs.height / obs.dt   # view heights / s
        out["speed"] = "slow" if speed < SLOW_SPEED else "fast" if speed > FAST_SPEED else "medium"
    return out


def combinatorial_probe(generate: Callable[[list[str], list[int]], np.ndarray], *,
                        prompts: Sequence[Mapping[str, str]] | None = None, seeds: Iterable[int] = (0,),
                        unseen: Callable[[Mapping[str, str]], bool] | None = None, world: WorldConfig | None = None,
                        batch_size: int = 8, progress: bool = False) -> dict[str, Any]:
    """Ask ``generate`` for every probe prompt and measure which attributes each clip keeps.

    generate  ``(prompts, seeds) -> uint8 (b, t, h, w, 3)``, e.g.
              ``lambda p, s: pipe.generate(p, seed=s, num_frames=17, height=64, width=64)``
    prompts   from :func:`probe_prompts` (default: its defaults, 16 combinations)
    unseen    marks the combinations absent from training (the conflicts); default: none marked

    Returns ``kept`` (share of clips keeping each attribute), ``kept_unseen``
    (the same over unseen combinations), ``order`` (attributes by how often
    they are kept on unseen combinations, else overall), ``wins[a][b]`` (share
    of clips keeping ``a`` while losing ``b``) and per-clip ``rows``.
    """
    prompts = list(probe_prompts() if prompts is None else prompts)
    seeds = list(seeds)
    if not prompts or not seeds:
        raise ValueError("combinatorial_probe: need at least one prompt and one seed")
    jobs = [(p, s) for p in prompts for s in seeds]
    rows: list[dict[str, Any]] = []
    bar = progress_bar(progress, len(jobs), "probe")
    for b0 in range(0, len(jobs), batch_size):
        batch = jobs[b0:b0 + batch_size]
        vids = np.asarray(generate([p["prompt"] for p, _ in batch], [s for _, s in batch]))
        if vids.ndim == 4 and len(batch) == 1:
            vids = vids[None]
        if vids.dtype != np.uint8 or vids.ndim != 5 or len(vids) != len(batch):
            raise ValueError(f"generate returned {vids.dtype}{vids.shape}; expected uint8 ({len(batch)}, t, h, w, 3)")
        for (p, s), v in zip(batch, vids):
            got = read_attributes(v, world)
            rows.append({"prompt": p["prompt"], "seed": s, "asked": {a: p[a] for a in ATTRIBUTES}, "got": got,
                         "kept": {a: got[a] == p[a] for a in ATTRIBUTES},
                         "unseen": bool(unseen(p)) if unseen is not None else False})
        bar.update(len(batch))
    bar.close()

    def rate(sel: list[dict[str, Any]], a: str) -> float | None:
        return float(np.mean([r["kept"][a] for r in sel])) if sel else None

    uns = [r for r in rows if r["unseen"]]
    kept = {a: rate(rows, a) for a in ATTRIBUTES}
    kept_unseen = {a: rate(uns, a) for a in ATTRIBUTES}
    ref = kept_unseen if uns else kept
    order = sorted(ATTRIBUTES, key=lambda a: -(ref[a] or 0.0))
    sel = uns or rows
    wins = {a: {b: float(np.mean([r["kept"][a] and not r["kept"][b] for r in sel])) for b in ATTRIBUTES if b != a}
            for a in ATTRIBUTES}
    return {"kept": kept, "kept_unseen": kept_unseen, "order": order, "wins": wins, "n": len(rows),
            "n_unseen": len(uns), "rows": rows}
