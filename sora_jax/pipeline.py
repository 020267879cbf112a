"""Text to video: load a checkpoint folder and ``generate()`` clips.

A checkpoint folder (what ``export_pipeline`` in :mod:`sora_jax.train` writes; the
shipped demo is ``data/demo``) holds::

    config.json        the full Config the DiT was trained with (world, vae, text, dit, diffusion, train)
    meta.json          format version, training step, parameter counts; optionally
                       ``"sampling": {"eta": ...}``, the sampling stochasticity the
                       model was evaluated with (``generate``'s default for it)
    vae/               the video autoencoder (params/, config.json, latent_stats.json)
    dit/params/        the text encoder + DiT weights (orbax, bf16 or float32)

Generation, with named shapes (``b`` prompts, ``t h w`` latent frames/rows/columns,
``c`` latent channels)::

    prompts --ByteTokenizer--> ids (b, L) --TextEncoder--> text (b, L, e)   once per clip
    noise (b, t, h, w, c)  --sampler(DiT denoiser, guidance)--> z (b, t, h, w, c)
    z * scale + shift  --VAE decode--> video (b, T, H, W, 3) uint8

This module is the only place that knows the latent scale/shift: the DiT works on
unit-variance latents ``(z_vae - shift) / scale`` and never sees the VAE's raw ones.

Example::

    from sora_jax.pipeline import load_pipeline
    pipe = load_pipeline("data/demo")
    clip = pipe.generate("a red ball moves to the right", seed=0)      # (17, 64, 64, 3) uint8
    clips = pipe.generate(["a red ball", "two blue squares"], seed=[0, 1])   # (2, 17, 64, 64, 3)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float

from sora_jax import vae as vae_lib
from sora_jax.config import Config, DiffusionConfig, from_dict, to_dict
from sora_jax.diffusion import Denoiser, shift_factor
from sora_jax.dit import VideoDiT
from sora_jax.patches import grid_shape
from sora_jax.sampling import SAMPLERS, STOCHASTIC_SAMPLERS, check_eta, check_interval, row_keys, sample
from sora_jax.text import TextEncoder

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = "data/demo"
DEFAULTS = {"steps": 25, "guidance": 4.0, "sampler": "euler"}


# --------------------------------------------------------------------------- #
# The trained pair: text encoder + DiT
# --------------------------------------------------------------------------- #


class TextToVideo(nnx.Module):
    """The parts trained together by ``train_dit``: a text encoder and a VideoDiT.

    ``__call__`` is the training-time forward: tokens -> text tokens (with prompt
    dropout) -> DiT prediction. At sampling time the pipeline encodes the text once and
    calls ``self.dit`` directly at every step.
    """

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        self.text = TextEncoder(cfg.text, rngs=rngs)
        self.dit = VideoDiT(cfg.dit, cfg.vae.latent_channels, self.text.width, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "b t h w c"],
        t_cond: Float[Array, "b"],
        tokens: Array,
        mask: Bool[Array, "b L"],
        *,
        drop: Bool[Array, "b"] | None = None,
    ) -> Float[Array, "b t h w c"]:
        text, text_mask = self.text(tokens, mask, drop=drop)
        return self.dit(x, t_cond, text, text_mask)


def num_params(module: nnx.Module) -> int:
    return int(sum(a.size for a in jax.tree.leaves(nnx.state(module, nnx.Param))))


# --------------------------------------------------------------------------- #
# Persistent compilation cache
# --------------------------------------------------------------------------- #


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache (on by default for pipelines).

    The folder is ``path``, else ``$SORA_JAX_CACHE``, else ``~/.cache/sora_jax/jax``.
    ``SORA_JAX_CACHE=off`` disables it. A cache directory the user already configured
    is left alone. Returns the folder in use (or ``None`` when disabled).
    """
    current = jax.config.jax_compilation_cache_dir
    if current and path is None:
        return current
    where = str(path or os.environ.get("SORA_JAX_CACHE", "") or Path.home() / ".cache" / "sora_jax" / "jax")
    if where.lower() in ("off", "0", "none", "false"):
        return None
    Path(where).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return where


