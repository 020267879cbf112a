"""Samplers: exact trajectories, guidance, seeds, callback, accuracy order, validation, diffusers parity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sora_jax import diffusion as D
from sora_jax import sampling as S
from sora_jax.config import DiffusionConfig, DiTConfig, TextConfig
from sora_jax.dit import VideoDiT
from sora_jax.text import TextEncoder

SHAPE = (2, 3, 5, 2)
CONFIGS = [
    DiffusionConfig(objective="flow", shift=3.0),
    DiffusionConfig(objective="eps", schedule="linear"),
    DiffusionConfig(objective="v", schedule="zero_snr"),
]


def randn(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def ids(cfg):
    return f"{cfg.objective}-{cfg.schedule}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=ids)
@pytest.mark.parametrize("sampler", S.SAMPLERS)
def test_exact_denoiser_of_one_point_is_followed_exactly(cfg, sampler):
    """With D(x, t) = x0 the ODE solution is the straight path alpha x0 + sigma eps: every
    sampler must stay on it at every step and end at x0."""
    x0 = randn(*SHAPE[1:], seed=0)
    noise = randn(*SHAPE, seed=1)
    seen = []
    out = S.sample(lambda x, t, **c: jnp.broadcast_to(x0, x.shape), SHAPE, schedule=cfg, sampler=sampler,
                   steps=7, noise=noise, callback=seen.append)
    np.testing.assert_allclose(out, jnp.broadcast_to(x0, SHAPE), atol=1e-5)
    assert [s["i"] for s in seen] == list(range(7))
    a0, s0 = D.alpha_sigma(cfg, seen[0]["t"])
    eps = (noise - a0 * x0) / s0                   # the start fixes which straight line we are on
    for s in seen:
        a, sig = D.alpha_sigma(cfg, s["t"])
        np.testing.assert_allclose(s["x"], a * x0 + sig * eps, atol=2e-4, rtol=1e-4)
        np.testing.assert_allclose(s["denoised"], jnp.broadcast_to(x0, SHAPE))


@pytest.mark.parametrize("cfg", CONFIGS, ids=ids)
@pytest.mark.parametrize("sampler", S.SAMPLERS)
def test_known_entries_follow_their_noising_path_whatever_the_model_says(cfg, sampler):
    """known/known_mask (first-frame conditioning): masked entries ride the exact path from
    the start noise to ``known``; the rest is the model's (here a constant-5 denoiser)."""
    known, noise = randn(*SHAPE, seed=2), randn(*SHAPE, seed=3)
    mask = (jnp.arange(SHAPE[1]) < 1).astype(jnp.float32)[None, :, None, None]   # the first "frame"
    seen = []
    out = S.sample(lambda x, t, **c: jnp.full(x.shape, 5.0), SHAPE, schedule=cfg, sampler=sampler, steps=6,
                   noise=noise, known=known, known_mask=mask, callback=seen.append)
    np.testing.assert_allclose(out[:, :1], known[:, :1], atol=1e-4)
    np.testing.assert_allclose(out[:, 1:], 5.0, atol=1e-4)
    a0, s0 = D.alpha_sigma(cfg, seen[0]["t"])
    eps = (noise - a0 * known) / s0
    for st in seen:                                  # what the model is shown for the known frame
        a, sig = D.alpha_sigma(cfg, st["t"])
        np.testing.assert_allclose(st["x"][:, :1], (a * known + sig * eps)[:, :1], atol=2e-4, rtol=1e-4)


def test_known_entries_survive_guidance_and_bad_masks_are_named():
    cfg = CONFIGS[0]
    known = randn(*SHAPE, seed=4)
    mask = np.zeros((1, SHAPE[1], 1, 1), np.float32)
    mask[:, :2] = 1
    out = S.sample(cond_denoiser, SHAPE, schedule=cfg, key=jax.random.key(0), steps=4, guidance=3.0,
                   cond={"label": jnp.ones((2,))}, uncond={"label": jnp.zeros((1,))}, known=known, known_mask=mask)
    np.testing.assert_allclose(out[:, :2], known[:, :2], atol=1e-4)
    with pytest.raises(ValueError, match="together"):
        S.sample(cond_denoiser, SHAPE, schedule=cfg, key=jax.random.key(0), steps=2, cond={"label": jnp.ones((2,))},
                 known=known)
    with pytest.raises(ValueError, match="does not broadcast"):
        S.sample(cond_denoiser, SHAPE, schedule=cfg, key=jax.random.key(0), steps=2, cond={"label": jnp.ones((2,))},
                 known=known, known_mask=np.ones((4,)))


