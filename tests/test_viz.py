"""Visualisation helpers (sora_jax.viz): frame grids, headless video display, plots, the world explorer."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from sora_jax import viz
from sora_jax.world.types import PALETTE, Clip, Truth


def fake_video(t=5, h=7, w=11, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def fake_truth(t, h, w, family="uniform", seed=0):
    """Two objects crossing the view (enough Truth for the plots and the app)."""
    k = 2
    view = (10.0 * w / h, 10.0)
    x = np.linspace(1.0, view[0] - 1.0, t)
    pos = np.stack([np.stack([x, np.full(t, 3.0 + seed % 3)], -1), np.stack([x[::-1], np.full(t, 7.0)], -1)], 1)
    return Truth(family=family, seed=seed, split="id", dt=0.1, view=view, positions=pos,
                 velocities=np.zeros_like(pos), radius=np.ones(k), colour=("red", "blue"), shape=("circle", "square"),
                 visible=np.ones((t, k)), in_frame=np.ones((t, k), bool), camera=np.zeros((t, 2)),
                 state=np.zeros((t, k), np.int32))


def test_frame_grid_shape_and_content():
    v = fake_video(t=7, h=5, w=3)
    g = viz.frame_grid(v, gap=1)
    assert g.shape == (5, 7 * 3 + 6, 3) and g.dtype == np.uint8
    np.testing.assert_array_equal(g[:, 4:7], v[1])
    g = viz.frame_grid(v, every=2, columns=2, upscale=2, gap=0)      # frames 0, 2, 4, 6 in 2 x 2
    assert g.shape == (2 * 10, 2 * 6, 3)
    np.testing.assert_array_equal(g[10:, 6:], v[6].repeat(2, 0).repeat(2, 1))
    assert viz.frame_grid(v, max_frames=3, gap=2).shape == (5, 3 * 3 + 2 * 2, 3)


def test_upscale_is_nearest_neighbour():
    v = fake_video(t=2, h=3, w=5)
    u = viz.upscale(v, 3)
    assert u.shape == (2, 9, 15, 3)
    np.testing.assert_array_equal(u[:, ::3, ::3], v)
    assert viz.upscale(v).shape[2] >= viz.video.DISPLAY_SIZE
    assert viz.upscale(v[0], 2).shape == (6, 10, 3)


def test_show_video_runs_headless():
    html = viz.show_video(fake_video(h=7, w=11), fps=5, title="t", return_html=True)   # odd sizes: padded for H.264
    assert "<video" in html and "t" in html
    html = viz.show_videos({"a": fake_video(), "b": fake_video(seed=1)}, return_html=True)
    assert html.count("<video") == 2
    assert "<img" in viz.show_video(fake_video(), codec="gif", return_html=True)
    assert "<img" in viz.show_image(viz.frame_grid(fake_video()), return_html=True)


def test_bad_videos_are_rejected_clearly():
    with pytest.raises(ValueError, match="uint8"):
        viz.show_video(np.zeros((3, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(t, h, w, 3\)"):
        viz.frame_grid(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="titles"):
        viz.show_videos([fake_video()], titles=["a", "b"])
    with pytest.raises(ValueError, match="upscale"):
        viz.upscale(fake_video(), 0)


def test_plot_trajectories_draws_truth_and_tracked():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = fake_truth(5, 13, 17)
    px = truth.to_pixels(13, 17)
    tracked = px + 0.5
    tracked[2, 1] = np.nan
    ax = viz.plot_trajectories(px, truth.colour, tracked=tracked, frame=fake_video(1, 13, 17)[0], current=2)
    lines = ax.get_lines()
    red = tuple(c / 255 for c in PALETTE["red"])
    assert any(np.allclose(l.get_xdata(), px[:, 0, 0]) and np.allclose(l.get_color()[:3], red) for l in lines)
    assert any(np.allclose(l.get_xdata(), tracked[:, 0, 0]) for l in lines)
    assert ax.get_xlim() == (-0.5, 16.5) and ax.get_ylim() == (12.5, -0.5)        # rows grow downwards
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="colours"):
        viz.plot_trajectories(px, ["red"])
    with pytest.raises(ValueError, match="tracked"):
        viz.plot_trajectories(px, truth.colour, tracked=px[:, :1])


def test_world_explorer_updates_headless_with_a_fake_clip_function():
    calls = []

    def make_clip(family, seed, *, height, width, split):
        calls.append((family, seed, height, width, split))
        video = fake_video(t=5, h=height, w=width, seed=seed)
        return Clip(video=video, caption=f"{family} caption {seed} {split}", prompt=f"prompt {seed}",
                    truth=fake_truth(5, height, width, family, seed))

    app = viz.world_explorer(make_clip, ["uniform", "collision"], track_fn=lambda c: c.truth.to_pixels(*c.video.shape[1:3]),
                             text_fns={"chars": lambda c: str(len(c.caption))})
    out = app.render("collision", 3, "36x64 (16:9)", "ood", frame=4)
    assert calls == [("collision", 3, 36, 64, "ood")]
    assert out["clip"].video.shape == (5, 36, 64, 3) and out["frame"] == 4
    assert "collision caption 3 ood" in out["text"] and "prompt 3" in out["text"] and "chars" in out["text"]
    assert "<video" in out["video_html"]
    assert out["plot_png"].startswith(b"\x89PNG") and out["frame_png"].startswith(b"\x89PNG")
    # moving only the frame slider redraws without a new clip
    before = out["plot_png"]
    app.frame_slider.value = 1
    assert len(calls) == 1 and app.frame == 1 and bytes(app.plot.value) != before
    # moving a widget makes a new clip, as in the browser
    app.seed.value = 5
    assert calls[-1] == ("collision", 5, 36, 64, "ood") and app.seed_slider.value == 5
    app.resolution.value = "128x128"
    assert calls[-1][2:4] == (128, 128) and app.frame_slider.max == 4
    with pytest.raises(ValueError, match="family"):
        app.render("nope")
    with pytest.raises(ValueError, match="frame"):
        app.render(frame=9)
    # a clip function that fails shows its message in the app instead of raising in the widget callback
    app.make_clip_fn = lambda *a, **kw: (_ for _ in ()).throw(ValueError("cannot place 5 objects"))
    app.seed.value = 6
    assert "cannot place 5 objects" in app.status.value


def test_explorer_accepts_dicts_without_truth():
    app = viz.world_explorer(lambda f, s, **kw: {"video": fake_video(h=kw["height"], w=kw["width"]), "caption": "c",
                                                 "prompt": "p", "truth": None}, ["uniform"])
    out = app.render()
    assert out["plot_png"] == b"" and "<video" in out["video_html"]


def test_importing_viz_does_not_import_heavy_libraries():
    code = ("import sys, sora_jax.viz; bad = [m for m in ('matplotlib', 'ipywidgets', 'mediapy', 'jax', 'flax') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