# --------------------------------------------------------------------------- #
# Checkpoint folder
# --------------------------------------------------------------------------- #


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"checkpoint folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"checkpoint {str(path)!r} is a file; expected a folder with config.json, vae/, dit/")
    missing = [p for p in ("config.json", "meta.json", "vae/config.json", "vae/params", "dit/params")
               if not (path / p).exists()]
    if missing:
        raise FileNotFoundError(
            f"checkpoint folder {str(path)!r} is incomplete: missing {', '.join(missing)} "
            "(a pipeline checkpoint has config.json, meta.json, vae/ and dit/params; "
            "write one with sora_jax.train.export_pipeline)"
        )


def save_dit(path: str | os.PathLike, params: Any, *, dtype: str = "bfloat16") -> Path:
    """Write TextToVideo params (a nested dict) to ``path`` with orbax, cast to ``dtype``."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    dt = jnp.dtype(dtype)
    params = jax.tree.map(lambda a: np.asarray(jnp.asarray(a).astype(dt) if jnp.issubdtype(a.dtype, jnp.floating) else a),
                          params)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, params)
        ckptr.wait_until_finished()
    return path


def _restore_params(path: Path) -> Any:
    """Read params saved by :func:`save_dit` as float32 (bf16 on disk is only storage)."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckptr:
        tree = ckptr.restore(Path(path).absolute())      # orbax wants absolute paths
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else jnp.asarray(a),
                        tree)


def load_pipeline(checkpoint: str | os.PathLike | None = None, *, cache: bool = True) -> "Pipeline":
    """Load a pipeline checkpoint folder (default: the shipped ``data/demo``).

    Raises ``FileNotFoundError`` for a missing or partial folder and ``ValueError`` for a
    checkpoint written by an incompatible version or config, naming what differs.
    """
    if cache:
        enable_compilation_cache()
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    _check_folder(path)
    meta = json.loads((path / "meta.json").read_text())
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r} has format_version={version!r}; this sora_jax reads version "
                         f"{FORMAT_VERSION} (re-export it with sora_jax.train.export_pipeline)")
    check_sampling_meta(meta.get("sampling"), f"checkpoint {str(path)!r}: meta.json")
    try:
        cfg = from_dict(Config, json.loads((path / "config.json").read_text()))
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"checkpoint {str(path)!r}: config.json does not match this version's Config ({e})") from None
    vae, _, stats = vae_lib.load_vae(path / "vae", cfg)
    if stats is None:
        raise ValueError(f"checkpoint {str(path)!r}: vae/latent_stats.json is missing (the DiT needs the latent shift/scale)")
    # shapes only (no random init: eager initialisers would compile dozens of tiny programs)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: TextToVideo(cfg, rngs=nnx.Rngs(0))))
    problem = None
    try:
        params = _restore_params(path / "dit" / "params")
        want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(state))}
        have = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(params)}
        want = {k.replace("'", ""): v for k, v in want.items()}
        have = {k.replace("'", ""): v for k, v in have.items()}
        bad = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
        if bad:
            problem = f"{len(bad)} arrays differ, e.g. {bad[0]}: stored {have.get(bad[0])}, config wants {want.get(bad[0])}"
        else:
            nnx.replace_by_pure_dict(state, params)
    except Exception as e:  # orbax / nnx raise many kinds on an unreadable tree
        problem = f"{type(e).__name__}: {str(e)[:300]}"
    if problem:
        raise ValueError(f"checkpoint {str(path)!r}: dit/params does not fit the model described by its config.json "
                         f"(dit={cfg.dit}, text={cfg.text}): {problem}")
    model = nnx.merge(graphdef, state)
    return Pipeline(model, vae, cfg, stats, path=path, meta=meta)


def check_sampling_meta(sampling: Any, where: str) -> dict:
    """Validate a checkpoint's recommended sampling settings (``meta.json`` ``"sampling"``).

    Only ``eta`` (a number in ``[0, 1]``) is known; ``None`` means none recorded."""
    if sampling is None:
        return {}
    if not isinstance(sampling, dict) or set(sampling) - {"eta"}:
        raise ValueError(f"{where}: 'sampling' must be an object with only the key 'eta', got {sampling!r}")
    try:
        check_eta(sampling.get("eta", 0.0))
    except ValueError:
        raise ValueError(f"{where}: sampling.eta={sampling.get('eta')!r}; need a number in [0, 1]") from None
    return dict(sampling)


def default_checkpoint() -> Path:
    """``data/demo`` in the current folder, else next to the installed package (a checkout)."""
    for p in (Path(DEFAULT_CHECKPOINT), Path(__file__).resolve().parent.parent / DEFAULT_CHECKPOINT):
        if (p / "config.json").is_file():
            return p
    raise FileNotFoundError(f"no {DEFAULT_CHECKPOINT}/ here or next to the package: pass the checkpoint folder "
                            "(e.g. --checkpoint path/to/export)")


