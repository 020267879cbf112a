"""PhyWorld's uniform-motion study at our scale: train on in-distribution motion, test ID and OOD.

Kang et al. 2024 ("How Far is Video Generation from World Model: A Physical Law
Perspective") train a diffusion transformer on one ball in uniform motion with
radius 0.7-1.5 m and speed 1-4 m/s in a 10 x 10 m world (0.1 s per frame), then
measure the velocity error of its continuations in distribution (ID) and out of
it (OOD: radius 0.3-0.6 or 1.5-2.0 m, speed 0-0.8 or 4.5-6.0 m/s). Their DiT-S
reaches 0.022 m/s ID after 30K steps; even their largest model stays near 0.43
m/s OOD: scaling does not buy extrapolation.

Here: the same world and ranges (``ranges="phyworld"``) with only the
``uniform`` family and one body per clip (PhyWorld's balls; ours may also be
squares or triangles), 64x64 frames, 17 frames (their 32 would cost 4x the tokens
on a CPU; the causal VAE takes any 1 + 4k), the demo's VAE, text encoder and
DiT shape, and the demo's DiT optimisation settings::

    sora-jax train-dit --config configs/phyworld_uniform.py --workdir runs/phyworld_uniform
    python -c "from sora_jax.train import export_pipeline; export_pipeline('runs/phyworld_uniform', 'runs/phyworld_uniform/export')"
    sora-jax eval physics --checkpoint runs/phyworld_uniform/export --families uniform --split test --json id.json
    sora-jax eval physics --checkpoint runs/phyworld_uniform/export --families uniform --split test --ood --json ood.json

(``eval physics`` reads the world from the checkpoint; ``--ood`` switches it to
the OOD ranges.) Compare ``table.uniform.velocity`` of the two runs with their
floors (ground truth, VAE, re-simulation); the combinatorial probe
(:func:`sora_jax.analysis.combinatorial_probe`) asks which of colour, shape,
size and speed the model keeps when a prompt leaves the training cases.

Variants (comma-separated ones apply left to right):

  ""       train on ID uniform motion (64x64, 17 frames)
  "ood"    the same world with OOD ranges (evaluation only: training on it defeats the study)
  "long"   33 frames, PhyWorld's 32 rounded up to 1 + 4k (4x the compute)
  "tiny"   16x16 pixels, 5 frames, a tiny model: for tests, runs in seconds
"""

import dataclasses
from pathlib import Path

from sora_jax.config import Config, load_config

VARIANTS = ("", "ood", "long", "tiny")


def get_config(variant: str = "") -> Config:
    parts = [p.strip() for p in variant.split(",") if p.strip()]
    for v in parts:
        if v not in VARIANTS:
            raise ValueError(f"configs/phyworld_uniform.py: unknown variant {v!r}; "
                             f"valid: {', '.join(repr(x) for x in VARIANTS)}")
    base = load_config(Path(__file__).with_name("demo.py"), "dit,tiny" if "tiny" in parts else "dit")
    # one body per clip, as in PhyWorld (the uniform family draws 1-2 bodies of any shape; max_objects=1 keeps one)
    world = dataclasses.replace(base.world, families=("uniform",), ranges="phyworld", view_height=10.0, dt=0.1,
                                gravity=2.5, max_objects=1)
    for v in parts:
        if v == "ood":
            world = dataclasses.replace(world, split="ood")
        elif v == "long":
            world = dataclasses.replace(world, num_frames=33)
    name = "phyworld-uniform" + (f"-{'-'.join(parts)}" if parts else "")
    return dataclasses.replace(base, name=name, world=world)