def gaussian_denoiser(cfg, mu, std):
    """The exact denoiser E[x0 | x_t] when x0 ~ N(mu, std^2) elementwise."""
    def den(x, t, **cond):
        a, s = D.alpha_sigma(cfg, t)
        a, s = a.reshape(-1, 1, 1, 1), s.reshape(-1, 1, 1, 1)
        return mu + a * std**2 * (x - a * mu) / (a**2 * std**2 + s**2)
    return den


def test_convergence_order():
    """Gaussian data: the probability-flow ODE maps noise eps exactly to mu + std * eps.
    Doubling the steps halves Euler's error (first order) and quarters Heun's (second order)."""
    cfg = DiffusionConfig(objective="flow")
    mu, std = 0.5, 0.6
    noise = randn(*SHAPE, seed=2)
    exact = mu + std * noise

    def err(name, steps):
        out = S.sample(gaussian_denoiser(cfg, mu, std), SHAPE, schedule=cfg, sampler=name, steps=steps, noise=noise)
        return float(jnp.abs(out - exact).max())

    assert 1.7 < err("euler", 8) / err("euler", 16) < 2.3
    assert 3.5 < err("heun", 8) / err("heun", 16) < 5.0
    assert err("dpmpp_2m", 16) < 0.25 * err("euler", 16)
    assert err("ddim", 8) == pytest.approx(err("euler", 8), abs=1e-5)   # DDIM is Euler
    assert err("heun", 64) < 1e-3


def cond_denoiser(x, t, *, label):
    """Pulls each sample towards its label (cond) or towards 0 (uncond): D differs by label."""
    return 0.5 * x + label[:, None, None, None] * (1.0 + 0 * t[:, None, None, None])


def test_guidance_combines_cond_and_uncond():
    x = randn(*SHAPE, seed=3)
    t = jnp.full((2,), 0.4)
    cond, uncond = {"label": jnp.array([1.0, -2.0])}, {"label": jnp.zeros((1,))}
    d_c, d_u = cond_denoiser(x, t, **cond), cond_denoiser(x, t, label=jnp.zeros(2))
    np.testing.assert_allclose(S.guided(cond_denoiser, x, t, cond, uncond, 1.0), d_c, atol=1e-6)
    np.testing.assert_allclose(S.guided(cond_denoiser, x, t, cond, uncond, 0.0), d_u, atol=1e-6)
    np.testing.assert_allclose(S.guided(cond_denoiser, x, t, cond, uncond, 3.0), d_u + 3 * (d_c - d_u), atol=1e-5)


def test_guidance_schedule_is_applied_per_step():
    cfg = DiffusionConfig(objective="flow")
    cond, uncond = {"label": jnp.array([1.0, -2.0])}, {"label": jnp.zeros((1,))}
    seen = []
    S.sample(cond_denoiser, SHAPE, schedule=cfg, steps=4, key=jax.random.key(0), cond=cond, uncond=uncond,
             guidance=lambda i: 1.0 + i, callback=seen.append)
    for s in seen:
        tb = jnp.full((2,), s["t"])
        d_c = cond_denoiser(s["x"], tb, **cond)
        d_u = cond_denoiser(s["x"], tb, label=jnp.zeros(2))
        np.testing.assert_allclose(s["denoised"], d_u + (1 + s["i"]) * (d_c - d_u), atol=1e-5)
    # guidance 1 with uncond given is the conditional sample
    kw = dict(schedule=cfg, steps=4, key=jax.random.key(0), cond=cond)
    np.testing.assert_allclose(S.sample(cond_denoiser, SHAPE, uncond=uncond, guidance=1.0, **kw),
                               S.sample(cond_denoiser, SHAPE, **kw), atol=1e-6)


