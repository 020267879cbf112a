"""Samplers: noise -> clip with any denoiser, classifier-free guidance, a per-step callback.

The only thing a sampler needs from the model is the k-diffusion contract
``denoised = denoiser(x, t, **cond)`` (see :class:`sora_jax.diffusion.Denoiser`) and
the path ``x_t = alpha(t) x0 + sigma(t) eps`` of the objective
(:func:`sora_jax.diffusion.alpha_sigma`). Times ``t`` run over a decreasing grid
``t_0 > t_1 > ... > t_N`` (:func:`sora_jax.diffusion.sampling_timesteps`) ending where
``sigma = 0``. Axes: ``b`` batch, ``...`` data axes (``t, h, w, c`` for latents).

The samplers, with ``D_i`` the denoised estimate at step ``i``:

* ``euler`` - Euler on the probability-flow ODE. Every Gaussian path is a rescaled
  rectified flow: ``y = x / (alpha + sigma)`` follows the flow path with time
  ``tau = sigma / (alpha + sigma)``, whose velocity is ``(y - D) / tau``. One Euler step
  there is ``x' = (sigma'/sigma) x + (alpha' - sigma' alpha/sigma) D``. For the flow
  objective it is exactly ``x + (t' - t) v`` (diffusers' FlowMatchEulerDiscrete).
* ``ddim`` - DDIM (eta = 0): ``x' = alpha' D + sigma' eps_hat`` with
  ``eps_hat = (x - alpha D) / sigma``. Expand it and it is the same update as ``euler``:
  deterministic DDIM *is* Euler's method in these coordinates (Song et al. 2021,
  Karras et al. 2022). Both names are kept because users look for both.
* ``heun`` - Heun's second-order method in the flow coordinates (Karras et al. 2022):
  an Euler step, a second denoiser call at its end, and the average of the two slopes;
  the last step (to ``sigma = 0``) is plain Euler. ``2 N - 1`` denoiser calls.
* ``dpmpp_2m`` - DPM-Solver++(2M) (Lu et al. 2022): an exponential integrator in
  ``lambda = log(alpha / sigma)`` that reuses the previous step's ``D`` for second order;
  first order at the first step and at the final step, as in diffusers.

``euler``, ``ddim`` and ``dpmpp_2m`` are all ``x' = a_i x + b_i D_i + c_i D_{i-1}``; the
coefficients are computed once on the host in float64 (:func:`coefficients`).

Stochastic sampling (``eta > 0``, ``euler``/``ddim`` only): DDIM's ``eta`` (Song et al.
2021). The step draws ``x'`` from a Gaussian around ``alpha' D`` whose variance is
``eta^2`` times that of the true posterior ``q(x' | x, x0 = D)``,
``v = sigma'^2 (1 - (alpha sigma')^2 / (alpha' sigma)^2)``:
``x' = alpha' D + sqrt(sigma'^2 - eta^2 v) eps_hat + eta sqrt(v) z`` with fresh noise
``z``. ``eta = 0`` is the deterministic step above; ``eta = 1`` is ancestral (DDPM)
sampling, which replaces part of the sample by fresh noise each step and so can wash out
an early mistake -- at the price of needing more steps. Any Gaussian path works: the
formula only uses ``alpha`` and ``sigma``.

Guidance (Ho & Salimans 2022) is done here, never in the model: ``cond`` and ``uncond``
are stacked into one batch of ``2b``, and ``D = D_u + w (D_c - D_u)``. ``w`` can change
with the step (a function of the step index, or a list), and ``guidance_interval=(lo, hi)``
keeps it only on the steps that start at a noise level in ``[lo, hi]`` (guidance in a
limited interval, Kynkaenniemi et al. 2024; :func:`interval_guidance`). The result is the same whether it is
applied to the denoised estimate or to the velocity / noise prediction, since those
are affine in ``D`` at fixed ``(x, t)``.

Per-sample seeds: sample ``j`` starts from ``normal(fold_in(key, sample_index + j))``,
so a sample does not change when the batch size does. ``noise=`` replaces that draw.

The step is jitted (no host syncs inside). Without a callback the loop is a
``lax.scan`` -- one per run of consecutive guided or unguided steps, usually one in all: a
step whose guidance is 1 skips the unconditional half of the batch, so guiding only part of
the way also costs less. With a callback, a Python loop runs the jitted step and calls
``callback(dict(x=..., i=..., t=..., denoised=...))`` after every step with the step's
input ``x`` at time ``t`` and its denoised estimate (device arrays: converting them to
numpy is the callback's choice, and syncs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from sora_jax.config import DiffusionConfig
from sora_jax.diffusion import alpha_sigma_np, check, sampling_timesteps

SAMPLERS = ("euler", "heun", "ddim", "dpmpp_2m")
STOCHASTIC_SAMPLERS = ("euler", "ddim")       # the ones that take eta > 0
Guidance = float | Sequence[float] | Callable[[int], float]


# --------------------------------------------------------------------------- #
# Guidance
# --------------------------------------------------------------------------- #


def guidance_scales(guidance: Guidance, steps: int) -> np.ndarray:
    """Guidance weight per step, ``(steps,)``: a constant, a sequence, or ``fn(step_index)``.

    1 = conditional only; 0 = unconditional only; > 1 pushes away from the unconditional.
    """
    if callable(guidance):
        scales = np.array([float(guidance(i)) for i in range(steps)])
    elif np.ndim(guidance) == 0:
        scales = np.full(steps, float(guidance))
    else:
        scales = np.asarray(guidance, np.float64)
        if scales.shape != (steps,):
            raise ValueError(f"guidance has {scales.shape} values; need one per step ({steps})")
    bad = scales[~np.isfinite(scales) | (scales < 0)]
    if bad.size:
        raise ValueError(f"guidance scale must be finite and >= 0, got {bad[0]} (1 = no guidance)")
    return scales


def check_interval(interval: Sequence[float]) -> tuple[float, float]:
    """Validate a guidance interval ``(lo, hi)``, ``0 <= lo < hi <= 1``; returns it as floats."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval={interval!r}: need two numbers (lo, hi) with 0 <= lo < hi <= 1") from None
    if not (0.0 <= lo < hi <= 1.0):
        raise ValueError(f"guidance_interval={interval!r}: need 0 <= lo < hi <= 1 "
                         "(noise levels: 1 = pure noise, 0 = clean)")
    return lo, hi


