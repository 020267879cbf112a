"""The DiT trainer: resume after a kill, latent cache, errors, export."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax import train
from sora_jax.config import load_config


def _params(workdir):
    model, _, meta = train.load_dit_checkpoint(workdir)
    return train.params_dict(model), meta


def test_killed_run_resumes_exactly(tiny_runs, tmp_path):
    cfg = tiny_runs["cfg"]
    whole = train.train_dit(cfg, tmp_path / "whole", max_steps=4, progress=False)
    train.train_dit(cfg, tmp_path / "parts", max_steps=2, progress=False)      # "killed" after step 2
    again = train.train_dit(cfg, tmp_path / "parts", max_steps=4, progress=False)
    assert again["start_step"] == 2 and whole["step"] == again["step"] == 4
    a, _ = _params(tmp_path / "whole")
    b, meta = _params(tmp_path / "parts")
    assert meta["step"] == 4
    diffs = jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b))
    assert max(diffs) < 1e-6
    steps = [json.loads(l)["step"] for l in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))             # no step logged twice after the resume
    # validation at the end of each call; deterministic, so the resumed run scores exactly the same
    vw, vp = train.read_log(tmp_path / "whole", "val"), train.read_log(tmp_path / "parts", "val")
    assert [v["step"] for v in vw] == [4] and [v["step"] for v in vp] == [2, 4]
    assert set(vw[0]["val_loss_t"]) == {f"{lv:g}" for lv in train.VAL_LEVELS}
    assert vp[-1]["val_loss"] == pytest.approx(vw[0]["val_loss"], rel=1e-5)


def test_training_lowers_the_loss(tiny_runs, tmp_path):
    import dataclasses

    cfg = tiny_runs["cfg"]
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=60, warmup_steps=5, log_every=10, lr=3e-3))
    train.train_dit(cfg, tmp_path / "run", progress=False)
    log = train.read_log(tmp_path / "run")
    assert log[-1]["loss"] < 0.8 * log[0]["loss"], log
    val = train.read_log(tmp_path / "run", "val")   # every eval_every=10 steps, on held-out clips
    assert [v["step"] for v in val] == [10, 20, 30, 40, 50, 60]
    assert val[-1]["val_loss"] < 0.9 * val[0]["val_loss"], val


def test_val_loss_is_the_mse_to_the_flow_target_at_fixed_levels(tiny_runs):
    from flax import nnx

    class Zero(nnx.Module):   # predicts velocity 0 everywhere: its loss is mean((noise - x0)^2) at every level
        def __call__(self, x, t, ids, mask):
            return jnp.zeros_like(x)

    cfg = tiny_runs["cfg"]
    rng = np.random.default_rng(0)
    x0, noise = rng.normal(size=(5, 2, 2, 2, 4)).astype(np.float32), rng.normal(size=(5, 2, 2, 2, 4)).astype(np.float32)
    ids, mask = np.zeros((5, 8), np.int32), np.ones((5, 8), bool)
    val = {"latents": x0, "noise": noise, "ids": ids, "mask": mask}
    r = train.dit_val_loss(Zero(), cfg, val, levels=(0.2, 0.8), batch_size=2)   # 5 clips in batches of 2: wraps round
    want = float(np.mean((noise - x0) ** 2))
    assert r["val_loss_t"] == {"0.2": pytest.approx(want, rel=1e-5), "0.8": pytest.approx(want, rel=1e-5)}
    # a model that is exact below t = 0.5 only: each level really reaches the model as its noise level
    class Oracle(nnx.Module):
        def __call__(self, x, t, ids, mask):   # the exact flow target, but only below t = 0.5
            return jnp.where(t[:, None, None, None, None] < 0.5, jnp.asarray(noise - x0), 0.0)

    r = train.dit_val_loss(Oracle(), cfg, val, levels=(0.2, 0.8), batch_size=5)
    assert r["val_loss_t"]["0.2"] == pytest.approx(0.0, abs=1e-6) and r["val_loss_t"]["0.8"] == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="not in"):
        train.dit_val_loss(Zero(), cfg, val, levels=(1.5,))


def test_eval_loss_scores_a_pipeline_and_a_workdir_alike(tiny_runs, capsys):
    a = train.evaluate_dit(tiny_runs["pipeline"], n_clips=3)
    b = train.evaluate_dit(tiny_runs["dit"], n_clips=3)
    assert a["n_clips"] == b["n_clips"] == 3 and a["split"] == "val" and a["step"] == 6
    assert np.isfinite(a["val_loss"]) and a["val_loss"] == pytest.approx(b["val_loss"], rel=0.05)   # bf16 export vs f32
    assert "held-out denoising loss" in capsys.readouterr().out
    with pytest.raises(ValueError, match="valid splits"):
        train.evaluate_dit(tiny_runs["pipeline"], split="train")
    with pytest.raises(FileNotFoundError, match="neither a pipeline"):
        train.evaluate_dit(tiny_runs["root"])


def test_latent_cache_is_written_once_and_reused(tiny_runs, tmp_path):
    from sora_jax.pipeline import LatentCodec
    from sora_jax.vae import load_vae

    cfg = tiny_runs["cfg"]
    vae, _, stats = load_vae(tiny_runs["vae"])
    codec = LatentCodec(vae, stats)
    cache = train.build_latent_cache(cfg, codec, tmp_path / "lat", 10, chunk=4, batch_size=2, progress=False)
    assert cache["latents"].shape == (10, 2, 2, 2, 4) and cache["latents"].dtype == np.float16
    assert len(cache["prompt"]) == 10 and all(isinstance(p, str) and p for p in cache["prompt"].tolist())
    files = sorted(p.name for p in (tmp_path / "lat").iterdir())
    assert files == ["chunk_00000.npz", "chunk_00001.npz", "chunk_00002.npz"]
    mtimes = [(tmp_path / "lat" / f).stat().st_mtime_ns for f in files]
    again = train.build_latent_cache(cfg, codec, tmp_path / "lat", 10, chunk=4, batch_size=2, progress=False)
    assert [(tmp_path / "lat" / f).stat().st_mtime_ns for f in files] == mtimes   # not re-encoded
    np.testing.assert_array_equal(again["latents"], cache["latents"])
    # the normalised latents are roughly unit-scale (stats measured on the same VAE)
    assert 0.2 < float(np.std(cache["latents"].astype(np.float32))) < 5


def test_train_from_the_cache(tiny_runs, tmp_path):
    import dataclasses

    cfg = tiny_runs["cfg"]
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, latent_cache=6))
    out = train.train_dit(cfg, tmp_path / "run", max_steps=2, progress=False)
    assert out["step"] == 2 and (tmp_path / "run" / "latents" / "chunk_00000.npz").is_file()


def test_missing_or_wrong_vae_is_a_clear_error(tiny_runs, tmp_path):
    import dataclasses

    cfg = tiny_runs["cfg"]
    with pytest.raises(ValueError, match="train.vae_checkpoint is empty"):
        train.train_dit(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, vae_checkpoint="")), tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train.train_dit(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, vae_checkpoint=str(tmp_path / "nope"))),
                        tmp_path / "b")
    other = load_config("configs/demo.py", "dit")   # the 64x64 demo VAE architecture, tiny VAE on disk
    other = dataclasses.replace(other, train=dataclasses.replace(other.train, vae_checkpoint=str(tiny_runs["vae"])))
    with pytest.raises(ValueError, match="vae"):
        train.train_dit(other, tmp_path / "c")


def test_export_keeps_extra_files_and_replaces_atomically(tiny_runs, tmp_path):
    out = tmp_path / "export"
    train.export_pipeline(tiny_runs["dit"], out)
    (out / "MODEL_CARD.md").write_text("card")
    train.export_pipeline(tiny_runs["dit"], out, dtype="float32", extra={"sampling": {"eta": 0.5}})
    assert (out / "MODEL_CARD.md").read_text() == "card"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dtype"] == "float32" and meta["step"] == 6 and meta["sampling"] == {"eta": 0.5}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp folders left behind
    with pytest.raises(ValueError, match=r"export_pipeline\(extra=...\): sampling.eta=-1"):   # refused before writing
        train.export_pipeline(tiny_runs["dit"], out, extra={"sampling": {"eta": -1}})
    assert json.loads((out / "meta.json").read_text())["sampling"] == {"eta": 0.5}


def test_log_of_a_run_killed_before_its_first_checkpoint_is_dropped(tiny_runs, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 25, "loss": 9.0}\n{"step": 50, "loss": 9.0}\n')   # no checkpoint behind it
    train.train_dit(tiny_runs["cfg"], run, max_steps=2, progress=False)
    assert all(r["loss"] != 9.0 for r in train.read_log(run))
