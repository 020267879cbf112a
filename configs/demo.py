"""The demo model: 64x64, 17-frame world clips, a CPU-friendly causal video VAE.

Variants:

  ""      the shipped demo's VAE run: world 64x64x17; VAE 8x spatial, 4x temporal, 16
          latent channels (17x64x64x3 -> 5x8x8x16, 40.8x compression)
  "dit"   the shipped demo's DiT run: same world/VAE/text/dit sections, the DiT's
          optimisation settings in ``train`` (one ``train`` section per run)
  "dit,longer"  continues the shipped DiT (init_from=data/demo) for 5,000 more steps with a
          fresh optimiser and cosine, on a latent cache of 32,768 clips (the shipped model ran it
          five times: leg 2 as is, leg 3 from leg 2's export with train.steps=6500, leg 4 from
          leg 3's export with train.steps=6000 and diffusion.shift=3.0, legs 5, 6 and 7 the same
          from the previous leg's)
  "decoder"  fine-tunes only the VAE decoder from the exported VAE (data/demo/vae):
          the encoder, hence the latents a DiT was trained on, stays exactly the same
  "tiny"  16x16 pixels, 5 frames, a few channels: for tests, runs in seconds
          (combine: "dit,tiny")

Rerun the demo model (``make demo-model``)::

    sora-jax train-vae --config configs/demo.py --workdir ~/sora_jax_runs/vae_demo
    python -c "from sora_jax.train import export_checkpoint; export_checkpoint('$HOME/sora_jax_runs/vae_demo', 'data/demo/vae')"
    sora-jax train-dit --config configs/demo.py:dit --workdir ~/sora_jax_runs/dit_demo
    # sharpen the decoder (encoder frozen, so the latents and the DiT stay valid; can run beside the DiT)
    sora-jax train-vae --config configs/demo.py:decoder --workdir ~/sora_jax_runs/vae_decoder
    # export it, keeping data/demo/vae/latent_stats.json (scripts/train_demo_model.sh does this)
    python -c "from sora_jax.train import export_pipeline; export_pipeline('$HOME/sora_jax_runs/dit_demo', 'data/demo')"
    # leg 2: continue the DiT from data/demo with a fresh optimiser, then export again
    sora-jax train-dit --config configs/demo.py:dit,longer --workdir ~/sora_jax_runs/dit_longer
    python -c "from sora_jax.train import export_pipeline; export_pipeline('$HOME/sora_jax_runs/dit_longer', 'data/demo')"
    # leg 3: the same from leg 2's export, 6,500 steps
    sora-jax train-dit --config configs/demo.py:dit,longer --set train.steps=6500 --workdir ~/sora_jax_runs/dit_leg3
    python -c "from sora_jax.train import export_pipeline; export_pipeline('$HOME/sora_jax_runs/dit_leg3', 'data/demo')"
    # leg 4: from leg 3's export with timestep shift 3 (more training at high noise; sampling follows the config)
    sora-jax train-dit --config configs/demo.py:dit,longer --set train.steps=6000 --set diffusion.shift=3.0 --workdir ~/sora_jax_runs/dit_leg4
    python -c "from sora_jax.train import export_pipeline; export_pipeline('$HOME/sora_jax_runs/dit_leg4', 'data/demo')"
    # leg 5: the same once more from leg 4's export
    sora-jax train-dit --config configs/demo.py:dit,longer --set train.steps=6000 --set diffusion.shift=3.0 --workdir ~/sora_jax_runs/dit_leg5
    python -c "from sora_jax.train import export_pipeline; export_pipeline('$HOME/sora_jax_runs/dit_leg5', 'data/demo')"
    # leg 6: and once more from leg 5's export
    sora-jax train-dit --config configs/demo.py:dit,longer --set train.steps=6000 --set diffusion.shift=3.0 --workdir ~/sora_jax_runs/dit_leg6
    python -c "from sora_jax.train import export_pipeline; export_pipeline('$HOME/sora_jax_runs/dit_leg6', 'data/demo')"
    # leg 7: and once more from leg 6's export; the export records the sampling eta the demo uses
    sora-jax train-dit --config configs/demo.py:dit,longer --set train.steps=6000 --set diffusion.shift=3.0 --workdir ~/sora_jax_runs/dit_leg7
    python -c "from sora_jax.train import export_pipeline; export_pipeline('$HOME/sora_jax_runs/dit_leg7', 'data/demo', extra={'sampling': {'eta': 0.75}})"

The VAE is shaped for a 2-core CPU (see sora_jax/vae.py): a 4x4 pixel-unshuffle
stem plus a frame-pair stem (17 frames -> 9) so no layer runs at full resolution,
(2+1)D convolutions, one residual block per encoder stage (1, 2, 2 in the
decoder), channels 64-128-128, L2 loss, AdamW 1e-3 peak with cosine decay. 
The DiT (80 spacetime tokens: 5x8x8 latents in 1x2x2 patches) is 192 wide and 4 deep
with full 3D attention and RoPE; it reads byte-level prompts through a 2-layer text
encoder trained with it. Rectified flow, logit-normal noise levels.

Use: ``load_config("configs/demo.py")`` or ``load_config("configs/demo.py:tiny")``.
"""

