"""Captions and prompt parsing for the synthetic world.

Sora was trained on *re-captioned* video: a captioner wrote a long, precise
description of every training clip, and at sampling time a language model
*expanded* the user's short prompt into that same style (the DALL-E 3 trick).
Our world has exact ground truth, so the "captioner" is a few hundred lines of
measurement, and the "expander" is a parser plus the same renderer:

    truth  --describe-->  Intent  --render-->  dense caption   (training text)
    prompt --parse----->  Intent  --render-->  expanded prompt (sampling text)
    any text --parse--->  Intent                               (scoring a generated clip)

:class:`Intent` is the structured meaning both sides share: objects (colour,
shape, count, size, motion), spatial relations, camera motion, gravity/bounce
flags and events. Because dense captions are rendered from an ``Intent`` and
the parser reads that style back exactly, ``parse_prompt(dense_caption(t)) ==
describe(t)`` and ``parse_prompt(expand_prompt(p)) == parse_prompt(p)``.

Axes (ground-truth arrays): ``t`` frames, ``k`` objects. World coordinates are
metres with ``x`` right and ``y`` up; motion is measured in the world frame, so
a camera pan does not make still objects "move" (the pan is reported on its own).

Thresholds (all relative to the view *height*, which is fixed in metres by
``WorldConfig.view_height``, so the words do not change with the aspect ratio):

* size: ``radius / view_h < 0.065`` small, ``< 0.11`` medium, else large
  (10 m view: PhyWorld's OOD radii 0.3-0.6 m are small, ID 0.7-1.5 m medium/large).
* still: mean speed ``< 0.02 view_h`` per second (0.2 m/s in a 10 m view).
* slowly / quickly: mean speed ``< 0.08 view_h/s`` / ``> 0.45 view_h/s``
  (0.8 and 4.5 m/s: PhyWorld's OOD speed bands).
* gravity: median vertical acceleration (outside event frames) ``< -0.05 view_h/s^2``.
* direction: the mean velocity before the object's first collision or bounce,
  quantised to 8 compass directions (sectors of 45 degrees).
* relation "A left of B": ``x_A < x_B`` and ``|dx| > |dy|`` (PHYSICS.md) on at
  least 80% of the frames; likewise right of / above / below.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from sora_jax.world.types import PALETTE, SHAPES, SIZES, Truth

__all__ = [
    "Direction", "ObjectIntent", "Relation", "EventIntent", "Intent",
    "describe", "render_caption", "dense_caption", "short_prompt", "expand_prompt", "parse_prompt",
    "SIZE_THRESHOLDS", "STILL_SPEED", "SLOW_SPEED", "FAST_SPEED", "GRAVITY_MIN", "RELATION_MIN_FRACTION",
]

# --------------------------------------------------------------------------- #
# Thresholds (fractions of the view height; see the module docstring)
# --------------------------------------------------------------------------- #

SIZE_THRESHOLDS: tuple[float, float] = (0.065, 0.11)   # radius / view_h: small | medium | large
STILL_SPEED = 0.02          # view heights per second
SLOW_SPEED = 0.08
FAST_SPEED = 0.45
GRAVITY_MIN = 0.05          # view heights per second^2
RELATION_MIN_FRACTION = 0.8

Direction = tuple[float, float]
_S = math.sqrt(0.5)
# The 8 compass directions, counter-clockwise from "right", and how captions say them.
_COMPASS: tuple[Direction, ...] = ((1.0, 0.0), (_S, _S), (0.0, 1.0), (-_S, _S),
                                   (-1.0, 0.0), (-_S, -_S), (0.0, -1.0), (_S, -_S))
_DIR_PHRASE: dict[Direction, str] = dict(zip(_COMPASS, (
    "to the right", "up and to the right", "up", "up and to the left",
    "to the left", "down and to the left", "down", "down and to the right")))
_UNIT: dict[tuple[int, int], Direction] = {
    (1, 0): _COMPASS[0], (1, 1): _COMPASS[1], (0, 1): _COMPASS[2], (-1, 1): _COMPASS[3],
    (-1, 0): _COMPASS[4], (-1, -1): _COMPASS[5], (0, -1): _COMPASS[6], (1, -1): _COMPASS[7],
}
_STOP: Direction = (0.0, 0.0)
_NOUN = {"circle": "ball", "square": "square", "triangle": "triangle", None: "object"}
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_RELATION_PHRASE = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
_EVENT_ORDER = {"collision": 0, "bounce": 1, "state_change": 2, "occlusion": 3}


# --------------------------------------------------------------------------- #
# Intent: the structured meaning of a caption or prompt
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class ObjectIntent:
    """One group of look-alike objects (same colour, shape and size word).

    ``count`` is ``None`` when the text says "some red balls" without a number.
    ``direction`` is a unit vector ``(dx, dy)`` (x right, y up) from the 8
    compass directions: the motion *before* the first collision or bounce.
    Under gravity (``falls``) it is the horizontal heading ``(+-1, 0)``, or
    ``(0, -1)`` for a straight fall / ``(0, 1)`` for a throw upward.
    ``direction_after``: heading after the first collision ("then ...");
    ``(0.0, 0.0)`` means it stops. ``mixed``: members move in different directions.
    """

    colour: str | None = None
    shape: str | None = None
    count: int | None = 1
    size: str | None = None
    direction: Direction | None = None
    still: bool = False
    falls: bool = False
    bounces: bool = False
    speed: str | None = None            # "slow" | "fast" | None
    mixed: bool = False
    direction_after: Direction | None = None

    @property
    def name(self) -> str:
        """Short readable name, e.g. ``"small red circle"``."""
        return " ".join(x for x in (self.size, self.colour, self.shape or "object") if x)


@dataclasses.dataclass(frozen=True)
class Relation:
    """``objects[subject]`` is ``relation`` ``objects[object]``; relation in left of/right of/above/below."""

    subject: int
    relation: str
    object: int


@dataclasses.dataclass(frozen=True)
class EventIntent:
    """An event the text mentions. ``subject``/``object`` index ``Intent.objects``.

    kind: "collision" | "bounce" | "state_change" | "occlusion".
    detail: the surface of a bounce ("floor", "ceiling", "left wall", "right
    wall", "wall") or the new colour of a state change.
    """

    kind: str
    subject: int
    object: int | None = None
    frame: int | None = None
    detail: str | None = None


@dataclasses.dataclass(frozen=True)
class Intent:
    """Structured meaning of a caption or prompt (what a generated clip is scored against)."""

    objects: tuple[ObjectIntent, ...] = ()
    relations: tuple[Relation, ...] = ()
    camera: str | None = None           # "left" | "right" | "up" | "down" | None
    camera_static: bool = False
    gravity: bool = False
    falls: bool = False
    bounces: bool = False
    events: tuple[EventIntent, ...] = ()

    def is_empty(self) -> bool:
        return self == Intent()

    def counts(self) -> dict[tuple[str | None, str | None], int | None]:
        """``{(colour, shape): count}``; ``None`` where the text gave no number."""
        out: dict[tuple[str | None, str | None], int | None] = {}
        for o in self.objects:
            key = (o.colour, o.shape)
            out[key] = None if (o.count is None or out.get(key, 0) is None) else out.get(key, 0) + o.count
        return out

    def counts_by_colour(self) -> dict[str | None, int | None]:
        """``{colour: count}`` summed over shapes; ``None`` if any group's count is unknown."""
        out: dict[str | None, int | None] = {}
        for o in self.objects:
            prev = out.get(o.colour, 0)
            out[o.colour] = None if (o.count is None or prev is None) else prev + o.count
        return out

    def canonical_relations(self) -> set[tuple[str, str, str]]:
        """Relations as ``(name, "left of" | "above", name)``: "B right of A" becomes "A left of B"."""
        out = set()
        for r in self.relations:
            a, b = self.objects[r.subject].name, self.objects[r.object].name
            if r.relation == "right of":
                out.add((b, "left of", a))
            elif r.relation == "below":
                out.add((b, "above", a))
            else:
                out.add((a, r.relation, b))
        return out


# --------------------------------------------------------------------------- #
# describe: ground truth -> Intent (the measuring half of the captioner)
# --------------------------------------------------------------------------- #


def _size_word(radius: float, view_h: float) -> str:
    rel = radius / view_h
    return SIZES[0] if rel < SIZE_THRESHOLDS[0] else SIZES[1] if rel < SIZE_THRESHOLDS[1] else SIZES[2]


def _compass(v: np.ndarray) -> Direction:
    """Quantise a 2-vector to the nearest of the 8 compass directions."""
    sector = int(round(math.atan2(float(v[1]), float(v[0])) / (math.pi / 4))) % 8
    return _COMPASS[sector]


def _check_truth(truth: Truth) -> None:
    if not isinstance(truth, Truth):
        raise TypeError(f"expected a sora_jax.world.types.Truth, got {type(truth).__name__}")
    bad_c = [c for c in truth.colour if c not in PALETTE]
    bad_s = [s for s in truth.shape if s not in SHAPES]
    if bad_c or bad_s:
        raise ValueError(f"truth has colours {bad_c} / shapes {bad_s} outside the palette; "
                         f"valid colours: {', '.join(PALETTE)}; shapes: {', '.join(SHAPES)}")
    T, K = truth.num_frames, truth.num_objects
    if truth.positions.shape != (T, K, 2) or truth.velocities.shape != (T, K, 2) or len(truth.colour) != K:
        raise ValueError(f"truth arrays disagree: positions {truth.positions.shape}, velocities "
                         f"{truth.velocities.shape}, {len(truth.colour)} colours; expected (t, k, 2) and k colours")


def _motion(vel: np.ndarray, falls: bool, still: float) -> Direction:
    """Heading of a mean velocity; ``(0, 0)`` if slower than ``still``. Gravity: horizontal first."""
    if falls:
        if abs(vel[0]) > still:
            return _UNIT[(int(np.sign(vel[0])), 0)]
        if abs(vel[1]) > still:
            return _UNIT[(0, int(np.sign(vel[1])))]
        return _STOP
    if float(np.hypot(*vel)) < still:
        return _STOP
    return _compass(vel)


def _bounce_surface(vel: np.ndarray, frame: int) -> str | None:
    """Which surface a bounce was off, from how the velocity changed across ``frame``."""
    if frame < 1 or frame >= len(vel):
        return None
    dv = vel[frame] - vel[frame - 1]
    if abs(dv[1]) >= abs(dv[0]):
        return "floor" if dv[1] > 0 else "ceiling"
    return "left wall" if dv[0] > 0 else "right wall"


def describe(truth: Truth) -> Intent:
    """Measure the ground truth of one clip into an :class:`Intent` (deterministic).

    Objects that are never in view are left out. Look-alike objects (same
    colour, shape and size word) are grouped and counted.
    """
    _check_truth(truth)
    T, K = truth.num_frames, truth.num_objects
    view_h = float(truth.view[1])
    dt = float(truth.dt)
    pos = np.asarray(truth.positions, np.float64)
    vel = np.asarray(truth.velocities, np.float64)
    visible = np.asarray(truth.visible, np.float64)
    in_frame = np.asarray(truth.in_frame, bool)
    still = STILL_SPEED * view_h
    shown = [k for k in range(K) if visible[:, k].max(initial=0.0) > 0 or in_frame[:, k].any()]

    # frames at which each object's velocity jumps (collisions and bounces)
    jumps: dict[int, list[int]] = {k: [] for k in range(K)}
    first_collision: dict[int, int] = {}
    for e in truth.events:
        if e.kind in ("collision", "bounce"):
            for b in e.bodies:
                if b >= 0:
                    jumps[b].append(int(e.frame))
            if e.kind == "collision" and min(e.bodies) >= 0:
                for b in e.bodies:
                    first_collision[b] = min(first_collision.get(b, T), int(e.frame))

    per: dict[int, dict[str, Any]] = {}
    for k in shown:
        v = vel[:, k]
        falls = False
        if T >= 3:
            ay = np.diff(v[:, 1]) / dt                      # transition t -> t+1
            keep = np.ones(T - 1, bool)
            for f in jumps[k]:
                keep[max(f - 1, 0):min(f + 1, T - 1)] = False
            if keep.any():
                falls = bool(np.median(ay[keep]) < -GRAVITY_MIN * view_h)
        first = min(jumps[k], default=T)
        pre = v[:max(first, 1)].mean(0)
        d = _motion(pre, falls, still)
        if falls and d == _STOP:
            d = _UNIT[(0, -1)]
        speed = None
        if not falls and d != _STOP:
            s = float(np.hypot(*pre)) / view_h
            speed = "slow" if s < SLOW_SPEED else "fast" if s > FAST_SPEED else None
        after = None
        if k in first_collision:
            c = min(first_collision[k], T - 1)
            nxt = min([f for f in jumps[k] if f > c], default=T)
            after = _motion(v[c:max(nxt, c + 1)].mean(0), falls, still)
            if after == _STOP and d == _STOP:                # was still, stays still: nothing to say
                after = None
        per[k] = dict(direction=None if d == _STOP else d, still=d == _STOP, falls=falls, speed=speed, after=after,
                      size=_size_word(float(truth.radius[k]), view_h))

    # groups of look-alike objects, in order of first appearance
    keys: list[tuple[str, str, str]] = []
    group_of: dict[int, int] = {}
    for k in shown:
        key = (truth.colour[k], truth.shape[k], per[k]["size"])
        if key not in keys:
            keys.append(key)
        group_of[k] = keys.index(key)
    members = [[k for k in shown if group_of[k] == g] for g in range(len(keys))]

    # events
    events: list[EventIntent] = []
    for e in truth.events:
        bodies = [b for b in e.bodies if b >= 0]
        if any(b not in group_of for b in bodies) or not bodies:
            continue
        if e.kind == "collision" and len(bodies) == 2:
            events.append(EventIntent("collision", group_of[bodies[0]], group_of[bodies[1]], int(e.frame)))
        elif e.kind in ("bounce", "collision"):
            b = bodies[0]
            events.append(EventIntent("bounce", group_of[b], None, int(e.frame), _bounce_surface(vel[:, b], int(e.frame))))
        elif e.kind == "state_change":
            after_cols = truth.params.get("colour_after") or ()
            for b in bodies:
                new = after_cols[b] if b < len(after_cols) else None
                events.append(EventIntent("state_change", group_of[b], None, int(e.frame),
                                          new if new in PALETTE else None))
    occluders = [s["box"] for s in truth.static if s.get("kind") == "occluder" and "box" in s]
    for k in shown:
        r = float(truth.radius[k])
        for t in range(T):
            if in_frame[t, k] and visible[t, k] < 0.5:
                x, y = pos[t, k]
                if any(b[0] - r <= x <= b[2] + r and b[1] - r <= y <= b[3] + r for b in occluders):
                    events.append(EventIntent("occlusion", group_of[k], None, t))
                    break
    events = _tidy_events(events)
    bouncing = {e.subject for e in events if e.kind == "bounce"}

    objects = []
    for g, (colour, shape, size) in enumerate(keys):
        ps = [per[k] for k in members[g]]
        dirs = {p["direction"] for p in ps}
        all_still = all(p["still"] for p in ps)
        direction = dirs.pop() if len(dirs) == 1 and not all_still else None
        speeds = {p["speed"] for p in ps}
        afters = {p["after"] for p in ps}
        objects.append(ObjectIntent(
            colour=colour, shape=shape, count=len(ps), size=size, direction=direction, still=all_still,
            falls=all(p["falls"] for p in ps), bounces=g in bouncing,
            speed=speeds.pop() if len(speeds) == 1 and direction is not None else None,
            mixed=not all_still and direction is None,
            direction_after=afters.pop() if len(afters) == 1 else None))

    # relations between single objects: in the relation family, or when nothing moves
    relations: list[Relation] = []
    singles = [g for g in range(len(keys)) if len(members[g]) == 1]
    if truth.family == "relation" or (len(singles) >= 2 and all(o.still for o in objects)):
        for i_, a in enumerate(singles):
            for b in singles[i_ + 1:]:
                rel = _relation(pos[:, members[a][0]], pos[:, members[b][0]],
                                in_frame[:, members[a][0]] & in_frame[:, members[b][0]])
                if rel is not None:
                    relations.append(Relation(a, rel, b))

    # camera
    camera, camera_static = None, False
    cam = np.asarray(truth.camera, np.float64)
    if T > 1:
        d = cam[-1] - cam[0]
        if float(np.hypot(*d)) / ((T - 1) * dt) < still:
            camera_static = True
        elif abs(d[0]) >= abs(d[1]):
            camera = "right" if d[0] > 0 else "left"
        else:
            camera = "up" if d[1] > 0 else "down"
    else:
        camera_static = True

    falls = any(o.falls for o in objects)
    return Intent(objects=tuple(objects), relations=tuple(relations), camera=camera, camera_static=camera_static,
                  gravity=falls, falls=falls, bounces=any(o.bounces for o in objects), events=tuple(events))


def _relation(pa: np.ndarray, pb: np.ndarray, both: np.ndarray) -> str | None:
    """The relation of A to B that holds on >= RELATION_MIN_FRACTION of the frames (both in view if any)."""
    if both.any():
        pa, pb = pa[both], pb[both]
    dx, dy = pa[:, 0] - pb[:, 0], pa[:, 1] - pb[:, 1]
    horiz = np.abs(dx) > np.abs(dy)
    rels = np.where(horiz, np.where(dx < 0, 0, 1), np.where(dy > 0, 2, 3))
    counts = np.bincount(rels, minlength=4)
    best = int(counts.argmax())
    if counts[best] < RELATION_MIN_FRACTION * len(rels):
        return None
    return ("left of", "right of", "above", "below")[best]


def _tidy_events(events: Sequence[EventIntent]) -> tuple[EventIntent, ...]:
    """Drop duplicates and events that a more specific one covers; sort canonically."""
    uniq = list(dict.fromkeys(events))

    def covers(b: EventIntent, a: EventIntent) -> bool:   # b is a more specific version of a
        return (a != b and a.kind == b.kind and a.subject == b.subject
                and all(x is None or x == y for x, y in ((a.object, b.object), (a.frame, b.frame), (a.detail, b.detail))))

    kept = [a for a in uniq if not any(covers(b, a) for b in uniq)]
    kept.sort(key=lambda e: (e.frame is None, e.frame or 0, _EVENT_ORDER.get(e.kind, 9), e.subject,
                             -1 if e.object is None else e.object, e.detail or ""))
    return tuple(kept)


# --------------------------------------------------------------------------- #
# render: Intent -> dense caption text
# --------------------------------------------------------------------------- #


def _count_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def _plural(o: ObjectIntent) -> bool:
    return o.count != 1


def _noun(o: ObjectIntent) -> str:
    noun = _NOUN[o.shape]
    return noun + "s" if _plural(o) else noun


def _adjectives(o: ObjectIntent, with_speed: bool) -> list[str]:
    speed = {"fast": "fast", "slow": "slow"}.get(o.speed) if with_speed else None
    return [w for w in (speed, o.size, o.colour) if w]


def _speed_as_adjective(o: ObjectIntent) -> bool:
    """Speed goes into the noun phrase unless it can be an adverb of a straight motion."""
    return o.speed is not None and (o.still or o.falls or o.mixed or o.direction is None)


def _intro(o: ObjectIntent) -> str:
    words = _adjectives(o, _speed_as_adjective(o)) + [_noun(o)]
    if o.count is None:
        det = "some"
    elif o.count == 1:
        det = "an" if words[0][0] in "aeiou" else "a"
    else:
        det = _count_word(o.count)
    return " ".join([det] + words)


def _ref(o: ObjectIntent, objs: Sequence[ObjectIntent] = ()) -> str:
    """Shortest definite reference ("the red ball") that the parser resolves to this group.

    The size word is added only when another group could also be "the red ball".
    """
    words = ["the"] + ([_count_word(o.count)] if o.count is not None and o.count > 1 else [])
    short = (o.colour, o.shape, None)
    others = [(x.colour, x.shape, x.size) for x in objs if x is not o]
    ambiguous = o.size is not None and (short in others or any(
        all(a is None or b is None or a == b for a, b in zip(short, k)) for k in others))
    size = o.size if ambiguous else None
    return " ".join(words + [w for w in (size, o.colour) if w] + [_noun(o)])


def _verb(o: ObjectIntent, singular: str, plural: str) -> str:
    return plural if _plural(o) else singular


def _motion_phrase(o: ObjectIntent) -> str:
    parts = []
    if o.still:
        parts.append(_verb(o, "stays still", "stay still"))
    elif o.mixed:
        parts.append("move in different directions" + (" under gravity" if o.falls else ""))
    elif o.falls and o.direction is not None:
        dx, dy = o.direction
        if dx:
            side = "right" if dx > 0 else "left"
            parts.append(_verb(o, "arcs", "arc") + f" to the {side} under gravity")
        elif dy < 0:
            parts.append(_verb(o, "falls", "fall"))
        else:
            parts.append(_verb(o, "is", "are") + " thrown upward under gravity")
    elif o.falls:
        parts.append(_verb(o, "moves", "move") + " under gravity")
    elif o.direction is not None:
        adverb = {"slow": " slowly", "fast": " quickly"}.get(o.speed or "", "")
        parts.append(_verb(o, "moves", "move") + adverb + " " + _DIR_PHRASE[o.direction])
    if o.bounces:
        parts.append(_verb(o, "bounces", "bounce"))
    return " and ".join(parts)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def render_caption(intent: Intent) -> str:
    """Write an :class:`Intent` in the dense-caption style (the inverse of :func:`parse_prompt`).

    Order: one sentence per object group (count, size, colour, shape, motion),
    relations, events with frame numbers, motion after the collision, camera.
    """
    if not isinstance(intent, Intent):
        raise TypeError(f"render_caption expects an Intent, got {type(intent).__name__}")
    objs = intent.objects
    out: list[str] = []
    for o in objs:
        phrase = _motion_phrase(o)
        if phrase:
            out.append(f"{_cap(_intro(o))} {phrase}.")
        else:
            out.append(f"There {_verb(o, 'is', 'are')} {_intro(o)}.")
    for r in intent.relations:
        a, b = objs[r.subject], objs[r.object]
        out.append(f"{_cap(_ref(a, objs))} {_verb(a, 'is', 'are')} {_RELATION_PHRASE[r.relation]} {_ref(b, objs)}.")
    hit = {x for e in intent.events if e.kind == "collision" for x in (e.subject, e.object) if x is not None}
    for e in intent.events:
        s = objs[e.subject]
        at = f" at frame {e.frame}" if e.frame is not None else ""
        if e.kind == "collision":
            if e.object == e.subject:
                out.append(f"{_cap(_ref(s, objs))} collide{at}.")
            elif e.object is None:
                out.append(f"{_cap(_ref(s, objs))} {_verb(s, 'collides', 'collide')}{at}.")
            else:
                out.append(f"{_cap(_ref(s, objs))} {_verb(s, 'hits', 'hit')} {_ref(objs[e.object], objs)}{at}.")
        elif e.kind == "bounce":
            if e.detail is None and e.frame is None:
                continue                                   # said by "... and bounces" above
            off = f" off the {e.detail}" if e.detail else ""
            out.append(f"{_cap(_ref(s, objs))} {_verb(s, 'bounces', 'bounce')}{off}{at}.")
        elif e.kind == "state_change":
            change = f"{_verb(s, 'turns', 'turn')} {e.detail}" if e.detail else _verb(s, "changes colour", "change colour")
            cause = f" after {_verb(s, 'it is', 'they are')} hit" if e.subject in hit else ""
            out.append(f"{_cap(_ref(s, objs))} {change}{at}{cause}.")
        elif e.kind == "occlusion":
            out.append(f"{_cap(_ref(s, objs))} {_verb(s, 'passes', 'pass')} behind a grey wall{at}.")
    afters = [o for o in objs if o.direction_after is not None]
    if afters:
        lead = "After the collision, " if any(e.kind == "collision" for e in intent.events) else "Then, "
        parts = []
        for o in afters:
            if o.direction_after == _STOP:
                parts.append(f"{_ref(o, objs)} {_verb(o, 'stops', 'stop')}")
            else:
                parts.append(f"{_ref(o, objs)} {_verb(o, 'moves', 'move')} {_DIR_PHRASE[o.direction_after]}")
        body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        out.append(lead + body + ".")
    if intent.gravity and not any(o.falls for o in objs):
        out.append("There is gravity.")
    if intent.camera is not None:
        out.append("The camera pans " + ("to the " + intent.camera if intent.camera in ("left", "right") else intent.camera) + ".")
    elif intent.camera_static:
        out.append("The camera is static.")
    return " ".join(out)


def dense_caption(truth: Truth) -> str:
    """Sora-style re-caption of one clip, measured from its ground truth (deterministic).

    Example: ``"A medium red ball moves to the right. A large blue ball moves to
    the left. The medium red ball hits the large blue ball at frame 7. After the
    collision, the medium red ball moves to the left and the large blue ball
    moves to the right. The camera is static."``
    """
    text = render_caption(describe(truth))
    return text or "An empty scene."


# --------------------------------------------------------------------------- #
# parse: text -> Intent
# --------------------------------------------------------------------------- #

_NUMBERS = {w: i for i, w in enumerate(_NUMBER_WORDS) if i > 0}
_DEFINITE = {"the", "these", "those", "this", "that"}
_INDEFINITE = {"a", "an"}
_VAGUE = {"some", "several", "many", "multiple", "few"}
_SIZE_WORDS = {"small": "small", "tiny": "small", "little": "small", "medium": "medium", "mid": "medium",
               "large": "large", "big": "large", "huge": "large"}
_SHAPE_WORDS = {"ball": "circle", "disc": "circle", "disk": "circle", "circle": "circle", "sphere": "circle",
                "box": "square", "cube": "square", "square": "square", "block": "square",
                "triangle": "triangle"}
_SHAPE_NOUNS = {**{w: (s, False) for w, s in _SHAPE_WORDS.items()},
                **{(w + "es" if w.endswith("x") else w + "s"): (s, True) for w, s in _SHAPE_WORDS.items()}}
_GENERIC_NOUNS = {"object": False, "objects": True, "shape": False, "shapes": True, "thing": False,
                  "things": True, "item": False, "items": True, "one": False, "ones": True}
_SPEED_ADJ = {"fast": "fast", "quick": "fast", "speedy": "fast", "slow": "slow"}
_SPEED_ADV = {"fast": "fast", "quickly": "fast", "rapidly": "fast", "swiftly": "fast", "slowly": "slow"}
_STILL_ADJ = {"still", "stationary", "static", "motionless", "resting", "immobile"}
_STILL_WORDS = _STILL_ADJ | {"rest", "rests"}
_FILLER_ADJ = {"sized", "coloured", "colored"}
_SCENERY_ADJ = {"grey", "gray"}
_SCENERY_NOUNS = {"wall", "walls", "floor", "ground", "ceiling", "occluder", "barrier", "screen", "pillar",
                  "curtain", "background", "box", "block", "square", "boxes", "blocks"}
_PRONOUNS = {"it", "which", "they", "them"}
_CONJ = {"and", "then", "but", "while", "as", "when", "whereas", "so"}
_AFTER_START = {"after", "afterwards", "afterward", "then", "later", "finally", "next"}
_H = {"left": -1, "leftward": -1, "leftwards": -1, "west": -1, "right": 1, "rightward": 1, "rightwards": 1, "east": 1}
_V = {"up": 1, "upward": 1, "upwards": 1, "top": 1, "north": 1,
      "down": -1, "downward": -1, "downwards": -1, "bottom": -1, "south": -1}
_VERTICAL_VERBS = {"falls": -1, "fall": -1, "falling": -1, "fell": -1, "drops": -1, "drop": -1, "dropping": -1,
                   "dropped": -1, "sinks": -1, "sink": -1, "sinking": -1, "descends": -1, "descend": -1,
                   "rises": 1, "rise": 1, "rising": 1, "rose": 1, "ascends": 1, "ascend": 1, "climbs": 1, "climb": 1}
_GRAVITY_WORDS = {"falls", "fall", "falling", "fell", "drops", "drop", "dropping", "dropped", "arc", "arcs",
                  "arcing", "arced", "gravity", "parabola", "parabolic", "projectile",
                  "thrown", "throw", "throws", "tossed", "toss", "tosses", "lobbed", "lobs", "lob"}   # a throw arcs
_MOTION_VERBS = set(_VERTICAL_VERBS) | {
    "move", "moves", "moved", "moving", "go", "goes", "going", "went", "roll", "rolls", "rolling", "rolled",
    "slide", "slides", "sliding", "slid", "travel", "travels", "travelling", "traveling", "fly", "flies", "flying",
    "flew", "drift", "drifts", "drifting", "head", "heads", "heading", "glide", "glides", "gliding", "run", "runs",
    "running", "zoom", "zooms", "zooming", "shoot", "shoots", "shooting", "speed", "speeds", "speeding",
    "launched", "thrown", "throw", "throws", "tossed", "toss", "tosses", "kicked", "pushed", "arc", "arcs", "arcing",
    "arced", "pan", "pans", "panning", "panned", "tilt", "tilts", "tilting", "tilted", "scroll", "scrolls",
    "passes", "pass", "passing", "crosses", "cross", "crossing"}
_STOP_VERBS = {"stops", "stop", "stopped", "stopping", "halts", "halt", "halted"}
_NEGATIONS = {"not", "doesnt", "dont", "never", "didnt", "isnt", "arent", "no"}
_COLLIDE_VERBS = {"hits", "hit", "hitting", "collides", "collide", "colliding", "collided", "strikes", "strike",
                  "striking", "struck", "bumps", "bump", "crashes", "crash", "smashes", "knocks", "rams"}
_PASSIVE = {"is", "are", "was", "were", "gets", "get", "got", "be", "been", "being"}
_BOUNCE_VERBS = {"bounces", "bounce", "bouncing", "bounced", "rebounds", "rebound", "rebounding"}
_STATE_VERBS = {"turns", "turn", "turned", "turning", "becomes", "become", "became", "changes", "change",
                "changed", "changing"}
_ALL_VERBS = _MOTION_VERBS | _STOP_VERBS | _COLLIDE_VERBS | _BOUNCE_VERBS | _STATE_VERBS
_SURFACES = {"floor": "floor", "ground": "floor", "bottom": "floor", "ceiling": "ceiling", "roof": "ceiling",
             "top": "ceiling", "wall": "wall", "walls": "wall", "side": "wall", "sides": "wall", "edge": "wall",
             "edges": "wall", "border": "wall", "borders": "wall"}
_CAMERA = -1          # group id used for "the camera" while parsing
_TOKEN_RE = re.compile(r"[a-z]+|\d+|,")


@dataclasses.dataclass
class _Mention:
    colour: str | None
    shape: str | None
    size: str | None
    count: int | None
    definite: bool
    another: bool
    speed: str | None
    still: bool


@dataclasses.dataclass
class _Group:
    colour: str | None
    shape: str | None
    size: str | None
    count: int | None
    speed: str | None = None
    still_adj: bool = False
    h: dict = dataclasses.field(default_factory=lambda: {"pre": [], "after": []})
    v: dict = dataclasses.field(default_factory=lambda: {"pre": [], "after": []})
    still: dict = dataclasses.field(default_factory=lambda: {"pre": False, "after": False})
    falls: bool = False
    bounces: bool = False
    mixed: bool = False


def _sentences(text: str) -> list[list[str]]:
    text = text.lower().replace("\u2019", "'").replace("'", "")
    text = re.sub(r"[-_/]", " ", text)
    return [toks for s in re.split(r"[.!?;:\n]+", text) if (toks := _TOKEN_RE.findall(s))]


def _number(tok: str) -> int | None:
    if tok.isdigit():
        return int(tok)
    return _NUMBERS.get(tok)


def _is_adj(tok: str) -> bool:
    return tok in PALETTE or tok in _SIZE_WORDS or tok in _SPEED_ADJ or tok in _STILL_ADJ or tok in _FILLER_ADJ


def _match_mention(toks: list[str], i: int) -> tuple[int, list[_Mention] | str] | None:
    """A noun phrase naming objects at ``toks[i]``: ``(end, mentions)``, ``(end, "camera")`` or None.

    Grammar: [the|a|an|another|some] [number] adjective* noun, where adjectives
    are colours (lists like "red and blue" allowed), sizes, speeds and
    still-words, and the noun is a shape word or a generic one (object, thing,
    "one" after an adjective). Grey things are scenery, never objects.
    """
    n = len(toks)
    j = i
    definite = another = vague = False
    count: int | None = None
    explicit = False
    t = toks[j]
    if t in _DEFINITE:
        definite, j = True, j + 1
    elif t in _INDEFINITE:
        count, j = 1, j + 1
    elif t == "another":
        another, count, j = True, 1, j + 1
    elif t in _VAGUE:
        vague, j = True, j + 1
    if j < n and toks[j] == "single":
        count, j = 1, j + 1
    if j + 1 < n and _number(toks[j]) is not None and (_is_adj(toks[j + 1]) or toks[j + 1] in _SHAPE_NOUNS
                                                        or toks[j + 1] in _GENERIC_NOUNS):
        count, explicit, j = _number(toks[j]), True, j + 1
    if j < n and toks[j] == "camera":
        return (j + 1, "camera") if (j == i or definite or count == 1) else None
    colours: list[str] = []
    size = speed = None
    still = adj = False
    while j < n:
        t = toks[j]
        if t in _SCENERY_ADJ:
            return None
        if t in PALETTE:
            colours.append(t)
            adj, j = True, j + 1
            while j + 1 < n and toks[j] in ("and", "or", ",") and toks[j + 1] in PALETTE:
                colours.append(toks[j + 1])
                j += 2
        elif t in _SIZE_WORDS:
            size, adj, j = _SIZE_WORDS[t], True, j + 1
        elif t in _SPEED_ADJ:
            speed, adj, j = _SPEED_ADJ[t], True, j + 1
        elif t in _STILL_ADJ:
            still, adj, j = True, True, j + 1
        elif t in _FILLER_ADJ and adj:
            j += 1
        else:
            break
    if j >= n:
        return None
    t = toks[j]
    if t in _SHAPE_NOUNS:
        shape, plural = _SHAPE_NOUNS[t]
    elif t in _GENERIC_NOUNS and (t not in ("one", "ones") or adj):
        shape, plural = None, _GENERIC_NOUNS[t]
    else:
        return None
    j += 1
    if explicit or another:
        pass
    elif count == 1 and not plural:
        pass
    elif vague or plural:
        count = None
    else:
        count = 1
    if len(colours) > 1:                       # "red and blue balls": one of each
        each = None if explicit else 1
        return j, [_Mention(c, shape, size, each, definite, False, speed, still) for c in colours]
    colour = colours[0] if colours else None
    return j, [_Mention(colour, shape, size, count, definite, another, speed, still)]


def _match_relation(toks: list[str], i: int) -> tuple[str, int] | None:
    """A relation word/phrase at ``toks[i]``: ``(relation, length)`` or None."""
    n = len(toks)
    t = toks[i]
    if t in ("above", "over"):
        return "above", 1
    if t in ("below", "beneath", "underneath", "under"):
        return "below", 1
    j = i
    if toks[j] == "on":
        if j + 2 < n and toks[j + 1] == "top" and toks[j + 2] == "of":
            return "above", 3
        j += 1
    if j < n and toks[j] == "to":
        j += 1
    if j < n and toks[j] == "the":
        j += 1
    if j + 1 < n and toks[j] in ("left", "right") and toks[j + 1] == "of":
        return toks[j] + " of", j + 2 - i
    return None



def _plural_verb(toks: list[str], i: int) -> bool:
    """Is the verb at (or, for a non-verb like "still", just before) ``toks[i]`` plural?"""
    for j in (i, i - 1):
        if j < 0:
            return False
        t = toks[j]
        if t in ("are", "were", "do", "dont", "have"):
            return True
        if t in ("is", "was", "does", "doesnt", "has", "isnt"):
            return False
        if t in _ALL_VERBS or t in ("stay", "stays", "remain", "remains"):
            prev = toks[j - 1] if j > 0 else ""
            if prev in ("are", "were", "do", "dont"):
                return True
            if prev in ("is", "was", "does", "doesnt"):
                return False
            return not (t.endswith("s") or t.endswith("ing") or t.endswith("ed") or t in ("thrown", "struck", "slid", "went", "flew", "fell", "rose"))
    return False

def _compatible(g: _Group, m: _Mention) -> bool:
    return all(a is None or b is None or a == b
               for a, b in ((g.colour, m.colour), (g.shape, m.shape), (g.size, m.size)))


class _Parser:
    """Reads sentences left to right, tracking clause subjects, into groups, relations and events."""

    def __init__(self) -> None:
        self.groups: list[_Group] = []
        self.recency: list[int] = []
        self.relations: list[tuple[int, str, int]] = []
        self.events: list[dict] = []
        self.camera_h: list[int] = []
        self.camera_v: list[int] = []
        self.camera_static = False
        self.gravity = False
        self.last_obj: list[int] = []

    # -- groups ------------------------------------------------------------
    def resolve(self, m: _Mention) -> int:
        exact = [g for g, G in enumerate(self.groups) if (G.colour, G.shape, G.size) == (m.colour, m.shape, m.size)]
        if m.another:
            cands = exact or [g for g in reversed(self.recency) if _compatible(self.groups[g], m)]
            if cands:
                G = self.groups[cands[0]]
                G.count = None if G.count is None else G.count + 1
                return self._touch(cands[0], m)
        elif m.definite:
            if exact:
                return self._touch(exact[0], m)
            cands = [g for g in reversed(self.recency) if _compatible(self.groups[g], m)]
            if cands:
                G = self.groups[cands[0]]
                G.colour, G.shape, G.size = G.colour or m.colour, G.shape or m.shape, G.size or m.size
                if G.count is None and m.count is not None:
                    G.count = m.count
                return self._touch(cands[0], m)
        elif exact:
            G = self.groups[exact[0]]
            if G.count is not None and m.count is not None:
                G.count = max(G.count, m.count)
            return self._touch(exact[0], m)
        self.groups.append(_Group(m.colour, m.shape, m.size, m.count))
        return self._touch(len(self.groups) - 1, m)

    def _touch(self, g: int, m: _Mention) -> int:
        G = self.groups[g]
        G.speed = G.speed or m.speed
        G.still_adj = G.still_adj or m.still
        if g in self.recency:
            self.recency.remove(g)
        self.recency.append(g)
        return g

    # -- one sentence --------------------------------------------------------
    def sentence(self, toks: list[str]) -> None:
        n = len(toks)
        phase = "after" if toks[0] in _AFTER_START else "pre"
        subject: list[int] = []
        last: list[int] = []
        conj = False
        clause_start = True
        pure = False              # the clause so far is only mentions joined by "and"
        compound = False          # subject is "X and Y" (a verb after Y applies to both)
        hitters: set[int] = set() # subjects of "hits" in this sentence: their later motion is after the hit
        sent_events: list[int] = []
        pending_frame: int | None = None
        pending: dict[int, list[tuple[str, Any]]] = {}   # token index of a mention -> things waiting for its group

        def target(at: int | None = None) -> list[int]:
            """Who the word at ``at`` is about: the nearest mention, or the clause subject after a conjunction.

            "X and Y" followed by a plural verb ("bounce", "are still") is about both.
            """
            if not conj and last:
                if compound and last == subject[-len(last):] and at is not None and _plural_verb(toks, at):
                    return list(subject)
                return list(last)
            return list(subject or last)

        def objects_only(ids: list[int]) -> list[int]:
            return [g for g in ids if g != _CAMERA]

        def add_event(kind: str, subj: int, obj: int | None = None, detail: str | None = None) -> int:
            nonlocal pending_frame
            self.events.append(dict(kind=kind, subject=subj, object=obj, frame=pending_frame, detail=detail))
            pending_frame = None
            sent_events.append(len(self.events) - 1)
            return len(self.events) - 1

        def mention_at(j: int) -> bool:
            return j < n and _match_mention(toks, j) is not None

        def relation_at(j: int) -> bool:
            rel = _match_relation(toks, j)
            if rel is None:
                return False
            m = _match_mention(toks, j + rel[1]) if j + rel[1] < n else None
            return m is not None and m[1] != "camera"

        def scan_motion(i: int) -> tuple[list[int], list[int], bool, str | None]:
            h: list[int] = []
            v: list[int] = []
            grav, speed = False, None
            j = i + 1
            while j < n and j < i + 10:
                t = toks[j]
                if t == "," or (t in _CONJ and t != "and") or t in _ALL_VERBS or t in _STILL_WORDS \
                        or t in _PRONOUNS or relation_at(j) or mention_at(j):
                    break
                if t in ("from", "on", "at", "in"):
                    k = j + 1 + (j + 1 < n and toks[j + 1] == "the")
                    if k < n and (toks[k] in _H or toks[k] in _V):
                        j = k + 1
                        continue
                if t in _H:
                    h.append(_H[t])
                elif t in _V:
                    v.append(_V[t])
                elif t in _SPEED_ADV:
                    speed = _SPEED_ADV[t]
                elif t == "gravity":
                    grav = True
                j += 1
            return h, v, grav, speed

        i = 0
        while i < n:
            t = toks[i]
            if t == ",":
                conj, clause_start, pure = True, True, False
                i += 1
                continue
            if t == "frame" and i + 1 < n and _number(toks[i + 1]) is not None:
                f = _number(toks[i + 1])
                free = [e for e in sent_events if self.events[e]["frame"] is None]
                if free:
                    self.events[free[-1]]["frame"] = f
                else:
                    pending_frame = f
                i += 2
                continue
            rel = _match_relation(toks, i)
            if rel is not None and relation_at(i):
                subj = objects_only(target(i))
                j = i + rel[1]
                pending.setdefault(j, []).extend(("relation", (s, rel[0])) for s in subj)
                clause_start, pure = False, False
                i = j
                continue
            m = _match_mention(toks, i)
            if m is not None:
                end, ms = m
                if ms == "camera":
                    ids = [_CAMERA]
                else:
                    ids = [self.resolve(x) for x in ms]
                    self.last_obj = list(ids)
                for kind, payload in pending.pop(i, []):
                    if kind == "relation":
                        s, r = payload
                        for o in ids:
                            if o != _CAMERA and o != s:
                                self.relations.append((s, r, o))
                    elif kind == "object" and ids[0] != _CAMERA:
                        self.events[payload]["object"] = ids[0]
                if not subject or clause_start:
                    if clause_start and pure and subject and i > 0 and toks[i - 1] == "and":
                        subject, compound = subject + ids, True
                    else:
                        subject, compound = list(ids), False
                    pure = True
                last = list(ids)
                conj, clause_start = False, False
                i = end
                continue
            if t in _PRONOUNS:
                if self.last_obj:
                    if not subject or clause_start:
                        subject, compound = list(self.last_obj), False
                    last = list(self.last_obj)
                    conj, clause_start, pure = False, False, False
                i += 1
                continue
            clause_start = False
            if t in _CONJ:
                if t == "then":
                    phase = "after"
                conj, clause_start = True, True
                if t != "and":
                    pure = False
                i += 1
                continue
            pure = False
            if t in _NEGATIONS and i + 1 < n and toks[i + 1] in _MOTION_VERBS:
                self._still(target(i), phase)
                i += 2
                continue
            if t in _MOTION_VERBS:
                h, v, grav, speed = scan_motion(i)
                if t in _VERTICAL_VERBS:
                    v = [_VERTICAL_VERBS[t]] + v
                grav = grav or t in _GRAVITY_WORDS
                for g in target(i):
                    if g == _CAMERA:
                        self.camera_h += h
                        self.camera_v += v
                        continue
                    G = self.groups[g]
                    ph = "after" if g in hitters else phase
                    G.h[ph] += h
                    G.v[ph] += v
                    G.falls = G.falls or grav
                    G.speed = G.speed or speed
                i += 1
                continue
            if t in _STILL_WORDS:
                if t == "still" and i + 1 < n and toks[i + 1] in _MOTION_VERBS:   # "still moving"
                    i += 1
                    continue
                stop = t == "rest" and i > 0 and toks[i - 1] in ("to", "a")
                self._still(target(i), "after" if stop else phase)
                i += 1
                continue
            if t in _STOP_VERBS:
                self._still(target(i), "after")
                i += 1
                continue
            if t == "different" and i + 1 < n and toks[i + 1] == "directions":
                for g in objects_only(target(i)):
                    self.groups[g].mixed = True
                i += 2
                continue
            if t in _SPEED_ADV:
                for g in objects_only(target(i)):
                    G = self.groups[g]
                    G.speed = G.speed or _SPEED_ADV[t]
                i += 1
                continue
            if t in _COLLIDE_VERBS:
                if i > 0 and toks[i - 1] in _PASSIVE:                # "after it is hit"
                    i += 1
                    continue
                tg = objects_only(target(i))
                if tg:
                    e = add_event("collision", tg[0])
                    hitters.update(tg)
                    j = i + 1
                    while j < n and toks[j] in ("with", "into", "against", "onto", "on"):
                        j += 1
                    others = [g for g in reversed(self.recency) if g not in tg]
                    if mention_at(j):
                        pending.setdefault(j, []).append(("object", e))
                    elif j < n and toks[j] in _PRONOUNS and others:     # "... when a red ball hits it"
                        self.events[e]["object"] = others[0]
                    elif len(tg) > 1:
                        self.events[e]["object"] = tg[1]
                    elif self.groups[tg[0]].count != 1:
                        self.events[e]["object"] = tg[0]
                i += 1
                continue
            if t in _BOUNCE_VERBS:
                surface, j = None, i + 1
                if j < n and toks[j] in ("off", "against", "on", "from", "of"):
                    k = j + 1
                    while k < n and toks[k] in ("the", "a", "an", "grey", "gray"):
                        k += 1
                    side = None
                    if k < n and toks[k] in ("left", "right"):
                        side, k = toks[k], k + 1
                    if k < n and toks[k] in _SURFACES:
                        surface = _SURFACES[toks[k]]
                        if surface == "wall" and side:
                            surface = f"{side} wall"
                        j = k + 1
                for g in objects_only(target(i)):
                    self.groups[g].bounces = True
                    add_event("bounce", g, None, surface)
                i = j
                continue
            if t in _STATE_VERBS:
                j = i + 1
                while j < n and toks[j] in ("to", "into"):
                    j += 1
                if j < n and (toks[j] in PALETTE or toks[j] in ("colour", "color", "colours", "colors", "state")):
                    detail = toks[j] if toks[j] in PALETTE else None
                    for g in objects_only(target(i)):
                        add_event("state_change", g, None, detail)
                    i = j + 1
                    continue
                i += 1
                continue
            if t == "behind":
                for g in objects_only(target(i)):
                    add_event("occlusion", g)
                j = i + 1
                k = j + (j < n and toks[j] in ("a", "an", "the"))
                grey = k < n and toks[k] in _SCENERY_ADJ
                k += grey
                if k < n and toks[k] in _SCENERY_NOUNS and (grey or toks[k] not in _SHAPE_NOUNS):
                    j = k + 1
                i = j
                continue
            if t == "gravity":
                self.gravity = True
                for g in objects_only(target(i)):
                    self.groups[g].falls = True
                i += 1
                continue
            if t in ("lights", "light") and i + 1 < n and toks[i + 1] == "up":
                for g in objects_only(target(i)):
                    add_event("state_change", g)
                i += 2
                continue
            i += 1

    def _still(self, ids: list[int], phase: str) -> None:
        for g in ids:
            if g == _CAMERA:
                self.camera_static = True
            else:
                self.groups[g].still[phase] = True

    # -- result --------------------------------------------------------------
    def intent(self) -> Intent:
        def combine(h: list[int], v: list[int], falls: bool) -> Direction | None:
            hh, vv = (h[0] if h else 0), (v[0] if v else 0)
            if falls:
                return _UNIT[(hh, 0)] if hh else (_UNIT[(0, vv)] if vv else None)
            return _UNIT[(hh, vv)] if (hh or vv) else None

        objects = []
        for G in self.groups:
            direction = combine(G.h["pre"], G.v["pre"], G.falls)
            still = (G.still["pre"] or G.still_adj) and direction is None
            after = combine(G.h["after"], G.v["after"], G.falls)
            if after is None and G.still["after"]:
                after = _STOP
            objects.append(ObjectIntent(
                colour=G.colour, shape=G.shape, count=G.count, size=G.size, direction=direction, still=still,
                falls=G.falls, bounces=G.bounces, speed=G.speed, mixed=G.mixed and direction is None and not still,
                direction_after=after))
        relations = tuple(Relation(s, r, o) for s, r, o in dict.fromkeys(self.relations))
        events = _tidy_events([EventIntent(**e) for e in self.events])
        camera = None
        if self.camera_h:
            camera = "right" if self.camera_h[0] > 0 else "left"
        elif self.camera_v:
            camera = "up" if self.camera_v[0] > 0 else "down"
        falls = any(o.falls for o in objects)
        return Intent(objects=tuple(objects), relations=relations, camera=camera,
                      camera_static=self.camera_static and camera is None, gravity=self.gravity or falls,
                      falls=falls, bounces=any(o.bounces for o in objects), events=events)


def parse_prompt(text: str) -> Intent:
    """Read a short prompt or a dense caption back into an :class:`Intent`.

    Understands: number words one..ten and digits ("three blue squares", "3
    blue squares"), a/an/another/some, plurals; shape synonyms (ball/disc/disk/
    circle/sphere -> circle, box/cube/square/block -> square, triangle); the
    palette colours; sizes (small/tiny/little, medium, large/big/huge);
    directions (left/right/up/down, leftward/upward..., "up and to the left");
    gravity words (falls, drops, arcs, under gravity); still words (stays still,
    stationary, does not move); relations (left of, to the right of, above,
    over, below, under, beneath, on top of); events (hits/collides with, bounces
    off the floor/left wall, turns <colour>, passes behind a wall, "at frame 7");
    camera ("the camera pans left"); "then"/"after the collision" for motion
    after the first collision. Unknown words are ignored; an empty text gives
    an empty Intent.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_prompt expects a str, got {type(text).__name__}")
    p = _Parser()
    for toks in _sentences(text):
        p.sentence(toks)
    return p.intent()


def expand_prompt(prompt: str) -> str:
    """Expand a short prompt into the dense-caption style the model was trained on.

    Text only: ``render_caption(parse_prompt(prompt))``, so it adds structure but
    never an attribute the prompt did not state (no invented colours, counts or
    directions). Expanding a dense caption keeps its meaning (a fixed point).
    A prompt with nothing the parser understands is returned stripped.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"expand_prompt expects a str, got {type(prompt).__name__}")
    intent = parse_prompt(prompt)
    if intent.is_empty():
        return prompt.strip()
    return render_caption(intent)


