"""Byte tokenizer and text encoder: round trip, truncation, null prompt, masking, external embeddings."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sora_jax.config import TextConfig
from sora_jax.text import BOS, EOS, PAD, ByteTokenizer, TextEncoder, prompt_dropout

CFG = TextConfig(max_tokens=23, width=24, depth=2, num_heads=3)


def encode(enc, prompts, drop=None):
    """Tokenize on the host, encode under jit (eager NNX compiles every op separately: slow)."""
    ids, mask = enc.tokenizer.encode(prompts)
    return _encode(enc, jnp.asarray(ids), jnp.asarray(mask), drop)


_encode = nnx.jit(lambda enc, ids, mask, drop: enc(ids, mask, drop=drop))


def test_tokenizer_round_trip_and_layout():
    tok = ByteTokenizer(23)
    prompts = ["a red ball", "ünïcode → ok", "x"]
    ids, mask = tok.encode(prompts)
    assert ids.shape == mask.shape == (3, 23)
    assert tok.decode(ids) == prompts
    n = len("a red ball".encode())
    assert ids[0, 0] == BOS and ids[0, n + 1] == EOS and (ids[0, n + 2:] == PAD).all()
    assert mask[0].sum() == n + 2 and mask[0, : n + 2].all()       # real tokens first


def test_long_prompt_is_truncated_with_a_warning():
    tok = ByteTokenizer(12)
    with pytest.warns(UserWarning, match=r"30 UTF-8 bytes.*limit of 10"):
        ids, mask = tok.encode("abcdefghijklmnopqrstuvwxyz0123")
    assert tok.decode(ids) == ["abcdefghij"]
    assert mask.all() and ids[0, -1] == EOS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok.encode("abcdefghij")                        # exactly at the limit: no warning


def test_empty_prompt_maps_to_null_embedding():
    enc = TextEncoder(CFG, rngs=nnx.Rngs(0))
    emb, mask = encode(enc, ["", "a ball", "   "])
    null, null_mask = enc.null(1)
    np.testing.assert_array_equal(emb[0], null[0])
    np.testing.assert_array_equal(emb[2], null[0])
    assert mask[0].all() and null_mask.all()
    assert not np.allclose(emb[1], null[0])
    # prompt dropout replaces chosen rows by the same null embedding
    emb_d, mask_d = encode(enc, ["a ball", "a cube"], drop=jnp.array([False, True]))
    np.testing.assert_array_equal(emb_d[1], null[0])
    np.testing.assert_allclose(emb_d[0], emb[1], atol=1e-5)
    assert mask_d[1].all()


def test_padding_does_not_leak_into_real_tokens():
    enc = TextEncoder(CFG, rngs=nnx.Rngs(1))
    ids, mask = enc.tokenizer.encode(["red ball falls"])
    ids2 = ids.copy()
    ids2[0, ~mask[0]] = 77                              # garbage where the mask says padding
    a, _ = _encode(enc, jnp.asarray(ids), jnp.asarray(mask), None)
    b, _ = _encode(enc, jnp.asarray(ids2), jnp.asarray(mask), None)
    np.testing.assert_allclose(a[0, mask[0]], b[0, mask[0]], atol=1e-6)
    assert not np.allclose(a[0, ~mask[0]], b[0, ~mask[0]])   # the test can see a difference


def test_external_embeddings_are_projected():
    cfg = TextConfig(max_tokens=13, width=24, external_dim=17)
    enc = TextEncoder(cfg, rngs=nnx.Rngs(2))
    x = jax.random.normal(jax.random.key(0), (2, 13, 17))
    mask = jnp.ones((2, 13), bool).at[1].set(False)
    emb, m = _encode(enc, x, mask, None)
    assert emb.shape == (2, 13, 24) and m.all()
    np.testing.assert_array_equal(emb[1], enc.null(1)[0][0])
    with pytest.raises(ValueError, match="17"):
        enc(jnp.zeros((2, 13, 16)), mask)
    with pytest.raises(ValueError, match="precomputed"):
        enc.encode_prompts("hi")


def test_bad_inputs():
    with pytest.raises(ValueError, match="max_tokens"):
        ByteTokenizer(2)
    with pytest.raises(ValueError, match="expected str"):
        ByteTokenizer(8).encode([3])
    enc = TextEncoder(CFG, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="max_tokens=23"):
        enc(jnp.zeros((1, 30), jnp.int32), jnp.ones((1, 30), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        prompt_dropout(jax.random.key(0), 4, 1.5)
    assert prompt_dropout(jax.random.key(0), 1000, 0.25).mean() == pytest.approx(0.25, abs=0.05)
