"""Causal video VAE: shapes, causality, streaming, tiling, validation, training signal."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))
from vae_helpers import disc_clips  # noqa: E402

from sora_jax import vae as V  # noqa: E402
from sora_jax.config import Config, VAEConfig, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = VAEConfig(latent_channels=4, stem_unshuffle=2, base_channels=8, channel_mults=(1, 2))


def rand_video(b, t, h, w, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (b, t, h, w, 3)).astype(np.float32))


@pytest.fixture(scope="module")
def tiny_model():
    return V.VideoVAE(TINY, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("sf,stem,tf", [(4, 2, 4), (8, 2, 2), (16, 4, 4)])
def test_shapes_for_factors(sf, stem, tf):
    cfg = dataclasses.replace(TINY, spatial_factor=sf, stem_unshuffle=stem, temporal_factor=tf)
    model = V.VideoVAE(cfg, rngs=nnx.Rngs(1))
    t, h, w = 1 + 2 * tf, 16, 32
    post = model.encode(rand_video(2, t, h, w))
    assert post.mean.shape == (2, 3, h // sf, w // sf, cfg.latent_channels)
    assert post.mean.shape[1:] == V.latent_shape(cfg, t, h, w)
    assert model.decode(post.mean).shape == (2, t, h, w, 3)


def test_named_intermediates(tiny_model):
    out = tiny_model(rand_video(1, 9, 16, 16), key=jax.random.key(0))
    for k in ("video", "stem", "encoder_stage0", "mean", "logvar", "z", "recon", "decoder_stage0"):
        assert k in out
    assert out["recon"].shape == (1, 9, 16, 16, 3)
    assert out["stem"].shape == (1, 9, 8, 8, 12)
    assert not np.allclose(out["z"], out["mean"])  # sampled with the key


@pytest.mark.parametrize("cfg", [TINY, dataclasses.replace(TINY, factorized=False),
                                 dataclasses.replace(TINY, stem_temporal=2, time_padding="zeros")],
                         ids=["2+1d", "3d", "stem_temporal+zeros"])
def test_encoder_and_decoder_are_causal(cfg):
    model = V.VideoVAE(cfg, rngs=nnx.Rngs(2))
    x = rand_video(1, 13, 16, 16, seed=3)
    base = model.encode(x).mean
    for j in (1, 5, 12):  # frame j belongs to latent frame ceil(j / 4)
        changed = model.encode(x.at[:, j].set(-x[:, j])).mean
        first_affected = -(-j // 4)
        np.testing.assert_array_less(np.abs(changed[:, :first_affected] - base[:, :first_affected]).max(), 1e-6)
        assert np.abs(changed[:, first_affected] - base[:, first_affected]).max() > 1e-4
    rec = model.decode(base)
    rec2 = model.decode(base.at[:, 2].add(1.0))  # latent 2 -> frames 5..8
    assert np.abs(rec2[:, :5] - rec[:, :5]).max() < 1e-6
    assert np.abs(rec2[:, 5] - rec[:, 5]).max() > 1e-4


def test_image_is_a_one_frame_video(tiny_model):
    x = rand_video(2, 9, 16, 16, seed=4)
    img_post = tiny_model.encode(x[:, :1])
    assert img_post.mean.shape == (2, 1, 2, 2, 4)
    np.testing.assert_allclose(img_post.mean, tiny_model.encode(x).mean[:, :1], atol=1e-6)
    assert tiny_model.decode(img_post.mean).shape == (2, 1, 16, 16, 3)


@pytest.mark.parametrize("cfg,chunk", [(TINY, 1), (dataclasses.replace(TINY, stem_temporal=2), 3)],
                         ids=["plain-chunk1", "stem_temporal-chunk3"])
def test_chunked_equals_full_on_33_frames(cfg, chunk):
    model = V.VideoVAE(cfg, rngs=nnx.Rngs(5))
    x = rand_video(1, 33, 16, 16, seed=6)
    full = model.encode(x)
    chunked = V.encode_chunked(model, x, chunk_latents=chunk)
    np.testing.assert_allclose(chunked.mean, full.mean, atol=1e-4)
    np.testing.assert_allclose(chunked.logvar, full.logvar, atol=1e-4)
    rec_full = np.asarray(model.decode(full.mean))
    np.testing.assert_allclose(V.decode_chunked(model, full.mean, chunk_latents=chunk), rec_full, atol=1e-4)


def test_tiled_close_to_untiled_on_smooth_content(tiny_model):
    h, w = 64, 64
    yy, xx = np.mgrid[0:h, 0:w] / 24.0
    frame = np.stack([np.sin(xx + yy), np.cos(xx - 0.5 * yy), np.sin(0.7 * xx)], -1) * 0.8
    x = jnp.asarray(np.broadcast_to(frame, (1, 5, h, w, 3)).astype(np.float32))
    full = tiny_model.encode(x)
    rec = np.asarray(tiny_model.decode(full.mean))
    # one tile covering the frame is exactly the untiled result
    np.testing.assert_allclose(V.encode_tiled(tiny_model, x, tile=64, overlap=16).mean, full.mean, atol=1e-5)
    np.testing.assert_allclose(V.decode_tiled(tiny_model, full.mean, tile=64, overlap=16), rec, atol=1e-5)
    # 2x2 overlapping tiles: close (an untrained net has a wide receptive field, so not exact)
    tiled = V.encode_tiled(tiny_model, x, tile=40, overlap=24)
    assert tiled.mean.shape == full.mean.shape
    assert float(np.abs(tiled.mean - full.mean).mean()) < 0.2 * float(np.abs(full.mean).mean())
    rec_tiled = V.decode_tiled(tiny_model, full.mean, tile=40, overlap=24)
    assert rec_tiled.shape == rec.shape
    assert float(np.abs(rec_tiled - rec).mean()) < 0.2 * float(np.abs(rec).mean())
    with pytest.raises(ValueError, match="multiples of spatial_factor=8"):
        V.decode_tiled(tiny_model, full.mean, tile=36, overlap=8)


def test_bad_inputs_are_clear_value_errors(tiny_model):
    with pytest.raises(ValueError, match=r"1 \+ 4k frames \(e.g. 5 or 9\)"):
        tiny_model.encode(rand_video(1, 6, 16, 16))
    with pytest.raises(ValueError, match="divisible by spatial_factor=8"):
        tiny_model.encode(rand_video(1, 5, 12, 16))
    with pytest.raises(ValueError, match="uint8.*to_float"):
        tiny_model.encode(np.zeros((1, 5, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"expected \[-1, 1\]"):
        tiny_model.encode(jnp.full((1, 5, 16, 16, 3), 200.0))
    with pytest.raises(ValueError, match="add a batch axis"):
        tiny_model.encode(rand_video(1, 5, 16, 16)[0])
    with pytest.raises(ValueError, match="in_channels=3"):
        tiny_model.encode(jnp.zeros((1, 5, 16, 16, 4)))
    with pytest.raises(ValueError, match="latent"):
        tiny_model.decode(jnp.zeros((1, 2, 2, 2, 7)))
    with pytest.raises(ValueError, match="stem_unshuffle=3"):
        V.VideoVAE(dataclasses.replace(TINY, stem_unshuffle=3), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="encoder_blocks"):
        V.VideoVAE(dataclasses.replace(TINY, encoder_blocks=(1,)), rngs=nnx.Rngs(0))
    # the documented conversion works
    x = V.to_float(np.full((1, 5, 16, 16, 3), 255, np.uint8))
    assert float(x.max()) == 1.0 and V.to_uint8(x).max() == 255


def test_incompatible_checkpoint_is_a_value_error(tmp_path, tiny_model):
    cfg = Config(vae=TINY)
    V.save_vae(tmp_path / "ck", nnx.state(tiny_model, nnx.Param), cfg, {"shift": [0.0] * 4, "scale": [1.0] * 4})
    model, saved, stats = V.load_vae(tmp_path / "ck", cfg)
    assert saved.vae == TINY and stats["scale"] == [1.0] * 4
    other = dataclasses.replace(cfg, vae=dataclasses.replace(TINY, latent_channels=16, base_channels=12))
    with pytest.raises(ValueError, match=r"latent_channels: requested 16, checkpoint has 4.*Valid"):
        V.load_vae(tmp_path / "ck", other)
    with pytest.raises(FileNotFoundError):
        V.load_vae(tmp_path / "missing")


def test_posterior_kl_and_metrics():
    z = jnp.zeros((1, 2, 2, 2, 3))
    assert float(V.Posterior(z, z).kl().max()) == 0.0
    assert float(V.Posterior(z + 1.0, z).kl().mean()) == pytest.approx(0.5)
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (2, 23, 29, 3)).astype(np.float32))
    np.testing.assert_allclose(V.ssim(x, x, 255.0), 1.0, atol=1e-5)
    assert float(V.ssim(x, 255.0 - x, 255.0).max()) < 0.5
    np.testing.assert_allclose(V.psnr(x, x + 2.55, 255.0), 40.0, atol=1e-3)  # mse 2.55^2 -> 40 dB


def test_ssim_matches_reference_formula_on_constant_images():
    # constant images: sigma terms vanish, SSIM = (2 mx my + c1) / (mx^2 + my^2 + c1)
    a = jnp.full((1, 13, 13, 1), 100.0)
    b = jnp.full((1, 13, 13, 1), 140.0)
    c1 = (0.01 * 255) ** 2
    want = (2 * 100 * 140 + c1) / (100**2 + 140**2 + c1)
    np.testing.assert_allclose(V.ssim(a, b, 255.0), want, rtol=1e-3)  # float32 variance cancellation


def test_latent_stats_match_numpy(tiny_model):
    vids = [disc_clips(2, 5, 16, 16, seed=s) for s in range(3)]
    stats = V.measure_latent_stats(tiny_model, vids)
    z = np.concatenate([np.asarray(tiny_model.encode(V.to_float(v)).mean).reshape(-1, 4) for v in vids])
    np.testing.assert_allclose(stats["shift"], z.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["scale"], z.std(0), rtol=1e-4)


def test_tiny_vae_overfits_two_clips():
    """A tiny VAE fitted to 2 clips for 150 steps must pass 20 dB (it starts below 10 dB)."""
    from sora_jax.train import make_optimizer, make_train_step

    cfg = load_config(str(ROOT / "configs/demo.py"), "tiny")
    model = V.VideoVAE(cfg.vae, rngs=nnx.Rngs(0))
    tcfg = dataclasses.replace(cfg.train, lr=5e-3, warmup_steps=10, steps=150, lr_schedule="constant")
    opt = nnx.Optimizer(model, make_optimizer(tcfg), wrt=nnx.Param)
    graphdef, state = nnx.split((model, opt))
    video = V.to_float(disc_clips(2, 5, 16, 16, seed=7))

    def loss_fn(m, batch, key):
        loss, aux = V.vae_loss(m, batch, None, cfg.vae)
        return loss, {"psnr": aux["psnr"]}

    step = make_train_step(graphdef, loss_fn, ema_decay=0.9)
    ema = jax.tree.map(jnp.array, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    first = None
    for i in range(150):
        state, ema, metrics = step(state, ema, video, jax.random.key(i), i)
        if first is None:
            first = float(metrics["psnr"])
    assert first < 10.0
    assert float(metrics["psnr"]) > 20.0, float(metrics["psnr"])


@pytest.mark.slow
def test_bench_vae_runs_and_memory_is_flat():
    cfg = load_config(str(ROOT / "configs/demo.py"), "tiny")
    rows = V.bench_vae(cfg, frames=(5, 33), repeats=1)
    assert [r["frames"] for r in rows] == [5, 33]
    assert all(r["encode_s"] > 0 and r["decode_s"] > 0 for r in rows)
    # chunked: a 6.6x longer clip must not need much more memory (allow 25% + 50 MB noise)
    assert rows[1]["peak_rss_mb"] < rows[0]["peak_rss_mb"] * 1.25 + 50


def test_bfloat16_compute_keeps_float32_params_and_outputs():
    cfg = dataclasses.replace(TINY, dtype="bfloat16")
    model = V.VideoVAE(cfg, rngs=nnx.Rngs(0))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    out = model(rand_video(1, 5, 16, 16))
    assert out["recon"].dtype == jnp.float32 and out["mean"].dtype == jnp.float32
    assert out["encoder_stage0"].dtype == jnp.bfloat16
    ref = V.VideoVAE(TINY, rngs=nnx.Rngs(0))(rand_video(1, 5, 16, 16))
    assert float(jnp.abs(out["recon"] - ref["recon"]).max()) < 0.1  # same weights, lower precision


def test_ssim_matches_skimage_when_installed():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (2, 23, 29, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.float32)
    ref = [metrics.structural_similarity(a[i], b[i], channel_axis=-1, data_range=255, gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False) for i in range(2)]
    np.testing.assert_allclose(V.ssim(a, b, 255.0), ref, atol=1e-5)
