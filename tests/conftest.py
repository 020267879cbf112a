"""Test-wide settings.

XLA's backend optimisation level 0 roughly halves compile time of the many small
jitted functions the tests build; results are unchanged (the tests compare
values, never speed). Set before jax is imported; a user's XLA_FLAGS wins.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """A tiny VAE (trained 4 steps, exported) and a tiny DiT run on it (6 steps), exported
    as a pipeline folder. Shared by the DiT-trainer, pipeline and CLI tests (built once)."""
    from sora_jax import train
    from sora_jax.config import load_config

    root = tmp_path_factory.mktemp("tiny_runs")
    vcfg = load_config("configs/demo.py", "tiny")
    train.train_vae(vcfg, root / "vae", max_steps=4, progress=False)
    train.export_checkpoint(root / "vae", root / "vae_export")
    cfg = load_config("configs/demo.py", "dit,tiny", [f"train.vae_checkpoint={root / 'vae_export'}"])
    train.train_dit(cfg, root / "dit", max_steps=6, progress=False)
    train.export_pipeline(root / "dit", root / "pipeline")
    return {"root": root, "cfg": cfg, "vae": root / "vae_export", "dit": root / "dit", "pipeline": root / "pipeline"}
