"""The physics experiment runner: generate clips for held-out world scenes and measure where physics breaks.

``sora-jax eval physics --checkpoint ... --split test [--ood] --families ... --json out.json --report r.html``
calls :func:`evaluate_physics`; notebooks and tests that already have clips call
:func:`evaluate_physics_clips`.

Protocol
--------
Scene ``j`` of a split is world clip ``j`` of that split -- family
``families[j % len(families)]``, seed ``3 j + {train: 0, val: 1, test: 2}`` (the
rule of :func:`sora_jax.data.clip_seed`, so test scenes never appear in
training) -- drawn from the in-distribution or (``ood=True``) the
out-of-distribution parameter ranges.

* **Prompt only** (``condition_frames=0``, the default): the model generates a
  clip from the scene's short prompt; the clip is scored in *intent mode*
  against :func:`~sora_jax.world.captions.parse_prompt` of that prompt
  (compliance plus physical plausibility).
* **PhyWorld's protocol** (``condition_frames=c > 0``): the model continues the
  scene's first ``c`` ground-truth frames (``pipeline.generate(...,
  first_frames=...)``), and the continuation is scored in *truth mode* against
  the simulator's continuation of the same start, from frame ``c - 1`` on.

Every metric is reported per family with the three floors of
:mod:`sora_jax.analysis.floors` beside it, scored the same way.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sora_jax.analysis._progress import progress_bar
from sora_jax.analysis.floors import FLOORS, Reconstruct, check_floors, floor_results
from sora_jax.analysis.metrics import MetricResult, aggregate, check_metrics, evaluate_clip
from sora_jax.analysis.observe import as_reference, check_truth, check_video, truth_frames
from sora_jax.analysis.resim import render_like
from sora_jax.config import FAMILIES, WorldConfig
from sora_jax.world.captions import parse_prompt
from sora_jax.world.types import Truth

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}     # the rule of sora_jax.data.clip_seed


def scene_seed(split: str, index: int) -> int:
    """Seed of world clip ``index`` of ``split`` (``3 index + {train: 0, val: 1, test: 2}``, as in sora_jax.data)."""
    if split not in _SPLIT_OFFSET:
        raise ValueError(f"split={split!r}: valid splits are {', '.join(SPLITS)}")
    return 3 * int(index) + _SPLIT_OFFSET[split]


def _check_families(families: Sequence[str] | str | None, default: Sequence[str]) -> tuple[str, ...]:
    if families is None:
        return tuple(default)
    if isinstance(families, str):
        families = [f.strip() for f in families.split(",") if f.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad or not families:
        raise ValueError(f"families={list(families)!r}: unknown {bad}; valid: {', '.join(FAMILIES)}")
    return tuple(families)


def _compact(r: MetricResult) -> dict[str, Any]:
    out: dict[str, Any] = {"value": None if not math.isfinite(r.value) else round(float(r.value), 6),
                           "flagged": r.flagged, "measurable": r.measurable}
    if not r.measurable:
        out["reason"] = r.reason
    return out


def _note(r: MetricResult) -> str:
    return f"{r.value:.3g} {r.unit}" if math.isfinite(r.value) else r.reason[:40]


def _write_json(path: str | os.PathLike, obj: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- #
# Scoring given clips
# --------------------------------------------------------------------------- #


def evaluate_physics_clips(videos: Sequence[np.ndarray] | np.ndarray, refs: Sequence[Any], *,
                           truths: Sequence[Truth | None] | None = None, gt_videos: Sequence[np.ndarray] | None = None,
                           families: Sequence[str] | None = None, prompts: Sequence[str] | None = None,
                           floors: Sequence[str] | None = None, reconstruct: Reconstruct | None = None,
                           metrics: Sequence[str] | None = None, world: WorldConfig | None = None, seed: int = 0,
                           json_out: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
                           n_worst: int = 8, progress: bool = False,
                           meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score clips with every physics metric and the floors beside them; a table per family.

    videos     uint8 clips ``(t, h, w, 3)`` (a list, or one array ``(b, t, h, w, 3)``)
    refs       one per clip: the scene's :class:`Truth` (truth mode), or an
               :class:`Intent` / prompt string (intent mode)
    truths     the scenes' ground truth, for the floors (default: the refs that are truths;
               None entries get no floors)
    gt_videos  ground-truth renders for the ground-truth and VAE floors (default: the truths
               rendered at the clips' size)
    families   a label per clip for the table (default: each truth's family, else "all")
    floors     which floors (default: ground_truth and resim, plus vae with ``reconstruct``)
    world      geometry for intent mode (dt, view height, gravity)

    Returns a JSON-ready dict: ``table[family][metric][model | floor]`` =
    aggregate (mean value, flagged rate, measurable rate, n), ``clips`` (per
    clip, compact), ``worst`` (the clips with most failures the ground truth
    does not share), ``seconds``. Writes ``json_out`` and ``report`` (.png or
    .html) when given.
    """
    start = time.perf_counter()
    vids = [check_video(v, f"videos[{i}]") for i, v in enumerate(videos)]
    n = len(vids)
    if n == 0:
        raise ValueError("evaluate_physics_clips: no clips given")
    if len(refs) != n:
        raise ValueError(f"evaluate_physics_clips: {n} clips but {len(refs)} references; give one per clip")
    refs = [as_reference(r) for r in refs]
    if truths is None:
        truths = [r if isinstance(r, Truth) else None for r in refs]
    if len(truths) != n:
        raise ValueError(f"evaluate_physics_clips: {n} clips but {len(truths)} truths")
    if gt_videos is not None and len(gt_videos) != n:
        raise ValueError(f"evaluate_physics_clips: {n} clips but {len(gt_videos)} ground-truth videos")
    if families is None:
        families = [t.family if t is not None else "all" for t in truths]
    if len(families) != n:
        raise ValueError(f"evaluate_physics_clips: {n} clips but {len(families)} family labels")
    names = check_metrics(metrics)
    has_truth = any(t is not None for t in truths)
    fl = check_floors(floors, reconstruct) if has_truth else ()
    antialias = (world or WorldConfig()).antialias
    bar = progress_bar(progress, n, "physics")
    model_res: list[dict[str, MetricResult]] = []
    floor_res: list[dict[str, dict[str, MetricResult]]] = []
    gts: dict[int, np.ndarray] = {}
    for i in range(n):
        model_res.append(evaluate_clip(vids[i], refs[i], metrics=names, world=world))
        t = truths[i]
        if t is not None and fl:
            gv = (check_video(gt_videos[i], f"gt_videos[{i}]") if gt_videos is not None
                  else render_like(check_truth(t), vids[i], antialias))
            gts[i] = gv
            ref = None if isinstance(refs[i], Truth) else refs[i]
            floor_res.append(floor_results(gv, t, ref, reconstruct=reconstruct, floors=fl, metrics=names,
                                           seed=seed + i, world=world, antialias=antialias))
        else:
            floor_res.append({})
        bar.update(1)
    bar.close()

    # table: per family and overall
    table: dict[str, dict[str, dict[str, Any]]] = {}
    labels = list(dict.fromkeys(families)) + (["all"] if len(set(families)) > 1 else [])
    for fam in labels:
        idx = [i for i in range(n) if fam == "all" or families[i] == fam]
        cols = {"model": aggregate([model_res[i] for i in idx])}
        for f in fl:
            cols[f] = aggregate([floor_res[i][f] for i in idx if f in floor_res[i]])
        table[fam] = {m: {c: cols[c][m] for c in cols if m in cols[c]} for m in names}

    # worst clips: failures the ground-truth floor does not share
    rows = []
    for i in range(n):
        gt_flags = {m for m, r in floor_res[i].get("ground_truth", {}).items() if r.flagged}
        flagged = {m: _note(r) for m, r in model_res[i].items() if r.flagged and m not in gt_flags}
        unmeasurable = sum(not r.measurable for r in model_res[i].values())
        rows.append({"index": i, "family": families[i], "prompt": (prompts[i] if prompts is not None else
                     (refs[i] if isinstance(refs[i], str) else "")), "flagged": flagged,
                     "score": len(flagged) + 0.01 * unmeasurable})
    worst = [r for r in sorted(rows, key=lambda r: -r["score"]) if r["flagged"]][:n_worst]
    for r in worst:
        r.pop("score")
    clips = []
    for i in range(n):
        rec: dict[str, Any] = {"index": i, "family": families[i], "mode": "truth" if isinstance(refs[i], Truth) else "intent",
                               "model": {m: _compact(r) for m, r in model_res[i].items()}}
        if truths[i] is not None:
            rec["seed"] = truths[i].seed
            rec["split"] = truths[i].split
        if prompts is not None:
            rec["prompt"] = prompts[i]
        if floor_res[i]:
            rec["floors"] = {f: {m: _compact(r) for m, r in res.items()} for f, res in floor_res[i].items()}
        clips.append(rec)
    result: dict[str, Any] = dict(meta or {})
    result.update({"n_clips": n, "metrics": list(names), "floors": list(fl),
                   "mode": sorted({c["mode"] for c in clips}), "table": table, "worst": worst, "clips": clips,
                   "seconds": time.perf_counter() - start})
    if json_out is not None:
        _write_json(json_out, result)
    if report is not None:
        from sora_jax.analysis.report import write_report

        keep = {r["index"] for r in worst}
        write_report(report, result, {i: vids[i] for i in keep}, {i: gts[i] for i in keep if i in gts} or None)
    return result


