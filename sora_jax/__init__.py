"""sora_jax: a readable Sora-style text-to-video system in JAX / Flax NNX.

Stages (each its own module, imported on demand so `import sora_jax` stays fast):
world -> data -> vae -> patches/text -> dit -> diffusion -> sampling -> pipeline.
"""

__version__ = "0.1.0"
