"""VideoDiT: a diffusion transformer over spacetime patches of a latent video.

Axes: ``b`` batch; ``t, h, w, c`` latent frames, rows, columns, channels; ``T, H, W``
the patch grid; ``n = T*H*W`` video tokens; ``s = H*W`` tokens of one frame; ``L``
text tokens; ``d`` model width (``DiTConfig.hidden``); ``e`` text width.

    latents (b,t,h,w,c) --patchify--> (b,n,p) --Linear--> (b,n,d)
        + noise level t (b,) --TimestepEmbedder--> c (b,d)     (once per clip)
        + text (b,L,e) --MLP--> (b,L,d)                       (once per clip)
    depth x DiTBlock:
        x += gate1 * SelfAttn(modulate(LN(x), shift1, scale1))   full 3D, or spatial then
                                                                  temporal ("factorized")
        x += CrossAttn(LN(x), text, text_mask)                    zero-initialised output
        x += gate2 * MLP(modulate(LN(x), shift2, scale2))
    final: Linear(modulate(LN(x), shift, scale)) (zero-initialised) --unpatchify--> (b,t,h,w,c)

adaLN-Zero (Peebles & Xie 2023): every shift/scale/gate comes from the clip's noise
level through a zero-initialised linear layer, and the cross-attention and final
projections start at zero too, so at initialisation every block is the identity and
the model outputs exactly zero. The model has no idea of guidance or sampling: it
maps (noisy latents, noise level, text) to a prediction. Guidance lives in
:mod:`sora_jax.sampling`.

Blocks are created stacked (``nnx.split_rngs`` + ``nnx.vmap`` over layers, the flax
"scan over layers" recipe: every parameter has a leading ``depth`` axis).
``DiTConfig.scan_layers`` runs them with ``jax.lax.scan`` over that axis (one compiled
block: fast compiles for deep models); otherwise a Python loop unrolls them. The
parameter layout is the same either way, so checkpoints do not care. ``DiTConfig.remat``
wraps each block in ``jax.checkpoint``: activations are recomputed in the backward pass
(less memory, about one more forward of compute).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import einops
import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float

from sora_jax.config import Config, DiTConfig, validate
from sora_jax.layers import (
    AdaLNModulation,
    Attention,
    Mlp,
    TimestepEmbedder,
    dtype_of,
    linear,
    modulate,
    rope_3d,
    sincos_3d,
)
from sora_jax.patches import grid_shape, patchify, position_ids, unpatchify

# Width / depth / heads: DiT-S/B/L/XL as in Peebles & Xie (2023), plus a CPU-sized tiny.
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (128, 4, 4),
    "S": (384, 12, 6),
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "XL": (1152, 28, 16),
}

Rope = dict[str, tuple[jax.Array, jax.Array]]


def preset(name: str, **overrides) -> DiTConfig:
    """A DiTConfig for a named size (tiny, S, B, L, XL); ``overrides`` change other fields.

    >>> preset("S").hidden, preset("S").depth, preset("S").num_heads
    (384, 12, 6)
    """
    if name not in PRESETS:
        raise ValueError(f"unknown DiT preset {name!r}; valid: {', '.join(PRESETS)}")
    hidden, depth, heads = PRESETS[name]
    cfg = DiTConfig(preset=name, hidden=hidden, depth=depth, num_heads=heads)
    cfg = dataclasses.replace(cfg, **overrides)
    validate(cfg)
    return cfg


def _layer_norm(dim: int, dtype, *, affine: bool, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(dim, epsilon=1e-6, use_scale=affine, use_bias=affine, dtype=dtype,
                         param_dtype=jnp.float32, rngs=rngs)


class DiTBlock(nnx.Module):
    """One adaLN-Zero transformer block with self-attention, cross-attention to text and an MLP."""

    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs):
        d, heads, dtype = cfg.hidden, cfg.num_heads, dtype_of(cfg.dtype)
        self.factorized = cfg.attention == "factorized"
        self.norm1 = _layer_norm(d, dtype, affine=False, rngs=rngs)
        self.attn = Attention(d, heads, qk_norm=cfg.qk_norm, dtype=dtype, rngs=rngs)
        if self.factorized:
            self.norm_t = _layer_norm(d, dtype, affine=False, rngs=rngs)
            self.attn_t = Attention(d, heads, qk_norm=cfg.qk_norm, dtype=dtype, rngs=rngs)
        self.norm_cross = _layer_norm(d, dtype, affine=True, rngs=rngs)
        self.cross = Attention(d, heads, context_dim=d, qk_norm=cfg.qk_norm, zero_out=True, dtype=dtype, rngs=rngs)
        self.norm2 = _layer_norm(d, dtype, affine=False, rngs=rngs)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio), dtype=dtype, rngs=rngs)
        # (shift, scale, gate) for: self/spatial attention, [temporal attention,] MLP.
        self.adaln = AdaLNModulation(d, d, 9 if self.factorized else 6, dtype=dtype, rngs=rngs)

    def spatial_attention(
        self, x: Float[Array, "b n d"], grid: Sequence[int], rope: Rope | None
    ) -> Float[Array, "b n d"]:
        """Attention among the ``H*W`` tokens of each frame; frames never mix."""
        T = grid[0]
        xs = einops.rearrange(x, "b (T s) d -> (b T) s d", T=T)
        out = self.attn(xs, rope=None if rope is None else rope["spatial"])
        return einops.rearrange(out, "(b T) s d -> b (T s) d", T=T)

    def temporal_attention(
        self, x: Float[Array, "b n d"], grid: Sequence[int], rope: Rope | None
    ) -> Float[Array, "b n d"]:
        """Attention across the ``T`` frames at each spatial location; locations never mix."""
        T = grid[0]
        xt = einops.rearrange(x, "b (T s) d -> (b s) T d", T=T)
        out = self.attn_t(xt, rope=None if rope is None else rope["temporal"])
        return einops.rearrange(out, "(b s) T d -> b (T s) d", T=T, s=x.shape[1] // T)

    def __call__(
        self,
        x: Float[Array, "b n d"],
        c: Float[Array, "b d"],
        text: Float[Array, "b L d"],
        text_mask: Bool[Array, "b L"],
        grid: Sequence[int],
        rope: Rope | None,
    ) -> Float[Array, "b n d"]:
        mods = self.adaln(c)                     # each (b, d): computed once per clip
        if self.factorized:
            s1, sc1, g1, st, sct, gt, s2, sc2, g2 = mods
            x = x + g1[:, None] * self.spatial_attention(modulate(self.norm1(x), s1, sc1), grid, rope)
            x = x + gt[:, None] * self.temporal_attention(modulate(self.norm_t(x), st, sct), grid, rope)
        else:
            s1, sc1, g1, s2, sc2, g2 = mods
            x = x + g1[:, None] * self.attn(modulate(self.norm1(x), s1, sc1), rope=None if rope is None else rope["full"])
        x = x + self.cross(self.norm_cross(x), text, kv_mask=text_mask)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), s2, sc2))


class VideoDiT(nnx.Module):
    """Diffusion transformer for latent video; see the module docstring for the data flow.

    Args:
      cfg: widths, depth, patch, attention variant, position embedding, remat/scan, dtype.
      latent_channels: ``c`` of the latents it denoises (``VAEConfig.latent_channels``).
      text_dim: width ``e`` of the text tokens it attends to (``TextEncoder.width``).
    """

    def __init__(self, cfg: DiTConfig, latent_channels: int, text_dim: int, *, rngs: nnx.Rngs):
        validate(cfg)
        head_dim = cfg.hidden // cfg.num_heads
        if cfg.pos_embed == "rope" and (head_dim % 2 or head_dim < 6):
            raise ValueError(f"RoPE needs an even head width >= 6; hidden={cfg.hidden}/num_heads={cfg.num_heads}={head_dim}")
        if cfg.attention not in ("full", "factorized"):
            raise ValueError(f"dit.attention={cfg.attention!r}: valid are 'full', 'factorized'")
        if cfg.pos_embed not in ("rope", "sincos"):
            raise ValueError(f"dit.pos_embed={cfg.pos_embed!r}: valid are 'rope', 'sincos'")
        self.cfg = cfg
        self.latent_channels = latent_channels
        self.text_dim = text_dim
        d, dtype = cfg.hidden, dtype_of(cfg.dtype)
        patch_dim = math.prod(cfg.patch) * latent_channels
        self.patch_embed = linear(patch_dim, d, dtype=dtype, rngs=rngs)
        self.t_embed = TimestepEmbedder(d, dtype=dtype, rngs=rngs)
        self.text_proj = Mlp(text_dim, d, out_dim=d, dtype=dtype, rngs=rngs)   # PixArt's caption projection

        @nnx.split_rngs(splits=cfg.depth)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_blocks(rngs: nnx.Rngs) -> DiTBlock:
            return DiTBlock(cfg, rngs=rngs)

        self.blocks = make_blocks(rngs)           # one DiTBlock whose params have a leading depth axis
        self.final_norm = _layer_norm(d, dtype, affine=False, rngs=rngs)
        self.final_adaln = AdaLNModulation(d, d, 2, dtype=dtype, rngs=rngs)
        self.final = linear(d, patch_dim, dtype=dtype, zero=True, rngs=rngs)

    def block(self, i: int) -> DiTBlock:
        """Block ``i`` as its own module (a view for inspection; edits do not flow back)."""
        if not 0 <= i < self.cfg.depth:
            raise ValueError(f"block index {i} out of range 0..{self.cfg.depth - 1}")
        graphdef, state = nnx.split(self.blocks)
        return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))

    def rope(self, grid: Sequence[int]) -> Rope:
        """RoPE tables for the whole grid and for one frame / one location (factorized)."""
        T, H, W = grid
        ids = jnp.asarray(position_ids(grid))
        head_dim = self.cfg.hidden // self.cfg.num_heads
        return {
            "full": rope_3d(ids, head_dim),
            "spatial": rope_3d(ids[: H * W], head_dim),     # frame 0: t = 0, rotation on t is identity
            "temporal": rope_3d(ids[:: H * W], head_dim),   # location (0, 0)
        }

    def _run_blocks(self, x, c, text, text_mask, grid, rope):
        # Functional scan over the stacked parameters. (nnx.scan / nnx.remat would refuse a
        # model that was rebuilt inside a raw JAX transform, e.g. the sampler's lax.scan.)
        graphdef, stacked = nnx.split(self.blocks)          # every leaf: (depth, ...)

        def apply(layer, x):
            return nnx.merge(graphdef, layer)(x, c, text, text_mask, grid, rope)

        if self.cfg.remat:
            apply = jax.checkpoint(apply)                    # recompute activations in backward
        if self.cfg.scan_layers:
            return jax.lax.scan(lambda x, layer: (apply(layer, x), None), x, stacked)[0]
        for i in range(self.cfg.depth):
            x = apply(jax.tree.map(lambda a: a[i], stacked), x)
        return x

    def __call__(
        self,
        x: Float[Array, "b t h w c"],
        t_cond: Float[Array, "b"],
        text: Float[Array, "b L e"],
        text_mask: Bool[Array, "b L"],
    ) -> Float[Array, "b t h w c"]:
        """Predict the objective's target (velocity, noise or v) for noisy latents ``x``.

        ``t_cond`` is the noise level in [0, 1] (1 = pure noise): the flow time, or the
        DDPM step index divided by the number of training steps. Returns float32.
        """
        cfg = self.cfg
        if x.ndim != 5 or x.shape[-1] != self.latent_channels:
            raise ValueError(f"x must be (b, t, h, w, {self.latent_channels}), got {tuple(x.shape)}")
        b = x.shape[0]
        if t_cond.shape != (b,):
            raise ValueError(f"t_cond must be ({b},), got {tuple(t_cond.shape)}")
        if text.ndim != 3 or text.shape[0] != b or text.shape[-1] != self.text_dim:
            raise ValueError(f"text must be ({b}, L, {self.text_dim}), got {tuple(text.shape)}")
        if text_mask.shape != text.shape[:2]:
            raise ValueError(f"text_mask must be {tuple(text.shape[:2])}, got {tuple(text_mask.shape)}")
        grid = grid_shape(x.shape[1:4], cfg.patch)
        dtype = dtype_of(cfg.dtype)

        tokens = self.patch_embed(patchify(x, cfg.patch).astype(dtype))
        if cfg.pos_embed == "sincos":
            tokens = tokens + sincos_3d(position_ids(grid), cfg.hidden).astype(tokens.dtype)
            rope = None
        else:
            rope = self.rope(grid)
        c = self.t_embed(t_cond)
        ctx = self.text_proj(text.astype(dtype))
        tokens = self._run_blocks(tokens, c, ctx, text_mask.astype(bool), grid, rope)
        shift, scale = self.final_adaln(c)
        out = self.final(modulate(self.final_norm(tokens), shift, scale))
        return unpatchify(out.astype(jnp.float32), grid, cfg.patch, self.latent_channels)


def dit_flops(
    cfg: DiTConfig,
    grid: Sequence[int],
    text_len: int,
    *,
    latent_channels: int = 8,
    text_dim: int | None = None,
    freq_dim: int = 256,
) -> dict[str, int]:
    """Forward-pass FLOPs of one clip (matmuls and attention, 2 FLOPs per multiply-add).

    ``grid`` is the patch grid ``(T, H, W)``. Terms that run once per clip (timestep MLP,
    every adaLN projection) are counted once, not per token. Elementwise work (norms,
    softmax, GELU) is not counted. A training step costs about 3x the forward pass
    (backward = 2x forward), plus another forward per block with ``cfg.remat``.

    Returns a dict: ``per_clip``, ``tokens`` (linear layers applied to every token),
    ``attention`` (the q.k and attn.v products), ``text`` (text projection and the
    cross-attention keys/values), and ``total``.
    """
    T, H, W = (int(g) for g in grid)
    n, L, d = T * H * W, int(text_len), cfg.hidden
    e = d if text_dim is None else int(text_dim)
    p = math.prod(cfg.patch) * latent_channels
    r = int(d * cfg.mlp_ratio)
    factorized = cfg.attention == "factorized"

    def mm(rows: int, din: int, dout: int) -> int:
        return 2 * rows * din * dout

    chunks = 9 if factorized else 6
    per_clip = mm(1, freq_dim, d) + mm(1, d, d) + cfg.depth * mm(1, d, chunks * d) + mm(1, d, 2 * d)
    self_proj = mm(n, d, 3 * d) + mm(n, d, d)
    block_tokens = self_proj * (2 if factorized else 1) + 2 * mm(n, d, d) + mm(n, d, r) + mm(n, r, d)
    tokens = mm(n, p, d) + cfg.depth * block_tokens + mm(n, d, p)
    self_attn = 4 * n * (H * W + T) * d if factorized else 4 * n * n * d
    attention = cfg.depth * (self_attn + 4 * n * L * d)
    text = mm(L, e, d) + mm(L, d, d) + cfg.depth * mm(L, d, 2 * d)
    return {"per_clip": per_clip, "tokens": tokens, "attention": attention, "text": text,
            "total": per_clip + tokens + attention + text}


def biggest_gemm(cfg: DiTConfig, tokens: int, text_len: int, batch: int) -> tuple[int, int, int]:
    """``(M, K, N)`` of the largest matrix product in a forward pass of ``batch`` clips.

    Candidates: the fused q/k/v projection ``(b n, d) x (d, 3d)``, the MLP's two layers
    ``(b n, d) x (d, r)`` and ``(b n, r) x (r, d)``, and the cross-attention key/value
    projection of the text ``(b L, d) x (d, 2d)`` (with long prompts and few video tokens
    this one is the biggest). :func:`bench_dit` times a lone matmul of this shape as the
    machine's reference rate.
    """
    d, r = cfg.hidden, int(cfg.hidden * cfg.mlp_ratio)
    rows, text_rows = batch * tokens, batch * text_len
    candidates = [(rows, d, 3 * d), (rows, d, r), (rows, r, d), (text_rows, d, 2 * d)]
    return max(candidates, key=math.prod)


def _bench_config(base: DiTConfig, which: str | DiTConfig) -> DiTConfig:
    """A preset name keeps ``base``'s patch, attention, position embedding, remat/scan and dtype."""
    if isinstance(which, DiTConfig):
        return which
    if which not in PRESETS:
        raise ValueError(f"unknown DiT preset {which!r}; valid: {', '.join(PRESETS)}")
    hidden, depth, heads = PRESETS[which]
    cfg = dataclasses.replace(base, preset=which, hidden=hidden, depth=depth, num_heads=heads)
    validate(cfg)
    return cfg