# --------------------------------------------------------------------------- #
# The experiment: generate and score
# --------------------------------------------------------------------------- #


def _as_clips(x: Any, b: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 4 and b == 1:
        arr = arr[None]
    if arr.dtype != np.uint8 or arr.shape != (b,) + shape:
        raise ValueError(f"pipeline.{what} returned {arr.dtype}{tuple(arr.shape)}; expected uint8{(b,) + shape} "
                         "(one uint8 clip (t, h, w, 3) per prompt)")
    return arr


def _supports(fn: Any, name: str) -> bool:
    """``fn`` names the keyword ``name`` explicitly (a ``**kwargs`` catch-all might drop it silently)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def evaluate_physics(checkpoint: str | os.PathLike | None = None, *, n_clips: int = 64, split: str = "test",
                     families: Sequence[str] | str | None = None, ood: bool = False,
                     json_out: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
                     progress: bool = True, steps: int | None = None, guidance: float | None = None,
                     sampler: str | None = None, seed: int = 0, batch_size: int = 8, condition_frames: int = 0,
                     shift: float | None = None, floors: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
                     pipeline: Any = None, guidance_interval: tuple[float, float] | None = None,
                     eta: float | None = None) -> dict[str, Any]:
    """Generate clips for ``n_clips`` world scenes of ``split`` and measure their physics (see the module docstring).

    checkpoint        folder for ``sora_jax.pipeline.load_pipeline`` (or pass ``pipeline=``: any object with
                      ``config``, ``generate(prompts, num_frames=, height=, width=, seed=, ...)`` and
                      ``reconstruct(video_u8)``)
    split, ood        held-out scenes ("val" | "test"; "train" for a sanity check), ID or OOD ranges
    families          scene families (default: those the checkpoint was trained on)
    steps, guidance, sampler, shift, guidance_interval, eta   passed to ``generate`` when given (shift: the
                      sampling timestep shift; guidance_interval: guide only at noise levels in (lo, hi);
                      eta: sampling stochasticity, 0 = deterministic, 1 = ancestral)
    condition_frames  > 0: PhyWorld's protocol (the model continues the first frames; truth mode)
    floors            default: ground_truth, vae (pipeline.reconstruct), resim
    json_out, report  write the result as JSON / a .png or .html report of the worst clips

    Returns the dict of :func:`evaluate_physics_clips` plus the run's settings and
    ``generate_seconds``.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: valid splits are {', '.join(SPLITS)}")
    if not isinstance(n_clips, int) or n_clips < 1:
        raise ValueError(f"n_clips={n_clips!r}: must be an integer >= 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    if pipeline is None:
        if checkpoint is None:
            raise ValueError("evaluate_physics: give a checkpoint folder (or pipeline=)")
        from sora_jax.pipeline import load_pipeline      # the model stack is imported only here

        pipeline = load_pipeline(checkpoint)
    cfg = getattr(pipeline, "config", None)
    world = getattr(cfg, "world", None)
    if not isinstance(world, WorldConfig):
        raise ValueError("the pipeline has no config.world (a WorldConfig); cannot tell which scenes it was trained on")
    fams = _check_families(families, world.families)
    world = dataclasses.replace(world, split="ood" if ood else "id", families=fams)
    T, H, W = world.num_frames, world.height, world.width
    if not 0 <= condition_frames < T:
        raise ValueError(f"condition_frames={condition_frames}: must be in [0, {T - 1}] for {T}-frame clips")
    if condition_frames and not _supports(pipeline.generate, "first_frames"):
        raise ValueError("condition_frames > 0 needs pipeline.generate(..., first_frames=uint8 (b, c, h, w, 3)) "
                         "(image/video prompting); this pipeline has no such argument -- use condition_frames=0")
    floors = check_floors(floors, getattr(pipeline, "reconstruct", None) if floors is None or "vae" in floors else None)

    from sora_jax.world import make_clips

    idx = list(range(n_clips))
    fam_of = [fams[j % len(fams)] for j in idx]
    seeds = [scene_seed(split, j) for j in idx]
    clips = make_clips(world, fam_of, seeds)
    opts = {k: v for k, v in (("steps", steps), ("guidance", guidance), ("sampler", sampler), ("shift", shift),
                              ("guidance_interval", guidance_interval), ("eta", eta)) if v is not None}
    gen_start = time.perf_counter()
    bar = progress_bar(progress, n_clips, "generate")
    out: list[np.ndarray] = []
    for b0 in range(0, n_clips, batch_size):
        batch = clips[b0:b0 + batch_size]
        kw = dict(num_frames=T, height=H, width=W, seed=[seed * 1_000_003 + s for s in seeds[b0:b0 + batch_size]], **opts)
        if condition_frames:
            kw["first_frames"] = np.stack([c.video[:condition_frames] for c in batch])
        vids = _as_clips(pipeline.generate([c.prompt for c in batch], **kw), len(batch), (T, H, W, 3), "generate")
        out.extend(vids)
        bar.update(len(batch))
    bar.close()
    gen_seconds = time.perf_counter() - gen_start

    if condition_frames:
        c0 = condition_frames - 1          # score from the last given frame on (its velocity to the first new one)
        videos = [v[c0:] for v in out]
        truths = [truth_frames(c.truth, c0) for c in clips]
        refs: list[Any] = list(truths)
        gt_videos = [c.video[c0:] for c in clips]
    else:
        videos = out
        truths = [c.truth for c in clips]
        refs = [parse_prompt(c.prompt) for c in clips]
        gt_videos = [c.video for c in clips]
    meta = {"title": f"physics: {checkpoint or type(pipeline).__name__} ({split}, {'OOD' if ood else 'ID'})",
            "checkpoint": str(checkpoint) if checkpoint is not None else None, "split": split, "ood": bool(ood),
            "families": list(fams), "condition_frames": condition_frames, "world": dataclasses.asdict(world),
            "generate": {"steps": steps, "guidance": guidance, "sampler": sampler, "shift": shift, "seed": seed,
                         "guidance_interval": list(guidance_interval) if guidance_interval is not None else None,
                         "eta": eta, **({"default_eta": float(pipeline.default_eta)}
                                        if eta is None and hasattr(pipeline, "default_eta") else {})},
            "generate_seconds": gen_seconds}
    result = evaluate_physics_clips(
        videos, refs, truths=truths, gt_videos=gt_videos, families=fam_of, prompts=[c.prompt for c in clips],
        floors=floors, reconstruct=getattr(pipeline, "reconstruct", None) if "vae" in floors else None,
        metrics=metrics, world=world, seed=seed, progress=progress, meta=meta)
    if json_out is not None:
        _write_json(json_out, result)
    if report is not None:
        from sora_jax.analysis.report import write_report

        keep = {r["index"] for r in result["worst"]}
        write_report(report, result, {i: videos[i] for i in keep}, {i: gt_videos[i] for i in keep})
    return result


def format_table(result: Mapping[str, Any], *, width: int = 9) -> str:
    """Plain-text table: per family, each metric's model value with the floors beside it (and flagged rates)."""
    cols = ["model"] + list(result.get("floors", []))
    lines = []
    for fam, rows in result["table"].items():
        lines.append(f"== {fam}")
        lines.append(f"{'metric':13s}{'unit':>12s}" + "".join(f"{c:>{width + 8}s}" for c in cols))
        for m, cells in rows.items():
            unit = next((cells[c]["unit"] for c in cols if c in cells and cells[c].get("unit")), "")
            txt = []
            for c in cols:
                a = cells.get(c)
                v = None if a is None else a["value"]
                fr = None if a is None else a["flagged_rate"]
                txt.append(f"{('-' if v is None else f'{v:.3g}'):>{width}s} ({'-' if fr is None else f'{fr:.0%}':>4s})")
            lines.append(f"{m:13s}{unit:>12s}" + "".join(f"{t:>{width + 8}s}" for t in txt))
    return "\n".join(lines)


__all__ = ["FLOORS", "SPLITS", "evaluate_physics", "evaluate_physics_clips", "format_table", "scene_seed"]
