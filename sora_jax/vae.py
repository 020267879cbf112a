"""Causal 3D video autoencoder: the compression network Sora's diffusion model works in.

A clip of ``1 + 4k`` frames is squeezed into a latent grid of ``1 + k`` frames that is
``spatial_factor`` times smaller in height and width (MAGVIT-v2, CogVideoX, Wan).

Axes (also used in the einops strings below)::

    b  batch          t  frames            h, w  pixels (or feature rows/cols)
    c  channels       p, q  spatial sub-positions of a pixel (un)shuffle
    r  temporal sub-position of a time (un)shuffle

Video is channels-last ``(b, t, h, w, c)`` float in ``[-1, 1]`` inside the model;
uint8 lives only at the edges (:func:`to_float` / :func:`to_uint8`). Latents are
``(b, 1 + (t - 1) / tf, h / sf, w / sf, latent_channels)``.

The design, piece by piece
--------------------------
* **Causality.** Every temporal convolution pads time on the *past side only*, with
  ``kt - 1`` copies of the first frame (``time_padding="replicate"``, CogVideoX /
  MAGVIT-v2) or zeros (``"zeros"``, Wan). Temporal down-sampling pairs frames
  ``(0, 0), (1, 2), (3, 4), ...`` (frame 0 is paired with a copy of itself), so latent
  frame 0 depends on frame 0 only: an image is a one-frame video, and changing frame
  ``j`` never changes an earlier latent frame. Norms are per position (RMSNorm over
  channels, as in Wan), never over time, so they cannot leak the future.
* **Cheap on a CPU.** A pixel-unshuffle *stem* (space-to-depth by ``stem_unshuffle``)
  moves the first layers off full resolution, and the decoder ends in the inverse
  pixel shuffle; ``stem_temporal=2`` also pairs frames in the stem (17 frames -> 9).
  The stem/head convolutions work per frame; time is mixed in the residual blocks.
  ``factorized=True`` uses (2+1)D convolutions: a 3x3 convolution in each frame
  followed by a causal 3-tap convolution in time (12 C^2 multiply-adds per position
  instead of 27 C^2; on XLA:CPU a full 3x3x3 kernel trained ~6x slower here). Down/up-sampling is a space/time-to-depth shuffle
  plus a linear map, with a parameter-free shortcut (channel averaging / repeating,
  as in DC-AE) so the signal has an identity-like path through every resolution.
* **Long clips.** :func:`encode_chunked` / :func:`decode_chunked` run the network chunk
  by chunk. Each causal layer keeps the last ``kt - 1`` frames of its input (a
  :class:`TimeContext`) and prepends them to the next chunk, so the chunked result
  equals the full one while memory stays flat as clips grow.
* **Big frames.** :func:`encode_tiled` / :func:`decode_tiled` cut frames into
  overlapping spatial tiles and blend the results with linear ramps.
* **Posterior.** The encoder outputs a diagonal Gaussian (mean, log-variance); the KL
  term to N(0, I) keeps the latent bounded. Per-channel shift/scale measured with
  :func:`measure_latent_stats` make latents unit-variance for the diffusion model.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

import einops
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, UInt8

from sora_jax.config import Config, VAEConfig, from_dict, to_dict

# --------------------------------------------------------------------------- #
# Pixels at the edges, validation at the boundary
# --------------------------------------------------------------------------- #


def to_float(video: UInt8[np.ndarray, "... c"]) -> Float[Array, "... c"]:
    """uint8 pixels ``[0, 255]`` -> float32 in ``[-1, 1]`` (the model's input range)."""
    video = np.asarray(video)
    if video.dtype != np.uint8:
        raise ValueError(f"to_float expects uint8 pixels, got dtype {video.dtype}")
    return jnp.asarray(video, jnp.float32) / 127.5 - 1.0


def to_uint8(video: Float[Array, "... c"]) -> UInt8[np.ndarray, "... c"]:
    """float in ``[-1, 1]`` -> uint8 ``[0, 255]`` (clipped and rounded), as numpy."""
    x = np.asarray(jnp.asarray(video, jnp.float32))
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def check_config(cfg: VAEConfig) -> None:
    """Raise ``ValueError`` naming the bad field when ``cfg`` cannot build a VAE."""
    if cfg.spatial_factor not in (4, 8, 16):
        raise ValueError(f"vae.spatial_factor={cfg.spatial_factor}: valid values are 4, 8, 16")
    if cfg.temporal_factor not in (1, 2, 4):
        raise ValueError(f"vae.temporal_factor={cfg.temporal_factor}: valid values are 1, 2, 4")
    s = cfg.stem_unshuffle
    if s < 1 or cfg.spatial_factor % s or (cfg.spatial_factor // s) & (cfg.spatial_factor // s - 1):
        valid = [v for v in (1, 2, 4, 8, 16) if v <= cfg.spatial_factor]
        raise ValueError(
            f"vae.stem_unshuffle={s}: must divide spatial_factor={cfg.spatial_factor} by a power of two; valid: {valid}"
        )
    if not cfg.channel_mults or min(cfg.channel_mults) < 1 or cfg.base_channels < 1:
        raise ValueError(f"vae.base_channels={cfg.base_channels}, channel_mults={cfg.channel_mults}: need positive values")
    if cfg.num_res_blocks < 0 or min(cfg.encoder_blocks + cfg.decoder_blocks, default=0) < 0:
        raise ValueError(f"vae.num_res_blocks={cfg.num_res_blocks}, encoder_blocks={cfg.encoder_blocks}, "
                         f"decoder_blocks={cfg.decoder_blocks}: block counts must be >= 0")
    if cfg.stem_temporal not in (1, 2) or cfg.stem_temporal > cfg.temporal_factor:
        raise ValueError(f"vae.stem_temporal={cfg.stem_temporal}: valid values are 1 or 2 (<= temporal_factor={cfg.temporal_factor})")
    n_stages = len(stage_plan(cfg)[0])
    for name in ("encoder_blocks", "decoder_blocks"):
        v = getattr(cfg, name)
        if v and len(v) != n_stages:
            raise ValueError(f"vae.{name}={v}: needs one count per stage ({n_stages} stages for this config) or () for num_res_blocks")
    if cfg.time_padding not in ("replicate", "zeros"):
        raise ValueError(f"vae.time_padding={cfg.time_padding!r}: valid values are 'replicate', 'zeros'")
    if cfg.dtype not in ("float32", "bfloat16"):
        raise ValueError(f"vae.dtype={cfg.dtype!r}: valid values are 'float32', 'bfloat16'")
    if not 1 <= cfg.latent_channels <= 64:
        raise ValueError(f"vae.latent_channels={cfg.latent_channels}: must be in 1..64")


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_video(video: Any, cfg: VAEConfig, *, what: str = "video") -> jax.Array:
    """Validate a float video ``(b, t, h, w, c)`` in ``[-1, 1]`` and return it as a jax array.

    uint8 input is refused with a message pointing at :func:`to_float`: silently
    dividing by 255 (or not) is the classic off-by-a-range bug.
    """
    shape = tuple(np.shape(video))
    dtype = np.dtype(video.dtype) if hasattr(video, "dtype") else np.asarray(video).dtype
    if dtype == np.uint8:
        raise ValueError(
            f"{what} has dtype uint8 (pixels 0..255); the VAE expects float in [-1, 1]. "
            "Convert with sora_jax.vae.to_float(video)."
        )
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{what} has dtype {dtype}; expected a float dtype with values in [-1, 1]")
    if len(shape) != 5:
        hint = " (add a batch axis: video[None])" if len(shape) == 4 else ""
        raise ValueError(f"{what} has shape {shape}; expected 5 axes (b, t, h, w, c){hint}")
    _, t, h, w, c = shape
    tf, sf = cfg.temporal_factor, cfg.spatial_factor
    if c != cfg.in_channels:
        raise ValueError(f"{what} has {c} channels; this VAE takes in_channels={cfg.in_channels}")
    if (t - 1) % tf:
        lo = 1 + tf * ((t - 1) // tf)
        raise ValueError(
            f"{what} has {t} frames; the causal VAE takes 1 + {tf}k frames (e.g. {lo} or {lo + tf})"
        )
    if h % sf or w % sf:
        raise ValueError(
            f"{what} is {h}x{w} pixels; height and width must be divisible by spatial_factor={sf} "
            f"(e.g. {max(sf, h // sf * sf)}x{max(sf, w // sf * sf)})"
        )
    x = jnp.asarray(video)
    if _is_concrete(x) and x.size:
        lo, hi = float(jnp.min(x)), float(jnp.max(x))
        if lo < -1.01 or hi > 1.01:
            raise ValueError(
                f"{what} values span [{lo:.3g}, {hi:.3g}]; expected [-1, 1]. "
                "For pixels in [0, 255] use sora_jax.vae.to_float(uint8_video); for [0, 1] use 2 * x - 1."
            )
    return x


def check_latent(z: Any, cfg: VAEConfig) -> jax.Array:
    """Validate a latent ``(b, t', h', w', latent_channels)``."""
    shape = tuple(np.shape(z))
    if len(shape) != 5 or shape[-1] != cfg.latent_channels:
        raise ValueError(f"latent has shape {shape}; expected (b, t, h, w, {cfg.latent_channels})")
    if shape[1] < 1:
        raise ValueError(f"latent has {shape[1]} frames; need at least 1")
    return jnp.asarray(z)


def latent_shape(cfg: VAEConfig, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Latent ``(t', h', w', c)`` of a ``frames x height x width`` clip."""
    return (1 + (frames - 1) // cfg.temporal_factor, height // cfg.spatial_factor,
            width // cfg.spatial_factor, cfg.latent_channels)


def compression_ratio(cfg: VAEConfig, frames: int, height: int, width: int) -> float:
    """Number of pixel values divided by number of latent values."""
    return frames * height * width * cfg.in_channels / math.prod(latent_shape(cfg, frames, height, width))


# --------------------------------------------------------------------------- #
# Shuffles: space/time <-> channels
# --------------------------------------------------------------------------- #


def space_to_depth(x: Float[Array, "b t h w c"], f: int) -> Float[Array, "b t h/f w/f c*f*f"]:
    """Pixel unshuffle: every ``f x f`` block becomes one position with ``f*f*c`` channels."""
    if f == 1:
        return x
    return einops.rearrange(x, "b t (h p) (w q) c -> b t h w (p q c)", p=f, q=f)


def depth_to_space(x: Float[Array, "b t h w c"], f: int) -> Float[Array, "b t h*f w*f c/(f*f)"]:
    """Pixel shuffle, the inverse of :func:`space_to_depth`."""
    if f == 1:
        return x
    return einops.rearrange(x, "b t h w (p q c) -> b t (h p) (w q) c", p=f, q=f)


def time_to_depth(x: Float[Array, "b t h w c"], first: bool, padding: str = "replicate") -> Float[Array, "b t2 h w c2"]:
    """Causal temporal unshuffle by 2: frames ``(0,0), (1,2), (3,4) ...`` become one frame each.

    ``first=True`` (the start of a clip) pads one frame in front -- a copy of frame 0
    or zeros -- so ``1 + 2k`` frames give ``1 + k``. Later chunks of a streamed clip
    have an even number of frames and need no padding.
    """
    if first:
        pad = x[:, :1] if padding == "replicate" else jnp.zeros_like(x[:, :1])
        x = jnp.concatenate([pad, x], axis=1)
    return einops.rearrange(x, "b (t r) h w c -> b t h w (r c)", r=2)


def depth_to_time(x: Float[Array, "b t h w c"], first: bool) -> Float[Array, "b t2 h w c2"]:
    """Inverse of :func:`time_to_depth`: at the start of a clip the padded frame is dropped."""
    x = einops.rearrange(x, "b t h w (r c) -> b (t r) h w c", r=2)
    return x[:, 1:] if first else x


# --------------------------------------------------------------------------- #
# Temporal context: what a causal layer remembers between chunks
# --------------------------------------------------------------------------- #


class TimeContext:
    """Past frames for every causal layer, threaded through one forward pass.

    ``cache`` is ``None`` at the start of a clip (layers pad with the first frame or
    zeros) or the list returned by the previous chunk. Layers call :meth:`pad` in a
    fixed order; each call consumes one entry of ``cache`` and records the last
    ``n`` frames of its padded input in :attr:`new_cache` for the next chunk.
    """

    def __init__(self, cache: list[jax.Array] | None = None, padding: str = "replicate"):
        self.cache = cache
        self.padding = padding
        self.new_cache: list[jax.Array] = []

    @property
    def first(self) -> bool:
        return self.cache is None

    def pad(self, x: Float[Array, "b t h w c"], n: int) -> Float[Array, "b n+t h w c"]:
        i = len(self.new_cache)
        if self.cache is None:
            past = jnp.repeat(x[:, :1], n, axis=1) if self.padding == "replicate" else jnp.zeros_like(x[:, :1].repeat(n, 1))
        else:
            past = self.cache[i].astype(x.dtype)
        xp = jnp.concatenate([past, x], axis=1)
        self.new_cache.append(xp[:, -n:])
        return xp


# --------------------------------------------------------------------------- #
# Layers
# --------------------------------------------------------------------------- #


def _dtype(cfg: VAEConfig):
    return jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32


class SpatialConv(nnx.Module):
    """A ``k x k`` convolution applied to every frame on its own (zero 'SAME' padding)."""

    def __init__(self, cin: int, cout: int, k: int = 3, *, dtype=jnp.float32, zero_init: bool = False, rngs: nnx.Rngs):
        init = nnx.initializers.zeros_init() if zero_init else nnx.initializers.lecun_normal()
        self.conv = nnx.Conv(cin, cout, (k, k), padding="SAME", dtype=dtype, kernel_init=init, rngs=rngs)

    def __call__(self, x: Float[Array, "b t h w c"], ctx: TimeContext) -> Float[Array, "b t h w d"]:
        b = x.shape[0]
        y = self.conv(einops.rearrange(x, "b t h w c -> (b t) h w c"))
        return einops.rearrange(y, "(b t) h w c -> b t h w c", b=b)


class CausalTimeConv(nnx.Module):
    """A causal ``kt``-tap convolution along time only, written as one matmul.

    ``y[t] = W @ concat(x[t - kt + 1], ..., x[t])``; frames before the clip come from
    :meth:`TimeContext.pad`. (A dense layer on stacked frames is 2x faster than a
    ``kt x 1 x 1`` ``lax.conv`` on XLA:CPU and identical in value.)
    """

    def __init__(self, cin: int, cout: int, kt: int = 3, *, dtype=jnp.float32, zero_init: bool = False, rngs: nnx.Rngs):
        self.kt = kt
        init = nnx.initializers.zeros_init() if zero_init else nnx.initializers.lecun_normal()
        self.proj = nnx.Linear(kt * cin, cout, dtype=dtype, kernel_init=init, rngs=rngs)

    def __call__(self, x: Float[Array, "b t h w c"], ctx: TimeContext) -> Float[Array, "b t h w d"]:
        t = x.shape[1]
        xp = ctx.pad(x, self.kt - 1) if self.kt > 1 else x
        stacked = jnp.concatenate([xp[:, i : i + t] for i in range(self.kt)], axis=-1)
        return self.proj(stacked)


class CausalConv3d(nnx.Module):
    """A full ``kt x k x k`` 3D convolution, causal in time, zero 'SAME' padding in space."""

    def __init__(self, cin: int, cout: int, kt: int = 3, k: int = 3, *, dtype=jnp.float32, zero_init: bool = False, rngs: nnx.Rngs):
        self.kt = kt
        init = nnx.initializers.zeros_init() if zero_init else nnx.initializers.lecun_normal()
        self.conv = nnx.Conv(cin, cout, (kt, k, k), padding=((0, 0), (k // 2, k // 2), (k // 2, k // 2)),
                             dtype=dtype, kernel_init=init, rngs=rngs)

    def __call__(self, x: Float[Array, "b t h w c"], ctx: TimeContext) -> Float[Array, "b t h w d"]:
        xp = ctx.pad(x, self.kt - 1) if self.kt > 1 else x
        return self.conv(xp)


class Conv2Plus1D(nnx.Module):
    """(2+1)D factorised convolution: 3x3 in space, then a causal 3-tap conv in time."""

    def __init__(self, cin: int, cout: int, *, dtype=jnp.float32, zero_init: bool = False, rngs: nnx.Rngs):
        self.spatial = SpatialConv(cin, cout, 3, dtype=dtype, rngs=rngs)
        self.temporal = CausalTimeConv(cout, cout, 3, dtype=dtype, zero_init=zero_init, rngs=rngs)

    def __call__(self, x: Float[Array, "b t h w c"], ctx: TimeContext) -> Float[Array, "b t h w d"]:
        return self.temporal(self.spatial(x, ctx), ctx)


def make_conv(cin: int, cout: int, cfg: VAEConfig, *, zero_init: bool = False, rngs: nnx.Rngs) -> nnx.Module:
    """The VAE's 3x3x3 causal convolution: (2+1)D when ``cfg.factorized`` else full 3D."""
    if cfg.factorized:
        return Conv2Plus1D(cin, cout, dtype=_dtype(cfg), zero_init=zero_init, rngs=rngs)
    return CausalConv3d(cin, cout, dtype=_dtype(cfg), zero_init=zero_init, rngs=rngs)


class ResBlock(nnx.Module):
    """``x + conv(silu(norm(conv(silu(norm(x))))))``; the second conv starts at zero."""

    def __init__(self, cin: int, cout: int, cfg: VAEConfig, *, rngs: nnx.Rngs):
        dt = _dtype(cfg)
        self.norm1 = nnx.RMSNorm(cin, dtype=dt, rngs=rngs)
        self.conv1 = make_conv(cin, cout, cfg, rngs=rngs)
        self.norm2 = nnx.RMSNorm(cout, dtype=dt, rngs=rngs)
        self.conv2 = make_conv(cout, cout, cfg, zero_init=True, rngs=rngs)
        self.skip = nnx.Linear(cin, cout, dtype=dt, rngs=rngs) if cin != cout else None

    def __call__(self, x: Float[Array, "b t h w c"], ctx: TimeContext) -> Float[Array, "b t h w d"]:
        h = self.conv1(jax.nn.silu(self.norm1(x)), ctx)
        h = self.conv2(jax.nn.silu(self.norm2(h)), ctx)
        return (x if self.skip is None else self.skip(x)) + h


class Downsample(nnx.Module):
    """Halve space and/or time: shuffle into channels, then a linear map to ``cout``.

    The shortcut averages groups of the shuffled channels down to ``cout`` (DC-AE's
    space-to-channel shortcut), so an untrained block already passes the signal on.
    """

    def __init__(self, cin: int, cout: int, space: bool, time: bool, cfg: VAEConfig, *, rngs: nnx.Rngs):
        self.space, self.time, self.padding = space, time, cfg.time_padding
        f = (4 if space else 1) * (2 if time else 1)
        self.cin_shuffled, self.cout = cin * f, cout
        self.proj = nnx.Linear(cin * f, cout, dtype=_dtype(cfg), rngs=rngs)

    def __call__(self, x: Float[Array, "b t h w c"], ctx: TimeContext) -> Float[Array, "b t2 h2 w2 d"]:
        if self.time:
            x = time_to_depth(x, ctx.first, self.padding)
        if self.space:
            x = space_to_depth(x, 2)
        y = self.proj(x)
        if self.cin_shuffled % self.cout == 0:
            y = y + einops.reduce(x, "b t h w (g c) -> b t h w c", "mean", c=self.cout).astype(y.dtype)
        return y


class Upsample(nnx.Module):
    """Double space and/or time: a linear map to ``cout * factor`` channels, then un-shuffle.

    The shortcut repeats the input channels up to ``cout * factor`` before the
    un-shuffle (the mirror image of :class:`Downsample`'s averaging).
    """

    def __init__(self, cin: int, cout: int, space: bool, time: bool, cfg: VAEConfig, *, rngs: nnx.Rngs):
        self.space, self.time = space, time
        f = (4 if space else 1) * (2 if time else 1)
        self.cin, self.cout_shuffled = cin, cout * f
        self.proj = nnx.Linear(cin, cout * f, dtype=_dtype(cfg), rngs=rngs)

    def __call__(self, x: Float[Array, "b t h w c"], ctx: TimeContext) -> Float[Array, "b t2 h2 w2 d"]:
        y = self.proj(x)
        if self.cout_shuffled % self.cin == 0:
            y = y + einops.repeat(x, "b t h w c -> b t h w (g c)", g=self.cout_shuffled // self.cin).astype(y.dtype)
        if self.space:
            y = depth_to_space(y, 2)
        if self.time:
            y = depth_to_time(y, ctx.first)
        return y


def stage_plan(cfg: VAEConfig) -> tuple[list[int], list[tuple[bool, bool]]]:
    """Channels per stage and ``(space_down, time_down)`` at each stage transition.

    ``log2(spatial_factor / stem_unshuffle)`` spatial halvings and
    ``log2(temporal_factor / stem_temporal)`` temporal halvings happen at the *first* transitions
    (where they save the most compute); ``channel_mults`` is extended with its last
    value when more transitions are needed than it lists.
    """
    n_space = int(round(math.log2(cfg.spatial_factor // cfg.stem_unshuffle)))
    n_time = int(round(math.log2(cfg.temporal_factor // cfg.stem_temporal)))
    n_trans = max(n_space, n_time, len(cfg.channel_mults) - 1)
    mults = list(cfg.channel_mults) + [cfg.channel_mults[-1]] * (n_trans + 1 - len(cfg.channel_mults))
    chans = [cfg.base_channels * m for m in mults]
    return chans, [(i < n_space, i < n_time) for i in range(n_trans)]


class Encoder(nnx.Module):
    """Video ``(b, t, h, w, 3)`` -> posterior parameters ``(b, t', h', w', 2 * latent)``."""

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        chans, downs = stage_plan(cfg)
        s = cfg.stem_unshuffle
        self.stem, self.stem_t, self.padding = s, cfg.stem_temporal, cfg.time_padding
        n_blocks = cfg.encoder_blocks or (cfg.num_res_blocks,) * len(chans)
        # conv_in / conv_out work per frame (3x3): time is mixed inside the res blocks
        self.conv_in = SpatialConv(cfg.in_channels * s * s * cfg.stem_temporal, chans[0], 3, dtype=_dtype(cfg), rngs=rngs)
        self.blocks = nnx.List([
            nnx.List([ResBlock(chans[i], chans[i], cfg, rngs=rngs) for _ in range(n_blocks[i])])
            for i in range(len(chans))
        ])
        self.downs = nnx.List([Downsample(chans[i], chans[i + 1], sd, td, cfg, rngs=rngs) for i, (sd, td) in enumerate(downs)])
        self.norm_out = nnx.RMSNorm(chans[-1], dtype=_dtype(cfg), rngs=rngs)
        self.conv_out = make_conv(chans[-1], 2 * cfg.latent_channels, cfg, rngs=rngs)

    def __call__(self, x, ctx: TimeContext, feats: dict | None = None):
        x = space_to_depth(x, self.stem)
        if self.stem_t == 2:
            x = time_to_depth(x, ctx.first, self.padding)
        h = self.conv_in(x, ctx)
        for i, blocks in enumerate(self.blocks):
            for blk in blocks:
                h = blk(h, ctx)
            if feats is not None:
                feats[f"encoder_stage{i}"] = h
            if i < len(self.downs):
                h = self.downs[i](h, ctx)
        return self.conv_out(jax.nn.silu(self.norm_out(h)), ctx)


class Decoder(nnx.Module):
    """Latent ``(b, t', h', w', latent)`` -> video ``(b, t, h, w, 3)`` (unbounded; ~[-1, 1])."""

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        chans, downs = stage_plan(cfg)
        s = cfg.stem_unshuffle
        self.stem, self.stem_t = s, cfg.stem_temporal
        n_blocks = cfg.decoder_blocks or (cfg.num_res_blocks,) * len(chans)
        self.conv_in = make_conv(cfg.latent_channels, chans[-1], cfg, rngs=rngs)
        # stages run from the coarsest (last) to the finest (first)
        self.blocks = nnx.List([
            nnx.List([ResBlock(chans[i], chans[i], cfg, rngs=rngs) for _ in range(n_blocks[i])])
            for i in reversed(range(len(chans)))
        ])
        self.ups = nnx.List([Upsample(chans[i + 1], chans[i], sd, td, cfg, rngs=rngs)
                             for i, (sd, td) in reversed(list(enumerate(downs)))])
        self.norm_out = nnx.RMSNorm(chans[0], dtype=_dtype(cfg), rngs=rngs)
        self.conv_out = SpatialConv(chans[0], cfg.in_channels * s * s * cfg.stem_temporal, 3, dtype=_dtype(cfg), rngs=rngs)

    def __call__(self, z, ctx: TimeContext, feats: dict | None = None):
        h = self.conv_in(z, ctx)
        n = len(self.blocks)
        for j, blocks in enumerate(self.blocks):
            for blk in blocks:
                h = blk(h, ctx)
            if feats is not None:
                feats[f"decoder_stage{n - 1 - j}"] = h
            if j < len(self.ups):
                h = self.ups[j](h, ctx)
        y = self.conv_out(jax.nn.silu(self.norm_out(h)), ctx)
        if self.stem_t == 2:
            y = depth_to_time(y, ctx.first)
        return depth_to_space(y, self.stem)


# --------------------------------------------------------------------------- #
# Posterior
# --------------------------------------------------------------------------- #


class Posterior(NamedTuple):
    """Diagonal Gaussian ``N(mean, exp(logvar))`` over the latent grid (a pytree)."""

    mean: Float[Array, "b t h w c"]
    logvar: Float[Array, "b t h w c"]

    @property
    def std(self) -> jax.Array:
        return jnp.exp(0.5 * self.logvar)

    def sample(self, key: jax.Array) -> jax.Array:
        """``mean + std * eps`` with ``eps ~ N(0, I)`` drawn from ``key``."""
        return self.mean + self.std * jax.random.normal(key, self.mean.shape, self.mean.dtype)

    def mode(self) -> jax.Array:
        return self.mean

    def kl(self) -> jax.Array:
        """KL(q || N(0, I)) per latent element, shape ``(b, t, h, w, c)``."""
        return 0.5 * (jnp.square(self.mean) + jnp.exp(self.logvar) - 1.0 - self.logvar)


def _posterior(moments: jax.Array) -> Posterior:
    mean, logvar = jnp.split(moments.astype(jnp.float32), 2, axis=-1)
    return Posterior(mean, jnp.clip(logvar, -30.0, 20.0))


# --------------------------------------------------------------------------- #
# The model
# --------------------------------------------------------------------------- #


class VideoVAE(nnx.Module):
    """Causal video VAE: ``encode(video) -> Posterior``, ``decode(z) -> video``.

    >>> vae = VideoVAE(VAEConfig(), rngs=nnx.Rngs(0))
    >>> post = vae.encode(video)            # video (b, 1 + 4k, h, w, 3) in [-1, 1]
    >>> recon = vae.decode(post.mean)       # (b, 1 + 4k, h, w, 3)
    """

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        check_config(cfg)
        self.cfg = cfg
        self.encoder = Encoder(cfg, rngs=rngs)
        self.decoder = Decoder(cfg, rngs=rngs)

    # -- streaming building blocks (no validation: used inside jit) ---------------
    def encode_moments(self, video, cache=None, feats=None):
        """Posterior moments of one chunk plus the temporal cache for the next chunk."""
        ctx = TimeContext(cache, self.cfg.time_padding)
        moments = self.encoder(video.astype(_dtype(self.cfg)), ctx, feats)
        return _posterior(moments), ctx.new_cache

    def decode_frames(self, z, cache=None, feats=None):
        """Frames of one latent chunk plus the temporal cache for the next chunk."""
        ctx = TimeContext(cache, self.cfg.time_padding)
        video = self.decoder(z.astype(_dtype(self.cfg)), ctx, feats)
        return video.astype(jnp.float32), ctx.new_cache

    # -- public API ---------------------------------------------------------------
    def encode(self, video: Float[Array, "b t h w c"]) -> Posterior:
        """Posterior over the latent of a float video in ``[-1, 1]`` with ``1 + tf*k`` frames."""
        video = check_video(video, self.cfg)
        return self.encode_moments(video)[0]

    def decode(self, z: Float[Array, "b tl hl wl cl"]) -> Float[Array, "b t h w c"]:
        """Video (float, roughly ``[-1, 1]``) of a latent with ``1 + k`` frames -> ``1 + tf*k`` frames."""
        z = check_latent(z, self.cfg)
        return self.decode_frames(z)[0]

    def __call__(self, video: Float[Array, "b t h w c"], *, key: jax.Array | None = None) -> dict[str, jax.Array]:
        """Encode, sample (``key``) or take the mean (no key), decode; return named intermediates.

        Keys: ``video``, ``stem`` (pixel-unshuffled input), ``encoder_stage{i}``,
        ``mean``, ``logvar``, ``z``, ``decoder_stage{i}``, ``recon``.
        """
        video = check_video(video, self.cfg)
        feats: dict[str, jax.Array] = {"video": video, "stem": space_to_depth(video, self.cfg.stem_unshuffle)}
        post, _ = self.encode_moments(video, feats=feats)
        z = post.mean if key is None else post.sample(key)
        recon, _ = self.decode_frames(z, feats=feats)
        feats.update(mean=post.mean, logvar=post.logvar, z=z, recon=recon)
        return feats


def num_params(model: nnx.Module) -> int:
    """Number of trainable parameters."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


# --------------------------------------------------------------------------- #
# Long clips: chunked (streamed) encode / decode
# --------------------------------------------------------------------------- #


@nnx.jit
def _encode_chunk(model: VideoVAE, x, cache):
    post, new_cache = model.encode_moments(x, cache)
    return post, new_cache


@nnx.jit
def _decode_chunk(model: VideoVAE, z, cache):
    return model.decode_frames(z, cache)


def encode_chunked(model: VideoVAE, video: Float[Array, "b t h w c"], *, chunk_latents: int = 2) -> Posterior:
    """Encode a long clip chunk by chunk with a cached temporal context.

    The first chunk is frame 0 alone (an image), then ``chunk_latents * tf`` frames at
    a time. Every causal layer carries the last ``kt - 1`` frames of its input to the
    next chunk, so the result equals :meth:`VideoVAE.encode` while activation memory
    depends on the chunk, not on the clip length.
    """
    cfg = model.cfg
    video = check_video(video, cfg)
    if chunk_latents < 1:
        raise ValueError(f"chunk_latents={chunk_latents}: must be >= 1")
    step = chunk_latents * cfg.temporal_factor
    bounds = [(0, 1)] + [(s, min(s + step, video.shape[1])) for s in range(1, video.shape[1], step)]
    means, logvars, cache = [], [], None
    for a, b in bounds:
        post, cache = _encode_chunk(model, video[:, a:b], cache)
        means.append(np.asarray(post.mean))
        logvars.append(np.asarray(post.logvar))
    return Posterior(jnp.asarray(np.concatenate(means, 1)), jnp.asarray(np.concatenate(logvars, 1)))


def decode_chunked(model: VideoVAE, z: Float[Array, "b tl hl wl cl"], *, chunk_latents: int = 2) -> Float[np.ndarray, "b t h w c"]:
    """Decode a long latent chunk by chunk (latent 0 alone, then ``chunk_latents`` at a time).

    Returns a numpy array assembled on the host, so device memory stays flat.
    """
    z = check_latent(z, model.cfg)
    if chunk_latents < 1:
        raise ValueError(f"chunk_latents={chunk_latents}: must be >= 1")
    bounds = [(0, 1)] + [(s, min(s + chunk_latents, z.shape[1])) for s in range(1, z.shape[1], chunk_latents)]
    out, cache = [], None
    for a, b in bounds:
        frames, cache = _decode_chunk(model, z[:, a:b], cache)
        out.append(np.asarray(frames))
    return np.concatenate(out, axis=1)


# --------------------------------------------------------------------------- #
# Big frames: spatial tiling with overlap blending
# --------------------------------------------------------------------------- #


def _tile_starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(n: int, overlap: int) -> np.ndarray:
    """Blend weights along one tile axis: rise over ``overlap`` at each end, 1 in the middle."""
    i = np.arange(n, dtype=np.float32) + 0.5
    if overlap <= 0:
        return np.ones(n, np.float32)
    return np.minimum(1.0, np.minimum(i, n - i) / overlap).astype(np.float32)


def _tiled(fn: Callable, x: np.ndarray, tile: int, overlap: int, in_per_out: float, out_shape_fn: Callable) -> np.ndarray:
    """Apply ``fn`` to overlapping spatial tiles of ``x`` (axes 2, 3) and blend the outputs."""
    b, t, h, w, _ = x.shape
    stride = tile - overlap
    rows, cols = _tile_starts(h, tile, stride), _tile_starts(w, tile, stride)
    acc = wsum = None
    for r in rows:
        for c in cols:
            y = np.asarray(fn(x[:, :, r : r + tile, c : c + tile]))
            if acc is None:
                acc = np.zeros(out_shape_fn(y), np.float32)
                wsum = np.zeros(acc.shape[2:4], np.float32)
            ro, co = int(r / in_per_out), int(c / in_per_out)
            th, tw = y.shape[2:4]
            ov = int(overlap / in_per_out)
            wt = np.outer(_ramp(th, ov), _ramp(tw, ov))
            acc[:, :, ro : ro + th, co : co + tw] += y * wt[None, None, :, :, None]
            wsum[ro : ro + th, co : co + tw] += wt
    return acc / wsum[None, None, :, :, None]


def encode_tiled(model: VideoVAE, video: Float[Array, "b t h w c"], *, tile: int = 64, overlap: int = 16) -> Posterior:
    """Encode frames larger than the training size in overlapping ``tile x tile`` pixel tiles.

    Tile latents are blended with linear ramps over the ``overlap`` (in pixels; both
    ``tile`` and ``overlap`` must be multiples of ``spatial_factor``).
    """
    cfg = model.cfg
    video = np.asarray(check_video(video, cfg))
    sf = cfg.spatial_factor
    if tile % sf or overlap % sf or not 0 <= overlap < tile:
        raise ValueError(f"tile={tile}, overlap={overlap}: need multiples of spatial_factor={sf} with 0 <= overlap < tile")
    b, t, h, w, _ = video.shape
    out = lambda y: (b, y.shape[1], h // sf, w // sf, y.shape[-1])
    fn = lambda v: np.concatenate([np.asarray(p) for p in _encode_chunk(model, jnp.asarray(v), None)[0]], -1)
    moments = _tiled(fn, video, tile, overlap, sf, out)
    mean, logvar = np.split(moments, 2, axis=-1)
    return Posterior(jnp.asarray(mean), jnp.asarray(logvar))


def decode_tiled(model: VideoVAE, z: Float[Array, "b tl hl wl cl"], *, tile: int = 64, overlap: int = 16) -> Float[np.ndarray, "b t h w c"]:
    """Decode a latent in overlapping tiles (``tile`` and ``overlap`` in output pixels)."""
    cfg = model.cfg
    z = np.asarray(check_latent(z, cfg))
    sf = cfg.spatial_factor
    if tile % sf or overlap % sf or not 0 <= overlap < tile:
        raise ValueError(f"tile={tile}, overlap={overlap}: need multiples of spatial_factor={sf} with 0 <= overlap < tile")
    b, t, h, w, _ = z.shape
    out = lambda y: (b, y.shape[1], h * sf, w * sf, y.shape[-1])
    fn = lambda v: _decode_chunk(model, jnp.asarray(v), None)[0]
    return _tiled(fn, z, tile // sf, overlap // sf, 1.0 / sf, out)


# --------------------------------------------------------------------------- #
# Losses and metrics
# --------------------------------------------------------------------------- #


def psnr(x: Float[Array, "b ..."], y: Float[Array, "b ..."], data_range: float = 2.0) -> Float[Array, "b"]:
    """Per-example PSNR in dB (``data_range`` 2 for ``[-1, 1]``, 255 for uint8)."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    mse = jnp.mean(jnp.square(x - y).reshape(x.shape[0], -1), axis=1)
    return 10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, 1e-10))


def ssim(x: Float[Array, "n h w c"], y: Float[Array, "n h w c"], data_range: float = 2.0) -> Float[Array, "n"]:
    """Mean SSIM per image (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 .01, K2 .03).

    Valid-region statistics, averaged over channels, as in ``skimage``'s
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``.
    """
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    g = jnp.exp(-0.5 * (jnp.arange(11) - 5.0) ** 2 / 1.5**2)
    g = g / g.sum()

    def blur(a):  # separable Gaussian filter, 'valid' region, per channel
        a = einops.rearrange(a, "n h w c -> (n c) h w 1")
        k1 = g.reshape(11, 1, 1, 1)
        a = jax.lax.conv_general_dilated(a, k1, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        a = jax.lax.conv_general_dilated(a, k1.reshape(1, 11, 1, 1), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return a

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    s = einops.rearrange(s, "(n c) h w 1 -> n (h w c)", n=x.shape[0])
    return s.mean(axis=1)


def vae_loss(model: VideoVAE, video: Float[Array, "b t h w c"], key: jax.Array | None, cfg: VAEConfig) -> tuple[jax.Array, dict]:
    """Reconstruction (``l1_weight * L1 + l2_weight * L2``) plus ``kl_weight * KL``.

    KL is the mean over latent elements; L1/L2 are means over pixels, so the weights
    do not depend on clip size. Returns ``(loss, aux)`` with the terms, per-clip PSNR
    and the reconstruction.
    """
    post, _ = model.encode_moments(video)
    z = post.mean if key is None else post.sample(key)
    recon, _ = model.decode_frames(z)
    err = recon - video
    l1 = jnp.mean(jnp.abs(err))
    l2 = jnp.mean(jnp.square(err))
    kl = jnp.mean(post.kl())
    loss = cfg.l1_weight * l1 + cfg.l2_weight * l2 + cfg.kl_weight * kl
    aux = {"l1": l1, "l2": l2, "kl": kl, "psnr": jnp.mean(psnr(recon, video)), "recon": recon}
    return loss, aux


# --------------------------------------------------------------------------- #
# 3D patch discriminator (optional; hinge loss)
# --------------------------------------------------------------------------- #


class PatchDiscriminator3D(nnx.Module):
    """Scores overlapping space-time patches as real (> 0) or reconstructed (< 0).

    Strided 3D convolutions (not causal: it only sees whole training clips) with
    leaky ReLU; output logits ``(b, t'', h'', w'', 1)``.
    """

    def __init__(self, cfg: VAEConfig, *, channels: int = 32, rngs: nnx.Rngs):
        c = channels
        self.convs = nnx.List([
            nnx.Conv(cfg.in_channels, c, (3, 4, 4), strides=(1, 2, 2), rngs=rngs),
            nnx.Conv(c, 2 * c, (3, 4, 4), strides=(2, 2, 2), rngs=rngs),
            nnx.Conv(2 * c, 4 * c, (3, 4, 4), strides=(1, 2, 2), rngs=rngs),
        ])
        self.out = nnx.Conv(4 * c, 1, (3, 3, 3), rngs=rngs)

    def __call__(self, x: Float[Array, "b t h w c"]) -> Float[Array, "b t2 h2 w2 1"]:
        for conv in self.convs:
            x = jax.nn.leaky_relu(conv(x), 0.2)
        return self.out(x)


def hinge_d_loss(logits_real: jax.Array, logits_fake: jax.Array) -> jax.Array:
    """Discriminator hinge loss: push real logits above +1 and fake below -1."""
    return jnp.mean(jax.nn.relu(1.0 - logits_real)) + jnp.mean(jax.nn.relu(1.0 + logits_fake))


def hinge_g_loss(logits_fake: jax.Array) -> jax.Array:
    """Generator side of the hinge GAN: raise the discriminator's score of reconstructions."""
    return -jnp.mean(logits_fake)


# --------------------------------------------------------------------------- #
# Latent statistics (shift/scale for the diffusion model)
# --------------------------------------------------------------------------- #


@nnx.jit
def _latent_mean(model: VideoVAE, video):
    return model.encode_moments(video)[0].mean


def measure_latent_stats(model: VideoVAE, batches: Iterable[np.ndarray], *, max_batches: int = 16) -> dict[str, list[float]]:
    """Per-channel ``shift`` (mean) and ``scale`` (std) of posterior means over batches.

    ``batches`` yields uint8 or float videos ``(b, t, h, w, c)``. The diffusion model
    sees ``(z - shift) / scale``: zero-mean, unit-variance latents per channel.
    """
    s1 = s2 = None
    n = 0
    for i, video in enumerate(batches):
        if i >= max_batches:
            break
        video = np.asarray(video)
        x = to_float(video) if video.dtype == np.uint8 else check_video(video, model.cfg)
        z = np.asarray(_latent_mean(model, x), np.float64).reshape(-1, model.cfg.latent_channels)
        s1 = z.sum(0) if s1 is None else s1 + z.sum(0)
        s2 = (z**2).sum(0) if s2 is None else s2 + (z**2).sum(0)
        n += z.shape[0]
    if n == 0:
        raise ValueError("measure_latent_stats: no batches given")
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 1e-12))
    return {"shift": [float(v) for v in mean], "scale": [float(v) for v in std], "num_values": int(n)}


# --------------------------------------------------------------------------- #
# Inference checkpoints (small, shipped in the repo)
# --------------------------------------------------------------------------- #

_ARCH_FIELDS = ("in_channels", "latent_channels", "spatial_factor", "temporal_factor", "stem_unshuffle",
                "stem_temporal", "base_channels", "channel_mults", "num_res_blocks", "encoder_blocks",
                "decoder_blocks", "factorized", "time_padding")


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def save_vae(path: str | os.PathLike, params: Any, cfg: Config, latent_stats: dict | None = None, *, dtype: str = "bfloat16", extra: dict | None = None) -> Path:
    """Write an inference checkpoint: ``params/`` (orbax), ``config.json``, ``latent_stats.json``.

    ``params`` is an ``nnx.State`` (or nested dict) of the VAE's ``nnx.Param`` values;
    it is stored in ``dtype`` (``bfloat16`` halves the size). The directory is
    written under a temporary name and renamed, so it is never half-written.
    """
    import orbax.checkpoint as ocp

    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype={dtype!r}: valid values are 'bfloat16', 'float32'")
    path = Path(path).absolute()
    tree = nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params
    tree = jax.tree.map(lambda a: np.asarray(jnp.asarray(a, jnp.dtype(dtype))), tree)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(tmp / "params", tree)
        ckptr.wait_until_finished()
    _atomic_write_text(tmp / "config.json", json.dumps(to_dict(cfg), indent=1))
    if latent_stats is not None:
        _atomic_write_text(tmp / "latent_stats.json", json.dumps(latent_stats, indent=1))
    meta = {"format": "sora_jax.vae/1", "dtype": dtype, **(extra or {})}
    _atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1))
    if path.exists():
        import shutil

        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
    return path


def check_compatible(want: VAEConfig, have: VAEConfig, where: str = "checkpoint") -> None:
    """Raise ``ValueError`` listing architecture fields where ``want`` and ``have`` differ."""
    diffs = [f"{k}: requested {getattr(want, k)!r}, {where} has {getattr(have, k)!r}"
             for k in _ARCH_FIELDS if getattr(want, k) != getattr(have, k)]
    if diffs:
        raise ValueError(
            f"{where} was trained with an incompatible VAE config ({'; '.join(diffs)}). "
            f"Valid: use the checkpoint's own config (omit cfg) or a config with these values: "
            + ", ".join(f"{k}={getattr(have, k)!r}" for k in _ARCH_FIELDS)
        )


def load_vae(path: str | os.PathLike, cfg: Config | VAEConfig | None = None) -> tuple[VideoVAE, Config, dict | None]:
    """Load an inference checkpoint written by :func:`save_vae` (or ``train.export_checkpoint``).

    Returns ``(model, config, latent_stats)``. When ``cfg`` is given, its VAE
    architecture must match the checkpoint's; otherwise a ``ValueError`` says which
    fields differ and what values would be valid. Parameters are cast to float32.
    """
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    if not (path / "config.json").is_file() or not (path / "params").exists():
        raise FileNotFoundError(f"{path} is not a VAE checkpoint (expected config.json and params/ inside)")
    saved = from_dict(Config, json.loads((path / "config.json").read_text()))
    if cfg is not None:
        check_compatible(cfg.vae if isinstance(cfg, Config) else cfg, saved.vae)
    # shapes only: no random init (eager initialisers would compile dozens of tiny programs)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: VideoVAE(saved.vae, rngs=nnx.Rngs(0))))
    with ocp.StandardCheckpointer() as ckptr:
        tree = ckptr.restore(path / "params")
    restored = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
    want = {jax.tree_util.keystr(k).replace("'", ""): v.shape
            for k, v in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(abstract))}
    have = {jax.tree_util.keystr(k).replace("'", ""): v.shape for k, v in jax.tree_util.tree_leaves_with_path(restored)}
    bad = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
    if bad:
        raise ValueError(f"{path}: parameters do not match the config in config.json ({len(bad)} arrays differ, e.g. "
                         f"{bad[0]}: stored {have.get(bad[0])}, config wants {want.get(bad[0])})")
    nnx.replace_by_pure_dict(abstract, restored)
    model = nnx.merge(graphdef, abstract)
    stats_path = path / "latent_stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else None
    return model, saved, stats


# --------------------------------------------------------------------------- #
# Benchmark
# --------------------------------------------------------------------------- #


def _bench_worker(cfg_json: str, frames: int, chunk_latents: int, repeats: int) -> dict:
    """Runs in a fresh process: time chunked encode+decode and report the peak RSS."""
    import resource

    cfg = from_dict(Config, json.loads(cfg_json))
    model = VideoVAE(cfg.vae, rngs=nnx.Rngs(0))
    h, w = cfg.world.height, cfg.world.width
    video = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, frames, h, w, 3)).astype(np.float32))
    post = encode_chunked(model, video, chunk_latents=chunk_latents)  # compile
    decode_chunked(model, post.mean, chunk_latents=chunk_latents)
    rss_warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for _ in range(repeats):
        post = encode_chunked(model, video, chunk_latents=chunk_latents)
    t1 = time.perf_counter()
    for _ in range(repeats):
        decode_chunked(model, post.mean, chunk_latents=chunk_latents)
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"frames": frames, "height": h, "width": w, "chunk_latents": chunk_latents,
            "encode_s": (t1 - t0) / repeats, "decode_s": (t2 - t1) / repeats,
            "peak_rss_mb": rss / 1024.0, "rss_after_compile_mb": rss_warm / 1024.0}


def bench_vae(cfg: Config, frames: Iterable[int] = (17, 65, 129), *, chunk_latents: int = 2, repeats: int = 2) -> list[dict]:
    """Chunked encode/decode time and peak memory per clip length (one subprocess each).

    Each length runs in its own process so ``ru_maxrss`` (peak resident memory) is
    that length's alone; with chunked processing it should stay flat as clips grow.
    """
    import subprocess
    import sys

    rows = []
    for f in frames:
        if (f - 1) % cfg.vae.temporal_factor:
            raise ValueError(f"frames={f}: the causal VAE takes 1 + {cfg.vae.temporal_factor}k frames")
        code = ("import json,sys; from sora_jax.vae import _bench_worker; "
                f"print(json.dumps(_bench_worker(sys.argv[1], {int(f)}, {int(chunk_latents)}, {int(repeats)})))")
        res = subprocess.run([sys.executable, "-c", code, json.dumps(to_dict(cfg))], capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"bench_vae worker failed for {f} frames:\n{res.stderr[-2000:]}")
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return rows
