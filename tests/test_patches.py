"""Spacetime patches: exact round trip, token order, position ids, packing, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.layers import segment_mask
from sora_jax.patches import grid_shape, pack, patchify, position_ids, unpatchify


@pytest.mark.parametrize("patch", [(1, 2, 2), (2, 3, 1), (1, 1, 1)])
def test_round_trip_is_exact(patch):
    b, c = 2, 5
    t, h, w = 2 * patch[0], 3 * patch[1], 7 * patch[2]
    x = jax.random.normal(jax.random.key(0), (b, t, h, w, c))
    tokens = patchify(x, patch)
    grid = grid_shape((t, h, w), patch)
    assert tokens.shape == (b, int(np.prod(grid)), int(np.prod(patch)) * c)
    np.testing.assert_array_equal(unpatchify(tokens, grid, patch, c), x)


def test_token_order_matches_position_ids():
    patch, c = (2, 3, 1), 3
    x = jax.random.normal(jax.random.key(1), (1, 4, 6, 5, c))
    grid = grid_shape(x.shape[1:4], patch)
    tokens, ids = patchify(x, patch), position_ids(grid)
    for n in [0, 7, len(ids) - 1]:
        ti, hi, wi = ids[n]
        block = x[0, ti * 2:(ti + 1) * 2, hi * 3:(hi + 1) * 3, wi:wi + 1, :]
        np.testing.assert_array_equal(tokens[0, n], block.reshape(-1))


@pytest.mark.parametrize("grid", [(1, 1, 1), (3, 5, 7), (2, 1, 11)])
def test_position_ids_cover_any_grid(grid):
    ids = position_ids(grid)
    assert ids.shape == (int(np.prod(grid)), 3) and ids.dtype == np.int32
    assert len({tuple(r) for r in ids}) == len(ids)                 # unique
    np.testing.assert_array_equal(ids.max(0), np.array(grid) - 1)
    # time-major: the first H*W tokens are frame 0
    assert (ids[: grid[1] * grid[2], 0] == 0).all()


def test_not_divisible_names_sizes_and_patch():
    with pytest.raises(ValueError, match=r"h=7 is not divisible by 2.*\(1, 2, 2\)|\(1, 2, 2\).*h=7 is not divisible by 2"):
        patchify(jnp.zeros((1, 3, 7, 8, 4)), (1, 2, 2))
    with pytest.raises(ValueError, match="patch"):
        grid_shape((3, 4, 4), (0, 2, 2))
    with pytest.raises(ValueError, match=r"\(b, t, h, w, c\)"):
        patchify(jnp.zeros((3, 4, 4, 2)), (1, 2, 2))
    with pytest.raises(ValueError, match="do not fit grid"):
        unpatchify(jnp.zeros((1, 10, 16)), (1, 3, 3), (1, 2, 2), 4)


def test_pack_segments_and_mask():
    a, b = jnp.ones((5, 3)), 2 * jnp.ones((3, 3))
    tok, pos, seg = pack([a, b], [position_ids((1, 1, 5)), position_ids((1, 3, 1))], 11)
    assert tok.shape == (11, 3) and pos.shape == (11, 3)
    np.testing.assert_array_equal(seg, [1] * 5 + [2] * 3 + [0] * 3)
    np.testing.assert_array_equal(tok[5:8], b)
    m = segment_mask(seg[None], seg[None])[0, 0]
    assert bool(m[0, 4]) and not bool(m[0, 5]) and not bool(m[6, 9]) and bool(m[9, 10])
    with pytest.raises(ValueError, match="do not fit"):
        pack([a, b], [position_ids((1, 1, 5)), position_ids((1, 3, 1))], 7)