def check_eta(eta: float, sampler: str | None = None) -> float:
    """Validate a stochasticity ``eta`` in ``[0, 1]`` (and, given ``sampler``, that it can take
    ``eta > 0``: only :data:`STOCHASTIC_SAMPLERS` can); returns it as a float."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta={eta!r}: need a number in [0, 1] (0 = deterministic, 1 = ancestral)")
    eta = float(eta)
    if sampler is not None and eta > 0 and sampler not in STOCHASTIC_SAMPLERS:
        raise ValueError(f"eta={eta:g} needs sampler 'euler' or 'ddim' (got {sampler!r}, which is deterministic only)")
    return eta


def interval_guidance(scale: float | np.ndarray, timesteps: Sequence[float], schedule: DiffusionConfig,
                      interval: Sequence[float]) -> np.ndarray:
    """Per-step guidance that is ``scale`` (a number or one per step) only where the step starts
    inside ``interval``, else 1.

    Guidance in a limited interval (Kynkaenniemi et al., 2024): the step from
    ``timesteps[i]`` to ``timesteps[i + 1]`` is guided when its starting noise level
    lies in ``[lo, hi]`` (1 = pure noise, 0 = clean; DDPM times are divided by
    ``num_train_timesteps - 1``). Returns ``(len(timesteps) - 1,)`` scales for
    :func:`sample`'s ``guidance``.
    """
    lo, hi = check_interval(interval)
    ts = np.asarray(timesteps, np.float64)[:-1]
    level = ts if schedule.objective == "flow" else ts / (schedule.num_train_timesteps - 1)
    return np.where((level >= lo) & (level <= hi), np.asarray(scale, np.float64), 1.0)


def _stack(cond: dict, uncond: dict, batch: int) -> dict:
    if set(cond) != set(uncond):
        raise ValueError(f"cond keys {sorted(cond)} and uncond keys {sorted(uncond)} differ")

    def cat(c, u):
        u = jnp.broadcast_to(u, (batch, *u.shape[1:])) if u.shape[0] == 1 else u
        if u.shape != c.shape:
            raise ValueError(f"uncond leaf {u.shape} does not match cond leaf {c.shape}")
        return jnp.concatenate([c, u.astype(c.dtype)])

    return jax.tree.map(cat, cond, uncond)


def guided(
    denoiser: Callable[..., Array],
    x: Float[Array, "b ..."],
    t,
    cond: dict,
    uncond: dict | None,
    scale,
) -> Float[Array, "b ..."]:
    """Classifier-free guided ``D = D_u + scale (D_c - D_u)``, one denoiser call on a ``2b`` batch.

    ``uncond`` leaves may have batch 1 (broadcast). ``uncond=None``: plain ``denoiser(x, t, **cond)``.
    """
    if uncond is None:
        return denoiser(x, t, **cond)
    b = x.shape[0]
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (b,))
    both = denoiser(jnp.concatenate([x, x]), jnp.concatenate([t, t]), **_stack(cond, uncond, b))
    d_cond, d_uncond = both[:b], both[b:]
    return d_uncond + scale * (d_cond - d_uncond)


# --------------------------------------------------------------------------- #
# Step coefficients (host, float64)
# --------------------------------------------------------------------------- #


def coefficients(sampler: str, alpha: np.ndarray, sigma: np.ndarray, eta: float = 0.0) -> np.ndarray:
    """``(N, 8)`` per-step numbers: ``a, b, c`` of ``x' = a x + b D + c D_prev + n z``; for Heun,
    ``tau, tau', scale, scale'`` of the flow coordinates ``y = x / scale``, ``scale = alpha + sigma``,
    ``tau = sigma / scale``; and ``n``, the standard deviation of the fresh noise ``z`` a
    stochastic step (``eta > 0``) adds.
    """
    n = len(alpha) - 1
    out = np.zeros((n, 8))
    lam = np.full(n + 1, -np.inf)
    pos = (alpha > 0) & (sigma > 0)
    lam[pos] = np.log(alpha[pos]) - np.log(sigma[pos])
    lam[(alpha > 0) & (sigma == 0)] = np.inf
    for i in range(n):
        a_s, s_s, a_t, s_t = alpha[i], sigma[i], alpha[i + 1], sigma[i + 1]
        if s_s <= 0:
            raise ValueError(f"time grid step {i} starts at sigma=0 (already clean); the grid must end there")
        a, b, c = s_t / s_s, a_t - s_t * a_s / s_s, 0.0          # first order (euler = ddim)
        noise_std = 0.0
        if eta > 0 and s_t > 0:
            # posterior variance of x' given x and x0 = D: sigma'^2 (1 - (alpha sigma')^2 / (alpha' sigma)^2)
            ratio = (a_s * s_t) / (a_t * s_s) if a_t > 0 else 1.0
            var = s_t ** 2 * max(0.0, 1.0 - ratio ** 2)
            noise_std = eta * np.sqrt(var)
            keep = np.sqrt(max(0.0, s_t ** 2 - noise_std ** 2))      # the part of eps_hat that stays
            a, b = keep / s_s, a_t - keep * a_s / s_s
        if sampler == "dpmpp_2m" and i > 0:
            last = i == n - 1
            lower_final = last and (n < 15 or s_t == 0)        # diffusers: lower_order_final
            h, h_prev = lam[i + 1] - lam[i], lam[i] - lam[i - 1]
            if not lower_final and np.isfinite(h) and np.isfinite(h_prev) and h != 0:
                r = h_prev / h
                b, c = b * (1 + 0.5 / r), -b * 0.5 / r
        scale, scale_t = a_s + s_s, a_t + s_t
        out[i] = (a, b, c, s_s / scale, s_t / scale_t, scale, scale_t, noise_std)
    return out


# --------------------------------------------------------------------------- #
# The jitted step
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class _Apply:
    """A hashable handle on the denoiser: an nnx graphdef (weights passed separately) or a function."""

    graphdef: Any = None
    fn: Any = None

    def __call__(self, state, x, t, cond):
        den = nnx.merge(self.graphdef, state) if self.graphdef is not None else self.fn
        return den(x, t, **cond)


def _split(denoiser) -> tuple[_Apply, Any]:
    if isinstance(denoiser, nnx.Module):
        graphdef, state = nnx.split(denoiser)
        return _Apply(graphdef=graphdef), state
    return _Apply(fn=denoiser), None


class _Bound:
    """``apply`` with its weights bound, called with ``cond`` as keyword arguments."""

    def __init__(self, apply: _Apply, state):
        self.apply, self.state = apply, state

    def __call__(self, x, t, **cond):
        return self.apply(self.state, x, t, cond)


@partial(jax.jit, static_argnames=("apply", "sampler", "use_cfg"))
def _one_step(apply, sampler, use_cfg, state, carry, per_step, cond, uncond, known, rows):
    return _step_impl(apply, sampler, use_cfg, state, carry, per_step, cond, uncond, known, rows)


@partial(jax.jit, static_argnames=("apply", "sampler", "use_cfg"))
def _run_steps(apply, sampler, use_cfg, state, carry, per_step, cond, uncond, known, rows):
    """A run of steps as one ``lax.scan``; ``carry = (x, previous denoised)`` in and out."""
    def body(carry, ps):
        return _step_impl(apply, sampler, use_cfg, state, carry, ps, cond, uncond, known, rows), None

    carry, _ = jax.lax.scan(body, carry, per_step)
    return carry


def _runs(guided: np.ndarray) -> list[tuple[int, int, bool]]:
    """Split the steps into maximal runs ``(start, stop, guided)`` of equal ``guided``."""
    runs, start = [], 0
    for i in range(1, len(guided) + 1):
        if i == len(guided) or guided[i] != guided[start]:
            runs.append((start, i, bool(guided[start])))
            start = i
    return runs


def _with_known(d: Array, known) -> Array:
    """Overwrite the denoised prediction where the clean sample is known (``known = (x0, mask)``)."""
    if known is None:
        return d
    x0, mask = known
    return mask * x0 + (1.0 - mask) * d


def step_noise(keys: jax.Array, step: int | Array, shape: Sequence[int]) -> Float[Array, "b ..."]:
    """The fresh noise ``z`` of stochastic step ``step``: row ``j`` is ``normal(fold_in(keys[j], step + 1))``
    (its initial noise is ``normal(keys[j])``), so a clip's noise never depends on its batch."""
    return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, step + 1), tuple(shape[1:])))(keys)