# --------------------------------------------------------------------------- #
# Jitted pieces (weights are arguments, so new prompts/seeds never recompile)
# --------------------------------------------------------------------------- #


@nnx.jit
def _encode_text(text: TextEncoder, ids, mask):
    return text(ids, mask)


@nnx.jit
def _decode(vae: vae_lib.VideoVAE, z, shift, scale):
    x = vae.decode_frames(z * scale + shift)[0]
    return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


@nnx.jit
def _encode(vae: vae_lib.VideoVAE, video_u8, shift, scale):
    post, _ = vae.encode_moments(video_u8.astype(jnp.float32) / 127.5 - 1.0)
    return (post.mean - shift) / scale


@dataclasses.dataclass
class LatentCodec:
    """The VAE plus its per-channel latent statistics: pixels <-> the DiT's unit-variance latents.

    ``encode``: uint8 video -> ``(mean_of_posterior - shift) / scale``; ``decode``: the
    inverse, rounded to uint8. Used by the pipeline and by the DiT trainer, so both see
    the same normalisation.
    """

    vae: vae_lib.VideoVAE
    latent_stats: dict

    def __post_init__(self):
        c = self.vae.cfg.latent_channels
        for k in ("shift", "scale"):
            if len(self.latent_stats.get(k, ())) != c:
                raise ValueError(f"latent_stats[{k!r}] must have {c} values (one per latent channel), "
                                 f"got {self.latent_stats.get(k)!r}")
        self.shift = jnp.asarray(self.latent_stats["shift"], jnp.float32)
        self.scale = jnp.asarray(self.latent_stats["scale"], jnp.float32)

    def encode(self, video_u8: np.ndarray) -> jax.Array:
        """uint8 ``(b, T, H, W, 3)`` or ``(T, H, W, 3)`` -> normalised latents ``(b, t, h, w, c)``."""
        v = np.asarray(video_u8)
        single = v.ndim == 4
        if v.dtype != np.uint8 or v.ndim not in (4, 5) or v.shape[-1] != 3:
            raise ValueError(f"video must be uint8 (b, T, H, W, 3) or (T, H, W, 3), got {v.dtype} {v.shape}")
        tf, sf = self.vae.cfg.temporal_factor, self.vae.cfg.spatial_factor
        T, H, W = v.shape[-4:-1]
        if (T - 1) % tf or H % sf or W % sf:
            raise ValueError(f"video of {T} frames at {H}x{W}: the VAE needs 1 + {tf}k frames and sizes divisible by {sf}")
        z = _encode(self.vae, jnp.asarray(v[None] if single else v), self.shift, self.scale)
        return z[0] if single else z

    def decode(self, latents: Array) -> np.ndarray:
        """Normalised latents ``(b, t, h, w, c)`` (or without ``b``) -> uint8 video."""
        z = jnp.asarray(latents, jnp.float32)
        single = z.ndim == 4
        out = np.asarray(_decode(self.vae, z[None] if single else z, self.shift, self.scale))
        return out[0] if single else out