def test_interval_guidance_guides_only_steps_starting_inside():
    flow = DiffusionConfig(objective="flow", shift=3.0)
    ts = D.sampling_timesteps(flow, 10)
    scales = S.interval_guidance(5.0, ts, flow, (0.2, 0.8))
    assert scales.shape == (10,)
    for t, g in zip(ts[:-1], scales):
        assert g == (5.0 if 0.2 <= t <= 0.8 else 1.0), (t, g)
    assert 1.0 in scales and 5.0 in scales
    np.testing.assert_array_equal(S.interval_guidance(5.0, ts, flow, (0, 1)), np.full(10, 5.0))
    # DDPM times are integers: the interval is on t / (num_train_timesteps - 1)
    ddpm = DiffusionConfig(objective="eps", schedule="linear", num_train_timesteps=1000)
    tsd = D.sampling_timesteps(ddpm, 4, spacing="linspace")          # 999, 749, 500, 250, then clean (-1)
    np.testing.assert_array_equal(S.interval_guidance(3.0, tsd, ddpm, (0.6, 1.0)), [3.0, 3.0, 1.0, 1.0])
    np.testing.assert_array_equal(S.interval_guidance(3.0, tsd, ddpm, (0.5, 1.0)), [3.0, 3.0, 3.0, 1.0])
    for bad in [(0.5, 0.5), (-0.1, 0.5), (0.2, 1.5), (0.3,), "ab", None]:
        with pytest.raises(ValueError, match="guidance_interval"):
            S.interval_guidance(3.0, ts, flow, bad)
    # sample() applies it on its own time grid, on top of a per-step schedule
    cond, uncond = {"label": jnp.array([1.0, -2.0])}, {"label": jnp.zeros((1,))}
    kw = dict(schedule=flow, steps=10, key=jax.random.key(0), cond=cond, uncond=uncond)
    ramp = list(np.linspace(2.0, 6.0, 10))
    np.testing.assert_array_equal(S.sample(cond_denoiser, SHAPE, guidance=ramp, guidance_interval=(0.2, 0.8), **kw),
                                  S.sample(cond_denoiser, SHAPE, guidance=np.where(scales == 5.0, ramp, 1.0), **kw))
    with pytest.raises(ValueError, match="guidance_interval"):
        S.sample(cond_denoiser, SHAPE, guidance=3.0, guidance_interval=(0.9, 0.1), **kw)


@pytest.mark.parametrize("sampler", S.SAMPLERS)
def test_unguided_steps_skip_the_unconditional_pass(sampler):
    """Guidance 1 on some steps: those run on the b conditional rows only, and the result is the
    same as stepping one at a time (the callback path), so runs hand over x and the previous D."""
    cfg = DiffusionConfig(objective="flow", shift=3.0)
    cond, uncond = {"label": jnp.array([1.0, -2.0])}, {"label": jnp.zeros((1,))}
    batches = []

    def counting(x, t, label):
        batches.append(x.shape[0])                     # at trace time: once per compiled run
        return cond_denoiser(x, t, label=label)

    schedule = [4.0, 4.0, 1.0, 1.0, 3.0]
    kw = dict(schedule=cfg, steps=5, key=jax.random.key(1), cond=cond, uncond=uncond, guidance=schedule, sampler=sampler)
    fast = S.sample(counting, SHAPE, **kw)
    assert set(batches) == {2 * SHAPE[0], SHAPE[0]}
    stepwise = S.sample(cond_denoiser, SHAPE, callback=lambda d: None, **kw)
    np.testing.assert_allclose(fast, stepwise, atol=1e-5)
    batches.clear()
    S.sample(counting, SHAPE, **dict(kw, guidance=4.0))
    assert set(batches) == {2 * SHAPE[0]}


def test_seeds_are_per_sample():
    cfg = DiffusionConfig(objective="flow")
    den = gaussian_denoiser(cfg, 0.2, 0.5)
    kw = dict(schedule=cfg, sampler="dpmpp_2m", steps=5)
    a = S.sample(den, SHAPE, key=jax.random.key(4), **kw)
    np.testing.assert_array_equal(a, S.sample(den, SHAPE, key=jax.random.key(4), **kw))
    big = S.sample(den, (5, *SHAPE[1:]), key=jax.random.key(4), **kw)
    np.testing.assert_allclose(big[:2], a, atol=1e-6)                  # growing the batch changes nothing
    third = S.sample(den, (1, *SHAPE[1:]), key=jax.random.key(4), sample_index=2, **kw)
    np.testing.assert_allclose(third[0], big[2], atol=1e-6)
    assert not np.allclose(a, S.sample(den, SHAPE, key=jax.random.key(5), **kw))
    assert not np.allclose(a[0], a[1])


def test_callback_does_not_change_the_result():
    cfg = DiffusionConfig(objective="v", schedule="cosine")
    den = gaussian_denoiser(cfg, -0.3, 0.8)
    for name in S.SAMPLERS:
        kw = dict(schedule=cfg, sampler=name, steps=6, key=jax.random.key(6))
        np.testing.assert_allclose(S.sample(den, SHAPE, **kw), S.sample(den, SHAPE, callback=lambda d: None, **kw),
                                   atol=1e-5)


