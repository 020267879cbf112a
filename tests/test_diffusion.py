"""Objectives and schedules: path algebra, timestep sampling and shift, schedules vs diffusers, overfitting."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sora_jax import diffusion as D
from sora_jax.config import DiffusionConfig, DiTConfig
from sora_jax.dit import VideoDiT

OBJECTIVES = [
    DiffusionConfig(objective="flow"),
    DiffusionConfig(objective="eps", schedule="linear"),
    DiffusionConfig(objective="eps", schedule="cosine"),
    DiffusionConfig(objective="v", schedule="cosine"),
    DiffusionConfig(objective="v", schedule="zero_snr"),
]


@pytest.mark.parametrize("cfg", OBJECTIVES, ids=lambda c: f"{c.objective}-{c.schedule}")
def test_perfect_prediction_gives_back_the_data(cfg):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.normal(k1, (3, 2, 5, 7, 3))
    noise = jax.random.normal(k2, x0.shape)
    t = D.sample_t(cfg, k3, 3)
    x_t = D.add_noise(cfg, x0, noise, t)
    pred = D.target(cfg, x0, noise, t)
    np.testing.assert_allclose(D.to_denoised(cfg, pred, x_t, t), x0, atol=2e-4)
    den = D.Denoiser(lambda x, tc: D.target(cfg, x0, noise, t), cfg)     # an oracle model
    np.testing.assert_allclose(den(x_t, t), x0, atol=2e-4)
    # a model that predicts nothing pays E|target|^2 > 0
    assert float(D.loss(lambda x, tc: jnp.zeros_like(x), x0, k3, cfg=cfg)) > 0.1


def test_flow_path_endpoints_and_model_time():
    cfg = DiffusionConfig(objective="flow")
    a, s = D.alpha_sigma(cfg, jnp.array([0.0, 0.25, 1.0]))
    np.testing.assert_allclose(a, [1.0, 0.75, 0.0])
    np.testing.assert_allclose(s, [0.0, 0.25, 1.0])
    ddpm = DiffusionConfig(objective="v", num_train_timesteps=1000)
    np.testing.assert_allclose(D.model_time(ddpm, jnp.array([0.0, 500.0])), [0.0, 0.5])
    a, s = D.alpha_sigma(ddpm, jnp.array([-1.0, 999.0]))
    np.testing.assert_allclose([a[0], s[0]], [1.0, 0.0])
    np.testing.assert_allclose(a**2 + s**2, 1.0, rtol=1e-6)          # variance preserving


def test_timestep_shift_and_resolution_rule():
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(D.timestep_shift(t, 1.0), t)
    shifted = D.timestep_shift(t, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1 and (shifted[1:-1] > t[1:-1]).all()
    assert (np.diff(shifted) > 0).all()
    cfg = DiffusionConfig(shift=1.5, shift_base_tokens=256)
    assert D.shift_factor(cfg, 1024) == pytest.approx(3.0)              # 4x tokens -> 2x shift
    assert D.shift_factor(DiffusionConfig(shift=2.0), None) == 2.0
    with pytest.raises(ValueError, match="num_tokens"):
        D.shift_factor(cfg, None)


def test_logit_normal_and_uniform_sampling():
    key = jax.random.key(3)
    cfg = DiffusionConfig(objective="flow", logit_mean=0.5, logit_std=0.8)
    t = np.asarray(D.sample_t(cfg, key, 20000))
    z = np.log(t / (1 - t))
    assert z.mean() == pytest.approx(0.5, abs=0.03) and z.std() == pytest.approx(0.8, abs=0.03)
    u = np.asarray(D.sample_t(DiffusionConfig(objective="flow", timestep_sampling="uniform"), key, 20000))
    assert u.min() >= 0 and u.max() <= 1 and u.mean() == pytest.approx(0.5, abs=0.01)
    shifted = np.asarray(D.sample_t(DiffusionConfig(objective="flow", shift=3.0), key, 20000))
    assert np.median(shifted) > 0.7                                     # sigmoid(0) = 0.5 -> 0.75
    idx = np.asarray(D.sample_t(DiffusionConfig(objective="eps", timestep_sampling="uniform"), key, 20000))
    assert (idx == np.round(idx)).all() and idx.min() >= 0 and idx.max() <= 999


def test_schedules_are_monotone_and_zero_snr_ends_at_zero():
    for name in D.SCHEDULES:
        ab = D.alphas_cumprod(name, 1000)
        assert ab.shape == (1000,) and (np.diff(ab) < 0).all() and ab[0] > 0.99
    assert D.alphas_cumprod("zero_snr", 1000)[-1] == 0.0
    assert D.alphas_cumprod("linear", 1000)[-1] > 0


def test_sampling_grids():
    flow = D.sampling_timesteps(DiffusionConfig(objective="flow"), 4)
    np.testing.assert_allclose(flow, [1.0, 0.75, 0.5, 0.25, 0.0])
    cfg = DiffusionConfig(objective="v", num_train_timesteps=1000)
    np.testing.assert_array_equal(D.sampling_timesteps(cfg, 4)[[0, -1]], [999, -1])
    np.testing.assert_array_equal(D.ddpm_timesteps(1000, 4, "leading"), [750, 500, 250, 0])
    np.testing.assert_array_equal(D.ddpm_timesteps(1000, 4, "trailing"), [999, 749, 499, 249])
    with pytest.raises(ValueError, match="valid: trailing, leading, linspace"):
        D.ddpm_timesteps(1000, 4, "cosine")
    with pytest.raises(ValueError, match="exceeds"):
        D.sampling_timesteps(cfg, 1001)


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="objective='v'"):
        D.check(DiffusionConfig(objective="eps", schedule="zero_snr"))
    with pytest.raises(ValueError, match="valid are flow, eps, v"):
        D.check(DiffusionConfig(objective="x0"))
    with pytest.raises(ValueError, match="shift"):
        D.Denoiser(lambda x, t: x, DiffusionConfig(shift=0.0))



@pytest.mark.parametrize("name,beta_schedule", [("linear", "linear"), ("cosine", "squaredcos_cap_v2"), ("zero_snr", "linear")])
def test_schedules_match_diffusers(name, beta_schedule):
    pytest.importorskip("torch", reason="parity tests need torch (pip install torch==2.13.0)")
    schedulers = pytest.importorskip("diffusers", reason="parity tests need diffusers").schedulers
    ref = schedulers.DDIMScheduler(beta_schedule=beta_schedule, rescale_betas_zero_snr=name == "zero_snr")
    np.testing.assert_allclose(D.alphas_cumprod(name, 1000), ref.alphas_cumprod.numpy(), rtol=1e-5, atol=1e-6)


def test_tiny_dit_overfits_four_clips():
    """1000 Adam steps on 4 random latent clips: flow loss from ~2 (= E|eps - x0|^2) to < 0.4."""
    cfg = DiTConfig(hidden=48, depth=2, num_heads=4, mlp_ratio=2.0)
    dcfg = DiffusionConfig(objective="flow")
    model = VideoDiT(cfg, 4, 16, rngs=nnx.Rngs(0))
    x0 = jax.random.normal(jax.random.key(1), (4, 2, 4, 6, 4))
    text = jax.random.normal(jax.random.key(2), (4, 5, 16))
    mask = jnp.ones((4, 5), bool)
    tx = optax.adam(3e-3)
    graphdef, params = nnx.split(model, nnx.Param)

    def loss_fn(p, key):
        return D.loss(nnx.merge(graphdef, p), x0, key, cfg=dcfg, text=text, text_mask=mask)

    @jax.jit
    def train(params, key):                      # the whole loop is one scan: one compile, no syncs
        def step(carry, i):
            p, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(key, i))
            updates, opt_state = tx.update(grads, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state), loss

        return jax.lax.scan(step, (params, tx.init(params)), jnp.arange(1000))[1]

    losses = np.asarray(train(params, jax.random.key(7)))
    assert losses[:20].mean() > 1.5
    assert losses[-100:].mean() < 0.4, f"loss fell only to {losses[-100:].mean():.3f}"