@dataclasses.dataclass
class Pipeline:
    """A loaded text-to-video model: ``generate``, ``encode``/``decode``, ``reconstruct``."""

    model: TextToVideo
    vae: vae_lib.VideoVAE
    config: Config
    latent_stats: dict
    path: Path | None = None
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.codec = LatentCodec(self.vae, self.latent_stats)
        self._warned: set = set()

    @property
    def default_eta(self) -> float:
        """``generate``'s ``eta`` when none is given (with ``euler``/``ddim``): the checkpoint's
        ``meta.json`` ``sampling.eta``, else 0 (deterministic)."""
        return float((self.meta.get("sampling") or {}).get("eta", 0.0))

    # -- sizes ------------------------------------------------------------- #

    @property
    def trained_size(self) -> tuple[int, int, int]:
        """``(frames, height, width)`` of the clips the model was trained on."""
        w = self.config.world
        return w.num_frames, w.height, w.width

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        return tuple(vae_lib.latent_shape(self.config.vae, num_frames, height, width))

    def check_size(self, num_frames: int, height: int, width: int) -> None:
        """Raise ``ValueError`` unless the VAE and the DiT's patches can make this size."""
        v, p = self.config.vae, self.config.dit.patch
        tf, sf = v.temporal_factor, v.spatial_factor
        T, H, W = self.trained_size
        trained = f"this model was trained for {T} frames at {H}x{W}"
        for name, val in (("num_frames", num_frames), ("height", height), ("width", width)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"{name}={val!r}: need a positive integer; {trained}")
        if (num_frames - 1) % tf:
            ok = ", ".join(str(1 + tf * k) for k in range(1, 9))
            raise ValueError(f"num_frames={num_frames} is not 1 + {tf}k; valid: {ok}, ...; {trained}")
        lt = 1 + (num_frames - 1) // tf
        if lt % p[0]:
            raise ValueError(f"num_frames={num_frames} gives {lt} latent frames, not divisible by the patch {p[0]}; {trained}")
        m = sf * p[1], sf * p[2]
        if height % m[0] or width % m[1]:
            raise ValueError(f"size {height}x{width}: height must be a multiple of {m[0]} and width of {m[1]} "
                             f"(VAE factor {sf} x patch {p[1:]}); {trained}")
        if (num_frames, height, width) != (T, H, W):
            key = (num_frames, height, width)
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(f"generating {num_frames} frames at {height}x{width}; {trained}, so other sizes "
                              "work (RoPE positions) but look worse", stacklevel=3)

    # -- latents <-> pixels ---------------------------------------------------- #

    def encode(self, video_u8: np.ndarray) -> jax.Array:
        """uint8 ``(b, T, H, W, 3)`` or ``(T, H, W, 3)`` -> normalised latents the DiT works in."""
        return self.codec.encode(video_u8)

    def decode(self, latents: Array) -> np.ndarray:
        """Normalised latents ``(b, t, h, w, c)`` (or without ``b``) -> uint8 video."""
        return self.codec.decode(latents)

    def reconstruct(self, video_u8: np.ndarray) -> np.ndarray:
        """VAE encode + decode (what the model could at best produce for this clip)."""
        return self.decode(self.encode(video_u8))

    # -- text ---------------------------------------------------------------- #

    def encode_text(self, prompts: Sequence[str]) -> tuple[jax.Array, jax.Array]:
        """Prompts -> ``(text (b, L, e), mask (b, L))``; an empty prompt gives the null (unconditional) text."""
        ids, mask = self.model.text.tokenizer.encode(list(prompts))
        return _encode_text(self.model.text, jnp.asarray(ids), jnp.asarray(mask))

    # -- generation ------------------------------------------------------------ #

    def generate(
        self,
        prompt: str | Sequence[str],
        *,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        steps: int = DEFAULTS["steps"],
        guidance: float = DEFAULTS["guidance"],
        sampler: str = DEFAULTS["sampler"],
        seed: int | Sequence[int] = 0,
        shift: float | None = None,
        negative_prompt: str | Sequence[str] | None = None,
        first_frames: np.ndarray | None = None,
        callback: Callable[[dict], None] | None = None,
        guidance_interval: tuple[float, float] | None = None,
        eta: float | None = None,
    ) -> np.ndarray:
        """Generate clips. Returns uint8 ``(T, H, W, 3)`` for one prompt, ``(b, T, H, W, 3)`` for a list.

        Args:
          prompt: a prompt or a list of prompts. An empty prompt ``""`` is unconditional
            (the null text: the model draws any scene of its training world).
          num_frames, height, width: default to what the model was trained for.
          steps: sampler steps (>= 1). guidance: classifier-free guidance scale (>= 0; 1 = off).
          sampler: one of ``euler``, ``heun``, ``ddim``, ``dpmpp_2m``.
          seed: one int, or one per prompt. Clip ``i`` depends only on its own prompt and
            seed, not on the batch it was generated in.
          shift: timestep shift for sampling (> 0); default: the training config's.
          negative_prompt: text to steer away from, used in place of the null text.
          guidance_interval: ``(lo, hi)``, ``0 <= lo < hi <= 1``: guide only the steps
            that start at a noise level in ``[lo, hi]`` (1 = pure noise, 0 = clean) and use
            the conditional prediction alone elsewhere (Kynkaenniemi et al., 2024). ``None``
            (default): guide every step. On the demo model, ``(0, 0.75)`` -- no guidance
            where the noise is heaviest -- costs about 12 points of colour accuracy:
            the prompt's colours are settled at the start of sampling. Unguided steps skip
            the unconditional pass, so ``(0.75, 1)`` samples about 20% faster.
          eta: stochasticity of the ``euler``/``ddim`` step in ``[0, 1]``: 0 integrates the
            deterministic flow; 1 is ancestral sampling, which re-draws part of the noise at
            every step from the clip's own seed (see :func:`sora_jax.sampling.sample`).
            ``None`` (default): :attr:`default_eta`, what the checkpoint recommends, for
            ``euler``/``ddim`` and 0 for the other samplers.
          first_frames: uint8 ``(c, H, W, 3)`` (same start for every prompt) or
            ``(b, c, H, W, 3)``, ``c = 1 + 4k < num_frames``: continue these frames
            (image-to-video with ``c = 1``; PhyWorld's protocol). They are encoded -- the
            causal VAE makes them exactly the first ``1 + k`` latent frames -- and held
            fixed during sampling (see ``known`` in :func:`sora_jax.sampling.sample`).
            The returned clip starts with their VAE reconstruction.
          callback: called after each step with ``dict(i, steps, t, x, denoised)``; ``x``
            and ``denoised`` are normalised latents, :meth:`decode` turns them into video.
        """
        single = isinstance(prompt, str)
        prompts = [prompt] if single else list(prompt)
        if not prompts:
            raise ValueError("prompt: got an empty list; pass a prompt or a list of prompts")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise ValueError(f"prompt {i} is a {type(p).__name__}; prompts must be str")
        b = len(prompts)
        seeds = [seed] * b if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else list(seed)
        if len(seeds) != b or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
            raise ValueError(f"seed must be an int or a list of {b} ints (one per prompt), got {seed!r}")
        T, H, W = self.trained_size
        num_frames, height, width = num_frames or T, height or H, width or W
        self.check_size(num_frames, height, width)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps={steps!r}: need an integer >= 1")
        if not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or not math.isfinite(guidance) or guidance < 0:
            raise ValueError(f"guidance={guidance!r}: need a number >= 0 (1 = no guidance, 3-6 typical)")
        if shift is not None and (not isinstance(shift, (int, float)) or not shift > 0):
            raise ValueError(f"shift={shift!r}: need a number > 0 (1 = no shift)")
        if guidance_interval is not None:
            guidance_interval = check_interval(guidance_interval)
        if eta is None:
            eta = self.default_eta if sampler in STOCHASTIC_SAMPLERS else 0.0
        eta = check_eta(eta, sampler)

        latent = self.latent_shape(num_frames, height, width)
        n_tokens = math.prod(grid_shape(latent[:3], self.config.dit.patch))
        schedule = self.config.diffusion
        if shift is not None:
            schedule = dataclasses.replace(schedule, shift=float(shift), shift_base_tokens=0)
        text, text_mask = self.encode_text(prompts)
        cond = {"text": text, "text_mask": text_mask}
        uncond = None
        if guidance != 1.0:
            if negative_prompt is None:
                uncond = dict(zip(("text", "text_mask"), self.model.text.null(1)))
            else:
                neg = [negative_prompt] * b if isinstance(negative_prompt, str) else list(negative_prompt)
                if len(neg) != b:
                    raise ValueError(f"negative_prompt: got {len(neg)} for {b} prompts")
                uncond = dict(zip(("text", "text_mask"), self.encode_text(neg)))
        # clip i's keys: row 0 of seed i (initial_noise's rule), so its start noise and its
        # per-step noise (eta > 0) depend on its own seed only
        keys = jnp.stack([row_keys(jax.random.key(int(s)), 1)[0] for s in seeds])
        noise = jax.vmap(lambda k: jax.random.normal(k, latent))(keys)
        known = known_mask = None
        if first_frames is not None:
            known, known_mask = self._first_frame_latents(first_frames, b, latent, num_frames, height, width)
        denoiser = Denoiser(self.model.dit, schedule)
        cb = None
        if callback is not None:
            def cb(d):
                callback(dict(d, steps=int(steps)))
        z = sample(denoiser, (b, *latent), sampler=sampler, steps=int(steps), guidance=float(guidance),
                   guidance_interval=guidance_interval, eta=float(eta), keys=keys if eta > 0 else None,
                   cond=cond, uncond=uncond, noise=noise, num_tokens=n_tokens, known=known,
                   known_mask=known_mask, callback=cb)
        video = self.decode(z)
        return video[0] if single else video

    def _first_frame_latents(self, frames, b: int, latent: tuple, num_frames: int, height: int, width: int):
        """uint8 first frames -> (known latents (b, *latent), per-frame mask (b, t, 1, 1, 1))."""
        tf = self.config.vae.temporal_factor
        f = np.asarray(frames)
        if f.dtype != np.uint8:
            raise ValueError(f"first_frames: need uint8 frames in [0, 255], got dtype {f.dtype}")
        if f.ndim == 4:
            f = np.broadcast_to(f[None], (b, *f.shape))
        if f.ndim != 5 or f.shape[0] != b or f.shape[2:] != (height, width, 3):
            raise ValueError(f"first_frames: need (c, {height}, {width}, 3) or ({b}, c, {height}, {width}, 3) "
                             f"for {b} prompt(s) at {height}x{width}, got shape {np.shape(frames)}")
        c = f.shape[1]
        if (c - 1) % tf or c >= num_frames:
            ok = ", ".join(str(1 + tf * k) for k in range((num_frames - 2) // tf + 1))
            raise ValueError(f"first_frames: {c} frames; need 1 + {tf}k frames, fewer than num_frames={num_frames} "
                             f"(valid: {ok})")
        lc = 1 + (c - 1) // tf
        z = self.encode(np.ascontiguousarray(f))                        # (b, lc, h, w, ch)
        known = jnp.zeros((b, *latent), jnp.float32).at[:, :lc].set(z.astype(jnp.float32))
        mask = (jnp.arange(latent[0]) < lc).astype(jnp.float32)[None, :, None, None, None]
        return known, jnp.broadcast_to(mask, (b, latent[0], 1, 1, 1))


def generate_from_checkpoint(checkpoint: str | os.PathLike | None, prompt: str, *, seed: int = 0, **opts) -> np.ndarray:
    """``sora-jax generate``: load ``checkpoint`` (default ``data/demo``) and generate one clip."""
    pipe = load_pipeline(checkpoint)
    return pipe.generate(prompt, seed=seed, **{k: v for k, v in opts.items() if v is not None})


# --------------------------------------------------------------------------- #
# Benchmark
# --------------------------------------------------------------------------- #

_BENCH_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from sora_jax.pipeline import enable_compilation_cache, load_pipeline
enable_compilation_cache(sys.argv[2])
pipe = load_pipeline(sys.argv[1], cache=False)
t1 = time.perf_counter()
pipe.generate("a red ball moves to the right", steps=int(sys.argv[3]), guidance=float(sys.argv[4]), seed=0)
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "first_clip_s": t2 - t1, "total_s": t2 - t0}))
"""


def bench_generate(cfg: Config | None = None, *, checkpoint: str | os.PathLike | None = None, steps: int = 25,
                   guidance: float = DEFAULTS["guidance"], clips: int = 3) -> list[dict]:
    """``sora-jax bench generate``: cold first clip, warm first clip, steady state.

    Cold and warm each run in a fresh Python process (as a user would): cold with an
    empty compilation cache, warm with the cache the cold run filled. Steady state is
    the median seconds per clip in this process after the first one.
    """
    import subprocess
    import sys
    import tempfile

    from sora_jax.config import smoke_mode

    ckpt = str(checkpoint or default_checkpoint())
    if smoke_mode():
        steps, clips = min(steps, 2), 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="sora_jax_bench_cache_") as cache_dir:
        for name in ("cold (empty compilation cache)", "warm (persistent cache)"):
            out = subprocess.run([sys.executable, "-c", _BENCH_CHILD, ckpt, cache_dir, str(steps), str(guidance)],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"bench child failed: {out.stderr[-2000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"what": f"first clip, {name}", "steps": steps, "guidance": guidance,
                         "seconds": round(r["total_s"], 2), "load_s": round(r["load_s"], 2),
                         "generate_s": round(r["first_clip_s"], 2)})
    pipe = load_pipeline(ckpt)
    pipe.generate("a red ball moves to the right", steps=steps, guidance=guidance, seed=0)
    times = []
    for i in range(clips):
        t0 = time.perf_counter()
        pipe.generate("two blue squares move to the left", steps=steps, guidance=guidance, seed=i + 1)
        times.append(time.perf_counter() - t0)
    T, H, W = pipe.trained_size
    rows.append({"what": "steady state per clip", "steps": steps, "guidance": guidance,
                 "seconds": round(float(np.median(times)), 3), "clip": f"{T}x{H}x{W}", "clips": clips})
    return rows
