"""Data types shared by the simulator, renderer, captioner, parser and tracker.

Axes: ``t`` frames, ``k`` objects (bodies), ``h, w`` pixels.
World coordinates are metres with ``x`` to the right and ``y`` up; the view's
bottom-left corner sits at ``camera[t]``. Pixel coordinates have ``col`` to the
right and ``row`` down (row 0 at the top), so ``row = (view_top - y) * px_per_m``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# Palette: saturated colours far apart in RGB so colour-threshold tracking is
# unambiguous; the background is white (as in PhyWorld) and static scenery uses
# greys, which never collide with a palette colour.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "blue": (30, 70, 220),
    "green": (30, 160, 60),
    "yellow": (235, 190, 0),
    "purple": (140, 40, 190),
    "orange": (245, 120, 10),
    "cyan": (0, 180, 200),
}
BACKGROUND: tuple[int, int, int] = (255, 255, 255)
SCENERY: tuple[int, int, int] = (110, 110, 110)      # walls, floor, occluders
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: tuple[str, ...] = ("small", "medium", "large")


@dataclasses.dataclass(frozen=True)
class Event:
    """Something that happens at one frame: a collision, a bounce, a state change."""

    frame: int                      # first frame at/after the event
    kind: str                       # "collision" | "bounce" | "state_change"
    bodies: tuple[int, ...]         # object indices involved (walls are -1)
    impulse: float = 0.0            # |impulse| in sim units (mass * m/s)


@dataclasses.dataclass(frozen=True)
class Truth:
    """Ground truth for one clip, per frame and object. All arrays are numpy.

    positions  (t, k, 2) float   world metres, object centre
    velocities (t, k, 2) float   m/s
    radius     (k,)      float   metres (circles: radius; squares/triangles: circumradius)
    colour     tuple[str] * k    keys of PALETTE
    shape      tuple[str] * k    one of SHAPES
    visible    (t, k)    float   visible fraction in [0, 1] (occluders and frame edges)
    in_frame   (t, k)    bool    centre inside the view
    camera     (t, 2)    float   world position of the view's bottom-left corner
    state      (t, k)    int     per-object state (cause and effect: 0 before, 1 after)
    events     tuple[Event]
    """

    family: str
    seed: int
    split: str
    dt: float
    view: tuple[float, float]       # (view_width, view_height) in metres
    positions: np.ndarray
    velocities: np.ndarray
    radius: np.ndarray
    colour: tuple[str, ...]
    shape: tuple[str, ...]
    visible: np.ndarray
    in_frame: np.ndarray
    camera: np.ndarray
    state: np.ndarray
    events: tuple[Event, ...] = ()
    static: tuple[dict[str, Any], ...] = ()   # occluders/walls/blocks: {"kind", "box": (x0, y0, x1, y1)}
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.positions.shape[1])

    def to_pixels(self, height: int, width: int) -> np.ndarray:
        """Object centres in pixel coordinates ``(t, k, 2)`` as ``(col, row)``."""
        view_w, view_h = self.view
        sx, sy = width / view_w, height / view_h
        rel = self.positions - self.camera[:, None, :]
        col = rel[..., 0] * sx - 0.5
        row = (view_h - rel[..., 1]) * sy - 0.5
        return np.stack([col, row], axis=-1)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays become nested lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif f.name == "events":
                v = [dataclasses.asdict(e) for e in v]
            out[f.name] = v
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Truth":
        kw = dict(d)
        for name in ("positions", "velocities", "radius", "visible", "camera"):
            kw[name] = np.asarray(kw[name], dtype=np.float64)
        kw["in_frame"] = np.asarray(kw["in_frame"], dtype=bool)
        kw["state"] = np.asarray(kw["state"], dtype=np.int32)
        kw["colour"] = tuple(kw["colour"])
        kw["shape"] = tuple(kw["shape"])
        kw["view"] = tuple(kw["view"])
        kw["events"] = tuple(Event(e["frame"], e["kind"], tuple(e["bodies"]), e.get("impulse", 0.0)) for e in kw.get("events", ()))
        kw["static"] = tuple(kw.get("static", ()))
        return cls(**kw)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One training example: pixels, text and ground truth."""

    video: np.ndarray               # uint8 (t, h, w, 3)
    caption: str                    # dense caption (re-captioning)
    prompt: str                     # short prompt a person would type
    truth: Truth | None             # None for real footage
