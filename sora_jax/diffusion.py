"""Training objectives and noise schedules: rectified flow and DDPM (epsilon / v).

Every objective here is a Gaussian path between data ``x0`` and noise ``eps``::

    x_t = alpha(t) * x0 + sigma(t) * eps

* ``flow`` (rectified flow, SD3 / Open-Sora): ``t`` in [0, 1], ``alpha = 1 - t``,
  ``sigma = t``; the model predicts the velocity ``v = eps - x0``, so
  ``denoised = x_t - t * v``.
* ``eps`` and ``v`` (DDPM): ``t`` is a step index in ``0 .. T-1``
  (``T = num_train_timesteps``), ``alpha = sqrt(abar[t])``, ``sigma = sqrt(1 - abar[t])``
  from a cosine, linear or zero-terminal-SNR schedule; the model predicts ``eps`` or
  ``v = alpha * eps - sigma * x0``.

"Time" ``t`` is always in the objective's native unit (flow time, or DDPM step index).
The model itself is fed ``model_time(cfg, t)`` in [0, 1]. The DDPM "clean" end of
a sampling grid is ``t = -1`` (``alpha = 1, sigma = 0``); the flow's is ``t = 0``.

Axes: ``b`` batch; ``...`` any trailing data axes (``t, h, w, c`` for video latents).

Everything takes the :class:`~sora_jax.config.DiffusionConfig` itself as the description
of the objective: it is frozen and hashable, so it can be a static argument of ``jit``.
:class:`Denoiser` wraps any model into the k-diffusion contract
``denoised = denoiser(x, t, **cond)`` that every sampler in :mod:`sora_jax.sampling` uses.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from sora_jax.config import DiffusionConfig

OBJECTIVES = ("flow", "eps", "v")
SCHEDULES = ("cosine", "linear", "zero_snr")
SPACINGS = ("trailing", "leading", "linspace")


def check(cfg: DiffusionConfig) -> None:
    """Raise ValueError naming the field when ``cfg`` describes no valid objective."""
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"diffusion.objective={cfg.objective!r}: valid are {', '.join(OBJECTIVES)}")
    if cfg.objective != "flow" and cfg.schedule not in SCHEDULES:
        raise ValueError(f"diffusion.schedule={cfg.schedule!r}: valid are {', '.join(SCHEDULES)}")
    if cfg.objective == "eps" and cfg.schedule == "zero_snr":
        raise ValueError(
            "diffusion.objective='eps' with schedule='zero_snr': at the last step alpha=0, so x0 cannot be "
            "recovered from a noise prediction; use objective='v' (Lin et al. 2023) or another schedule"
        )
    if cfg.num_train_timesteps < 2:
        raise ValueError(f"diffusion.num_train_timesteps={cfg.num_train_timesteps}: must be >= 2")
    if cfg.timestep_sampling not in ("uniform", "logit_normal"):
        raise ValueError(f"diffusion.timestep_sampling={cfg.timestep_sampling!r}: valid are 'uniform', 'logit_normal'")
    if not cfg.logit_std > 0:
        raise ValueError(f"diffusion.logit_std={cfg.logit_std}: must be > 0")
    if not cfg.shift > 0:
        raise ValueError(f"diffusion.shift={cfg.shift}: must be > 0")
    if cfg.shift_base_tokens < 0:
        raise ValueError(f"diffusion.shift_base_tokens={cfg.shift_base_tokens}: must be >= 0 (0 = off)")


# --------------------------------------------------------------------------- #
# DDPM schedules
# --------------------------------------------------------------------------- #


def _rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Lin et al. 2023, Algorithm 1: shift/scale sqrt(abar) so the last step has SNR exactly 0."""
    sqrt_ab = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_ab[0], sqrt_ab[-1]
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    ab = sqrt_ab**2
    alphas = np.concatenate([ab[:1], ab[1:] / ab[:-1]])
    return 1.0 - alphas