def bench_dit(
    cfg: Config,
    *,
    steps: int | None = None,
    presets: Sequence[str | DiTConfig] | None = None,
    batch_size: int | None = None,
) -> list[dict]:
    """``sora-jax bench dit``: forward and train-step time of DiT presets on this machine.

    Args:
      cfg: the clip is the world clip seen through the VAE (``cfg.world`` frames and size,
        divided by ``cfg.vae``'s temporal/spatial factors); text is ``cfg.text.max_tokens``
        random embeddings of ``cfg.text`` width (the text encoder itself is not timed).
      steps: timed calls per measurement (median reported); default 10, 2 in smoke mode.
      presets: what to bench: preset names (``"tiny"``, ``"S"``, ...: ``cfg.dit`` with that
        width/depth/heads, its other fields kept) or ``DiTConfig`` objects. Default: ``cfg.dit``.
      batch_size: clips per call; default ``cfg.train.batch_size``.

    The train step is a forward, an MSE to a random target (same cost as the diffusion
    loss), the backward pass and an AdamW update, all jitted. FLOPs are *model* FLOPs from
    :func:`dit_flops` (train step = 3x forward; remat's recomputation and elementwise work
    are not counted), so the rate is comparable across settings.

    The reference: a jitted matmul in the model's dtype, of the shape of the model's
    biggest GEMM (:func:`biggest_gemm`), timed in the same run and interleaved with the
    model calls, so both see the same machine load. Per preset the rows are that matmul,
    ``dit forward`` and ``dit train_step``; ``ratio_to_matmul`` is the row's FLOP rate over
    the matmul's (what fraction of the machine's achievable dense rate the model gets).
    ``cores_used`` is the process's CPU seconds over wall seconds for that row: on a machine
    shared with other work it shows how much of the CPU the measurement actually had.
    """
    import time

    import numpy as np
    import optax

    from sora_jax.config import smoke_mode

    steps = (2 if smoke_mode() else 10) if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps={steps}: need >= 1")
    b = cfg.train.batch_size if batch_size is None else int(batch_size)
    if b < 1:
        raise ValueError(f"batch_size={b}: need >= 1")
    configs = [cfg.dit] if presets is None else [_bench_config(cfg.dit, p) for p in presets]
    if not configs:
        raise ValueError(f"presets={presets!r}: name at least one of {', '.join(PRESETS)}")
    w, v = cfg.world, cfg.vae
    latent = (1 + (w.num_frames - 1) // v.temporal_factor, w.height // v.spatial_factor,
              w.width // v.spatial_factor, v.latent_channels)
    L, e = cfg.text.max_tokens, cfg.text.external_dim or cfg.text.width
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((b, *latent), np.float32))
    t = jnp.asarray(rng.uniform(size=b).astype(np.float32))
    text = jnp.asarray(rng.standard_normal((b, L, e), np.float32))
    mask = jnp.ones((b, L), bool)

    cpu: dict[str, float] = {}

    def timed(fn, *args, reps: int = 1, name: str | None = None) -> float:
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(reps):
            out = fn(*args)
        jax.block_until_ready(out)
        wall = time.perf_counter() - t0
        if name is not None:                 # CPU seconds of all this process's threads
            cpu[name] = cpu.get(name, 0.0) + time.process_time() - c0
        return wall / reps

    def sig3(value: float) -> float:          # 3 significant digits: readable and never rounds to 0
        return float(f"{value:.3g}")

    rows = []
    for d in configs:
        grid = grid_shape(latent[:3], d.patch)
        n = math.prod(grid)
        model = nnx.jit(lambda d=d: VideoDiT(d, v.latent_channels, e, rngs=nnx.Rngs(0)))()
        params = sum(a.size for a in jax.tree.leaves(nnx.state(model, nnx.Param)))
        opt = nnx.Optimizer(model, optax.adamw(1e-4), wrt=nnx.Param)

        @nnx.jit
        def forward(model, x, t, text, mask):
            return model(x, t, text, mask)

        @nnx.jit
        def train_step(model, opt, x, t, text, mask):
            loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x, t, text, mask) - x) ** 2))(model)
            opt.update(model, grads)
            return loss

        M, K, N = biggest_gemm(d, n, L, b)
        mm_dtype = dtype_of(d.dtype)
        lhs = jnp.asarray(rng.standard_normal((M, K), np.float32), mm_dtype)
        rhs = jnp.asarray(rng.standard_normal((K, N), np.float32), mm_dtype)
        matmul = jax.jit(jnp.matmul)

        flops = dit_flops(d, grid, L, latent_channels=v.latent_channels, text_dim=e)["total"] * b
        batch = (x, t, text, mask)
        cases = {"forward": (forward, (model, *batch), flops),
                 "train_step": (train_step, (model, opt, *batch), 3 * flops),
                 "matmul": (matmul, (lhs, rhs), 2 * M * K * N)}
        first = {name: timed(fn, *args) for name, (fn, args, _) in cases.items()}   # compiles
        # One matmul sample averages enough calls to last ~0.2 s, so that scheduler noise on a
        # shared machine hits it as it hits the (longer) model calls.
        reps = {"forward": 1, "train_step": 1, "matmul": int(np.clip(0.2 / timed(matmul, lhs, rhs), 1, 100))}
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpu.clear()
        for _ in range(steps):               # interleaved: every measurement sees the same load
            for name in ("forward", "matmul", "train_step", "matmul"):
                fn, args, _ = cases[name]
                times[name].append(timed(fn, *args, reps=reps[name], name=name))
        rate = {name: cases[name][2] / float(np.median(times[name])) for name in cases}
        common = {"preset": d.preset, "dtype": d.dtype, "attention": d.attention, "batch": b,
                  "latent": "x".join(map(str, latent)), "tokens": n, "text_len": L}
        for name in ("matmul", "forward", "train_step"):
            med = float(np.median(times[name]))
            what = f"matmul {M}x{K}x{N}" if name == "matmul" else f"dit {name}"
            rows.append({"what": what, **common, "params_M": None if name == "matmul" else round(params / 1e6, 2),
                         "first_call_s": round(first[name], 2), "ms_per_call": sig3(1000 * med),
                         "gflop_per_call": sig3(cases[name][2] / 1e9),
                         "gflop_per_s": sig3(rate[name] / 1e9),
                         "ratio_to_matmul": round(rate[name] / rate["matmul"], 2),
                         "cores_used": round(cpu[name] / (reps[name] * sum(times[name])), 2)})
        del model, opt, cases
    return rows
