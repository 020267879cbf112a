"""Layers and VideoDiT: RoPE, masks, adaLN-Zero identity at init, factorised attention, scan == loop, FLOPs."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sora_jax.config import DiTConfig
from sora_jax.dit import PRESETS, VideoDiT, dit_flops, preset
from sora_jax.layers import Attention, apply_rope, attention, rope_3d, sincos_3d
from sora_jax.patches import position_ids

C, E, L = 4, 20, 7                                   # latent channels, text width, text tokens
SMALL = DiTConfig(hidden=48, depth=2, num_heads=4, mlp_ratio=2.0)


def randn(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def inputs(b=2, thw=(3, 6, 10), seed=0):
    """Random inputs made on the host (eager jax.random would compile every op: slow)."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((b, *thw, C), np.float32))
    t = jnp.asarray(rng.uniform(size=b).astype(np.float32))
    text = jnp.asarray(rng.standard_normal((b, L, E), np.float32))
    lengths = np.array([L, 3] + [L] * (b - 2))[:b]
    return x, t, text, jnp.asarray(np.arange(L)[None, :] < lengths[:, None])


def perturb(model, seed=1, scale=0.2):
    """Give every parameter random values (at init the zero-initialised ones hide bugs)."""
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda a: a + scale * rng.standard_normal(a.shape, np.float32), state))
    return model


@functools.lru_cache(maxsize=None)
def _built(cfg: DiTConfig) -> VideoDiT:
    return nnx.jit(lambda: VideoDiT(cfg, C, E, rngs=nnx.Rngs(0)))()     # jitted init: faster than eager


def build(cfg: DiTConfig) -> VideoDiT:
    """A fresh copy of the model for ``cfg`` (initialising each config once keeps the tests fast)."""
    return nnx.clone(_built(cfg))


# Eager NNX calls compile every primitive separately; jitting the whole call is much faster.
call = nnx.jit(lambda model, *args: model(*args))


# ------------------------------------------------------------------ layers


def test_rope_depends_only_on_relative_position():
    q, k = randn(1, 1, 2, 24, seed=1), randn(1, 1, 2, 24, seed=2)
    p, p2 = jnp.array([[2, 5, 1]]), jnp.array([[0, 3, 7]])

    def logit(pq, pk):
        return jnp.sum(apply_rope(q, *rope_3d(pq, 24)) * apply_rope(k, *rope_3d(pk, 24)), -1)

    shift = jnp.asarray(np.random.default_rng(3).integers(-50, 50, (1, 3)))
    np.testing.assert_allclose(logit(p, p2), logit(p + shift, p2 + shift), rtol=1e-4, atol=1e-4)
    for axis in range(3):                           # every axis matters
        other = p.at[0, axis].add(1)
        assert not np.allclose(logit(p, p2), logit(other, p2), atol=1e-3)
    # rotation keeps the norm
    np.testing.assert_allclose(jnp.linalg.norm(apply_rope(q, *rope_3d(p, 24)), axis=-1),
                               jnp.linalg.norm(q, axis=-1), rtol=1e-5)


def test_sincos_3d_is_distinct_per_position():
    emb = sincos_3d(position_ids((3, 4, 5)), 30)
    assert emb.shape == (60, 30)
    d = jnp.linalg.norm(emb[:, None] - emb[None], axis=-1) + jnp.eye(60)
    assert float(d.min()) > 1e-3


def test_key_padding_mask_hides_padded_keys():
    q, k, v = randn(2, 5, 3, 8, seed=1), randn(2, 7, 3, 8, seed=2), randn(2, 7, 3, 8, seed=3)
    kv_mask = jnp.asarray(np.arange(7)[None] < np.array([[4], [7]]))
    att = jax.jit(lambda q, k, v, m: attention(q, k, v, kv_mask=m))
    out = att(q, k, v, kv_mask)
    v2 = jnp.asarray(np.asarray(v).copy())
    v2 = v2.at[0, 4:].set(randn(3, 3, 8, seed=4))                  # change only padded values
    np.testing.assert_allclose(out, att(q, k, v2, kv_mask), atol=1e-6)
    assert not np.allclose(out, att(q, k, v2, jnp.ones((2, 7), bool)))   # without the mask they matter
    ref = att(q[:1], k[:1, :4], v[:1, :4], jnp.ones((1, 4), bool))
    np.testing.assert_allclose(out[:1], ref, atol=1e-6)


def test_cross_attention_module_shapes_and_errors():
    attn = Attention(24, 3, context_dim=11, rngs=nnx.Rngs(0))
    out = attn(jnp.ones((2, 5, 24)), jnp.ones((2, 7, 11)), kv_mask=jnp.ones((2, 7), bool))
    assert out.shape == (2, 5, 24)
    with pytest.raises(ValueError, match="context"):
        attn(jnp.ones((2, 5, 24)))
    with pytest.raises(ValueError, match="divisible"):
        Attention(25, 3, rngs=nnx.Rngs(0))


