"""Pictures and apps of notebooks 03/04 (sora_jax.viz.model_apps), driven headless with small arrays."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sora_jax import viz  # noqa: E402
from sora_jax.patches import grid_shape, position_ids  # noqa: E402
from sora_jax.viz import model_apps as M  # noqa: E402

PNG = b"\x89PNG"


def fake_video(t=5, h=12, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- patches on pixels


def test_to_uint8_maps_model_range_to_bytes_and_clips():
    out = viz.to_uint8(np.array([-1.0, 0.0, 1.0, -3.0, 2.0]))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 128, 255, 0, 255]


def test_causal_frame_groups():
    assert viz.causal_frame_groups(9, 4) == [[0], [1, 2, 3, 4], [5, 6, 7, 8]]
    assert viz.causal_frame_groups(1, 4) == [[0]]
    assert viz.causal_frame_groups(7, 2) == [[0], [1, 2], [3, 4], [5, 6]]
    assert viz.causal_frame_groups(13, 4, pt=2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11, 12]]
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        viz.causal_frame_groups(10, 4)
    with pytest.raises(ValueError, match="pt=2"):
        viz.causal_frame_groups(9, 4, pt=2)


def test_patch_filmstrip_draws_cell_boundaries_and_lays_out_groups():
    v = fake_video(t=5, h=12, w=20)
    f, gap = 2, 3
    img = viz.patch_filmstrip(v, (4, 5), groups=[[0], [1, 2, 3, 4]], upscale=f, gap=gap, line=(1, 2, 3), background=77)
    hh, ww = 12 * f, 20 * f
    assert img.shape == (2 * hh + gap, 4 * ww + 3 * gap, 3) and img.dtype == np.uint8
    # frame 0 alone on the first row; the rest of that row is background
    np.testing.assert_array_equal(img[hh - 5, ww + gap:], 77)
    # frame 2 is the second frame of row 2
    tile = img[hh + gap:, ww + gap:2 * ww + gap]
    lines_r = list(range(0, hh, 4 * f)) + [hh - 1]
    lines_c = list(range(0, ww, 5 * f)) + [ww - 1]
    for r in lines_r:
        assert (tile[r] == (1, 2, 3)).all()
    for c in lines_c:
        assert (tile[:, c] == (1, 2, 3)).all()
    inner = np.ones((hh, ww), bool)
    inner[lines_r] = False
    inner[:, lines_c] = False
    np.testing.assert_array_equal(tile[inner], v[2].repeat(f, 0).repeat(f, 1)[inner])
    assert viz.patch_filmstrip(v, (4, 5), upscale=1, gap=0).shape == (5 * 12, 20, 3)      # default: a row per frame
    with pytest.raises(ValueError, match="multiples of the cell"):
        viz.patch_filmstrip(v, (5, 5))
    with pytest.raises(ValueError, match="groups"):
        viz.patch_filmstrip(v, (4, 5), groups=[[0, 7]])
    with pytest.raises(ValueError, match="uint8"):
        viz.patch_filmstrip(v.astype(np.float32), (4, 5))


def test_plot_token_positions_labels_every_token_of_the_frame():
    grids = {"wide": position_ids((2, 3, 5)), "tall": position_ids((2, 5, 3))}
    fig = viz.plot_token_positions(grids, frame=1)
    for ax, ids in zip(fig.axes, grids.values()):
        labels = [t.get_text() for t in ax.texts]
        expected = [f"{i}\n({r},{c})" for i, (t, r, c) in enumerate(ids) if t == 1]
        assert labels == expected
    plt.close(fig)
    with pytest.raises(ValueError, match="frame=2"):
        viz.plot_token_positions(grids, frame=2)
    with pytest.raises(ValueError, match="position_ids"):
        viz.plot_token_positions({"bad": np.zeros((4, 2), int)})


def test_plot_heatmaps_marks_and_validation():
    maps = {"a": np.arange(15.0).reshape(3, 5), "b": -np.arange(15.0).reshape(3, 5)}
    fig = viz.plot_heatmaps(maps, marks={"a": (1, 2)})
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2 and images[0].get_clim() == images[1].get_clim() == (-14.0, 14.0)
    assert fig.axes[0].lines[0].get_xdata()[0] == 2 and fig.axes[0].lines[0].get_ydata()[0] == 1
    plt.close(fig)
    with pytest.raises(ValueError, match="2D"):
        viz.plot_heatmaps({"a": np.zeros(3)})
    with pytest.raises(ValueError, match="unknown maps"):
        viz.plot_heatmaps(maps, marks={"c": (0, 0)})


# --------------------------------------------------------------------------- attention patterns


def test_attention_masks_are_block_structured():
    T, H, W = 3, 2, 5
    s, n = H * W, T * H * W
    masks = viz.attention_masks(position_ids((T, H, W)))
    assert set(masks) == set(viz.ATTENTION_KINDS)
    assert all(m.shape == (n, n) and m.dtype == bool for m in masks.values())
    assert masks["full"].all()
    # spatial: one full block per latent frame (time-major order), nothing across frames
    np.testing.assert_array_equal(masks["spatial"], np.kron(np.eye(T), np.ones((s, s))).astype(bool))
    # temporal: the same location in every frame -> an identity in every frame block
    np.testing.assert_array_equal(masks["temporal"], np.kron(np.ones((T, T)), np.eye(s)).astype(bool))
    assert masks["spatial"].sum() == n * s and masks["temporal"].sum() == n * T
    assert masks["spatial then temporal"].all()          # two hops reach everything
    # a grid with one frame: temporal attention only sees itself
    one = viz.attention_masks(position_ids((1, 2, 3)))
    np.testing.assert_array_equal(one["temporal"], np.eye(6, dtype=bool))
    with pytest.raises(ValueError, match="integer"):
        viz.attention_masks(np.zeros((5, 3)))


def test_mask_image_pixels_follow_the_mask():
    mask = viz.attention_masks(position_ids((2, 1, 3)))["spatial"]         # 6 tokens, 2 blocks of 3
    img = viz.mask_image(mask, upscale=4, block=3, on=(0, 0, 200), off=(255, 255, 255), separator=(9, 9, 9))
    assert img.shape == (24, 24, 3) and img.dtype == np.uint8
    centre = img[2::4, 2::4]                                             # one pixel inside each entry
    np.testing.assert_array_equal(centre[mask], np.tile([0, 0, 200], (mask.sum(), 1)))
    np.testing.assert_array_equal(centre[~mask], np.tile([255, 255, 255], ((~mask).sum(), 1)))
    assert (img[12] == 9).all() and (img[:, 12] == 9).all()                # frame separator lines
    hi = viz.mask_image(mask, upscale=2, highlight_row=4)
    assert tuple(hi[8, 8]) == M.QUERY                                     # row 4 attends to key 4: red
    assert viz.mask_image(np.ones((5, 7), bool)).shape == (5 * 37, 7 * 37, 3)   # automatic: longer side >= 256 px
    with pytest.raises(ValueError, match="highlight_row"):
        viz.mask_image(mask, highlight_row=6)
    with pytest.raises(ValueError, match="2D"):
        viz.mask_image(np.ones(4, bool))


def test_token_boards_paints_categories():
    values = np.zeros((2, 3, 5), int)
    values[1, 2, 4] = 2
    img = viz.token_boards(values, {0: (10, 10, 10), 2: (200, 0, 0)}, cell=4, gap=3)
    assert img.shape == (3 * 4 + 1, 2 * (5 * 4 + 1) + 3, 3)
    x0 = 5 * 4 + 1 + 3
    assert tuple(img[2 * 4 + 2, x0 + 4 * 4 + 2]) == (200, 0, 0)
    assert tuple(img[2, 2]) == (10, 10, 10)
    with pytest.raises(ValueError, match="no colour"):
        viz.token_boards(values, {0: (0, 0, 0)})


def test_attention_explorer_updates_headless():
    calls = []

    def ids_fn(grid):
        calls.append(grid)
        return position_ids(grid)

    app = viz.attention_explorer(ids_fn, grid=(2, 3, 5), max_size=6)
    out = app.render(query=7, kind="temporal")                      # token 7 = (t=0, h=1, w=2)
    assert out["grid"] == (2, 3, 5) and calls[-1] == (2, 3, 5)
    np.testing.assert_array_equal(np.flatnonzero(out["keys"]), [7, 22])   # itself and the same place in frame 1
    assert out["pairs"] == 30 * 2
    assert out["boards_png"].startswith(PNG) and out["mask_png"].startswith(PNG)
    assert "reads <b>2</b> keys" in app.text.value
    app.kind.value = "spatial"                                       # moving a widget redraws, as in the browser
    assert app.result["kind"] == "spatial" and app.result["keys"].sum() == 15
    app.T.value = 1                                                  # fewer tokens: the query slider shrinks
    assert app.query.max == 14 and app.result["grid"] == (1, 3, 5)
    with pytest.raises(ValueError, match="kind"):
        app.render(kind="diagonal")
    with pytest.raises(ValueError, match="query"):
        app.render(query=15)
    with pytest.raises(ValueError, match="max_size"):
        viz.attention_explorer(position_ids, grid=(9, 1, 1))


# --------------------------------------------------------------------------- token counts


def test_token_calculator_counts_tokens_and_asks_for_flops():
    asked = []

    def flops_fn(preset, attention, patch, grid):
        asked.append((preset, attention, patch, grid))
        n = math.prod(grid)
        return {"total": 1e9 * n, "attention": 1e8 * n * (2 if attention == "full" else 1)}

    app = viz.token_calculator(grid_shape, flops_fn, presets=("tiny", "S"))
    out = app.render(frames=17, height=64, width=48, preset="S")
    assert out["error"] is None
    assert out["latent"] == (5, 8, 6, 8) and out["grid"] == (5, 4, 3) and out["tokens"] == 60
    assert out["values_per_token"] == 32
    assert out["pairs_full"] == 3600 and out["pairs_factorized"] == 60 * (12 + 5)
    assert asked[-2:] == [("S", "full", (1, 2, 2), (5, 4, 3)), ("S", "factorized", (1, 2, 2), (5, 4, 3))]
    assert out["gflops_full"] == pytest.approx(60.0) and out["attention_share_full"] == pytest.approx(0.2)
    assert "60" in app.table.value
    # sizes that do not divide show the library's message instead of a table
    bad = app.render(height=48, ph=4)
    assert "not divisible by 4" in bad["error"] and "not divisible" in app.table.value
    app.temporal.value = 2                                               # a widget change recomputes
    assert app.result["error"] is not None
    app.render(height=64, temporal=4, pt=2)
    assert app.result["error"] is not None and "pt" in app.result["error"]   # 5 latent frames, pt = 2
    no_flops = viz.token_calculator(grid_shape).render(frames=9, height=32, width=32, spatial=4)
    assert no_flops["grid"] == (3, 4, 4) and "gflops_full" not in no_flops
    with pytest.raises(ValueError, match="unknown controls"):
        app.render(depth=3)
    with pytest.raises(ValueError, match="spatial"):
        app.render(spatial=3)


# --------------------------------------------------------------------------- noise


def linear_path(u):
    return 1.0 - u, u


def test_noise_explorer_noises_the_clip_with_the_schedule():
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (4, 6, 10, 3)).astype(np.float32)
    noise = rng.standard_normal(x0.shape).astype(np.float32)
    schedules = {"flow": linear_path, "half": lambda u: (np.sqrt(1 - u), np.sqrt(u))}
    app = viz.noise_explorer(x0, noise, schedules, max_frames=3)
    out = app.render(level=0.25)
    assert out["schedule"] == "flow" and out["alpha"] == pytest.approx(0.75) and out["sigma"] == pytest.approx(0.25)
    np.testing.assert_allclose(out["x"], 0.75 * x0 + 0.25 * noise, rtol=1e-6)
    img = out["image"]
    f = img.shape[0] // 6
    assert app.frames == [0, 2, 3] and img.dtype == np.uint8 and img.shape == (6 * f, 3 * 10 * f + 2 * 2, 3)
    np.testing.assert_array_equal(img[:, :10 * f], viz.to_uint8(out["x"][0]).repeat(f, 0).repeat(f, 1))
    assert out["image_png"].startswith(PNG) and out["plot_png"].startswith(PNG)
    app.schedule.value = "half"
    assert app.result["alpha"] == pytest.approx(math.sqrt(0.75)) and app.result["snr"] == pytest.approx(3.0)
    assert app.render(level=0.0)["snr"] == math.inf
    single = viz.noise_explorer(x0[0], noise[0], schedules).render(level=1.0)
    np.testing.assert_allclose(single["x"], noise[0])
    with pytest.raises(ValueError, match="schedule"):
        app.render(schedule="cosine")
    with pytest.raises(ValueError, match="level"):
        app.render(level=1.5)
    with pytest.raises(ValueError, match="differ in shape"):
        viz.noise_explorer(x0, noise[:2], schedules)


def test_log_snr_and_schedule_plot():
    assert viz.log_snr(np.array(0.5), np.array(0.5)) == 0.0
    assert viz.log_snr(np.array(1.0), np.array(0.0)) == np.inf
    assert viz.log_snr(np.array(0.0), np.array(1.0)) == -np.inf
    axes = viz.plot_schedules({"flow": linear_path}, mark=0.3)
    assert len(axes[0].lines) == 3 and len(axes[1].lines) == 3     # alpha, sigma, mark | log SNR, zero line, mark
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), 1 - np.linspace(0, 1, 201))
    plt.close(axes[0].figure)
    with pytest.raises(ValueError, match="no schedules"):
        viz.plot_schedules({})


# --------------------------------------------------------------------------- samplers


def fake_trajectory(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.uniform(-1, 1, (n, *shape)), "denoised": rng.uniform(-1, 1, (n, *shape)),
            "t": np.linspace(1, 1 / n, n), "final": rng.uniform(-1, 1, shape)}


def test_denoising_scrubber_video_steps_through_the_trajectory():
    a, b = fake_trajectory(3, (2, 5, 7, 3)), fake_trajectory(5, (2, 5, 7, 3), seed=1)
    del b["final"]
    app = viz.denoising_scrubber({"a": a, "b": b})
    out = app.render("a", step=1)
    np.testing.assert_allclose(out["x"], a["x"][1])
    np.testing.assert_allclose(out["denoised"], a["denoised"][1])
    assert out["t"] == pytest.approx(a["t"][1]) and out["image_png"].startswith(PNG)
    assert app.step.max == 3                                        # N steps + the final output
    out = app.render(step=3)
    np.testing.assert_allclose(out["x"], a["final"])
    assert "the output" in app.text.value
    app.name.value = "b"                                            # no final: the slider stops at N - 1
    assert app.step.max == 4 and app.result["name"] == "b"
    app.step.value = 4
    np.testing.assert_allclose(app.result["x"], b["x"][4])
    image = viz.denoising_scrubber({"img": fake_trajectory(2, (6, 4, 3))}).render(step=2)   # (h, w, 3) entries
    assert image["x"].shape == (6, 4, 3)
    with pytest.raises(ValueError, match="step"):
        app.render("a", step=4)
    with pytest.raises(ValueError, match="lacks"):
        viz.denoising_scrubber({"a": {"x": a["x"], "t": a["t"]}})
    with pytest.raises(ValueError, match="kind='points'"):
        viz.denoising_scrubber({"a": a}, kind="points")


def test_denoising_scrubber_points():
    tr = fake_trajectory(4, (11, 2))
    data, labels = np.array([[1.0, 1.0], [-1.0, -1.0]]), np.array([0, 1])
    app = viz.denoising_scrubber({"euler": tr}, kind="points", data=data, labels=labels, lim=3)
    out = app.render(step=4)
    np.testing.assert_allclose(out["x"], tr["final"])
    assert out["image_png"].startswith(PNG)
    with pytest.raises(ValueError, match=r"\(N, t, h, w, 3\)"):
        viz.denoising_scrubber({"euler": tr})


def test_guidance_explorer_caches_and_measures():
    data = np.array([[-2.0, 0.0], [-2.0, 1.0], [2.0, 0.0]])
    labels = np.array([0, 0, 1])
    calls = []

    def sample_fn(w):
        calls.append(w)
        # w = 0: half the samples on each side; w >= 1: all on the left, further left as w grows
        xs = np.where(np.arange(10) % 2, -1.0, 1.0) * 2.0 if w == 0 else np.full(10, -2.0 - (w - 1))
        return np.stack([xs, np.zeros(10)], -1)

    app = viz.guidance_explorer(sample_fn, data, labels, scales=(0, 1, 3), target=0, lim=5)
    out = app.render(0.0)
    assert out["on_target"] == pytest.approx(0.5) and out["plot_png"].startswith(PNG)
    out = app.render(3.0)
    assert out["on_target"] == 1.0 and out["distance"] == pytest.approx(2.0)
    app.render(3.0)
    app.scale.value = 1.0
    assert app.result["distance"] == pytest.approx(0.0)
    app.render(1.0)
    assert sorted(calls) == [0.0, 1.0, 3.0]                             # one sampler run per scale
    with pytest.raises(ValueError, match="scale"):
        app.render(2.0)
    with pytest.raises(ValueError, match="target"):
        viz.guidance_explorer(sample_fn, data, labels, target=5)
    with pytest.raises(ValueError, match=r"\(b, 2\)"):
        viz.guidance_explorer(lambda w: np.zeros(3), data, labels).render()


def test_sampler_plots():
    ax = viz.plot_error_vs_steps({"euler": ([2, 4, 8], [0.4, 0.2, 0.1]), "heun": ([3, 7, 15], [0.3, 0.07, 0.02])})
    assert len(ax.lines) == 2 + 2                                         # two curves, two slope guides
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.4, 0.2, 0.1])
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="equal-length"):
        viz.plot_error_vs_steps({"a": ([1, 2], [0.1])})
    paths = {"euler": np.random.default_rng(0).standard_normal((5, 7, 2))}
    fig = viz.plot_paths(paths, np.zeros((2, 2)), np.array([0, 1]), lim=3)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2 * 7
    plt.close(fig)
    with pytest.raises(ValueError, match="steps \\+ 1"):
        viz.plot_paths({"a": np.zeros((1, 3, 2))})
    guided = {0.0: np.array([1.0, 0.0]), 1.0: np.array([0.0, 0.0]), 4.0: np.array([-3.0, 0.0])}
    ax = viz.plot_guidance(np.array([0.5, 0.5]), guided, np.zeros((1, 2)), np.array([0]), lim=2)
    assert ax.get_xlim()[0] <= -3.0                                     # every guided point stays in view
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [1.0, 0.0, -3.0])
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="labels"):
        viz.plot_points(None, np.zeros((3, 2)), np.array([0, 1]))