def test_bad_arguments_are_named():
    cfg = DiffusionConfig(objective="flow")
    den = gaussian_denoiser(cfg, 0.0, 1.0)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="valid: euler, heun, ddim, dpmpp_2m"):
        S.sample(den, SHAPE, schedule=cfg, sampler="plms", key=key)
    with pytest.raises(ValueError, match="steps=0"):
        S.sample(den, SHAPE, schedule=cfg, steps=0, key=key)
    with pytest.raises(ValueError, match=r"guidance scale must be finite and >= 0, got -2"):
        S.sample(den, SHAPE, schedule=cfg, guidance=-2.0, uncond={}, key=key)
    with pytest.raises(ValueError, match="needs uncond"):
        S.sample(den, SHAPE, schedule=cfg, guidance=4.0, key=key)
    with pytest.raises(ValueError, match="noise has shape"):
        S.sample(den, SHAPE, schedule=cfg, noise=jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="schedule="):
        S.sample(den, SHAPE, key=key)
    with pytest.raises(ValueError, match="sigma = 0"):
        S.sample(den, SHAPE, schedule=cfg, timesteps=[1.0, 0.5], key=key)
    with pytest.raises(ValueError, match="one per step"):
        S.sample(den, SHAPE, schedule=cfg, steps=3, guidance=[1.0, 2.0], uncond={}, key=key)
    with pytest.raises(ValueError, match=r">= 0, got -1"):              # a schedule that goes negative
        S.sample(den, SHAPE, schedule=cfg, steps=4, guidance=lambda i: 2.0 - i, uncond={}, key=key)
    with pytest.raises(ValueError, match=r"steps=2\.5"):
        S.sample(den, SHAPE, schedule=cfg, steps=2.5, key=key)


@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=ids)
def test_stochastic_sampling_draws_the_data_distribution(cfg):
    """Gaussian data, exact denoiser: ancestral (eta = 1) and half-stochastic sampling end at
    N(mu, std^2) -- with fresh noise every step, not the ODE's noise -> data map -- and eta = 0 is
    the deterministic sampler exactly."""
    mu, std = 0.5, 0.6
    den = gaussian_denoiser(cfg, mu, std)
    shape, key = (4000, 2, 2, 2), jax.random.key(8)
    kw = dict(schedule=cfg, steps=200, key=key)
    ode = S.sample(den, shape, **kw)
    np.testing.assert_array_equal(S.sample(den, shape, eta=0.0, **kw), ode)
    for eta in (0.5, 1.0):
        x = np.asarray(S.sample(den, shape, eta=eta, **kw))
        assert abs(x.mean() - mu) < 0.02 and abs(x.std() - std) < 0.02, (eta, x.mean(), x.std())
        # the same start noise lands elsewhere: the path was re-randomised on the way
        assert np.abs(x - np.asarray(ode)).mean() > 0.1 * std


def test_stochastic_noise_is_per_sample_and_named_keys_are_used():
    cfg = DiffusionConfig(objective="flow")
    den = gaussian_denoiser(cfg, 0.2, 0.5)
    kw = dict(schedule=cfg, steps=5, eta=1.0)
    a = S.sample(den, SHAPE, key=jax.random.key(4), **kw)
    big = S.sample(den, (5, *SHAPE[1:]), key=jax.random.key(4), **kw)
    np.testing.assert_allclose(big[:2], a, atol=1e-6)                  # growing the batch changes nothing
    third = S.sample(den, (1, *SHAPE[1:]), key=jax.random.key(4), sample_index=2, **kw)
    np.testing.assert_allclose(third[0], big[2], atol=1e-6)
    # explicit per-row keys (with explicit start noise) reproduce the key= draw row by row
    keys = S.row_keys(jax.random.key(4), 5)
    noise = S.initial_noise(jax.random.key(4), (5, *SHAPE[1:]))
    np.testing.assert_allclose(S.sample(den, big.shape, noise=noise, keys=keys, **kw), big, atol=1e-6)
    swapped = S.sample(den, big.shape, noise=noise, keys=keys[::-1], **kw)
    assert not np.allclose(swapped[0], big[0]) and np.allclose(swapped[2], big[2], atol=1e-6)