# ------------------------------------------------------------------ DiT


@pytest.mark.parametrize("attention_kind", ["full", "factorized"])
def test_blocks_are_identity_and_output_is_zero_at_init(attention_kind):
    cfg = dataclasses.replace(SMALL, attention=attention_kind)
    model = build(cfg)
    x, t, text, mask = inputs()
    out = call(model, x, t, text, mask)
    assert out.shape == x.shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, 0.0)
    grid = (3, 3, 5)
    tokens = randn(2, 45, cfg.hidden, seed=3)
    c = randn(2, cfg.hidden, seed=4)
    ctx = randn(2, L, cfg.hidden, seed=5)
    rope = model.rope(grid)
    run_block = nnx.jit(lambda block, *args: block(*args, grid, rope))
    for i in range(cfg.depth):
        np.testing.assert_array_equal(run_block(model.block(i), tokens, c, ctx, mask), tokens)
    # ...and not once the weights move
    perturb(model)
    assert float(jnp.abs(call(model, x, t, text, mask)).max()) > 1e-2
    assert not np.allclose(run_block(model.block(0), tokens, c, ctx, mask), tokens)


def test_factorized_attention_keeps_frames_and_locations_apart():
    cfg = dataclasses.replace(SMALL, attention="factorized", depth=1)
    model = perturb(build(cfg))
    block, grid, s = model.block(0), (3, 2, 5), 10
    rope = model.rope(grid)
    spatial = nnx.jit(lambda blk, h: blk.spatial_attention(h, grid, rope))
    temporal = nnx.jit(lambda blk, h: blk.temporal_attention(h, grid, rope))
    h = randn(2, 30, cfg.hidden, seed=0)
    h2 = h.at[:, s:2 * s].add(1.0)                  # change frame 1 only
    a, a2 = spatial(block, h), spatial(block, h2)
    assert a.shape == h.shape
    np.testing.assert_allclose(a[:, :s], a2[:, :s], atol=1e-6)            # frame 0 untouched
    np.testing.assert_allclose(a[:, 2 * s:], a2[:, 2 * s:], atol=1e-6)    # frame 2 untouched
    assert not np.allclose(a[:, s:2 * s], a2[:, s:2 * s])
    # temporal step: changing location 4 of every frame leaves the other locations alone
    h3 = h.at[:, 4::s].add(1.0)
    b, b3 = temporal(block, h), temporal(block, h3)
    keep = np.ones(30, bool)
    keep[4::s] = False
    np.testing.assert_allclose(b[:, keep], b3[:, keep], atol=1e-6)
    assert not np.allclose(b[:, ~keep], b3[:, ~keep])


@pytest.mark.parametrize("attention_kind", ["full", "factorized"])
def test_scan_equals_loop_with_same_weights(attention_kind):
    loop_cfg = dataclasses.replace(SMALL, attention=attention_kind)
    loop = perturb(build(loop_cfg))
    scan = build(dataclasses.replace(loop_cfg, scan_layers=True, remat=True))
    nnx.update(scan, nnx.state(loop))                # same parameter layout in both modes
    x, t, text, mask = inputs()
    if attention_kind == "factorized":
        np.testing.assert_allclose(call(scan, x, t, text, mask), call(loop, x, t, text, mask), rtol=1e-5, atol=1e-5)
        return                                       # gradients: checked once (full) to keep the test fast

    def loss(model):
        out = model(x, t, text, mask)
        return jnp.mean(out**2), out

    value_and_grad = nnx.jit(nnx.value_and_grad(loss, has_aux=True))
    (_, out_loop), g_loop = value_and_grad(loop)
    (_, out_scan), g_scan = value_and_grad(scan)
    np.testing.assert_allclose(out_scan, out_loop, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g_loop), jax.tree.leaves(g_scan)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_one_model_runs_on_several_grids_and_sincos():
    model = perturb(build(SMALL))
    for thw in [(5, 2, 8), (3, 6, 10)]:
        x, t, text, mask = inputs(thw=thw)
        assert call(model, x, t, text, mask).shape == x.shape
    sc = build(dataclasses.replace(SMALL, pos_embed="sincos"))
    x, t, text, mask = inputs()
    assert call(sc, x, t, text, mask).shape == x.shape


def test_text_mask_hides_padded_text():
    model = perturb(build(SMALL))
    x, t, text, mask = inputs()                      # row 1 has 3 real text tokens
    text2 = text.at[1, 3:].set(5.0)
    out = call(model, x, t, text, mask)
    np.testing.assert_allclose(out, call(model, x, t, text2, mask), atol=1e-5)
    text3 = text.at[1, :3].set(5.0)
    assert not np.allclose(out[1], call(model, x, t, text3, mask)[1], atol=1e-4)