@functools.lru_cache(maxsize=16)
def alphas_cumprod(schedule: str, num_timesteps: int) -> np.ndarray:
    """``abar[i] = prod_{j <= i} (1 - beta_j)`` for ``i = 0 .. T-1`` (float64, read-only).

    * ``linear``: betas from 1e-4 to 0.02 (Ho et al. 2020).
    * ``cosine``: ``abar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2``, betas capped at 0.999
      (Nichol & Dhariwal 2021; diffusers' ``squaredcos_cap_v2``).
    * ``zero_snr``: the linear betas rescaled so ``abar[T-1] = 0`` (Lin et al. 2023);
      use it with the ``v`` objective and ``trailing`` spacing.
    """
    T = num_timesteps
    if schedule in ("linear", "zero_snr"):
        betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
        if schedule == "zero_snr":
            betas = _rescale_zero_terminal_snr(betas)
    elif schedule == "cosine":
        f = lambda s: np.cos((s + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
        s = np.arange(T + 1, dtype=np.float64) / T
        betas = np.minimum(1.0 - f(s[1:]) / f(s[:-1]), 0.999)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    ab = np.cumprod(1.0 - betas)
    ab.setflags(write=False)
    return ab


# --------------------------------------------------------------------------- #
# The path x_t = alpha x0 + sigma eps
# --------------------------------------------------------------------------- #


def timestep_shift(t, shift: float):
    """``s t / (1 + (s - 1) t)``: with ``s > 1`` more of [0, 1] maps near 1 (high noise).

    Esser et al. 2024 (SD3) / Open-Sora: bigger clips keep more signal at a given noise
    level, so they need more time at high noise. Works on numpy and jax arrays.
    """
    return shift * t / (1 + (shift - 1) * t)


def shift_factor(cfg: DiffusionConfig, num_tokens: int | None = None) -> float:
    """The shift ``s``: ``cfg.shift``, times ``sqrt(num_tokens / shift_base_tokens)`` when that is set.

    Open-Sora's resolution- and length-dependent rule: a clip with 4x the tokens of the
    base gets twice the shift.
    """
    if cfg.shift_base_tokens > 0:
        if num_tokens is None or num_tokens < 1:
            raise ValueError(
                f"diffusion.shift_base_tokens={cfg.shift_base_tokens} needs num_tokens (the clip's token "
                f"count, e.g. prod(patches.grid_shape(...))), got {num_tokens}"
            )
        return cfg.shift * math.sqrt(num_tokens / cfg.shift_base_tokens)
    return cfg.shift


def _expand(a: Float[Array, "b"], like: Array) -> Array:
    return jnp.reshape(a, a.shape + (1,) * (like.ndim - a.ndim))


def alpha_sigma(cfg: DiffusionConfig, t: Float[Array, "*b"]) -> tuple[Float[Array, "*b"], Float[Array, "*b"]]:
    """``(alpha(t), sigma(t))`` in the objective's native time (fractional DDPM steps interpolate abar)."""
    t = jnp.asarray(t, jnp.float32)
    if cfg.objective == "flow":
        return 1.0 - t, t
    ab_table = jnp.asarray(alphas_cumprod(cfg.schedule, cfg.num_train_timesteps), jnp.float32)
    ab = jnp.interp(t, jnp.arange(cfg.num_train_timesteps, dtype=jnp.float32), ab_table)
    ab = jnp.where(t < 0, 1.0, ab)                      # t = -1: the clean end of a sampling grid
    return jnp.sqrt(ab), jnp.sqrt(1.0 - ab)


def alpha_sigma_np(cfg: DiffusionConfig, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`alpha_sigma` in float64 numpy, for sampler coefficients computed on the host."""
    t = np.asarray(t, np.float64)
    if cfg.objective == "flow":
        return 1.0 - t, t
    table = alphas_cumprod(cfg.schedule, cfg.num_train_timesteps)
    ab = np.where(t < 0, 1.0, np.interp(t, np.arange(cfg.num_train_timesteps), table))
    return np.sqrt(ab), np.sqrt(1.0 - ab)


def model_time(cfg: DiffusionConfig, t: Float[Array, "b"]) -> Float[Array, "b"]:
    """What the network is told about the noise level: flow time, or DDPM step / T, in [0, 1]."""
    t = jnp.asarray(t, jnp.float32)
    return t if cfg.objective == "flow" else t / cfg.num_train_timesteps


def add_noise(cfg: DiffusionConfig, x0: Array, noise: Array, t: Float[Array, "b"]) -> Array:
    """``x_t = alpha(t) x0 + sigma(t) noise`` (``t`` has one value per sample)."""
    a, s = alpha_sigma(cfg, t)
    return _expand(a, x0) * x0 + _expand(s, x0) * noise


def target(cfg: DiffusionConfig, x0: Array, noise: Array, t: Float[Array, "b"]) -> Array:
    """What the model learns to predict: ``eps - x0`` (flow), ``eps``, or ``alpha eps - sigma x0`` (v)."""
    if cfg.objective == "flow":
        return noise - x0
    if cfg.objective == "eps":
        return noise
    a, s = alpha_sigma(cfg, t)
    return _expand(a, x0) * noise - _expand(s, x0) * x0


def to_denoised(cfg: DiffusionConfig, pred: Array, x: Array, t: Float[Array, "b"]) -> Array:
    """The model's estimate of ``x0`` from its prediction at ``(x, t)``."""
    a, s = alpha_sigma(cfg, t)
    a, s = _expand(a, x), _expand(s, x)
    if cfg.objective == "flow":
        return x - s * pred                 # sigma = t
    if cfg.objective == "eps":
        return (x - s * pred) / a
    return a * x - s * pred


def sample_t(cfg: DiffusionConfig, key: jax.Array, batch: int, num_tokens: int | None = None) -> Float[Array, "b"]:
    """Training noise levels, one per sample, in native time.

    ``u`` is uniform on (0, 1) or logit-normal (``sigmoid(mean + std * n)``, SD3: more
    weight in the middle). Flow: ``t = timestep_shift(u, shift_factor(cfg, num_tokens))``.
    DDPM: ``t = floor(u * T)``, an integer step (the shift does not apply).
    """
    if cfg.timestep_sampling == "uniform":
        u = jax.random.uniform(key, (batch,))
    else:
        u = jax.nn.sigmoid(cfg.logit_mean + cfg.logit_std * jax.random.normal(key, (batch,)))
    if cfg.objective == "flow":
        return timestep_shift(u, shift_factor(cfg, num_tokens))
    T = cfg.num_train_timesteps
    return jnp.clip(jnp.floor(u * T), 0, T - 1)


def loss(
    model_fn: Callable[..., Array],
    x0: Float[Array, "b ..."],
    key: jax.Array,
    *,
    cfg: DiffusionConfig,
    num_tokens: int | None = None,
    **cond,
) -> Float[Array, ""]:
    """Mean squared error between ``model_fn(x_t, model_time(t), **cond)`` and the target.

    ``key`` draws the noise levels and the noise. ``num_tokens`` is needed only for the
    resolution-dependent shift (``cfg.shift_base_tokens > 0``).
    """
    k_t, k_noise = jax.random.split(key)
    t = sample_t(cfg, k_t, x0.shape[0], num_tokens)
    noise = jax.random.normal(k_noise, x0.shape, jnp.float32)
    x_t = add_noise(cfg, x0, noise, t)
    pred = model_fn(x_t, model_time(cfg, t), **cond)
    return jnp.mean(jnp.square(pred.astype(jnp.float32) - target(cfg, x0, noise, t)))


class Denoiser(nnx.Module):
    """Any model -> the k-diffusion contract ``denoised = denoiser(x, t, **cond)``.

    ``model(x, model_time(cfg, t), **cond)`` must return the objective's prediction
    (velocity, eps or v); ``t`` is native time, a scalar or one value per sample. A
    :class:`~sora_jax.dit.VideoDiT` works directly (``cond`` = ``text``, ``text_mask``).
    Being an ``nnx.Module``, it can be jitted with the model's weights as arguments.
    """

    def __init__(self, model: Callable[..., Array], cfg: DiffusionConfig):
        check(cfg)
        self.model = model
        self.cfg = cfg

    def __call__(self, x: Float[Array, "b ..."], t, **cond) -> Float[Array, "b ..."]:
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
        pred = self.model(x, model_time(self.cfg, t), **cond)
        return to_denoised(self.cfg, pred.astype(jnp.float32), x.astype(jnp.float32), t)


# --------------------------------------------------------------------------- #
# Sampling grids
# --------------------------------------------------------------------------- #


def ddpm_timesteps(num_train_timesteps: int, steps: int, spacing: str = "trailing") -> np.ndarray:
    """``steps`` decreasing integer DDPM steps, as diffusers spaces them.

    * ``trailing``: ``round(arange(T, 0, -T/steps)) - 1``, starts at ``T-1`` (Lin et al.
      2023; needed for zero-terminal-SNR).
    * ``leading``: ``arange(steps) * (T // steps)`` reversed (diffusers' DDIM default).
    * ``linspace``: ``round(linspace(0, T-1, steps+1))`` reversed, last dropped
      (diffusers' DPM-Solver default).
    """
    T = num_train_timesteps
    if spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / steps)).astype(np.int64) - 1
    elif spacing == "leading":
        ts = (np.arange(0, steps) * (T // steps)).round()[::-1].astype(np.int64)
    elif spacing == "linspace":
        ts = np.linspace(0, T - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; valid: {', '.join(SPACINGS)}")
    return ts


def sampling_timesteps(
    cfg: DiffusionConfig, steps: int, *, spacing: str = "trailing", num_tokens: int | None = None
) -> np.ndarray:
    """``steps + 1`` decreasing times from pure noise to clean, in native time (float64).

    Flow: ``timestep_shift(linspace(1, 0, steps + 1), s)``, ``s = shift_factor(cfg, num_tokens)``.
    DDPM: :func:`ddpm_timesteps` followed by the clean end ``-1``.
    """
    check(cfg)
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r}: need an integer >= 1")
    if cfg.objective == "flow":
        return timestep_shift(np.linspace(1.0, 0.0, steps + 1), shift_factor(cfg, num_tokens))
    if steps > cfg.num_train_timesteps:
        raise ValueError(f"steps={steps} exceeds diffusion.num_train_timesteps={cfg.num_train_timesteps}")
    ts = ddpm_timesteps(cfg.num_train_timesteps, steps, spacing)
    return np.concatenate([ts.astype(np.float64), [-1.0]])
