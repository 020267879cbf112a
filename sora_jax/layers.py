"""Building blocks shared by the text encoder, the video VAE and the diffusion transformer.

Everything here is a small Flax NNX module or a pure function. Constructors take
``*, rngs: nnx.Rngs``; nothing reads globals.

Axis letters used in shapes and einsum/einops strings (reused across the package):

    b  batch                       n  query tokens          m  key/value tokens
    d  model width                 h  attention heads       k  width of one head (d = h * k)
    f  rotary frequency pairs      c  conditioning width    a  position axes (t, h, w) = 3

Contents
--------
* :func:`attention` - scaled dot-product attention through ``jax.nn.dot_product_attention``
  (cuDNN flash attention on GPUs in half precision, XLA elsewhere), with a key padding
  mask and an optional general mask (e.g. :func:`segment_mask` for NaViT packing).
* :class:`Attention` - multi-head self/cross attention with QK-norm and RoPE.
* :class:`Mlp` - two linear layers with a tanh-GELU between them.
* :func:`modulate`, :class:`AdaLNModulation` - adaptive LayerNorm (DiT's adaLN-Zero).
* :func:`timestep_embedding`, :class:`TimestepEmbedder` - noise level -> vector.
* :func:`rope_3d`, :func:`apply_rope` - 3D rotary position embedding over (t, h, w).
* :func:`sincos_3d` - the fixed sin-cos alternative, added to the tokens once.
"""

from __future__ import annotations

import math
from typing import Literal

import einops
import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

AttentionImpl = Literal["auto", "xla", "cudnn"] | None

# DiT initialises every linear layer with Xavier-uniform weights and zero bias.
xavier = nnx.initializers.xavier_uniform()
zeros = nnx.initializers.zeros_init()


def dtype_of(name: str) -> jnp.dtype:
    """``"float32" | "bfloat16" | "float16"`` -> a jnp dtype (ValueError otherwise)."""
    table = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
    if name not in table:
        raise ValueError(f"dtype {name!r} is not supported; valid: {', '.join(table)}")
    return table[name]


def linear(
    din: int, dout: int, *, rngs: nnx.Rngs, dtype=jnp.float32, zero: bool = False, bias: bool = True
) -> nnx.Linear:
    """An ``nnx.Linear`` with DiT's initialisation (Xavier-uniform) or all zeros (``zero=True``).

    Parameters are always stored in float32; ``dtype`` is the compute dtype.
    """
    return nnx.Linear(
        din, dout, use_bias=bias, dtype=dtype, param_dtype=jnp.float32,
        kernel_init=zeros if zero else xavier, bias_init=zeros, rngs=rngs,
    )


# --------------------------------------------------------------------------- #
# Attention
# --------------------------------------------------------------------------- #


def key_padding_mask(kv_mask: Bool[Array, "b m"]) -> Bool[Array, "b 1 1 m"]:
    """A ``(b, m)`` "this key is a real token" mask in the 4D form attention wants."""
    return kv_mask[:, None, None, :]


def segment_mask(
    q_segments: Int[Array, "b n"], kv_segments: Int[Array, "b m"]
) -> Bool[Array, "b 1 n m"]:
    """Block-diagonal mask for NaViT-style packing: a query sees only keys of its own segment.

    Several clips of different sizes can be packed into one row of tokens; give every
    token the id of its clip (``1, 2, ...``; use ``0`` for padding). Padding queries
    attend to padding keys only, which keeps the softmax finite.
    """
    return (q_segments[:, None, :, None] == kv_segments[:, None, None, :])


def _pick_implementation(implementation: AttentionImpl, dtype, head_dim: int):
    """``"auto"``: cuDNN flash attention on a GPU in half precision, XLA otherwise."""
    if implementation == "auto":
        half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
        ok_head = head_dim % 8 == 0 and head_dim <= 128
        return "cudnn" if (jax.default_backend() == "gpu" and half and ok_head) else None
    if implementation not in (None, "xla", "cudnn"):
        raise ValueError(f"attention implementation {implementation!r}: valid are 'auto', 'xla', 'cudnn', None")
    return implementation


def attention(
    q: Float[Array, "b n h k"],
    k: Float[Array, "b m h k"],
    v: Float[Array, "b m h k"],
    *,
    kv_mask: Bool[Array, "b m"] | None = None,
    mask: Bool[Array, "b _h n m"] | None = None,
    implementation: AttentionImpl = "auto",
) -> Float[Array, "b n h k"]:
    """softmax(q k^T / sqrt(k)) v for every head, through ``jax.nn.dot_product_attention``.

    Args:
      q, k, v: queries ``(b, n, h, k)``, keys and values ``(b, m, h, k)``.
      kv_mask: ``(b, m)``, True where the key is a real token (padding is False).
        On the cuDNN path it is passed as per-row lengths, so real tokens must come
        first (the byte tokenizer and the null text embedding guarantee that).
      mask: optional boolean mask broadcastable to ``(b, h, n, m)``, True = may attend
        (for example :func:`segment_mask` when several clips share one row).
      implementation: ``"auto"`` (cuDNN flash attention on a GPU with bf16/fp16 inputs,
        XLA elsewhere), ``"xla"``, ``"cudnn"`` or ``None`` (JAX's default, XLA).
    """
    impl = _pick_implementation(implementation, q.dtype, q.shape[-1])
    lengths = None
    if kv_mask is not None:
        if impl == "cudnn":
            lengths = kv_mask.sum(axis=-1).astype(jnp.int32)
        else:
            pad = key_padding_mask(kv_mask)
            mask = pad if mask is None else jnp.logical_and(mask, pad)
    return jax.nn.dot_product_attention(
        q, k, v, mask=mask, key_value_seq_lengths=lengths, implementation=impl
    )