def _step_impl(apply, sampler, use_cfg, state, carry, per_step, cond, uncond, known=None, rows=None):
    x, d_prev = carry
    t, t_next, coef, scale, index = per_step
    den = _Bound(apply, state)
    b_ = x.shape[0]
    tb, tnb = jnp.full((b_,), t), jnp.full((b_,), t_next)
    d = _with_known(guided(den, x, tb, cond, uncond if use_cfg else None, scale), known)
    x_next = coef[0] * x + coef[1] * d + coef[2] * d_prev
    if sampler == "heun":
        tau, tau_n, s, s_n = coef[3], coef[4], coef[5], coef[6]

        def correct(x_euler):
            d2 = _with_known(guided(den, x_euler, tnb, cond, uncond if use_cfg else None, scale), known)
            y, y_e = x / s, x_euler / s_n
            slope = (y - d) / tau + (y_e - d2) / tau_n
            return s_n * (y + 0.5 * (tau_n - tau) * slope)

        x_next = jax.lax.cond(tau_n > 0, correct, lambda xe: xe, x_next)
    if rows is not None:                                            # stochastic step (eta > 0)
        x_next = x_next + coef[7] * step_noise(rows, index, x.shape)
    return x_next, d


# --------------------------------------------------------------------------- #
# Entry point
# --------------------------------------------------------------------------- #


