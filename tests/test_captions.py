"""Captions, short prompts, prompt expansion and parsing (sora_jax.world.captions).

Truths are built by hand here (see ``make_truth``) so these tests do not depend
on the simulator; one last test round-trips real simulated clips when the
simulator is importable.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sora_jax.world.captions import (
    SIZE_THRESHOLDS,
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
from sora_jax.world.types import Event, Truth

S = math.sqrt(0.5)
RIGHT, LEFT, UP, DOWN = (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)


def make_truth(family, bodies, *, T=13, dt=0.1, view=(10.0, 10.0), gravity=0.0, camera_v=(0.0, 0.0),
               events=(), static=(), visible=None, params=None, state=None) -> Truth:
    """A Truth from simple kinematics.

    bodies: dicts with colour, shape, radius, p (start position) and v (start
    velocity), optionally ``kicks={frame: new_velocity}`` (the velocity from that
    frame on, as after a collision or bounce) and ``gravity`` (default: the clip's).
    """
    K = len(bodies)
    pos = np.zeros((T, K, 2))
    vel = np.zeros((T, K, 2))
    for k, b in enumerate(bodies):
        g = b.get("gravity", gravity)
        p, v = np.array(b["p"], float), np.array(b["v"], float)
        for t in range(T):
            if t in b.get("kicks", {}):
                v = np.array(b["kicks"][t], float)
            pos[t, k], vel[t, k] = p, v
            v_next = v + np.array([0.0, -g * dt])
            p = p + dt * (v + v_next) / 2
            v = v_next
    camera = np.arange(T)[:, None] * dt * np.array(camera_v, float)[None]
    rel = pos - camera[:, None, :]
    in_frame = (rel[..., 0] >= 0) & (rel[..., 0] <= view[0]) & (rel[..., 1] >= 0) & (rel[..., 1] <= view[1])
    return Truth(
        family=family, seed=0, split="id", dt=dt, view=view, positions=pos, velocities=vel,
        radius=np.array([b["radius"] for b in bodies], float), colour=tuple(b["colour"] for b in bodies),
        shape=tuple(b["shape"] for b in bodies),
        visible=in_frame.astype(float) if visible is None else visible, in_frame=in_frame, camera=camera,
        state=np.zeros((T, K), np.int32) if state is None else state, events=tuple(events),
        static=tuple(static), params=params or {})


def ball(colour, p, v, radius=0.8, shape="circle", **kw):
    return dict(colour=colour, shape=shape, radius=radius, p=p, v=v, **kw)


def mirror_x(t: Truth) -> Truth:
    """The same clip seen in a mirror (x -> view_w - x)."""
    import dataclasses
    w = t.view[0]
    pos, vel = t.positions.copy(), t.velocities.copy()
    pos[..., 0] = w - pos[..., 0]
    vel[..., 0] = -vel[..., 0]
    cam = t.camera.copy()
    cam[:, 0] = -cam[:, 0]
    return dataclasses.replace(t, positions=pos, velocities=vel, camera=cam)


def mirror_y(t: Truth) -> Truth:
    import dataclasses
    h = t.view[1]
    pos, vel = t.positions.copy(), t.velocities.copy()
    pos[..., 1] = h - pos[..., 1]
    vel[..., 1] = -vel[..., 1]
    return dataclasses.replace(t, positions=pos, velocities=vel)


# --------------------------------------------------------------------------- #
# Hand-built truths, one or more per family
# --------------------------------------------------------------------------- #


def truth_uniform():
    return make_truth("uniform", [ball("red", (2, 5), (2.0, 0.0)), ball("blue", (7, 3), (-1.5, 1.5), shape="square")])


def truth_counting():
    sq = [ball("blue", (x, 7), (0, 0), shape="square") for x in (2, 5, 8)]
    return make_truth("counting", sq + [ball("red", (5, 2), (0, 0))])


def truth_relation_h():
    return make_truth("relation", [ball("red", (2, 5), (0, 0)), ball("blue", (8, 5.5), (0, 0), shape="triangle")])


def truth_relation_v():
    return make_truth("relation", [ball("green", (5, 8), (0, 0)), ball("purple", (5.3, 2), (0, 0), shape="square")])


def truth_parabola():
    return make_truth("parabola", [ball("orange", (1, 6), (2.0, 1.0))], gravity=2.5)


def truth_drop_bounce():
    # falls from rest, hits the floor at frame 8 and goes back up
    t = make_truth("bounce", [ball("yellow", (5, 8), (0, 0))], gravity=2.5)
    v8 = -t.velocities[7, 0, 1] * 0.8
    return make_truth("bounce", [ball("yellow", (5, 8), (0, 0), kicks={8: (0.0, v8)})], gravity=2.5,
                      events=[Event(8, "bounce", (0, -1), 1.0)])


def truth_collision():
    return make_truth("collision", [ball("red", (2, 5), (3.0, 0.0), kicks={6: (-1.0, 0.0)}),
                                    ball("blue", (8, 5), (-2.0, 0.0), radius=1.3, kicks={6: (2.0, 0.0)})],
                      events=[Event(6, "collision", (0, 1), 4.0)])


def truth_camera_pan(vx=-1.5):
    return make_truth("camera_pan", [ball("cyan", (3, 3), (0, 0)), ball("red", (7, 7), (0, 0), shape="square")],
                      camera_v=(vx, 0.0))


def truth_cause_effect():
    state = np.zeros((13, 2), np.int32)
    state[5:, 1] = 1
    return make_truth("cause_effect",
                      [ball("red", (1.5, 5), (3.0, 0.0), kicks={5: (-1.0, 0.0)}), ball("green", (7, 5), (0, 0), shape="square")],
                      events=[Event(5, "collision", (0, 1), 3.0), Event(5, "state_change", (1,), 0.0)],
                      params={"colour_after": [None, "yellow"]}, state=state,
                      static=[{"kind": "block", "box": (6.4, 4.4, 7.6, 5.6)}])


def truth_occlusion():
    vis = np.ones((13, 1))
    vis[5:8, 0] = [0.4, 0.0, 0.3]
    return make_truth("occlusion", [ball("purple", (1, 5), (6.0, 0.0))], visible=vis,
                      static=[{"kind": "occluder", "box": (4.0, 2.0, 6.0, 8.0)}])


def truth_same_colour_sizes():
    # two still red balls told apart only by size: references must say "small"/"large"
    return make_truth("relation", [ball("red", (2, 5), (0, 0), radius=0.4), ball("red", (8, 5), (0, 0), radius=1.5)])


ALL = {
    "uniform": truth_uniform, "counting": truth_counting, "relation_h": truth_relation_h,
    "relation_v": truth_relation_v, "parabola": truth_parabola, "drop_bounce": truth_drop_bounce,
    "collision": truth_collision, "camera_pan": truth_camera_pan, "cause_effect": truth_cause_effect,
    "occlusion": truth_occlusion, "same_colour_sizes": truth_same_colour_sizes,
}


def obj(intent: Intent, colour: str, shape: str) -> ObjectIntent:
    found = [o for o in intent.objects if (o.colour, o.shape) == (colour, shape)]
    assert len(found) == 1, (colour, shape, intent.objects)
    return found[0]


# --------------------------------------------------------------------------- #
# Dense captions: measured correctly, and read back exactly
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", list(ALL))
def test_dense_caption_parses_back_to_the_measured_intent(name):
    truth = ALL[name]()
    caption = dense_caption(truth)
    assert caption == dense_caption(truth)                     # deterministic
    assert parse_prompt(caption) == describe(truth)
    assert expand_prompt(caption) == caption                   # a dense caption is a fixed point


def test_uniform_directions_colours_shapes():
    i = parse_prompt(dense_caption(truth_uniform()))
    assert obj(i, "red", "circle").direction == RIGHT
    assert obj(i, "blue", "square").direction == (-S, S)
    assert all(o.count == 1 and not o.falls for o in i.objects)
    assert i.camera is None and i.camera_static


def test_counting_counts_and_still():
    i = parse_prompt(dense_caption(truth_counting()))
    assert i.counts() == {("blue", "square"): 3, ("red", "circle"): 1}
    assert i.counts_by_colour() == {"blue": 3, "red": 1}
    assert all(o.still and o.direction is None for o in i.objects)


def test_relations_and_their_mirrors_flip():
    h = parse_prompt(dense_caption(truth_relation_h()))
    assert [(r.subject, r.relation, r.object) for r in h.relations] == [(0, "left of", 1)]
    hm = parse_prompt(dense_caption(mirror_x(truth_relation_h())))
    assert [(r.subject, r.relation, r.object) for r in hm.relations] == [(0, "right of", 1)]
    assert h.canonical_relations() == {("medium red circle", "left of", "medium blue triangle")}
    assert hm.canonical_relations() == {("medium blue triangle", "left of", "medium red circle")}
    v = parse_prompt(dense_caption(truth_relation_v()))
    assert [(r.subject, r.relation, r.object) for r in v.relations] == [(0, "above", 1)]
    vm = parse_prompt(dense_caption(mirror_y(truth_relation_v())))
    assert [(r.subject, r.relation, r.object) for r in vm.relations] == [(0, "below", 1)]


def test_mirrored_motion_and_camera_flip():
    for make in (truth_uniform, truth_collision, truth_parabola):
        a, b = describe(make()), describe(mirror_x(make()))
        for oa, ob in zip(a.objects, b.objects):
            assert oa.direction is not None and ob.direction == (-oa.direction[0], oa.direction[1])
    assert describe(truth_camera_pan(-1.5)).camera == "left"
    assert describe(truth_camera_pan(+1.5)).camera == "right"
    assert describe(mirror_x(truth_camera_pan(-1.5))).camera == "right"


def test_parabola_and_fall_under_gravity():
    p = parse_prompt(dense_caption(truth_parabola()))
    o = obj(p, "orange", "circle")
    assert o.falls and o.direction == RIGHT and p.gravity and p.falls
    assert "arcs to the right under gravity" in dense_caption(truth_parabola())
    d = parse_prompt(dense_caption(truth_drop_bounce()))
    y = obj(d, "yellow", "circle")
    assert y.falls and y.bounces and y.direction == DOWN and d.bounces
    assert EventIntent("bounce", 0, None, 8, "floor") in d.events
    for text in ("a red ball is thrown rightward and bounces", "two red balls are tossed to the left"):
        t = parse_prompt(text)          # the short-prompt generator writes "is thrown <dir>" for projectiles
        assert t.gravity and t.falls and t.objects[0].falls and t.objects[0].direction[1] == 0.0, text
    assert not parse_prompt("a red ball is pushed rightward").gravity


def test_collision_event_and_after_motion():
    truth = truth_collision()
    cap = dense_caption(truth)
    assert "hits" in cap and "at frame 6" in cap
    i = parse_prompt(cap)
    red, blue = obj(i, "red", "circle"), obj(i, "blue", "circle")
    assert red.direction == RIGHT and blue.direction == LEFT
    assert red.direction_after == LEFT and blue.direction_after == RIGHT
    assert red.size == "medium" and blue.size == "large"
    assert i.events == (EventIntent("collision", 0, 1, 6),)


def test_cause_effect_state_change():
    cap = dense_caption(truth_cause_effect())
    assert "turns yellow" in cap
    i = parse_prompt(cap)
    assert EventIntent("state_change", 1, None, 5, "yellow") in i.events
    assert EventIntent("collision", 0, 1, 5) in i.events
    assert obj(i, "green", "square").still


def test_occlusion_is_reported():
    cap = dense_caption(truth_occlusion())
    assert "passes behind a grey wall" in cap
    assert parse_prompt(cap).events == (EventIntent("occlusion", 0, None, 5),)


def test_look_alike_groups_are_told_apart_by_size():
    cap = dense_caption(truth_same_colour_sizes())
    assert "The small red ball is to the left of the large red ball." in cap
    i = parse_prompt(cap)
    assert [(o.size, o.count) for o in i.objects] == [("small", 1), ("large", 1)]
    assert i.counts_by_colour() == {"red": 2}
    assert "the red ball" not in cap.lower()
    # when colour alone identifies a group, references stay short
    assert "The red ball hits the blue ball at frame 6." in dense_caption(truth_collision())


def test_size_words_follow_documented_thresholds():
    small, large = SIZE_THRESHOLDS
    t = make_truth("counting", [ball("red", (2, 5), (0, 0), radius=small * 10 - 0.05),
                                ball("blue", (5, 5), (0, 0), radius=(small + large) * 5),
                                ball("green", (8, 5), (0, 0), radius=large * 10 + 0.05)])
    assert [o.size for o in describe(t).objects] == ["small", "medium", "large"]


def test_objects_never_in_view_are_not_captioned():
    t = make_truth("camera_pan", [ball("red", (5, 5), (0, 0)), ball("blue", (50, 5), (0, 0))])
    assert [o.colour for o in describe(t).objects] == ["red"]
    assert "blue" not in dense_caption(t)


# --------------------------------------------------------------------------- #
# Short prompts and expansion
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", list(ALL))
def test_short_prompt_agrees_with_dense_caption(name):
    truth = ALL[name]()
    dense = parse_prompt(dense_caption(truth))
    texts = set()
    for seed in range(6):
        text = short_prompt(truth, seed)
        assert text == short_prompt(truth, seed)
        texts.add(text)
        short = parse_prompt(text)
        assert short.counts_by_colour() == dense.counts_by_colour(), text
        assert {(o.colour, o.shape) for o in short.objects} == {(o.colour, o.shape) for o in dense.objects}, text
        for o in short.objects:
            if o.direction is not None:
                assert o.direction == obj(dense, o.colour, o.shape).direction, text
                assert o.falls == obj(dense, o.colour, o.shape).falls, text   # "is thrown right" arcs too
        assert short.canonical_relations() <= {(a.split(" ", 1)[1], r, b.split(" ", 1)[1])
                                               for a, r, b in dense.canonical_relations()} | dense.canonical_relations()
        assert short.camera in (None, dense.camera)
        assert parse_prompt(expand_prompt(text)) == short, (text, expand_prompt(text))
    assert len(texts) >= 2, texts


def test_short_prompts_state_the_main_fact_of_each_family():
    assert parse_prompt(short_prompt(truth_uniform(), 0)).objects[0].direction == RIGHT
    assert parse_prompt(short_prompt(truth_counting(), 0)).counts() == {("blue", "square"): 3, ("red", "circle"): 1}
    assert parse_prompt(short_prompt(truth_relation_h(), 0)).relations
    assert parse_prompt(short_prompt(truth_camera_pan(), 0)).camera == "left"
    assert any(e.kind == "collision" for e in parse_prompt(short_prompt(truth_collision(), 0)).events)
    assert any(e.kind == "state_change" and e.detail == "yellow"
               for e in parse_prompt(short_prompt(truth_cause_effect(), 0)).events)
    y = parse_prompt(short_prompt(truth_drop_bounce(), 0)).objects[0]
    assert y.direction == DOWN and y.bounces


@pytest.mark.parametrize("prompt", [
    "a red ball moves to the right", "three blue squares", "a yellow ball falls and bounces",
    "a red ball left of a blue triangle", "2 green discs move upward while the camera pans left",
    "a small purple cube slides leftward, then it stops", "red and blue balls collide",
    "a red ball hits a green block, which turns yellow", "an orange ball passes behind a wall",
    "a fast cyan ball is thrown to the right and falls", "the camera pans up",
])
def test_expansion_keeps_the_intent_and_is_a_fixed_point(prompt):
    once = expand_prompt(prompt)
    assert parse_prompt(once) == parse_prompt(prompt)
    assert expand_prompt(once) == once
    assert len(once) >= len(prompt) - 5


def test_expansion_never_invents_attributes():
    i = parse_prompt(expand_prompt("a ball moves left"))
    (o,) = i.objects
    assert o.colour is None and o.size is None and o.direction == LEFT and not o.falls
    assert i.camera is None and not i.camera_static and not i.events


# --------------------------------------------------------------------------- #
# Parsing user text
# --------------------------------------------------------------------------- #


def test_numbers_plurals_and_synonyms():
    i = parse_prompt("two blue discs, 3 green boxes and a purple cube next to one yellow triangle")
    assert i.counts() == {("blue", "circle"): 2, ("green", "square"): 3, ("purple", "square"): 1,
                          ("yellow", "triangle"): 1}
    assert parse_prompt("five red circles").counts() == {("red", "circle"): 5}
    assert parse_prompt("some red balls").counts() == {("red", "circle"): None}
    assert parse_prompt("a red ball and another red ball").counts() == {("red", "circle"): 2}


@pytest.mark.parametrize("text,direction", [
    ("a red ball moves right", RIGHT), ("a red ball moves to the left", LEFT), ("a red ball goes upward", UP),
    ("a red ball heads leftward", LEFT), ("a red ball moves down", DOWN), ("a red ball moves up and to the left", (-S, S)),
    ("a red ball rolls from the left to the right", RIGHT), ("a red ball falls", DOWN),
])
def test_directions(text, direction):
    assert parse_prompt(text).objects[0].direction == direction


def test_left_right_above_below_never_confused():
    a = parse_prompt("a red ball left of a blue triangle")
    b = parse_prompt("a red ball to the right of a blue triangle")
    c = parse_prompt("a blue triangle is to the left of a red ball")
    assert a.relations == (Relation(0, "left of", 1),) and b.relations == (Relation(0, "right of", 1),)
    assert a.canonical_relations() != b.canonical_relations()
    assert b.canonical_relations() == c.canonical_relations()
    above = parse_prompt("a green square above a purple ball").canonical_relations()
    below = parse_prompt("a green square below a purple ball").canonical_relations()
    assert above == {("green square", "above", "purple circle")}
    assert below == {("purple circle", "above", "green square")}
    # position words that are not motion
    o = parse_prompt("a red ball on the left moves up").objects[0]
    assert o.direction == UP


def test_motion_attaches_to_the_right_object():
    i = parse_prompt("a red ball moving right hits a blue ball moving left")
    assert obj(i, "red", "circle").direction == RIGHT and obj(i, "blue", "circle").direction == LEFT
    i = parse_prompt("a red ball moves left and a blue ball stays still")
    assert obj(i, "red", "circle").direction == LEFT and obj(i, "blue", "circle").still
    i = parse_prompt("a red ball hits a blue ball and moves to the left")
    assert obj(i, "red", "circle").direction_after == LEFT and obj(i, "blue", "circle").direction is None


def test_flags_camera_and_events():
    i = parse_prompt("a yellow ball falls and bounces off the floor while the camera pans to the right")
    assert i.gravity and i.falls and i.bounces and i.camera == "right"
    assert i.events == (EventIntent("bounce", 0, None, None, "floor"),)
    assert parse_prompt("the camera is static").camera_static
    assert parse_prompt("a red ball does not move").objects[0].still
    assert parse_prompt("a red ball under gravity").gravity
    assert not parse_prompt("a red ball under a blue ball").gravity


def test_unknown_words_ignored_and_empty_prompt():
    assert parse_prompt("a glorious red ball moves flamboyantly to the right") == parse_prompt("a red ball moves to the right")
    assert parse_prompt("") == Intent() and parse_prompt("   \n").is_empty()
    assert parse_prompt("a cat sleeps on a grey wall").is_empty()
    assert expand_prompt("") == "" and expand_prompt("  a cat  ") == "a cat"
    assert render_caption(Intent()) == ""


def test_bad_inputs_raise_clear_errors():
    for bad in (None, 3, b"a red ball", ["a red ball"]):
        with pytest.raises(TypeError, match="str"):
            parse_prompt(bad)
        with pytest.raises(TypeError, match="str"):
            expand_prompt(bad)
    with pytest.raises(TypeError, match="Truth"):
        describe("a red ball")
    with pytest.raises(TypeError, match="seed"):
        short_prompt(truth_uniform(), seed="0")
    import dataclasses
    with pytest.raises(ValueError, match="palette"):
        describe(dataclasses.replace(truth_uniform(), colour=("red", "pink")))


# --------------------------------------------------------------------------- #
# Real simulated clips (skipped when the simulator is not importable)
# --------------------------------------------------------------------------- #


def test_simulated_clips_round_trip():
    try:
        from sora_jax.config import FAMILIES, WorldConfig
        from sora_jax.world.families import sample_scene
        from sora_jax.world.sim import simulate
    except ImportError as e:  # pragma: no cover - the simulator is a separate module
        pytest.skip(f"simulator not importable: {e}")
    cfg = WorldConfig(height=37, width=53, num_frames=13)
    for family in FAMILIES:
        for seed in range(3):
            truth = simulate(sample_scene(cfg, family, seed), cfg)
            d = describe(truth)
            assert parse_prompt(dense_caption(truth)) == d, (family, seed)
            for s in range(3):
                sp = short_prompt(truth, s)
                assert parse_prompt(expand_prompt(sp)) == parse_prompt(sp), sp
                assert parse_prompt(sp).counts_by_colour() == d.counts_by_colour(), sp
