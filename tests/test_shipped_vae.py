"""The shipped VAE (data/demo/vae) on held-out world clips: it loads, reconstructs, and keeps the physics.

The numbers are printed (``pytest -s``) so a new export can be compared with the last:
reconstruction PSNR per clip, and the world tracker's position error on reconstructions
("the VAE floor": no generated clip can be measured more precisely than a reconstruction).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sora_jax import data, vae as V, world
from sora_jax.world.track import match, position_error

VAE_PATH = Path(__file__).resolve().parent.parent / "data" / "demo" / "vae"
N_CLIPS = 8                 # held-out clips: test split 0..7 (the first 8 families)
MIN_MEAN_PSNR = 28.0        # dB, mean over the clips (issue target for the final export: 32 dB)
MIN_CLIP_PSNR = 25.0        # dB, every clip
MAX_MEAN_PX = 1.0           # tracker position error on reconstructions, mean over object-frames
MAX_ANY_PX = 4.0            # ... and at worst (a gross-failure guard)


@pytest.fixture(scope="module")
def shipped():
    model, cfg, stats = V.load_vae(VAE_PATH)
    split = data.WorldExample(cfg.world, "test")
    clips = [split.clip(j) for j in range(N_CLIPS)]              # (family, seed, Clip)
    video = V.to_float(np.stack([c.video for _, _, c in clips]))
    graphdef, params = nnx.split(model)
    encode = jax.jit(lambda p, v: nnx.merge(graphdef, p).encode_moments(v)[0].mean)
    decode = jax.jit(lambda p, z: nnx.merge(graphdef, p).decode_frames(z)[0])
    z = encode(params, video)
    recon = decode(params, z)
    return {"model": model, "cfg": cfg, "stats": stats, "clips": clips, "video": video, "z": z, "recon": recon}


def test_shipped_vae_loads(shipped):
    cfg, stats, z = shipped["cfg"], shipped["stats"], shipped["z"]
    t, h, w = cfg.world.num_frames, cfg.world.height, cfg.world.width
    assert (t, h, w) == (17, 64, 64)
    assert z.shape == (N_CLIPS, *V.latent_shape(cfg.vae, t, h, w))
    assert stats is not None and len(stats["shift"]) == len(stats["scale"]) == cfg.vae.latent_channels
    assert all(s > 0 for s in stats["scale"])
    assert np.isfinite(np.asarray(z)).all() and np.isfinite(np.asarray(shipped["recon"])).all()


def test_reconstruction_psnr_on_held_out_clips(shipped):
    p = np.asarray(V.psnr(shipped["recon"], shipped["video"]))
    for (family, seed, _), v in zip(shipped["clips"], p):
        print(f"{family:13} seed {seed:3d}: {v:.2f} dB")
    print(f"mean {p.mean():.2f} dB, min {p.min():.2f} dB over {len(p)} held-out clips")
    assert p.mean() > MIN_MEAN_PSNR, f"mean PSNR {p.mean():.2f} dB <= {MIN_MEAN_PSNR} dB"
    assert p.min() > MIN_CLIP_PSNR, f"worst clip {p.min():.2f} dB <= {MIN_CLIP_PSNR} dB"


def test_tracker_recovers_positions_from_reconstructions(shipped):
    recon = V.to_uint8(shipped["recon"])
    errors, found, wanted = [], 0, 0
    for (family, seed, clip), rec in zip(shipped["clips"], recon):
        m_orig = match(world.track(clip.video), clip.truth)
        m_rec = match(world.track(rec), clip.truth)
        err = position_error(m_rec, clip.truth)
        errors.append(err)
        found += err.size
        wanted += position_error(m_orig, clip.truth).size
        if err.size:
            print(f"{family:13} seed {seed:3d}: mean {err.mean():.3f} px, max {err.max():.3f} px "
                  f"({err.size} object-frames)")
    err = np.concatenate(errors)
    print(f"all: mean {err.mean():.3f} px, max {err.max():.3f} px over {err.size} object-frames "
          f"({found} of {wanted} found in the reconstructions)")
    assert err.size > 0
    assert found >= 0.95 * wanted, f"the tracker found only {found} of {wanted} object-frames in reconstructions"
    assert err.mean() < MAX_MEAN_PX, f"mean position error {err.mean():.3f} px >= {MAX_MEAN_PX} px"
    assert err.max() < MAX_ANY_PX, f"worst position error {err.max():.3f} px >= {MAX_ANY_PX} px"


def test_one_frame_image_path(shipped):
    model, video, z = shipped["model"], shipped["video"], shipped["z"]
    image = video[:1, :1]                                           # (1, 1, h, w, 3): an image
    post = V.encode_chunked(model, image)                           # the public, validated path
    assert post.mean.shape == (1, 1, *z.shape[2:])
    # causal: the image's latent is the first latent frame of the clip that starts with it
    np.testing.assert_allclose(post.mean[:, 0], z[:1, 0], atol=1e-4)
    back = V.decode_chunked(model, post.mean)
    assert back.shape == image.shape
    p = float(V.psnr(jnp.asarray(back), image)[0])
    print(f"image PSNR {p:.2f} dB")
    assert p > MIN_CLIP_PSNR