# --------------------------------------------------------------------------- #
# short_prompt: what a person would type
# --------------------------------------------------------------------------- #

_SP_NOUNS = {"circle": ("ball", "ball", "disc", "circle"), "square": ("square", "box", "block", "cube"),
             "triangle": ("triangle",)}
_SP_DIRS = {(1.0, 0.0): ("to the right", "right", "rightward"), (-1.0, 0.0): ("to the left", "left", "leftward"),
            (0.0, 1.0): ("up", "upward"), (0.0, -1.0): ("down", "downward"),
            _COMPASS[1]: ("up and to the right", "up and right"), _COMPASS[3]: ("up and to the left", "up and left"),
            _COMPASS[5]: ("down and to the left", "down and left"), _COMPASS[7]: ("down and to the right", "down and right")}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _sp_np(o: ObjectIntent, rng: np.random.Generator, *, still_adj: bool = False, block: bool = False,
           need_size: bool = False) -> str:
    noun = "block" if block and o.shape == "square" else _pick(rng, _SP_NOUNS.get(o.shape, ("object",)))
    if o.count != 1:
        noun = noun + ("es" if noun.endswith("x") else "s")
    adj = [o.colour]
    if o.size is not None and (need_size or (o.size in ("small", "large") and rng.random() < 0.4)):
        adj.insert(0, o.size)
    if still_adj:
        adj.insert(0, "stationary")
    if o.count is None:
        det = "some"
    elif o.count == 1:
        det = "one" if rng.random() < 0.15 else ("an" if adj[0][0] in "aeiou" else "a")
    else:
        det = str(o.count) if rng.random() < 0.3 else _count_word(o.count)
    return " ".join([det] + adj + [noun])


def _sp_motion(o: ObjectIntent, rng: np.random.Generator) -> str:
    """A verb phrase for one group, or '' when it has no single clear motion."""
    pl = o.count != 1
    if o.still:
        return _pick(rng, ("stay still", "do not move") if pl else ("stays still", "is stationary", "does not move"))
    if o.direction is None:
        return _verb(o, "bounces", "bounce") if o.bounces else ""
    d = _pick(rng, _SP_DIRS[o.direction])
    if o.falls:
        if o.direction[0]:
            verb = _pick(rng, (f"{_verb(o, 'is', 'are')} thrown {d}", f"{_verb(o, 'arcs', 'arc')} {d}",
                               f"{_verb(o, 'flies', 'fly')} {d} and {_verb(o, 'falls', 'fall')}"))
        elif o.direction[1] < 0:
            verb = _pick(rng, (_verb(o, "falls", "fall"), _verb(o, "drops", "drop")))
        else:
            verb = f"{_verb(o, 'is', 'are')} thrown up"
    else:
        verbs = [("moves", "move"), ("goes", "go"), ("travels", "travel"), ("moving", "moving")]
        if o.shape == "circle":
            verbs.append(("rolls", "roll"))
        if o.shape == "square":
            verbs.append(("slides", "slide"))
        s, p = verbs[int(rng.integers(len(verbs)))]
        verb = f"{p if pl else s} {d}"
    if o.bounces:
        verb += " and " + _verb(o, "bounces", "bounce")
    return verb


def _sp_join(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1] if parts else ""


def short_prompt(truth: Truth, seed: int = 0) -> str:
    """A short prompt a person might type for this clip, from a few seeded templates.

    Every object group is named with its count and colour; motion, relations,
    events and the camera are phrased by family ("a red ball left of a blue
    triangle", "three blue squares", "a yellow ball falls and bounces"). Same
    ``(truth, seed)`` -> same text; different seeds vary the wording, never the meaning.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    intent = describe(truth)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED])
    objs = intent.objects
    if not objs:
        return "an empty scene"
    fam = truth.family
    # groups that differ only in size must say their size, or they would read as one group
    pairs = [(o.colour, o.shape) for o in objs]
    sized = {g for g, key in enumerate(pairs) if pairs.count(key) > 1}

    def np_(g: int, **kw: Any) -> str:
        return _sp_np(objs[g], rng, need_size=g in sized, **kw)

    text = ""
    used: set[int] = set()
    if fam == "relation" and intent.relations:
        r = intent.relations[0]
        a, b = objs[r.subject], objs[r.object]
        rel = {"left of": ("left of", "to the left of", "is to the left of", "is left of"),
               "right of": ("right of", "to the right of", "is to the right of", "is right of"),
               "above": ("above", "is above", "over"), "below": ("below", "is below", "under", "beneath")}[r.relation]
        text = f"{np_(r.subject)} {_pick(rng, rel)} {np_(r.object)}"
        used = {r.subject, r.object}
    elif fam in ("collision", "cause_effect") and any(e.kind == "collision" and e.object is not None
                                                      and e.object != e.subject for e in intent.events):
        e = next(e for e in intent.events if e.kind == "collision" and e.object is not None and e.object != e.subject)
        if objs[e.object].direction is not None and objs[e.subject].direction is None:      # the mover first
            e = dataclasses.replace(e, subject=e.object, object=e.subject)
        a, b = objs[e.subject], objs[e.object]
        change = next((x for x in intent.events if x.kind == "state_change"), None)
        np_b = np_(e.object, still_adj=b.still and rng.random() < 0.5, block=fam == "cause_effect")
        ma = _sp_motion(a, rng) if a.direction is not None else ""
        if ma and not ma.startswith("moving"):
            text = f"{np_(e.subject)} {ma} and hits {np_b}"
        elif ma:
            text = f"{np_(e.subject)} {ma} hits {np_b}"
        else:
            text = f"{np_(e.subject)} {_pick(rng, ('hits', 'collides with', 'bumps into'))} {np_b}"
        if b.direction is not None and not b.still and not b.falls:
            text += f" moving {_pick(rng, _SP_DIRS[b.direction])}"
        if change is not None and change.subject == e.object:
            how = f"turns {change.detail}" if change.detail else "changes colour"
            text += _pick(rng, (f", which {how}", f" and it {how}"))
        used = {e.subject, e.object}
    names = [np_(g) for g in range(len(objs)) if g not in used]
    rest = [f"{nm} {_sp_motion(o, rng)}".strip() for nm, o in zip(names, [o for g, o in enumerate(objs) if g not in used])]
    plain = _sp_join([text] + names)          # names only, for "the camera pans left across ..."
    text = _sp_join([text] + rest)
    if fam == "counting" and not used and rng.random() < 0.5:
        text = f"there {'is' if objs[0].count == 1 else 'are'} " + text
    if any(e.kind == "occlusion" for e in intent.events):
        text += _pick(rng, (" behind a grey wall", " and passes behind a wall", ", passing behind a grey wall"))
    if intent.camera is not None:
        cam = _pick(rng, (intent.camera, f"to the {intent.camera}") if intent.camera in ("left", "right")
                    else (intent.camera,))
        text = _pick(rng, (f"{text}, the camera pans {cam}", f"{text} while the camera pans {cam}",
                           f"the camera pans {cam} across {plain}"))
    return text
