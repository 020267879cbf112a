"""Spacetime patches: a latent video becomes a sequence of tokens, and back.

Axes: ``b`` batch; ``t, h, w`` latent frames, rows, columns; ``c`` latent channels;
``pt, ph, pw`` the patch size along (t, h, w); ``T, H, W`` the patch grid
(``T = t / pt`` ...); ``n = T * H * W`` tokens; ``p = pt * ph * pw * c`` values per token.

Tokens are ordered time-major (all patches of the first latent frame, then the next
frame, ...), row-major inside a frame. :func:`position_ids` gives every token its
integer (t, h, w) grid coordinate; the DiT turns those into RoPE angles, so one set of
weights runs at any resolution, duration or aspect ratio: only the grid changes.

NaViT packing (Dehghani et al. 2023): clips of different sizes can share one row of
tokens. :func:`pack` concatenates their tokens and positions and returns segment ids;
:func:`sora_jax.layers.segment_mask` turns those into a block-diagonal attention mask
(``Attention(..., mask=segment_mask(seg, seg))``) so clips never attend to each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import einops
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

Grid = tuple[int, int, int]


def _check_patch(patch: Sequence[int]) -> tuple[int, int, int]:
    patch = tuple(int(p) for p in patch)
    if len(patch) != 3 or any(p < 1 for p in patch):
        raise ValueError(f"patch={patch}: expected three sizes (pt, ph, pw), each >= 1")
    return patch  # type: ignore[return-value]


def grid_shape(latent_thw: Sequence[int], patch: Sequence[int]) -> Grid:
    """The patch grid ``(T, H, W)`` of a latent of size ``(t, h, w)``.

    Raises ValueError naming the sizes when one is not a multiple of the patch.
    """
    pt, ph, pw = _check_patch(patch)
    t, h, w = (int(s) for s in latent_thw)
    bad = [f"{name}={size} is not divisible by {p}" for name, size, p in
           (("t", t, pt), ("h", h, ph), ("w", w, pw)) if size % p or size < p]
    if bad:
        raise ValueError(
            f"latent (t, h, w)=({t}, {h}, {w}) cannot be cut into patches (pt, ph, pw)={(pt, ph, pw)}: "
            + "; ".join(bad) + ". Choose a clip size whose latent sizes are multiples of the patch."
        )
    return (t // pt, h // ph, w // pw)


def patchify(latents: Float[Array, "b t h w c"], patch: Sequence[int]) -> Float[Array, "b n p"]:
    """Cut ``(b, t, h, w, c)`` latents into ``(b, n, pt*ph*pw*c)`` tokens (time-major order)."""
    if latents.ndim != 5:
        raise ValueError(f"patchify expects latents (b, t, h, w, c), got shape {tuple(latents.shape)}")
    pt, ph, pw = _check_patch(patch)
    grid_shape(latents.shape[1:4], patch)
    return einops.rearrange(
        latents, "b (T pt) (H ph) (W pw) c -> b (T H W) (pt ph pw c)", pt=pt, ph=ph, pw=pw
    )


def unpatchify(
    tokens: Float[Array, "b n p"], grid: Sequence[int], patch: Sequence[int], channels: int
) -> Float[Array, "b t h w c"]:
    """Inverse of :func:`patchify`: ``(b, T*H*W, pt*ph*pw*c)`` tokens -> ``(b, t, h, w, c)``."""
    pt, ph, pw = _check_patch(patch)
    T, H, W = (int(g) for g in grid)
    n, p = tokens.shape[1], tokens.shape[2]
    if n != T * H * W or p != pt * ph * pw * channels:
        raise ValueError(
            f"unpatchify: tokens {tuple(tokens.shape)} do not fit grid {(T, H, W)} (n={T * H * W}) "
            f"with patch {(pt, ph, pw)} and {channels} channels (p={pt * ph * pw * channels})"
        )
    return einops.rearrange(
        tokens, "b (T H W) (pt ph pw c) -> b (T pt) (H ph) (W pw) c",
        T=T, H=H, W=W, pt=pt, ph=ph, pw=pw, c=channels,
    )


def position_ids(grid: Sequence[int]) -> Int[np.ndarray, "n 3"]:
    """Integer (t, h, w) coordinates of every token of a ``(T, H, W)`` grid, in token order.

    >>> position_ids((1, 2, 2)).tolist()
    [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]]
    """
    T, H, W = (int(g) for g in grid)
    if min(T, H, W) < 1:
        raise ValueError(f"grid={tuple(grid)}: every size must be >= 1")
    return np.stack(np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij"), -1).reshape(-1, 3).astype(np.int32)


def pack(
    tokens: Sequence[Float[Array, "n_i p"]],
    positions: Sequence[Int[Array, "n_i 3"]],
    length: int,
) -> tuple[Float[Array, "length p"], Int[Array, "length 3"], Int[Array, "length"]]:
    """NaViT packing: concatenate several clips' tokens into one row of ``length`` tokens.

    Returns ``(tokens, positions, segment_ids)``; segment ids are ``1, 2, ...`` per clip and
    ``0`` for the padding at the end. Raises ValueError when the clips do not fit.
    """
    if len(tokens) != len(positions) or not tokens:
        raise ValueError(f"pack: got {len(tokens)} token arrays and {len(positions)} position arrays (need equal, >= 1)")
    total = sum(int(t.shape[0]) for t in tokens)
    if total > length:
        raise ValueError(f"pack: {total} tokens do not fit in a row of length {length}")
    pad = length - total
    seg = np.concatenate([np.full(t.shape[0], i + 1, np.int32) for i, t in enumerate(tokens)] + [np.zeros(pad, np.int32)])
    tok = jnp.concatenate([*tokens, jnp.zeros((pad, tokens[0].shape[-1]), tokens[0].dtype)])
    pos = jnp.concatenate([*(jnp.asarray(p, jnp.int32) for p in positions), jnp.zeros((pad, 3), jnp.int32)])
    return tok, pos, jnp.asarray(seg)