def test_stochastic_arguments_are_named():
    cfg = DiffusionConfig(objective="flow")
    den = gaussian_denoiser(cfg, 0.0, 1.0)
    key = jax.random.key(0)
    for eta in (-0.1, 1.5, float("nan"), "1"):
        with pytest.raises(ValueError, match=r"eta=.*need a number in \[0, 1\]"):
            S.sample(den, SHAPE, schedule=cfg, eta=eta, key=key)
    for sampler in ("heun", "dpmpp_2m"):
        with pytest.raises(ValueError, match=f"needs sampler 'euler' or 'ddim' \\(got '{sampler}'"):
            S.sample(den, SHAPE, schedule=cfg, sampler=sampler, eta=0.5, key=key)
    with pytest.raises(ValueError, match="pass key= or keys="):
        S.sample(den, SHAPE, schedule=cfg, eta=0.5, noise=jnp.zeros(SHAPE))
    with pytest.raises(ValueError, match=r"keys: need \(2,\) typed PRNG keys"):
        S.sample(den, SHAPE, schedule=cfg, eta=0.5, noise=jnp.zeros(SHAPE), keys=jax.random.split(key, 3))


def test_dit_denoiser_with_text_guidance():
    """End to end: a VideoDiT in a Denoiser, guided by the TextEncoder's null text."""
    enc = TextEncoder(TextConfig(max_tokens=11, width=16, depth=1, num_heads=2), rngs=nnx.Rngs(0))
    # scan_layers + remat: the model must also run when rebuilt inside the sampler's lax.scan
    dit = VideoDiT(DiTConfig(hidden=24, depth=2, num_heads=2, scan_layers=True, remat=True), 3, 16, rngs=nnx.Rngs(1))
    den = D.Denoiser(dit, DiffusionConfig(objective="flow"))
    text = randn(2, 11, 16, seed=1)     # stands in for encoded prompts
    mask = jnp.arange(11)[None] < jnp.array([[5], [11]])
    null, null_mask = enc.null(1)
    out = S.sample(den, (2, 2, 4, 4, 3), key=jax.random.key(0), steps=3, guidance=3.0,
                   cond=dict(text=text, text_mask=mask), uncond=dict(text=null, text_mask=null_mask))
    assert out.shape == (2, 2, 4, 4, 3) and bool(jnp.isfinite(out).all())


# --------------------------------------------------------------------------- diffusers parity
# The same model function drives our sampler and a diffusers scheduler from the same noise.


def model_jax(x, tc, **cond):
    return 0.7 * jnp.sin(1.3 * x) + 0.4 * x * tc.reshape(-1, *[1] * (x.ndim - 1)) - 0.2


def _torch_loop(scheduler, noise, model_time):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(np.asarray(noise))
    for i, t in enumerate(scheduler.timesteps):
        tc = model_time(i, t)
        x = scheduler.step(0.7 * torch.sin(1.3 * x) + 0.4 * x * tc - 0.2, t, x).prev_sample
    return x.numpy()


def _close(ours, ref):
    """1e-5 relative to the sample's scale (eps models reach large values at high noise)."""
    err = np.abs(np.asarray(ours) - ref).max()
    assert err <= 1e-5 * max(1.0, np.abs(ref).max()), f"max error {err:.3g}, scale {np.abs(ref).max():.3g}"


@pytest.fixture
def schedulers():
    pytest.importorskip("torch", reason="parity tests need torch (pip install torch==2.13.0, CPU wheel)")
    return pytest.importorskip("diffusers", reason="parity tests need diffusers (the 'parity' extra)").schedulers


NOISE = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


@pytest.mark.parametrize("steps,shift", [(9, 3.0), (5, 1.0)])
def test_flow_euler_matches_diffusers(schedulers, steps, shift):
    ref = schedulers.FlowMatchEulerDiscreteScheduler(shift=shift)
    ref.set_timesteps(steps)
    expected = _torch_loop(ref, NOISE, lambda i, t: t / 1000.0)
    cfg = DiffusionConfig(objective="flow", shift=shift)
    ours = S.sample(D.Denoiser(model_jax, cfg), SHAPE, sampler="euler", timesteps=ref.sigmas.numpy(), noise=NOISE)
    _close(ours, expected)
    # step sizes: our default grid is diffusers' shifted sigmas for the unshifted grid linspace(1, 0)
    grid = schedulers.FlowMatchEulerDiscreteScheduler(shift=shift)
    grid.set_timesteps(sigmas=np.linspace(1.0, 0.0, steps + 1)[:-1])
    np.testing.assert_allclose(D.sampling_timesteps(cfg, steps), grid.sigmas.numpy(), atol=1e-6)