class Attention(nnx.Module):
    """Multi-head attention: self-attention, or cross-attention when ``context`` is given.

    QK-norm (an RMSNorm over each head's query and key, as in SD3 and Open-Sora) keeps
    attention logits bounded, which matters most in bf16. RoPE (if given) is applied
    after QK-norm, to self-attention only.

    ``zero_out=True`` initialises the output projection to zero, so the layer's
    contribution to a residual stream starts at exactly zero (used for the DiT's
    cross-attention, which has no adaLN gate).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        context_dim: int | None = None,
        qk_norm: bool = True,
        zero_out: bool = False,
        dtype=jnp.float32,
        implementation: AttentionImpl = "auto",
        rngs: nnx.Rngs,
    ):
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.cross = context_dim is not None
        self.implementation = implementation
        if self.cross:
            self.q = linear(dim, dim, dtype=dtype, rngs=rngs)
            self.kv = linear(context_dim, 2 * dim, dtype=dtype, rngs=rngs)
        else:
            self.qkv = linear(dim, 3 * dim, dtype=dtype, rngs=rngs)
        self.out = linear(dim, dim, dtype=dtype, zero=zero_out, rngs=rngs)
        if qk_norm:
            self.q_norm = nnx.RMSNorm(self.head_dim, epsilon=1e-6, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
            self.k_norm = nnx.RMSNorm(self.head_dim, epsilon=1e-6, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        else:
            self.q_norm = self.k_norm = None

    def __call__(
        self,
        x: Float[Array, "b n d"],
        context: Float[Array, "b m c"] | None = None,
        *,
        kv_mask: Bool[Array, "b m"] | None = None,
        mask: Bool[Array, "b _h n m"] | None = None,
        rope: tuple[Float[Array, "n f"], Float[Array, "n f"]] | None = None,
    ) -> Float[Array, "b n d"]:
        h = self.num_heads
        if self.cross:
            if context is None:
                raise ValueError("this Attention was built for cross-attention; pass context=(b, m, c)")
            q = einops.rearrange(self.q(x), "b n (h k) -> b n h k", h=h)
            k, v = einops.rearrange(self.kv(context), "b m (two h k) -> two b m h k", two=2, h=h)
        else:
            q, k, v = einops.rearrange(self.qkv(x), "b n (three h k) -> three b n h k", three=3, h=h)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = attention(q, k, v, kv_mask=kv_mask, mask=mask, implementation=self.implementation)
        return self.out(einops.rearrange(out, "b n h k -> b n (h k)"))


class Mlp(nnx.Module):
    """Linear(d -> hidden) -> GELU (tanh approximation, as in DiT) -> Linear(hidden -> out_dim or d)."""

    def __init__(
        self, dim: int, hidden: int, *, out_dim: int | None = None, dtype=jnp.float32,
        zero_out: bool = False, rngs: nnx.Rngs,
    ):
        self.fc1 = linear(dim, hidden, dtype=dtype, rngs=rngs)
        self.fc2 = linear(hidden, out_dim or dim, dtype=dtype, zero=zero_out, rngs=rngs)

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... o"]:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=True))


# --------------------------------------------------------------------------- #
# Adaptive LayerNorm (adaLN-Zero)
# --------------------------------------------------------------------------- #


def modulate(
    x: Float[Array, "b n d"], shift: Float[Array, "b d"], scale: Float[Array, "b d"]
) -> Float[Array, "b n d"]:
    """``x * (1 + scale) + shift`` with one (shift, scale) per clip, broadcast over its tokens."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class AdaLNModulation(nnx.Module):
    """SiLU -> Linear(c -> chunks * d), zero-initialised, split into ``chunks`` vectors ``(b, d)``.

    The input is one conditioning vector per clip, so the modulation is computed once per
    clip and broadcast over all tokens (never per token). Zero init makes every
    shift/scale/gate start at 0: with the gates at 0 a DiT block is the identity
    (the "-Zero" in adaLN-Zero, Peebles & Xie 2023).
    """

    def __init__(self, cond_dim: int, dim: int, chunks: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.chunks = chunks
        self.proj = linear(cond_dim, chunks * dim, dtype=dtype, zero=True, rngs=rngs)

    def __call__(self, c: Float[Array, "b c"]) -> tuple[Float[Array, "b d"], ...]:
        return tuple(jnp.split(self.proj(jax.nn.silu(c)), self.chunks, axis=-1))


# --------------------------------------------------------------------------- #
# Timestep (noise level) embedding
# --------------------------------------------------------------------------- #


def timestep_embedding(t: Float[Array, "b"], dim: int, max_period: float = 10_000.0) -> Float[Array, "b dim"]:
    """Sinusoidal features of a scalar per sample (as in DDPM / DiT): ``[cos(t w_i), sin(t w_i)]``.

    ``w_i = max_period ** (-i / (dim // 2))``. Odd ``dim`` gets a zero last feature.
    """
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


class TimestepEmbedder(nnx.Module):
    """Noise level ``t`` in [0, 1] -> ``(b, dim)``: sinusoidal features of ``1000 t``, then an MLP.

    The factor 1000 puts continuous flow times and DDPM step indices ``i / T`` on the
    scale DiT's frequencies were chosen for.
    """

    def __init__(self, dim: int, freq_dim: int = 256, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.freq_dim = freq_dim
        init = nnx.initializers.normal(0.02)
        self.fc1 = nnx.Linear(freq_dim, dim, kernel_init=init, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        self.fc2 = nnx.Linear(dim, dim, kernel_init=init, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

    def __call__(self, t: Float[Array, "b"]) -> Float[Array, "b dim"]:
        return self.fc2(jax.nn.silu(self.fc1(timestep_embedding(1000.0 * t, self.freq_dim))))


# --------------------------------------------------------------------------- #
# Positions: 3D RoPE and 3D sin-cos
# --------------------------------------------------------------------------- #


def split_axes(pairs: int) -> tuple[int, int, int]:
    """Share ``pairs`` frequency pairs between the (t, h, w) axes: h and w equal, t the rest.

    >>> split_axes(16)
    (6, 5, 5)
    """
    if pairs < 3:
        raise ValueError(f"need at least 3 frequency pairs (one per axis t, h, w), got {pairs}")
    hw = pairs // 3
    return (pairs - 2 * hw, hw, hw)


def _axis_angles(positions: Int[Array, "... n a"], pairs: tuple[int, int, int], theta: float) -> Float[Array, "... n f"]:
    """Angles ``pos_a * theta ** (-j / f_a)`` for each axis a, concatenated over the axes."""
    angles = []
    for axis, f in enumerate(pairs):
        inv_freq = theta ** (-jnp.arange(f, dtype=jnp.float32) / f)
        angles.append(positions[..., axis, None].astype(jnp.float32) * inv_freq)
    return jnp.concatenate(angles, axis=-1)


def rope_3d(
    position_ids: Int[Array, "... n 3"], head_dim: int, theta: float = 10_000.0
) -> tuple[Float[Array, "... n f"], Float[Array, "... n f"]]:
    """Rotary position embedding over (t, h, w) from integer position ids of any grid.

    Each head's ``k`` channels form ``f = k // 2`` rotation pairs, shared between the three
    axes by :func:`split_axes`. Because a rotation by ``p`` followed by the inverse rotation
    by ``p'`` is a rotation by ``p - p'``, the attention logit ``<R(p) q, R(p') k>`` depends
    only on the offset ``p - p'``: the model never sees absolute positions, so it runs on
    grids (resolutions, durations, aspect ratios) it was not trained on.

    Returns ``(cos, sin)``, each ``(..., n, f)``; feed them to :func:`apply_rope`.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head width, got {head_dim}")
    ang = _axis_angles(position_ids, split_axes(head_dim // 2), theta)
    return jnp.cos(ang), jnp.sin(ang)


def apply_rope(
    x: Float[Array, "b n h k"], cos: Float[Array, "n f"], sin: Float[Array, "n f"]
) -> Float[Array, "b n h k"]:
    """Rotate channel pairs ``(x[j], x[j + k/2])`` by the angles in ``cos``/``sin`` (``f = k/2``)."""
    x1, x2 = jnp.split(x, 2, axis=-1)
    c = cos[..., :, None, :].astype(x.dtype)     # (n, 1, f): broadcast over batch and heads
    s = sin[..., :, None, :].astype(x.dtype)
    return jnp.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def sincos_3d(position_ids: Int[Array, "n 3"], dim: int, theta: float = 10_000.0) -> Float[Array, "n dim"]:
    """Fixed 3D sin-cos position embedding (the MAE/DiT 2D recipe extended to (t, h, w)).

    ``dim // 2`` frequency pairs are shared between the axes as in :func:`split_axes`;
    each pair contributes ``sin`` and ``cos`` of ``pos * theta ** (-j / f_a)``. Odd ``dim``
    gets a zero last feature. Added to the tokens once, after the patch embedding.
    """
    ang = _axis_angles(jnp.asarray(position_ids), split_axes(dim // 2), theta)
    emb = jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb

