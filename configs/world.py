"""The synthetic physics world and its data pipeline (``sora-jax world export``, ``bench world``).

Variants (comma-separated ones apply left to right, e.g. ``"phyworld,ood"``):

  ""          64x64 pixels, 17 frames (1 + 4k for the causal VAE), every scene family
  "tiny"      32x32 pixels, 5 frames: runs in seconds on a laptop CPU
  "phyworld"  PhyWorld's setting (Kang et al. 2024): uniform motion, collision and
              parabola, their parameter ranges, 64x64, 33 frames (their 32 rounded
              up to 1 + 4k), 0.1 s per frame, a 10 x 10 m view, gravity 2.5 m/s^2
  "wide"      64x112 pixels (7:4, the 16:9-like size whose sides divide by 16, so
              every VAE factor and patch size tiles it)
  "ood"       out-of-distribution parameter ranges (for the held-out physics tests)

Use: ``load_config("configs/world.py:tiny")`` or ``sora-jax config show --config configs/world.py:tiny``.
"""

import dataclasses

from sora_jax.config import Config, TrainConfig, WorldConfig

VARIANTS = ("", "tiny", "phyworld", "wide", "ood")


def get_config(variant: str = "") -> Config:
    world = WorldConfig(height=64, width=64, num_frames=17)
    train = TrainConfig(data="world")
    for v in [p.strip() for p in variant.split(",") if p.strip()]:
        if v == "tiny":
            world = dataclasses.replace(world, height=32, width=32, num_frames=5, substeps=8, antialias=2)
            train = dataclasses.replace(train, steps=20, batch_size=2, warmup_steps=2, log_every=5,
                                        checkpoint_every=10, eval_every=10, val_clips=4)
        elif v == "phyworld":
            world = dataclasses.replace(world, height=64, width=64, num_frames=33, dt=0.1, view_height=10.0,
                                        gravity=2.5, ranges="phyworld",
                                        families=("uniform", "collision", "parabola"))
        elif v == "wide":
            world = dataclasses.replace(world, height=64, width=112)
        elif v == "ood":
            world = dataclasses.replace(world, split="ood")
        else:
            raise ValueError(f"configs/world.py: unknown variant {v!r}; valid: {', '.join(repr(x) for x in VARIANTS)}")
    return Config(name="world" + (f"-{variant.replace(',', '-')}" if variant else ""), world=world, train=train)