def test_bad_inputs_are_named():
    model = build(SMALL)
    x, t, text, mask = inputs()
    with pytest.raises(ValueError, match=r"\(b, t, h, w, 4\)"):
        model(x[..., :3], t, text, mask)
    with pytest.raises(ValueError, match="w=9 is not divisible by 2"):
        model(jnp.zeros((2, 3, 6, 9, C)), t, text, mask)
    with pytest.raises(ValueError, match="t_cond"):
        model(x, t[:1], text, mask)
    with pytest.raises(ValueError, match="text must be"):
        model(x, t, text[..., :5], mask)
    with pytest.raises(ValueError, match="text_mask"):
        model(x, t, text, mask[:, :3])
    with pytest.raises(ValueError, match="not divisible"):
        VideoDiT(DiTConfig(hidden=50, num_heads=4), C, E, rngs=nnx.Rngs(0))


def test_presets():
    assert [(p.hidden, p.depth, p.num_heads) for p in map(preset, ["S", "B", "L", "XL"])] == [
        (384, 12, 6), (768, 12, 12), (1024, 24, 16), (1152, 28, 16)]
    assert preset("tiny", attention="factorized").attention == "factorized"
    assert set(PRESETS) == {"tiny", "S", "B", "L", "XL"}
    with pytest.raises(ValueError, match="valid: tiny, S, B, L, XL"):
        preset("M")


@pytest.mark.parametrize("attention_kind", ["full", "factorized"])
def test_flop_count_matches_xla(attention_kind):
    """Our count covers the matmuls; XLA's also counts elementwise work, so ours is a bit lower."""
    cfg = dataclasses.replace(SMALL, attention=attention_kind, depth=2)
    model = build(cfg)
    x, t, text, mask = inputs(b=1, thw=(5, 8, 8))
    graphdef, state = nnx.split(model)
    fwd = jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))
    cost = fwd.lower(state, x, t, text, mask).cost_analysis()     # XLA's count on the lowered HLO
    ours = dit_flops(cfg, (5, 4, 4), L, latent_channels=C, text_dim=E)
    assert 0.85 < ours["total"] / cost["flops"] <= 1.02
    # per-clip terms do not grow with the number of tokens; the rest does
    big = dit_flops(cfg, (5, 8, 8), L, latent_channels=C, text_dim=E)
    assert big["per_clip"] == ours["per_clip"] and big["tokens"] == 4 * ours["tokens"]


def test_bench_dit_rows():
    """The function behind ``sora-jax bench dit``: per preset a reference matmul and the model's rows."""
    from sora_jax.config import Config, TextConfig, TrainConfig, VAEConfig, WorldConfig
    from sora_jax.dit import _bench_config, bench_dit, biggest_gemm

    small = DiTConfig(hidden=24, depth=1, num_heads=2)
    cfg = Config(world=WorldConfig(height=16, width=32, num_frames=5), vae=VAEConfig(latent_channels=3),
                 text=TextConfig(max_tokens=8, width=16), dit=small, train=TrainConfig(batch_size=2))
    rows = bench_dit(cfg, steps=1)                                     # default: cfg.dit only
    # 2 clips x 4 tokens; the MLP (8 x 24) x (24 x 96) is the biggest product here
    assert [r["what"] for r in rows] == ["matmul 8x24x96", "dit forward", "dit train_step"]
    assert rows[1]["latent"] == "2x2x4x3" and rows[1]["tokens"] == 4 and rows[1]["text_len"] == 8
    assert all(r["ms_per_call"] > 0 and r["gflop_per_s"] > 0 for r in rows)
    assert rows[0]["ratio_to_matmul"] == 1.0 and rows[2]["ratio_to_matmul"] > 0
    assert all(r["cores_used"] > 0 for r in rows)
    # several configurations in one run, and a smaller batch than the config's
    rows = bench_dit(cfg, steps=1, presets=[small, dataclasses.replace(small, attention="factorized")], batch_size=1)
    assert [r["attention"] for r in rows] == ["full"] * 3 + ["factorized"] * 3
    assert all(r["batch"] == 1 for r in rows)
    # a preset name keeps the base config's other fields
    s = _bench_config(dataclasses.replace(small, attention="factorized", patch=(1, 1, 1)), "S")
    assert (s.preset, s.hidden, s.depth, s.num_heads, s.attention, s.patch) == ("S", 384, 12, 6, "factorized", (1, 1, 1))
    with pytest.raises(ValueError, match="unknown DiT preset 'M'; valid: tiny, S, B, L, XL"):
        bench_dit(cfg, presets=["M"])
    with pytest.raises(ValueError, match="steps=0"):
        bench_dit(cfg, steps=0)
    # long prompts, few video tokens: the text's key/value projection is the biggest product
    assert biggest_gemm(preset("S"), 80, 256, 8) == (2048, 384, 768)
    assert biggest_gemm(preset("S"), 1280, 256, 8) == (10240, 384, 1536)
