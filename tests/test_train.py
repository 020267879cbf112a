"""Shared training infrastructure: schedule, optimiser, EMA, checkpoints/resume, export, GAN step."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))
from vae_helpers import batch_stream  # noqa: E402

from sora_jax import train as T  # noqa: E402
from sora_jax import vae as V  # noqa: E402
from sora_jax.config import TrainConfig, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def tiny_cfg(**train):
    cfg = load_config(str(ROOT / "configs/demo.py"), "tiny")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def test_schedule_values():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, steps=110, min_lr_ratio=0.1, lr_schedule="cosine")
    s = T.lr_schedule(cfg)
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(5e-4)
    assert float(s(10)) == pytest.approx(1e-3)
    # halfway through the decay: cosine is at its midpoint between lr and lr * min_lr_ratio
    assert float(s(60)) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4), rel=1e-5)
    assert float(s(110)) == pytest.approx(1e-4, rel=1e-5)
    assert float(s(500)) == pytest.approx(1e-4, rel=1e-5)
    c = T.lr_schedule(dataclasses.replace(cfg, lr_schedule="constant"))
    assert float(c(5)) == pytest.approx(5e-4) and float(c(1000)) == pytest.approx(1e-3)


def test_optimizer_clips_and_decays_only_matrices():
    cfg = TrainConfig(lr=0.1, warmup_steps=0, steps=10, weight_decay=0.5, grad_clip=1.0, lr_schedule="constant")
    tx = T.make_optimizer(cfg)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
    state = tx.init(params)
    zero = jax.tree.map(jnp.zeros_like, params)
    upd, _ = tx.update(zero, state, params)
    np.testing.assert_allclose(upd["kernel"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)  # decoupled decay
    np.testing.assert_allclose(upd["bias"], 0.0)
    # a huge gradient is clipped to global norm 1 first: Adam's first step is then lr * g / |g|
    # per element (bias-corrected), finite and bounded by lr (+ the decay term)
    big = {"kernel": jnp.full((2, 2), 1e6), "bias": jnp.full((2,), 1e6)}
    upd, _ = tx.update(big, state, params)
    assert np.all(np.isfinite(upd["bias"])) and np.abs(upd["bias"]).max() <= 0.1 + 1e-6


def test_ema_update_math():
    ema = {"w": jnp.zeros(3)}
    p = {"w": jnp.ones(3)}
    out = T.ema_update(ema, p, 0.99, jnp.asarray(0))  # warm-up: d = min(.99, 1/10) = 0.1
    np.testing.assert_allclose(out["w"], 0.9)
    out = T.ema_update(ema, p, 0.5, jnp.asarray(10_000))  # d = 0.5
    np.testing.assert_allclose(out["w"], 0.5)


def _final_params(workdir):
    model, _, _ = T.load_checkpoint(workdir, use_ema=False)
    ema_model, _, _ = T.load_checkpoint(workdir, use_ema=True)
    return T.params_dict(model), T.params_dict(ema_model)


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    cfg = tiny_cfg(steps=6, checkpoint_every=3, log_every=2)
    data = batch_stream(2, 5, 16, 16, seed=1)
    T.train_vae(cfg, tmp_path / "full", progress=False, batches=data)
    r1 = T.train_vae(cfg, tmp_path / "resumed", max_steps=3, progress=False, batches=data)
    assert r1["step"] == 3
    with open(tmp_path / "resumed/log.jsonl", "a") as f:  # a line the killed run wrote after its last checkpoint
        f.write(json.dumps({"step": 5, "loss": 1.0}) + "\n")
    # 'kill': nothing survives but the workdir; a fresh call resumes from step 3
    r2 = T.train_vae(cfg, tmp_path / "resumed", progress=False, batches=data)
    assert (r2["start_step"], r2["step"]) == (3, 6)
    full, full_ema = _final_params(tmp_path / "full")
    res, res_ema = _final_params(tmp_path / "resumed")
    for a, b in zip(jax.tree.leaves(full) + jax.tree.leaves(full_ema), jax.tree.leaves(res) + jax.tree.leaves(res_ema)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # params moved away from the init
    init = T.params_dict(V.VideoVAE(cfg.vae, rngs=nnx.Rngs(cfg.train.seed)))
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(init))) > 1e-3
    # keeps at most keep_checkpoints; the log has every log_every step with the promised fields
    steps = sorted(int(p.name) for p in (tmp_path / "full/checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 6 and len(steps) <= cfg.train.keep_checkpoints
    log = T.read_log(tmp_path / "full")
    assert [l["step"] for l in log] == [2, 4, 6]
    assert [l["step"] for l in T.read_log(tmp_path / "resumed")] == [2, 3, 4, 6]  # stale line 5 dropped
    assert {"step", "loss", "psnr", "lr", "steps_per_s"} <= set(log[0])
    # held-out validation (EMA weights) at the end of each call; the resumed run scores the same
    vfull, vres = T.read_log(tmp_path / "full", "val"), T.read_log(tmp_path / "resumed", "val")
    assert [v["step"] for v in vfull] == [6] and [v["step"] for v in vres] == [3, 6]
    assert vfull[0]["n_clips"] == cfg.train.val_clips and 0 < vfull[0]["val_psnr"] < 100
    assert vres[-1]["val_psnr"] == pytest.approx(vfull[0]["val_psnr"], abs=1e-3)
    stats = json.loads((tmp_path / "full/latent_stats.json").read_text())
    assert len(stats["shift"]) == len(stats["scale"]) == cfg.vae.latent_channels
    # export: a small inference checkpoint that loads back with the EMA weights in bf16
    out = T.export_checkpoint(tmp_path / "full", tmp_path / "export", dtype="bfloat16")
    model, saved, stats2 = V.load_vae(out, cfg)
    assert saved == cfg and stats2["scale"] == stats["scale"]
    for a, b in zip(jax.tree.leaves(T.params_dict(model)), jax.tree.leaves(full_ema)):
        np.testing.assert_allclose(a, np.asarray(jnp.asarray(b, jnp.bfloat16), np.float32), atol=1e-6)
    res = T.evaluate_vae(out, n_clips=4, batch_size=2, progress=False, batches=data(0))
    assert res["n_clips"] == 4 and 0 < res["psnr"] < 100 and res["compression_ratio"] > 1


def test_incompatible_workdir_config_is_refused(tmp_path):
    cfg = tiny_cfg(steps=1)
    data = batch_stream(2, 5, 16, 16)
    T.train_vae(cfg, tmp_path, progress=False, batches=data)
    other = dataclasses.replace(cfg, vae=dataclasses.replace(cfg.vae, latent_channels=6))
    with pytest.raises(ValueError, match="latent_channels: requested 6"):
        T.train_vae(other, tmp_path, progress=False, batches=data)


def test_discriminator_trains_one_step(tmp_path):
    cfg = tiny_cfg(steps=2, log_every=1, checkpoint_every=10)
    cfg = dataclasses.replace(cfg, vae=dataclasses.replace(cfg.vae, disc_weight=0.1, disc_start=1))
    data = batch_stream(2, 5, 16, 16, seed=2)
    T.train_vae(cfg, tmp_path, progress=False, batches=data)
    log = T.read_log(tmp_path)
    assert "d_loss" not in log[0] and "d_loss" in log[1]  # off before disc_start, on after
    assert np.isfinite(log[1]["d_loss"]) and np.isfinite(log[1]["g_loss"])
    # the discriminator's parameters were updated and saved
    ck = T.Checkpoints(tmp_path)
    disc = V.PatchDiscriminator3D(cfg.vae, rngs=nnx.Rngs(cfg.train.seed + 1))
    dopt = nnx.Optimizer(disc, T._disc_optimizer(cfg.train), wrt=nnx.Param)
    model, opt = T._build(cfg)
    like = {"train": nnx.to_pure_dict(nnx.state((model, opt))), "disc": nnx.to_pure_dict(nnx.state((disc, dopt)))}
    tree, _, meta = ck.restore(like, T.ema_init(model))
    ck.close()
    assert meta["step"] == 2
    before = jax.tree.leaves(nnx.to_pure_dict(nnx.state(disc, nnx.Param)))
    after = jax.tree.leaves(tree["disc"][0])
    assert max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(before, after)) > 0


def test_decoder_only_finetune_keeps_the_encoder(tiny_runs, tmp_path):
    """train.trainable="decoder" + train.init_from: the latents (and a DiT trained on them) stay valid."""
    import dataclasses

    from sora_jax import vae as vae_lib
    from sora_jax.config import load_config

    cfg = load_config("configs/demo.py", "tiny", [f"train.init_from={tiny_runs['vae']}", "train.trainable=decoder"])
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=1e-2, warmup_steps=0))
    T.train_vae(cfg, tmp_path / "ft", max_steps=3, progress=False)
    before, _, _ = vae_lib.load_vae(tiny_runs["vae"])
    after, _, _ = T.load_checkpoint(tmp_path / "ft", use_ema=False)
    b, a = T.params_dict(before), T.params_dict(after)
    enc = jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))),
                                       b["encoder"], a["encoder"]))
    dec = jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))),
                                       b["decoder"], a["decoder"]))
    # the exported weights are bf16: the encoder is exactly the bf16 values, the decoder moved
    assert max(enc) == 0.0 and max(dec) > 1e-3
    with pytest.raises(ValueError, match="trainable"):
        load_config("configs/demo.py", "tiny", ["train.trainable=encoder"])


def test_dit_init_from_continues_the_given_weights(tiny_runs, tmp_path):
    """train.init_from on the DiT trainer starts from a pipeline folder's (or workdir's) weights,
    with a fresh optimiser; a DiT of another shape is refused by name."""
    from sora_jax.config import load_config

    src = T.load_dit_weights(tiny_runs["pipeline"], tiny_runs["cfg"])
    cfg = load_config("configs/demo.py", "dit,tiny", [f"train.vae_checkpoint={tiny_runs['vae']}",
                                                      f"train.init_from={tiny_runs['pipeline']}", "train.lr=0"])
    T.train_dit(cfg, tmp_path / "cont", max_steps=2, progress=False)
    model, _, meta = T.load_dit_checkpoint(tmp_path / "cont")
    got = T.params_dict(model)
    diff = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), src, got))
    assert meta["step"] == 2 and max(diff) < 1e-6     # lr=0: the run kept the weights it started from (EMA rounding)
    fresh = T.load_dit_weights(tiny_runs["dit"], tiny_runs["cfg"])   # a workdir works too
    assert jax.tree.structure(fresh) == jax.tree.structure(src)
    wider = load_config("configs/demo.py", "dit,tiny", ["dit.hidden=48"])
    with pytest.raises(ValueError, match="dit="):
        T.load_dit_weights(tiny_runs["pipeline"], wider)
    with pytest.raises(FileNotFoundError, match="init_from"):
        T.load_dit_weights(tmp_path, tiny_runs["cfg"])
    bad = load_config("configs/demo.py", "dit,tiny", [f"train.vae_checkpoint={tiny_runs['vae']}",
                                                      f"train.init_from={tmp_path / 'nowhere'}"])
    assert bad.train.latent_cache > 0
    with pytest.raises(FileNotFoundError, match="init_from"):
        T.train_dit(bad, tmp_path / "bad", max_steps=1, progress=False)
    assert not (tmp_path / "bad" / "latents").exists()     # refused before any clip was encoded
