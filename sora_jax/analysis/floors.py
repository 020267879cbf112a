"""The three floors that stand beside every model number (PHYSICS.md).

A metric's value on a model's clips means little alone: the instrument itself
has an error, the autoencoder the model works in loses detail, and physics
itself leaves some room (two takes of the same scene are never identical).
So every number is reported next to:

``ground_truth``
    the metric on ground-truth renders (the tracker's own error; PhyWorld: 0.010 m/s);
``vae``
    the metric on VAE reconstructions of those renders (the best a latent
    model can do; PhyWorld: 0.0105 m/s). Needs a ``reconstruct(video_u8) ->
    video_u8`` callable, e.g. ``pipeline.reconstruct`` -- no model is imported here;
``resim``
    the metric between two re-simulations of the scene with tiny
    perturbations of the initial state (the "physical variance" of
    Physics-IQ): clip A rendered from one perturbed run, compared with the
    truth of another.

In intent mode (a model generated the clip from the prompt) the floors are the
same clips scored against the same prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sora_jax.analysis.metrics import MetricResult, aggregate, check_metrics, evaluate_clip
from sora_jax.analysis.observe import check_truth, check_video
from sora_jax.analysis.resim import perturbed, render_like
from sora_jax.config import WorldConfig
from sora_jax.world.types import Truth

FLOORS: tuple[str, ...] = ("ground_truth", "vae", "resim")

Reconstruct = Callable[[np.ndarray], np.ndarray]


def check_floors(floors: Sequence[str] | None, reconstruct: Reconstruct | None = None) -> tuple[str, ...]:
    """Validate floor names (None = all; "vae" only with a ``reconstruct`` callable)."""
    if floors is None:
        floors = FLOORS if reconstruct is not None else ("ground_truth", "resim")
    if isinstance(floors, str):
        floors = [f.strip() for f in floors.split(",") if f.strip()]
    bad = [f for f in floors if f not in FLOORS]
    if bad:
        raise ValueError(f"unknown floors {bad}; valid: {', '.join(FLOORS)}")
    if "vae" in floors and reconstruct is None:
        raise ValueError("the 'vae' floor needs reconstruct=callable(video_u8) -> video_u8 (e.g. pipeline.reconstruct)")
    return tuple(floors)


def reconstruct_checked(reconstruct: Reconstruct, video: np.ndarray) -> np.ndarray:
    """``reconstruct(video)`` as a uint8 array of the same shape, or a ValueError saying what came back."""
    out = np.asarray(reconstruct(video))
    if out.ndim == 5 and out.shape[0] == 1:
        out = out[0]
    if out.shape != video.shape or out.dtype != np.uint8:
        raise ValueError(f"reconstruct returned {out.dtype}{tuple(out.shape)}; expected uint8{tuple(video.shape)} "
                         "(the same clip, encoded and decoded)")
    return out


def floor_clips(video: np.ndarray, truth: Truth, *, reconstruct: Reconstruct | None = None,
                floors: Sequence[str] | None = None, seed: int = 0,
                antialias: int = 4) -> dict[str, tuple[np.ndarray, Truth]]:
    """The clip and the truth it is compared with, for each floor of one scene.

    ``video`` is the ground-truth render of ``truth``. ``resim`` renders one
    perturbed re-simulation (seed ``2 seed``) and pairs it with the truth of
    another (seed ``2 seed + 1``).
    """
    video = check_video(video)
    check_truth(truth, video)
    out: dict[str, tuple[np.ndarray, Truth]] = {}
    for f in check_floors(floors, reconstruct):
        if f == "ground_truth":
            out[f] = (video, truth)
        elif f == "vae":
            out[f] = (reconstruct_checked(reconstruct, video), truth)
        else:
            a, b = perturbed(truth, 2 * seed), perturbed(truth, 2 * seed + 1)
            out[f] = (render_like(a, video, antialias), b)
    return out


def floor_results(video: np.ndarray, truth: Truth, ref: Any = None, *, reconstruct: Reconstruct | None = None,
                  floors: Sequence[str] | None = None, metrics: Sequence[str] | None = None, seed: int = 0,
                  world: WorldConfig | None = None, antialias: int = 4) -> dict[str, dict[str, MetricResult]]:
    """Every metric on every floor of one scene: ``{floor: {metric: MetricResult}}``.

    ``ref=None``: truth mode (each floor clip against its truth). ``ref`` an
    Intent or prompt: intent mode (each floor clip against that prompt).
    """
    out = {}
    for f, (clip, tr) in floor_clips(video, truth, reconstruct=reconstruct, floors=floors, seed=seed,
                                     antialias=antialias).items():
        out[f] = evaluate_clip(clip, tr if ref is None else ref, metrics=metrics, world=world)
    return out


def floors_table(videos: Sequence[np.ndarray], truths: Sequence[Truth], refs: Sequence[Any] | None = None, *,
                 reconstruct: Reconstruct | None = None, floors: Sequence[str] | None = None,
                 metrics: Sequence[str] | None = None, seed: int = 0, world: WorldConfig | None = None,
                 antialias: int = 4) -> dict[str, dict[str, dict[str, Any]]]:
    """Floors over many scenes: ``{floor: {metric: aggregate}}`` (see :func:`~sora_jax.analysis.metrics.aggregate`)."""
    if len(videos) != len(truths) or (refs is not None and len(refs) != len(truths)):
        raise ValueError(f"floors_table: {len(videos)} videos, {len(truths)} truths"
                         + (f", {len(refs)} references" if refs is not None else "") + "; give one of each per scene")
    names = check_metrics(metrics)
    fl = check_floors(floors, reconstruct)
    per: dict[str, list[Mapping[str, MetricResult]]] = {f: [] for f in fl}
    for i, (v, t) in enumerate(zip(videos, truths)):
        res = floor_results(v, t, None if refs is None else refs[i], reconstruct=reconstruct, floors=fl,
                            metrics=names, seed=seed + i, world=world, antialias=antialias)
        for f in fl:
            per[f].append(res[f])
    return {f: aggregate(per[f]) for f in fl}