def row_keys(key: jax.Array, batch: int, sample_index: int = 0) -> jax.Array:
    """``(batch,)`` per-sample keys ``fold_in(key, sample_index + j)``."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(sample_index + jnp.arange(batch))


def initial_noise(key: jax.Array, shape: Sequence[int], sample_index: int = 0) -> Float[Array, "b ..."]:
    """``(b, ...)`` standard normal noise; row ``j`` is ``normal(fold_in(key, sample_index + j))``."""
    keys = row_keys(key, shape[0], sample_index)
    return jax.vmap(lambda k: jax.random.normal(k, tuple(shape[1:])))(keys)


def sample(
    denoiser: Callable[..., Array],
    shape: Sequence[int],
    *,
    key: jax.Array | None = None,
    sampler: str = "euler",
    steps: int = 30,
    guidance: Guidance = 1.0,
    guidance_interval: Sequence[float] | None = None,
    eta: float = 0.0,
    keys: jax.Array | None = None,
    cond: dict | None = None,
    uncond: dict | None = None,
    schedule: DiffusionConfig | None = None,
    timesteps: Sequence[float] | None = None,
    spacing: str = "trailing",
    num_tokens: int | None = None,
    noise: Float[Array, "b ..."] | None = None,
    sample_index: int = 0,
    known: Float[Array, "b ..."] | None = None,
    known_mask: Float[Array, "..."] | None = None,
    callback: Callable[[dict], None] | None = None,
) -> Float[Array, "b ..."]:
    """Draw ``shape = (b, ...)`` samples by integrating from noise to data.

    Args:
      denoiser: ``denoised = denoiser(x, t, **cond)``; a :class:`~sora_jax.diffusion.Denoiser`
        (its weights become jit arguments, so re-sampling does not recompile) or any function.
      shape: output shape ``(b, ...)``, e.g. ``(b, t, h, w, c)`` latents.
      key: randomness for the initial noise (per sample, see :func:`initial_noise`).
      sampler: one of :data:`SAMPLERS`.
      steps: number of steps ``N`` (denoiser calls: ``N``, Heun ``2N - 1``; doubled batch with guidance).
      guidance: classifier-free guidance weight: a number, a sequence of ``N``, or
        ``fn(step_index) -> float``. Anything other than all-ones needs ``uncond``; steps
        with guidance 1 skip the unconditional pass (half their compute).
      guidance_interval: ``(lo, hi)`` in ``[0, 1]``: guide only the steps that start at a
        noise level in ``[lo, hi]`` (1 = pure noise; DDPM times over ``num_train_timesteps - 1``),
        guidance 1 elsewhere (:func:`interval_guidance`). ``None``: every step as ``guidance`` says.
      eta: stochasticity in ``[0, 1]`` (``euler``/``ddim`` only): 0 = the deterministic ODE
        step, 1 = ancestral (DDPM posterior) sampling; in between, ``eta^2`` of the posterior
        variance is fresh noise (see the module docstring).
      keys: ``(b,)`` per-sample keys for that fresh noise (:func:`step_noise`); default
        ``fold_in(key, sample_index + j)``, the keys of the initial noise. Pass them with
        ``noise=`` so a clip's noise depends on its own seed only.
      cond / uncond: keyword arrays for the denoiser (e.g. ``text``, ``text_mask``), batch
        ``b``; ``uncond`` leaves may have batch 1.
      schedule: the objective (``DiffusionConfig``); defaults to ``denoiser.cfg``.
      timesteps: explicit decreasing grid of ``N + 1`` native times ending at sigma = 0
        (overrides ``steps``/``spacing``/``num_tokens``).
      spacing: DDPM step spacing (``trailing``, ``leading``, ``linspace``).
      num_tokens: token count for the resolution-dependent flow shift.
      noise: the initial sample ``(b, ...)``, used instead of drawing it from ``key``.
      sample_index: index of the first row, for per-sample seeds across calls.
      known / known_mask: conditioning on part of the sample (first frames for image- or
        video-to-video, PhyWorld's continuation protocol, inpainting). ``known`` is a clean
        sample of ``shape``; ``known_mask`` (broadcastable to ``shape``, 1 = known, e.g. a
        per-frame mask ``(b, t, 1, 1, 1)``) says where. Wherever the mask is 1 the sampler
        is fed the *exact* denoiser of ``known`` -- so those entries follow the noising
        path of ``known`` from the start noise to ``known`` itself, and the model, which
        attends to them at every step, sees them at the noise level it was trained for
        (the "replacement" method). It needs no retraining, but a model never trained
        with such a mask follows the known part only loosely: it sees it through the
        current step's noise and may commit to a layout that does not continue it.
      callback: called after each step with ``dict(x, i, t, denoised)``.

    Returns the final sample, float32. The start is the noise itself (exact for flow and
    zero-SNR schedules, the diffusers/DDIM convention otherwise).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    if schedule is None:
        schedule = getattr(denoiser, "cfg", None)
        if not isinstance(schedule, DiffusionConfig):
            raise ValueError("pass schedule=DiffusionConfig(...) (the denoiser has no .cfg to take it from)")
    check(schedule)
    if timesteps is None:
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps={steps!r}: need an integer >= 1")
        ts = sampling_timesteps(schedule, int(steps), spacing=spacing, num_tokens=num_tokens)
    else:
        ts = np.asarray(timesteps, np.float64)
        if ts.ndim != 1 or len(ts) < 2 or np.any(np.diff(ts) >= 0):
            raise ValueError(f"timesteps must be a decreasing 1D grid of >= 2 times, got {ts!r}")
    steps = len(ts) - 1
    alpha, sigma = alpha_sigma_np(schedule, ts)
    if sigma[-1] != 0:
        raise ValueError(f"the time grid must end where sigma = 0 (clean); it ends at t={ts[-1]} (sigma={sigma[-1]:.3g})")
    eta = check_eta(eta, sampler)
    coefs = coefficients(sampler, alpha, sigma, eta)
    scales = guidance_scales(guidance, steps)
    if guidance_interval is not None:
        scales = interval_guidance(scales, ts, schedule, guidance_interval)
    use_cfg = bool(np.any(scales != 1.0))
    if use_cfg and uncond is None:
        raise ValueError(f"guidance {scales.max():g} != 1 needs uncond= (the unconditional inputs, e.g. the null text)")
    cond = dict(cond or {})
    uncond = dict(uncond) if (use_cfg and uncond is not None) else None

    shape = tuple(int(s) for s in shape)
    if noise is None:
        if key is None:
            raise ValueError("pass key= (or noise=) for the initial noise")
        x = initial_noise(key, shape, sample_index)
    else:
        x = jnp.asarray(noise, jnp.float32)
        if tuple(x.shape) != shape:
            raise ValueError(f"noise has shape {tuple(x.shape)}, expected {shape}")

    if (known is None) != (known_mask is None):
        raise ValueError("pass known= and known_mask= together (or neither)")
    if known is not None:
        known = jnp.asarray(known, jnp.float32)
        if tuple(known.shape) != shape:
            raise ValueError(f"known has shape {tuple(known.shape)}, expected the sample shape {shape}")
        known_mask = jnp.asarray(known_mask, jnp.float32)
        try:
            np.broadcast_shapes(known_mask.shape, shape)
        except ValueError:
            raise ValueError(f"known_mask of shape {tuple(known_mask.shape)} does not broadcast to {shape}") from None
        known = (known, jnp.broadcast_to(known_mask, shape))

    rows = None
    if eta > 0:
        if keys is not None:
            rows = jnp.asarray(keys)
            if rows.shape != (shape[0],) or not jnp.issubdtype(rows.dtype, jax.dtypes.prng_key):
                raise ValueError(f"keys: need ({shape[0]},) typed PRNG keys (jax.random.key), got "
                                 f"{rows.dtype} {tuple(rows.shape)}")
        elif key is not None:
            rows = row_keys(key, shape[0], sample_index)
        else:
            raise ValueError(f"eta={eta:g} draws fresh noise every step: pass key= or keys=")

    apply, state = _split(denoiser)
    per_step = (
        jnp.asarray(ts[:-1], jnp.float32),
        jnp.asarray(ts[1:], jnp.float32),
        jnp.asarray(coefs, jnp.float32),
        jnp.asarray(scales, jnp.float32),
        jnp.arange(steps, dtype=jnp.int32),
    )
    # steps with guidance 1 skip the unconditional half of the batch (D = D_c exactly)
    guided = scales != 1.0
    if callback is None:
        carry = (x, jnp.zeros_like(x))
        for start, stop, g in _runs(guided):
            run = jax.tree.map(lambda a: a[start:stop], per_step)
            carry = _run_steps(apply, sampler, g, state, carry, run, cond, uncond if g else None, known, rows)
        return carry[0]
    d_prev = jnp.zeros_like(x)
    for i in range(steps):
        step_i = jax.tree.map(lambda a: a[i], per_step)
        g = bool(guided[i])
        x_next, d = _one_step(apply, sampler, g, state, (x, d_prev), step_i, cond, uncond if g else None, known,
                              rows)
        callback(dict(x=x, i=i, t=step_i[0], denoised=d))
        x, d_prev = x_next, d
    return x