DDPM_CASES = [("epsilon", "linear", "leading", False), ("epsilon", "squaredcos_cap_v2", "leading", False),
              ("v_prediction", "squaredcos_cap_v2", "trailing", False), ("v_prediction", "linear", "trailing", True)]


def _cfg(pred, beta_schedule, zero_snr):
    schedule = "zero_snr" if zero_snr else {"linear": "linear", "squaredcos_cap_v2": "cosine"}[beta_schedule]
    return DiffusionConfig(objective="eps" if pred == "epsilon" else "v", schedule=schedule)


@pytest.mark.parametrize("pred,beta_schedule,spacing,zero_snr", DDPM_CASES)
def test_ddim_matches_diffusers(schedulers, pred, beta_schedule, spacing, zero_snr):
    # 10 steps divide T = 1000: diffusers' DDIM then steps to exactly the next grid time
    ref = schedulers.DDIMScheduler(beta_schedule=beta_schedule, prediction_type=pred, clip_sample=False,
                                   timestep_spacing=spacing, rescale_betas_zero_snr=zero_snr)
    ref.set_timesteps(10)
    expected = _torch_loop(ref, NOISE, lambda i, t: t / 1000.0)
    cfg = _cfg(pred, beta_schedule, zero_snr)
    np.testing.assert_array_equal(D.sampling_timesteps(cfg, 10, spacing=spacing)[:-1], ref.timesteps.numpy())
    _close(S.sample(D.Denoiser(model_jax, cfg), SHAPE, sampler="ddim", steps=10, spacing=spacing, noise=NOISE),
           expected)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_stochastic_ddim_matches_diffusers(schedulers, eta):
    """DDIM with eta (Song et al. 2021): diffusers' step fed the same fresh noise lands on our sample."""
    torch = pytest.importorskip("torch")
    ref = schedulers.DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                                   clip_sample=False, timestep_spacing="trailing")
    ref.set_timesteps(10)
    keys = S.row_keys(jax.random.key(3), SHAPE[0])
    x = torch.from_numpy(NOISE)
    for i, t in enumerate(ref.timesteps):
        z = torch.from_numpy(np.array(S.step_noise(keys, i, SHAPE)))
        out = 0.7 * torch.sin(1.3 * x) + 0.4 * x * (t / 1000.0) - 0.2
        x = ref.step(out, t, x, eta=eta, variance_noise=z).prev_sample
    cfg = _cfg("v_prediction", "squaredcos_cap_v2", False)
    ours = S.sample(D.Denoiser(model_jax, cfg), SHAPE, sampler="ddim", steps=10, spacing="trailing", noise=NOISE,
                    keys=keys, eta=eta)
    _close(ours, x.numpy())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # diffusers' own numpy-2 copy= warning
@pytest.mark.parametrize("pred,beta_schedule,spacing,steps", [
    ("epsilon", "linear", "linspace", 10), ("v_prediction", "squaredcos_cap_v2", "trailing", 10),
    ("v_prediction", "linear", "linspace", 16), ("v_prediction", "squaredcos_cap_v2", "linspace", 20)])
def test_dpmpp_2m_matches_diffusers(schedulers, pred, beta_schedule, spacing, steps):
    ref = schedulers.DPMSolverMultistepScheduler(beta_schedule=beta_schedule, prediction_type=pred,
                                                 timestep_spacing=spacing)
    ref.set_timesteps(steps)
    expected = _torch_loop(ref, NOISE, lambda i, t: t / 1000.0)
    cfg = _cfg(pred, beta_schedule, False)
    np.testing.assert_array_equal(D.sampling_timesteps(cfg, steps, spacing=spacing)[:-1], ref.timesteps.numpy())
    _close(S.sample(D.Denoiser(model_jax, cfg), SHAPE, sampler="dpmpp_2m", steps=steps, spacing=spacing,
                    noise=NOISE), expected)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_flow_dpmpp_2m_matches_diffusers(schedulers):
    ref = schedulers.DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction",
                                                 flow_shift=3.0)
    ref.set_timesteps(10)
    sigmas = ref.sigmas.numpy().astype(np.float64)
    # diffusers rounds the model's timestep to an integer; feed both models the same sigma
    expected = _torch_loop(ref, NOISE, lambda i, t: float(sigmas[i]))
    cfg = DiffusionConfig(objective="flow")
    _close(S.sample(D.Denoiser(model_jax, cfg), SHAPE, sampler="dpmpp_2m", timesteps=sigmas, noise=NOISE), expected)
