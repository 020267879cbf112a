"""Pictures and the app of notebook 06 (sora_jax.viz.physics_apps), driven headless.

Most tests use small fakes of a metric result (the module reads results by attribute name);
a few run the real metrics of sora_jax.analysis on a small ground-truth clip with an
injected failure, so the "where did it fire" logic is checked against what the metrics
actually return.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sora_jax.viz import physics_apps as P  # noqa: E402

PNG = b"\x89PNG"


@dataclasses.dataclass
class FakeResult:
    """The attributes of sora_jax.analysis.MetricResult that the viz module reads."""

    metric: str = "velocity"
    measurable: bool = True
    flagged: bool = False
    value: float = 0.5
    unit: str = "m/s"
    better: str = "lower"
    summary: dict = dataclasses.field(default_factory=dict)
    per_object: tuple = ()
    per_frame: dict = dataclasses.field(default_factory=dict)
    reason: str = ""


def fake_video(t=5, h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- where did a metric fire?


def test_fired_frames_status_codes():
    assert P.fired_frames(FakeResult(measurable=False, reason="off-palette"), 4).tolist() == [-1] * 4
    assert P.fired_frames(FakeResult(flagged=False), 4).tolist() == [0] * 4
    # fired, but names no frame (a wrong direction): the whole clip
    r = FakeResult(metric="direction", flagged=True, per_object=({"check": "horizontal", "ok": False},))
    assert P.fired_frames(r, 4).tolist() == [P.FIRED_IN_CLIP] * 4
    with pytest.raises(ValueError, match="num_frames"):
        P.fired_frames(FakeResult(), 0)
    with pytest.raises(ValueError, match="metric result"):
        P.fired_frames(object(), 3)


@pytest.mark.parametrize("rows, expected", [
    # velocity: a bad frame pair marks both frames; objects without flag frames add nothing
    (({"object": 0, "flag_frames": []}, {"object": 1, "flag_frames": [3]}), [3, 4]),
    # permanence: only a vanished object's missing frames; an emerged ghost by its run
    (({"object": 0, "vanished": False, "missing_frames": [1]},
      {"object": 1, "vanished": True, "missing_frames": [5, 6]},
      {"emerged": {"colour": "red", "first_frame": 8, "frames": 2}}), [5, 6, 8, 9]),
    # count (truth): runs of wrong counts; count (intent): bad_runs (start, length)
    (({"colour": "red", "first_frame": 2, "frames": 3},), [2, 3, 4]),
    (({"colour": "red", "expected": 2, "bad_runs": [(0, 2), (7, 2)]},), [0, 1, 7, 8]),
    # collision / blur: the event frame of a bad row
    (({"frame": 4, "bodies": [0, 1], "flagged": True}, {"frame": 9, "bodies": [0, 2], "flagged": False}), [4]),
    # cause and effect: from the event to the end of the clip
    (({"event_frame": 7, "ok": False},), [7, 8, 9]),
    # attributes: swap and shape-mismatch frames
    (({"object": 0, "swap_frames": [2], "shape_mismatch_frames": [6], "flagged": True},), [2, 6]),
    # intent-mode tracklets: born at its first frame, died after its last, a blink over its span
    (({"tracklet": 0, "frames": [3, 5], "emerged": True, "vanished": False, "blinked": False},
      {"tracklet": 1, "frames": [0, 6], "emerged": False, "vanished": True, "blinked": False}), [3, 7]),
    (({"tracklet": 0, "frames": [1, 4], "emerged": False, "vanished": False, "blinked": True},), [1, 2, 3, 4]),
])
def test_fired_frames_reads_the_rows_each_metric_writes(rows, expected):
    st = P.fired_frames(FakeResult(flagged=True, per_object=rows), 10)
    assert np.nonzero(st == P.FIRED_HERE)[0].tolist() == expected
    assert set(np.unique(st)) <= {P.PASSED, P.FIRED_HERE}


def test_fired_frames_ignores_frames_outside_the_clip():
    st = P.fired_frames(FakeResult(flagged=True, per_object=({"flag_frames": [4]},)), 5)
    assert st.tolist() == [0, 0, 0, 0, 1]


def test_metric_timeline_and_its_board():
    results = {"velocity": FakeResult(flagged=True, per_object=({"flag_frames": [1]},)),
               "gravity": FakeResult(measurable=False, reason="no gravity"),
               "count": FakeResult(flagged=False),
               "direction": FakeResult(flagged=True, per_object=({"ok": False},))}
    names, st = P.metric_timeline(results, 4)
    assert names == list(results) and st.shape == (4, 4)
    assert st[0].tolist() == [0, 1, 1, 0] and st[1].tolist() == [-1] * 4 and st[3].tolist() == [2] * 4
    ax = P.plot_metric_timeline(results, 4, current=2, title="t")
    img = ax.images[0].get_array()
    assert tuple(img[0, 1]) == P.STATUS_COLOURS[P.FIRED_HERE]
    assert tuple(img[1, 0]) == P.STATUS_COLOURS[P.NOT_MEASURABLE]
    assert tuple(img[2, 3]) == P.STATUS_COLOURS[P.PASSED]
    assert tuple(img[3, 0]) == P.STATUS_COLOURS[P.FIRED_IN_CLIP]
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="current"):
        P.plot_metric_timeline(results, 4, current=4)
    with pytest.raises(ValueError, match="no results"):
        P.metric_timeline({}, 4)


def test_metric_table_html_says_verdict_where_and_why():
    results = {"velocity": FakeResult(flagged=True, value=0.25, summary={"max_m_s": 3.0, "split": "id"},
                                      per_object=({"flag_frames": [2, 3]},)),
               "gravity": FakeResult(measurable=False, value=float("nan"), reason="no gravity <here>"),
               "count": FakeResult(value=1.0, unit="rate", better="higher")}
    out = P.metric_table_html(results, 6)
    assert out.count("<tr") == 4
    assert "FIRED" in out and "frames 2-4" in out and "0.25 m/s" in out and "max_m_s=3" in out
    assert "not measurable" in out and "no gravity &lt;here&gt;" in out
    assert "passed" in out and "higher is better" in out
    assert "frames" not in P.metric_table_html(results)          # without num_frames: no "where"


def test_compare_results_html_one_column_per_clip():
    cols = {"ground truth": {"velocity": FakeResult(value=0.01), "count": FakeResult(value=1.0, unit="rate")},
            "model": {"velocity": FakeResult(flagged=True, value=2.0),
                      "count": FakeResult(measurable=False, reason="off")}}
    out = P.compare_results_html(cols)
    assert out.count("<tr>") == 3 and "<th>model</th>" in out
    assert "0.01 m/s" in out and "2 m/s <b>FIRED</b>" in out and "title='off'" in out
    assert "<td>-</td>" in P.compare_results_html(cols, metrics=["velocity", "blur"])
    with pytest.raises(ValueError):
        P.compare_results_html({})


def test_format_value():
    assert P.format_value(0.012345, "m/s") == "0.0123 m/s"
    assert P.format_value(None) == "-" and P.format_value(float("nan"), "x") == "-"
    assert P.format_value(0.0) == "0" and P.format_value(2e-5) == "2.0e-05"


def test_flag_filmstrip_borders_and_layout():
    v = fake_video(t=5, h=4, w=6)
    img = P.flag_filmstrip(v, [False, True, False, False, True], upscale=2, border=1, gap=3, colour=(1, 2, 3),
                           plain=(9, 9, 9))
    hh, ww = 4 * 2 + 2, 6 * 2 + 2
    assert img.shape == (hh, 5 * ww + 4 * 3, 3) and img.dtype == np.uint8
    x1 = ww + 3                                          # frame 1: marked
    assert tuple(img[0, x1]) == (1, 2, 3) and tuple(img[0, 0]) == (9, 9, 9)
    np.testing.assert_array_equal(img[1:1 + 8, x1 + 1:x1 + 1 + 12], v[1].repeat(2, 0).repeat(2, 1))
    assert (img[:, ww:ww + 3] == 255).all()               # the gap
    wrapped = P.flag_filmstrip(v, np.zeros(5, bool), every=2, upscale=1, border=1, gap=1, columns=2)
    assert wrapped.shape == (2 * 6 + 1, 2 * 8 + 1, 3)   # frames 0, 2, 4 in rows of two
    np.testing.assert_array_equal(wrapped[7 + 1:7 + 5, 1:7], v[4])
    with pytest.raises(ValueError, match="one flag per frame"):
        P.flag_filmstrip(v, [True])
    with pytest.raises(ValueError, match="uint8"):
        P.flag_filmstrip(v.astype(float), np.zeros(5, bool))
    with pytest.raises(ValueError, match="columns"):
        P.flag_filmstrip(v, np.zeros(5, bool), columns=0)


# --------------------------------------------------------------------------- trajectories


def test_plot_overlay_draws_truth_and_tracklets():
    frame = fake_video(t=1, h=20, w=30)[0]
    truth = np.stack([np.stack([np.arange(4.0) + 5, np.full(4, 10.0)], -1),
                      np.stack([np.full(4, 20.0), np.arange(4.0) + 2], -1)], 1)         # (t=4, k=2, 2)
    tracklets = [("red", np.array([0, 1, 2]), np.array([[5.0, 10.0], [6.0, 10.0], [7.0, 10.0]])),
                 types.SimpleNamespace(colour="blue", frames=np.array([2, 3]), centroid=np.array([[20.0, 4], [20, 5]]))]
    ax = P.plot_overlay(frame, truth_px=truth, colours=["red", "blue"], tracklets=tracklets, current=2, title="x")
    xs = [tuple(np.round(line.get_xdata(), 1)) for line in ax.lines]
    assert (5.0, 6.0, 7.0) in xs and (20.0, 20.0) in xs          # both tracklets drawn
    assert ax.get_xlim() == (-0.5, 29.5) and ax.get_ylim() == (19.5, -0.5)
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"truth", "tracked"}
    plt.close(ax.figure)
    ax = P.plot_overlay(frame, tracklets=tracklets[:1])                             # no truth (a prompt)
    assert len(ax.lines) == 1
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="colours"):
        P.plot_overlay(frame, truth_px=truth)
    with pytest.raises(ValueError, match="uint8 image"):
        P.plot_overlay(frame.astype(float))
    with pytest.raises(ValueError, match="centroid"):
        P.plot_overlay(frame, tracklets=[("red", [0, 1], np.zeros((3, 2)))])


# --------------------------------------------------------------------------- injections, floors, worst, ID vs OOD


def test_plot_injection_matrix_cells():
    rows = {"untouched": ({"velocity": FakeResult(), "count": FakeResult(measurable=False)}, ()),
            "teleport": ({"velocity": FakeResult(flagged=True), "count": FakeResult(flagged=True)}, ("velocity",)),
            "vanish": ({"velocity": FakeResult(), "count": FakeResult()}, ("count",))}
    ax = P.plot_injection_matrix(rows)
    cells = [t.get_text() for t in ax.texts]
    assert cells == ["", "n/a", "caught", "also", "", "MISSED"]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(rows)
    plt.close(ax.figure)
    ax = P.plot_injection_matrix(rows, metrics=["count"])
    assert [t.get_text() for t in ax.texts] == ["n/a", "also", "MISSED"]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="results dict"):
        P.plot_injection_matrix({"bad": FakeResult()})


def agg(value, flagged_rate, measurable_rate):
    return {"value": value, "flagged_rate": flagged_rate, "measurable_rate": measurable_rate, "n": 4,
            "n_measurable": 4, "unit": "m/s", "better": "lower"}


def test_plot_floors_bars_follow_the_table():
    table = {"velocity": {"model": agg(1.0, 0.5, 0.25), "ground_truth": agg(0.01, 0.0, 1.0),
                          "vae": agg(0.02, 0.0, 1.0)},
             "count": {"model": agg(None, None, 0.0), "ground_truth": agg(1.0, 0.25, 1.0), "vae": agg(1.0, 0.0, 1.0)}}
    ax = P.plot_floors(table, stat="flagged_rate")
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights == [0.0, 0.0, 0.0, 0.25, 0.5]                 # the model's count cell is missing: drawn as an x
    assert any(line.get_marker() == "x" for line in ax.lines)
    assert "model" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(ax.figure)
    ax = P.plot_floors(table, stat="measurable_rate", metrics=["count"], columns=("model", "resim", "ground_truth"))
    assert sorted(round(p.get_height(), 3) for p in ax.patches) == [0.0, 1.0]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="stat"):
        P.plot_floors(table, stat="value")
    with pytest.raises(ValueError, match="not in the table"):
        P.plot_floors(table, metrics=["blur"])
    with pytest.raises(ValueError, match="none of the columns"):
        P.plot_floors(table, columns=("other",))


def evaluation_fixture():
    def rec(i, fam, model, gt_flag=False):
        return {"index": i, "family": fam, "model": model,
                "floors": {"ground_truth": {m: {"flagged": gt_flag, "value": 0.0, "measurable": True} for m in model}}}
    clips = [
        rec(0, "ID", {"velocity": {"value": 0.5, "flagged": True, "measurable": True},
                      "count": {"value": 0.2, "flagged": True, "measurable": True}}),
        rec(1, "ID", {"velocity": {"value": 2.0, "flagged": True, "measurable": True},
                      "count": {"value": 0.9, "flagged": True, "measurable": True}}),
        rec(2, "OOD", {"velocity": {"value": 9.0, "flagged": True, "measurable": True},
                       "count": {"value": None, "flagged": False, "measurable": False,
                                 "reason": "off-palette clip: 73% of its 1001 pixels"}}, gt_flag=True),
        rec(3, "OOD", {"velocity": {"value": 0.1, "flagged": False, "measurable": True},
                       "count": {"value": None, "flagged": False, "measurable": False,
                                 "reason": "off-palette clip: 80% of its 12 pixels"}}),
    ]
    table = {"all": {"velocity": {"model": {"better": "lower"}}, "count": {"model": {"better": "higher"}}}}
    return {"clips": clips, "table": table, "metrics": ["velocity", "count"]}


def test_worst_per_metric_orders_by_what_is_better_and_skips_ground_truth_failures():
    ev = evaluation_fixture()
    worst = P.worst_per_metric(ev, n=2)
    assert [w["index"] for w in worst["velocity"]] == [1, 0]      # clip 2 is worse, but its ground truth fails too
    assert [w["index"] for w in worst["count"]] == [0, 1]         # higher is better: the lowest first
    assert P.worst_per_metric(ev, n=1, skip_floor=None)["velocity"][0]["index"] == 2
    assert P.worst_per_metric(ev, metrics=["velocity"]).keys() == {"velocity"}
    with pytest.raises(ValueError, match="n="):
        P.worst_per_metric(ev, n=0)
    with pytest.raises(ValueError, match="evaluate_physics_clips"):
        P.worst_per_metric({"table": {}})


def test_reason_counts_groups_reasons():
    ev = evaluation_fixture()
    assert P.reason_counts(ev) == {"off-palette clip": 2}
    assert P.reason_counts(ev, column="ground_truth") == {}


def test_plot_id_ood_bars_missing_and_references():
    values = {"ground_truth": {"ID": 0.01, "OOD": 0.02}, "vae": {"ID": 0.05, "OOD": None}, "model": {"ID": 1.0}}
    ax = P.plot_id_ood(values, references={"PhyWorld": 0.4}, title="v")
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert len(bars) == 4
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("n/a") == 2 and "0.01" in texts and "1" in texts
    assert ax.get_yscale() == "log" and any(abs(line.get_ydata()[0] - 0.4) < 1e-9 for line in ax.lines)
    assert {"ID", "OOD", "PhyWorld"} <= {t.get_text() for t in ax.get_legend().get_texts()}
    plt.close(ax.figure)
    ax = P.plot_id_ood({"model": {"ID": None, "OOD": None}}, log=False)              # nothing measurable: no crash
    assert [t.get_text() for t in ax.texts] == ["n/a", "n/a"]
    plt.close(ax.figure)
    with pytest.raises(ValueError):
        P.plot_id_ood({})


# --------------------------------------------------------------------------- the app, with fakes


class FakeTruth:
    colour = ("red",)

    def to_pixels(self, h, w):
        return np.stack([np.linspace(2, w - 3, 5), np.full(5, h / 2)], -1)[:, None, :]


def make_fakes():
    calls = {"clip": 0, "model": 0, "evaluate": 0, "track": 0}

    def make_clip(family, seed):
        calls["clip"] += 1
        return types.SimpleNamespace(video=fake_video(seed=seed), prompt=f"a red ball ({family})", truth=FakeTruth())

    def model(clip):
        calls["model"] += 1
        return 255 - clip.video[None]                     # a batch of one, like pipe.generate([...])

    def evaluate(video, clip, reference):
        calls["evaluate"] += 1
        fired = reference == "prompt"
        return {"velocity": FakeResult(flagged=fired, per_object=({"flag_frames": [1]},)),
                "count": FakeResult(measurable=False, reason="off-palette clip")}

    def track(video):
        calls["track"] += 1
        return [("red", np.arange(5), np.stack([np.arange(5.0) + 2, np.full(5, 6.0)], -1))]

    return calls, make_clip, {"model": model, "ground truth": lambda c: c.video}, evaluate, track


def test_physics_inspector_renders_and_caches():
    calls, make_clip, sources, evaluate, track = make_fakes()
    app = P.physics_inspector(make_clip, sources, evaluate, ["uniform", "collision"], track_fn=track, seed=3,
                              notes={("model", "truth"): "caveat <b>"})
    s = app.render(frame=2)
    assert s["clip"].prompt == "a red ball (uniform)" and s["frame"] == 2
    assert s["video"].shape == (5, 12, 16, 3)                                        # the batch axis is dropped
    np.testing.assert_array_equal(s["video"], 255 - fake_video(seed=3))
    assert s["fired"] == {"velocity": [1, 2]}
    assert s["frame_png"].startswith(PNG) and s["timeline_png"].startswith(PNG)
    assert "<video" in s["video_html"] and "FIRED" in s["table_html"] and "off-palette clip" in s["table_html"]
    assert "velocity" in s["text"] and "a red ball (uniform)" in s["text"]
    assert app.frame_slider.max == 4
    app.render(frame=4)                                   # scrubbing computes nothing new
    assert calls == {"clip": 1, "model": 1, "evaluate": 1, "track": 1}
    s = app.render(reference="truth")                     # a new reference: scored again, not regenerated
    assert s["fired"] == {} and "caveat &lt;b&gt;" in s["text"] and s["frame"] == 4
    assert calls == {"clip": 1, "model": 1, "evaluate": 2, "track": 1}
    s = app.render(source="ground truth", seed=4)
    np.testing.assert_array_equal(s["video"], fake_video(seed=4))
    assert "caveat" not in s["text"]
    app.render(source="model", seed=3, reference="prompt")   # back to a cached view
    assert calls == {"clip": 2, "model": 1, "evaluate": 3, "track": 2}


def test_physics_inspector_widgets_drive_it_and_errors_show_in_the_status():
    calls, make_clip, sources, evaluate, track = make_fakes()
    app = P.PhysicsInspector(make_clip, sources, evaluate, ["uniform", "collision"])
    app.render()
    app.family.value = "collision"                        # moving a widget re-renders
    assert app.clip.prompt == "a red ball (collision)"
    app.frame_slider.value = 3
    assert app.frame == 3
    app.sources["model"] = lambda c: np.zeros((5, 4), np.uint8)       # a broken source: the app says so
    app.seed.value = 7
    assert "uint8 video" in app.status.value
    for kw, match in (({"family": "nope"}, "family"), ({"seed": -1}, "seed"), ({"source": "x"}, "source"),
                      ({"reference": "y"}, "reference")):
        with pytest.raises(ValueError, match=match):
            app.render(**kw)
    app.sources["model"] = lambda c: c.video
    with pytest.raises(ValueError, match="frame"):
        app.render(seed=1, frame=5)


def test_physics_inspector_validates_its_arguments():
    _, make_clip, sources, evaluate, _ = make_fakes()
    with pytest.raises(ValueError, match="families"):
        P.physics_inspector(make_clip, sources, evaluate, [])
    with pytest.raises(ValueError, match="sources"):
        P.physics_inspector(make_clip, {"model": 3}, evaluate, ["uniform"])
    with pytest.raises(ValueError, match="evaluate_fn"):
        P.physics_inspector(make_clip, sources, None, ["uniform"])
    with pytest.raises(ValueError, match="seed"):
        P.physics_inspector(make_clip, sources, evaluate, ["uniform"], seed=-2)
    bad = P.physics_inspector(make_clip, sources, lambda v, c, r: {"velocity": 1.0}, ["uniform"])
    with pytest.raises(ValueError, match="metric result"):
        bad.render()


# --------------------------------------------------------------------------- with the real metrics


def test_real_metrics_injected_teleport_is_located():
    from sora_jax import analysis, world
    from sora_jax.config import WorldConfig

    cfg = WorldConfig(height=48, width=48, num_frames=9)
    clip = world.make_clip(cfg, "uniform", seed=0)
    inj = analysis.inject("teleport", clip.video, clip.truth, seed=0, antialias=cfg.antialias)
    res = analysis.evaluate_clip(inj.video, clip.truth, world=cfg, metrics=["velocity", "permanence", "gravity"])
    st = P.fired_frames(res["velocity"], 9)
    jump = inj.frames[0]
    assert res["velocity"].flagged and np.nonzero(st == P.FIRED_HERE)[0].tolist() == [jump - 1, jump]
    assert (P.fired_frames(res["permanence"], 9) == P.PASSED).all()
    assert (P.fired_frames(res["gravity"], 9) == P.NOT_MEASURABLE).all()           # no gravity in this scene
    untouched = analysis.evaluate_clip(clip.video, clip.truth, world=cfg, metrics=["velocity"])
    rows = {"untouched": (untouched, ()), "teleport": (res, inj.targets)}
    ax = P.plot_injection_matrix(rows, metrics=["velocity"])
    assert [t.get_text() for t in ax.texts] == ["", "caught"]
    plt.close(ax.figure)
    # the app on the real world, the real metrics and the real tracker (no model needed)
    app = P.physics_inspector(
        lambda family, seed: world.make_clip(cfg, family, seed),
        {"ground truth": lambda c: c.video,
         "teleported": lambda c: analysis.inject("teleport", c.video, c.truth, seed=0, antialias=cfg.antialias).video},
        lambda video, c, ref: analysis.evaluate_clip(video, c.prompt if ref == "prompt" else c.truth, world=cfg,
                                                     metrics=["velocity", "count"]),
        ["uniform"], track_fn=lambda v: analysis.link(world.track(v)), references=("truth", "prompt"))
    assert app.render(source="ground truth")["fired"] == {}
    s = app.render(source="teleported", frame=jump)
    assert s["fired"]["velocity"] == [jump - 1, jump] and s["frame_png"].startswith(PNG)


def test_the_module_imports_no_metrics_tracker_or_model():
    code = ("import sys, sora_jax.viz.physics_apps; "
            "bad = [m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'sora_jax.analysis', "
            "'sora_jax.world.track', 'sora_jax.pipeline', 'sora_jax.dit', 'sora_jax.vae'))]; "
            "print(bad); assert not bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