import dataclasses

from sora_jax.config import Config, DiffusionConfig, DiTConfig, TextConfig, TrainConfig, VAEConfig, WorldConfig

VARIANTS = ("", "dit", "longer", "decoder", "tiny")


def get_config(variant: str = "") -> Config:
    world = WorldConfig(height=64, width=64, num_frames=17)
    vae = VAEConfig(
        latent_channels=16,
        spatial_factor=8,
        temporal_factor=4,
        stem_unshuffle=4,
        stem_temporal=2,
        base_channels=64,
        channel_mults=(1, 2, 2),
        num_res_blocks=1,
        decoder_blocks=(1, 2, 2),    # finest first: extra decoder capacity where it is cheap (8x8)
        factorized=True,
        kl_weight=1e-6,
        l1_weight=0.0,               # L2 optimises PSNR directly; L1 learned 3 dB slower in trials
        l2_weight=1.0,
    )
    train = TrainConfig(
        steps=10_000,
        batch_size=8,
        lr=1e-3,
        warmup_steps=200,
        lr_schedule="cosine",
        min_lr_ratio=0.05,
        weight_decay=0.0,
        grad_clip=1.0,
        ema_decay=0.999,
        checkpoint_every=250,
        keep_checkpoints=3,
        log_every=25,
        eval_every=1000,
        seed=0,
        data="world",
    )
    text = TextConfig(max_tokens=128, width=128, depth=2, num_heads=4)   # short prompts: p99 159 bytes
    dit = DiTConfig(preset="demo", hidden=192, depth=4, num_heads=6, patch=(1, 2, 2), attention="full",
                    pos_embed="rope", qk_norm=True)
    diffusion = DiffusionConfig(objective="flow", timestep_sampling="logit_normal", shift=1.0)
    variants = [p.strip() for p in variant.split(",") if p.strip()]
    if "dit" in variants:
        train = TrainConfig(
            steps=4500, batch_size=32, lr=6e-4, warmup_steps=200, lr_schedule="cosine", min_lr_ratio=0.05,
            weight_decay=0.0, grad_clip=1.0, ema_decay=0.999, text_dropout=0.1, caption_rate=0.0,
            vae_checkpoint="data/demo/vae", latent_cache=16384,
            checkpoint_every=250, keep_checkpoints=3, log_every=25, eval_every=1000, seed=0, data="world",
        )
    if "longer" in variants:    # continue the shipped DiT: fresh optimiser, new cosine, twice the cached clips
        if "dit" not in variants:
            raise ValueError("configs/demo.py: variant 'longer' continues the DiT; use 'dit,longer'")
        train = dataclasses.replace(train, steps=5000, lr=3e-4, warmup_steps=100, init_from="data/demo",
                                    latent_cache=32768)
    if "decoder" in variants:
        train = dataclasses.replace(train, steps=3700, lr=3e-4, warmup_steps=100, init_from="data/demo/vae",
                                    trainable="decoder")
    for v in variants:
        if v in ("dit", "longer", "decoder"):
            continue
        if v == "tiny":
            world = dataclasses.replace(world, height=16, width=16, num_frames=5, substeps=4, antialias=2)
            vae = dataclasses.replace(vae, latent_channels=4, stem_unshuffle=2, stem_temporal=1,
                                      base_channels=8, channel_mults=(1, 2), decoder_blocks=())
            train = dataclasses.replace(train, steps=20, batch_size=2, lr=3e-3, warmup_steps=2, log_every=5,
                                        checkpoint_every=10, eval_every=10, val_clips=4, ema_decay=0.9,
                                        latent_cache=min(train.latent_cache, 8))
            text = dataclasses.replace(text, max_tokens=48, width=32, depth=1, num_heads=2)
            dit = dataclasses.replace(dit, preset="tiny", hidden=32, depth=2, num_heads=2)
        else:
            raise ValueError(f"configs/demo.py: unknown variant {v!r}; valid: {', '.join(repr(x) for x in VARIANTS)}")
    return Config(name="demo" + (f"-{variant}" if variant else ""), world=world, vae=vae, text=text, dit=dit,
                  diffusion=diffusion, train=train)
