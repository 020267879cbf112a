"""The synthetic physics world: simulate -> render -> caption, and track() to read a clip back.

Every clip comes with exact ground truth (:class:`Truth`), so a model's physics
failures can be measured rather than only seen. The pieces:

- :func:`sample_scene` draws a scene of one family (``FAMILIES``) from a seed,
  in-distribution or out-of-distribution (``WorldConfig.split``);
- :func:`simulate` integrates it into a :class:`Truth` (positions, velocities,
  visibility, camera, events);
- :func:`render` draws it as ``uint8 (t, h, w, 3)`` at any size and aspect ratio;
- :func:`dense_caption`, :func:`short_prompt`, :func:`expand_prompt` write text,
  :func:`parse_prompt` reads text back into an :class:`Intent`;
- :func:`track` reads pixels back into per-frame object states.

:func:`make_clip` does it all and returns a :class:`Clip`.
"""

from __future__ import annotations

from typing import Sequence

from ..config import FAMILIES, WorldConfig
from . import families as _families
from .captions import (
    EventIntent,
    Intent,
    ObjectIntent,
    Relation,
    dense_caption,
    describe,
    expand_prompt,
    parse_prompt,
    render_caption,
    short_prompt,
)
from .families import param_ranges, phyworld_config, sample_scene
from .render import render, render_batch
from .sim import Scene, kinetic_energy, momentum, simulate, simulate_batch
from .track import Matched, Tracks, match, position_error, track, velocity_error
from .types import BACKGROUND, PALETTE, SCENERY, SHAPES, SIZES, Clip, Event, Truth


def make_clip(cfg: WorldConfig, family: str, seed: int, *, height: int | None = None,
              width: int | None = None) -> Clip:
    """One clip of ``family`` from ``seed``: pixels, dense caption, short prompt and ground truth.

    ``height``/``width`` default to ``cfg.height``/``cfg.width``. Same arguments,
    byte-identical clip.
    """
    video, truth = _families.make_clip(cfg, family, seed, height=height, width=width)
    return Clip(video=video, caption=dense_caption(truth), prompt=short_prompt(truth, seed), truth=truth)


def make_clips(cfg: WorldConfig, families: Sequence[str], seeds: Sequence[int], *, height: int | None = None,
               width: int | None = None) -> list[Clip]:
    """Many clips at once (batched simulation and rendering); clip ``i`` equals ``make_clip(cfg, families[i], seeds[i])``."""
    videos, truths = _families.make_clips(cfg, families, seeds, height=height, width=width)
    return [Clip(video=v, caption=dense_caption(t), prompt=short_prompt(t, s), truth=t)
            for v, t, s in zip(videos, truths, seeds)]


__all__ = [
    "BACKGROUND", "FAMILIES", "PALETTE", "SCENERY", "SHAPES", "SIZES",
    "Clip", "Event", "EventIntent", "Intent", "Matched", "ObjectIntent", "Relation", "Scene", "Tracks", "Truth",
    "WorldConfig", "dense_caption", "describe", "expand_prompt", "kinetic_energy", "make_clip", "make_clips",
    "match", "momentum", "param_ranges", "parse_prompt", "phyworld_config", "position_error", "render",
    "render_batch", "render_caption", "sample_scene", "short_prompt", "simulate", "simulate_batch", "track",
    "velocity_error",
]
