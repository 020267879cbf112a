"""Pictures and apps of notebook 02 (sora_jax.viz.vae_apps), driven headless with small fake arrays."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sora_jax.viz import vae_apps as A  # noqa: E402

PNG = b"\x89PNG"


def fake_video(t=9, h=8, w=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- helpers


def test_latent_frame_of_follows_the_causal_grouping():
    assert [A.latent_frame_of(i, 4) for i in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert [A.latent_frame_of(i, 1) for i in range(4)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="frame"):
        A.latent_frame_of(-1, 4)
    with pytest.raises(ValueError, match="temporal_factor"):
        A.latent_frame_of(3, 0)


def test_frame_psnr_matches_the_formula():
    a = np.full((3, 4, 5, 3), 100, np.uint8)
    b = a.copy()
    b[1] += 10                                       # mse 100 in frame 1
    b[2, 0, 0, 0] = 0                                # one pixel off by 100 in frame 2
    p = A.frame_psnr(a, b)
    assert p[0] == pytest.approx(100.0)              # identical frames: capped at 100 dB
    assert p[1] == pytest.approx(10 * np.log10(255.0**2 / 100.0))
    assert p[2] == pytest.approx(10 * np.log10(255.0**2 / (100.0**2 / 60)))
    # float input in [-1, 1] is converted to the uint8 you would see
    np.testing.assert_allclose(A.frame_psnr(a, b.astype(np.float32) / 127.5 - 1.0), p)
    with pytest.raises(ValueError, match="differ in shape"):
        A.frame_psnr(a, b[:2])
    with pytest.raises(ValueError, match=r"\(t, h, w, 3\)"):
        A.frame_psnr(a[0], b[0])


def test_error_map_is_white_without_error_and_dark_with_it():
    a = np.full((2, 4, 4, 3), 200, np.uint8)
    b = a.copy()
    b[1, 0, 0] = 0                                   # a 200-level error in one pixel
    img = A.error_map(a, b, gain=4.0)
    assert img.shape == (2, 4, 4, 3) and img.dtype == np.uint8
    assert (img[0] == 255).all()                    # no error: white
    assert img[1, 0, 0].sum() < 150 and img[1, 0, 0, 0] > 2 * img[1, 0, 0, 1]   # saturated: dark red
    assert (img[1, 1:] == img[0, 1:]).all()
    one = A.error_map(a[1], b[1], gain=1.0)          # a single frame works too
    assert one.shape == (4, 4, 3)
    with pytest.raises(ValueError, match="uint8"):
        A.error_map(a.astype(np.float32), b.astype(np.float32))
    with pytest.raises(ValueError, match="gain"):
        A.error_map(a, b, gain=0)
    with pytest.raises(ValueError, match="one shape"):
        A.error_map(a, b[:1])


def test_latent_channel_grid_layout_and_normalisation():
    H, W, C = 2, 3, 5
    z = np.zeros((H, W, C))
    z[..., 1] = 3.0                                  # +limit: full red
    z[..., 2] = -3.0                                 # -limit: full blue
    img = A.latent_channel_grid(z, columns=3, upscale=2, gap=1)
    hh, ww = H * 2, W * 2
    assert img.shape == (2 * hh + 1, 3 * ww + 2, 3) and img.dtype == np.uint8
    white, red, blue = img[0, 0], img[0, ww + 1], img[0, 2 * (ww + 1)]
    assert white.min() > 230                          # 0 -> white
    assert red[0] > 80 and red[0] > 2 * red[2]        # RdBu_r: positive is red
    assert blue[2] > 2 * blue[0]                      # negative is blue
    assert (img[hh, :] == 255).all()                  # the gap row
    assert (img[hh + 1:, 2 * (ww + 1):] == 255).all() # cell 6 of a 2x3 layout is empty (5 channels)
    # shift/scale: channel 0 holds 10, its shift 10 maps it to 0 (white)
    z2 = np.full((H, W, C), 10.0)
    shifted = A.latent_channel_grid(z2, shift=[10.0] * C, scale=[1.0] * C, upscale=1)
    assert shifted.min() > 230
    auto = A.latent_channel_grid(z * 0.01, limit=None, upscale=1)     # limit=None: the frame's own max
    np.testing.assert_array_equal(auto, A.latent_channel_grid(z, limit=3.0, upscale=1))
    assert A.latent_channel_grid(z).shape[1] >= 64 * 5                # automatic upscale: cells >= 64 px
    with pytest.raises(ValueError, match="one per latent channel"):
        A.latent_channel_grid(z, shift=[0.0] * 4)
    with pytest.raises(ValueError, match="> 0"):
        A.latent_channel_grid(z, scale=[0.0] * C)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        A.latent_channel_grid(np.zeros((2, 3)))


# --------------------------------------------------------------------------- VAEExplorer


def fake_autoencoder(calls):
    """'Encodes' a (9, h, w, 3) clip into 3 latent frames (mean of each causal group), 'decodes' with noise."""

    def autoencode(video):
        calls.append(video.shape)
        groups = [[0], [1, 2, 3, 4], [5, 6, 7, 8]][: 1 + (video.shape[0] - 1) // 4]
        z = np.stack([video[g].astype(np.float32).mean(0)[::2, ::2] / 127.5 - 1 for g in groups])   # (T, h/2, w/2, 3)
        rec = video.astype(np.float32) / 127.5 - 1.0
        rec[1:] += 0.05                                   # frame 0 perfect, the rest slightly off
        return z, rec

    return autoencode


def test_vae_explorer_scrubs_frames_and_latents_headless():
    clips = {"a": fake_video(seed=0), "b": fake_video(t=5, seed=1)}
    calls = []
    app = A.vae_explorer(clips, fake_autoencoder(calls), temporal_factor=4)
    out = app.render("a", frame=6, gain=8.0)
    assert out["clip"] == "a" and out["frame"] == 6 and out["latent_frame"] == 2 and out["frames"] == [5, 6, 7, 8]
    assert out["psnr_per_frame"].shape == (9,) and out["psnr_per_frame"][0] == pytest.approx(100.0)
    assert out["psnr"] == pytest.approx(out["psnr_per_frame"][6]) and out["psnr"] < 40
    assert out["clip_psnr"] == pytest.approx(out["psnr_per_frame"].mean())
    f = (out["images"].shape[0] - 2) // 8                                # three enlarged, outlined frames
    assert out["images"].shape == (8 * f + 2, 3 * (12 * f + 2) + 2 * 4, 3)
    np.testing.assert_array_equal(out["images"][1:-1, 1:12 * f + 1], clips["a"][6].repeat(f, 0).repeat(f, 1))
    assert (out["images"][0, :12 * f + 2] == 180).all()                 # the grey outline
    assert out["latent_grid"].dtype == np.uint8
    for key in ("image_png", "plot_png", "latent_png"):
        assert out[key].startswith(PNG)
    assert "Latent frame <b>2</b>" in app.latent_text.value and "frames 5-8" in app.latent_text.value
    app.render(frame=0)
    assert app.result["latent_frame"] == 0 and "holds frame 0:" in app.latent_text.value
    app.frame.value = 3                                                   # moving a widget redraws
    assert app.result["latent_frame"] == 1
    app.clip.value = "b"                                                  # a shorter clip: the slider shrinks
    assert app.frame.max == 4 and app.result["clip"] == "b"
    app.render("a")
    assert calls == [(9, 8, 12, 3), (5, 8, 12, 3)]                        # one autoencode per clip (cached)
    with pytest.raises(ValueError, match="clip"):
        app.render("c")
    with pytest.raises(ValueError, match="frame"):
        app.render("b", frame=5)
    with pytest.raises(ValueError, match="gain"):
        app.render(gain=3.0)


def test_vae_explorer_takes_precomputed_results_and_latent_stats():
    video = fake_video()
    z = np.ones((3, 4, 6, 2), np.float32)
    stats = {"shift": [1.0, 1.0], "scale": [1.0, 2.0]}
    app = A.vae_explorer({"a": video}, {"a": (z, video)}, latent_stats=stats)
    out = app.render(frame=8)
    assert out["psnr"] == pytest.approx(100.0)                           # a perfect reconstruction
    assert out["latent_grid"].min() > 230                                 # (1 - 1) / s = 0 everywhere: white
    assert "(z - shift) / scale" in app.latent_text.value
    with pytest.raises(ValueError, match="no result"):
        A.vae_explorer({"a": video, "b": video}, {"a": (z, video)})
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        A.vae_explorer({"a": fake_video(t=8)}, {"a": (z, video)})
    with pytest.raises(ValueError, match="expected \\(T, H, W, C\\) with T = 3"):
        A.vae_explorer({"a": video}, {"a": (z[:2], video)}).render()
    with pytest.raises(ValueError, match="has shape"):
        A.vae_explorer({"a": video}, {"a": (z, video[:5])}).render()
    with pytest.raises(ValueError, match="empty"):
        A.vae_explorer({}, {})


# --------------------------------------------------------------------------- ChunkExplorer


def test_chunk_explorer_compares_with_the_whole_clip_and_caches():
    ref_z = np.arange(12.0).reshape(3, 4)
    calls = []

    def encode(n):
        calls.append(("enc", n))
        return ref_z + (2.0**-16 if n == 1 else 0.0) + (0.5 if n == 4 else 0.0)   # chunk 4 is "broken"

    def decode(z, n):
        calls.append(("dec", n))
        return np.repeat(z, 2, axis=0)

    mem = lambda n: {"encoder": 2**20 * (4 if n is None else n), "decoder": 2**20}
    app = A.chunk_explorer(encode, decode, chunks=(2, 1, 4), memory=mem)
    assert app.options == [1, 2, 4, None]
    out = app.render(1)
    assert out["chunk"] == 1 and out["equal"] and out["latent_diff"] == pytest.approx(2.0**-16)
    assert out["video_diff"] == pytest.approx(2.0**-16) and out["memory"] == {"encoder": 2**20, "decoder": 2**20}
    assert out["plot_png"].startswith(PNG) and "<td>1.00</td>" in out["table"]
    bad = app.render(4)
    assert not bad["equal"] and bad["latent_diff"] == pytest.approx(0.5) and "DIFFERENT" in app.text.value
    whole = app.render(None)
    assert whole["equal"] and whole["latent_diff"] == 0.0 and whole["memory"]["encoder"] == 4 * 2**20
    app.chunk.value = 2                                                  # moving the toggle computes option 2
    assert app.result["chunk"] == 2 and app.result["equal"]
    app.render(1)
    assert calls.count(("enc", None)) == 1 and calls.count(("enc", 1)) == 1   # every option computed once
    assert [r for r in app.rows] == [1, 4, None, 2]
    assert app.table.value.count("<tr") == 1 + 4
    with pytest.raises(ValueError, match="chunk=3"):
        app.render(3)


def test_chunk_explorer_without_memory_and_validation():
    app = A.chunk_explorer(lambda n: np.zeros(3), lambda z, n: z, chunks=(1,))
    out = app.render()
    assert out["memory"] == {} and out["equal"] and "MiB" not in app.text.value
    single = A.chunk_explorer(lambda n: np.zeros(3), lambda z, n: z, chunks=(1,), memory=lambda n: 1024.0)
    assert single.render(1)["memory"] == {"memory": 1024.0}
    with pytest.raises(ValueError, match="callables"):
        A.chunk_explorer(None, lambda z, n: z)
    with pytest.raises(ValueError, match="no repeats"):
        A.chunk_explorer(lambda n: 0, lambda z, n: z, chunks=(1, 1))
    with pytest.raises(ValueError, match="chunks"):
        A.chunk_explorer(lambda n: 0, lambda z, n: z, chunks=(0,))
    with pytest.raises(ValueError, match="differ in shape"):
        A.chunk_explorer(lambda n: np.zeros(3 if n is None else 2), lambda z, n: z).render(1)
    with pytest.raises(ValueError, match="bytes >= 0"):
        A.chunk_explorer(lambda n: np.zeros(3), lambda z, n: z, memory=lambda n: -1.0).render(1)
