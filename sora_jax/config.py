"""Typed, frozen configuration for every part of sora_jax.

A config is data: plain frozen dataclasses, no globals, no environment reads.
Each experiment file in ``configs/`` exposes ``get_config(variant="") -> Config``
and has a ``tiny`` variant that runs in seconds on a laptop CPU.

Command lines change single fields with ``--set path.to.field=value``; see
:func:`override`. A wrong path or a value of the wrong type is rejected with a
message that names the field and what would be valid.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

# Scene families of the synthetic world (see ../shared/PHYSICS.md).
FAMILIES: tuple[str, ...] = (
    "uniform",      # uniform motion, no gravity
    "parabola",     # projectile under gravity
    "collision",    # 2+ bodies collide (elastic or inelastic)
    "bounce",       # bounces off walls and floor
    "occlusion",    # passes behind a static occluder (object permanence)
    "counting",     # 1-5 objects, same or different colours
    "relation",     # left/right, above/below relations
    "camera_pan",   # the view moves over a larger world
    "cause_effect", # a ball hits a block; the block changes state for good
)


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """The synthetic physics world: what is simulated and how it is rendered.

    Units: the world is measured in metres; the view is ``view_height`` metres
    tall and ``view_height * width / height`` metres wide (PhyWorld: 10 x 10).
    """

    height: int = 64
    width: int = 64
    num_frames: int = 17
    dt: float = 0.1                  # seconds between frames (PhyWorld: 0.1 s)
    substeps: int = 16               # physics sub-steps per frame
    view_height: float = 10.0        # metres visible vertically
    gravity: float = 2.5             # m/s^2 when a family uses gravity (PhyWorld parabola: 2.5)
    families: tuple[str, ...] = FAMILIES
    split: Literal["id", "ood"] = "id"
    ranges: Literal["default", "phyworld"] = "default"
    max_objects: int = 5
    antialias: int = 4               # 1 = hard edges; > 1 = exact analytic edge coverage (anti-aliased)


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Causal 3D video autoencoder (channels-last video ``(b, t, h, w, c)``)."""

    in_channels: int = 3
    latent_channels: int = 8
    spatial_factor: int = 8          # 4, 8 or 16
    temporal_factor: int = 4         # frames 1 + 4k -> latent frames 1 + k
    stem_unshuffle: int = 2          # pixel-unshuffle factor before the first conv (1 = off)
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    factorized: bool = True          # (2+1)D convolutions instead of full 3D kernels
    stem_temporal: int = 1           # 2: also pair frames in the stem (time-to-depth), 1 = off
    encoder_blocks: tuple[int, ...] = ()   # res blocks per encoder stage, finest first (() = num_res_blocks each)
    decoder_blocks: tuple[int, ...] = ()   # res blocks per decoder stage, finest first (() = num_res_blocks each)
    time_padding: Literal["replicate", "zeros"] = "replicate"   # causal past-side padding
    kl_weight: float = 1e-6
    l1_weight: float = 1.0
    l2_weight: float = 0.0
    disc_weight: float = 0.0         # 0 = no discriminator
    disc_start: int = 10_000         # step at which the discriminator switches on
    dtype: Literal["float32", "bfloat16"] = "float32"


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Tokenizer + small text encoder trained with the DiT (no downloads)."""

    vocab: Literal["bytes"] = "bytes"
    max_tokens: int = 256           # bytes incl. BOS/EOS; dense captions: median 129, p95 334 bytes
    width: int = 128
    depth: int = 2
    num_heads: int = 4
    external_dim: int = 0            # > 0: accept precomputed embeddings of this width instead


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    """Video diffusion transformer over spacetime patches."""

    preset: str = "tiny"
    hidden: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    patch: tuple[int, int, int] = (1, 2, 2)   # (pt, ph, pw) in latent frames/pixels
    attention: Literal["full", "factorized"] = "full"
    pos_embed: Literal["rope", "sincos"] = "rope"
    qk_norm: bool = True
    remat: bool = False
    scan_layers: bool = False
    dtype: Literal["float32", "bfloat16"] = "float32"


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Training objective and noise schedule."""

    objective: Literal["flow", "eps", "v"] = "flow"
    schedule: Literal["cosine", "linear", "zero_snr"] = "cosine"   # DDPM objectives only
    num_train_timesteps: int = 1000
    timestep_sampling: Literal["uniform", "logit_normal"] = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 1.0               # timestep shift; > 1 spends more steps at high noise
    shift_base_tokens: int = 0       # > 0: resolution-dependent shift relative to this token count


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, checkpointing and logging for any trainer."""

    steps: int = 10_000
    batch_size: int = 8
    lr: float = 3e-4
    warmup_steps: int = 500
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    text_dropout: float = 0.1        # DiT only: probability of the null prompt (for CFG)
    caption_rate: float = 0.0        # DiT only: probability of training on the dense re-caption instead of the short prompt
    vae_checkpoint: str = ""         # DiT only: the trained VAE (exported folder or VAE workdir) whose latents the DiT learns
    init_from: str = ""              # start from these weights (exported folder or workdir) when the workdir has no checkpoint
    trainable: Literal["all", "decoder"] = "all"   # VAE only: "decoder" freezes the encoder, so its latents (and a DiT trained on them) stay valid
    latent_cache: int = 0            # DiT only: > 0 pre-encodes this many training clips once (fast epochs); 0 encodes every batch
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    eval_every: int = 1000           # held-out validation (EMA weights) every this many steps and at the end; 0 = off
    val_clips: int = 256             # clips of the world's "val" split it scores (VAE: PSNR; DiT: loss at fixed
                                     # noise levels); data="folder" has no held-out split, so no validation
    seed: int = 0
    data: Literal["world", "folder"] = "world"
    data_dir: str = ""               # for data="folder": mp4 files + captions.jsonl


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one experiment needs."""

    name: str = "default"
    world: WorldConfig = WorldConfig()
    vae: VAEConfig = VAEConfig()
    text: TextConfig = TextConfig()
    dit: DiTConfig = DiTConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    train: TrainConfig = TrainConfig()


# --------------------------------------------------------------------------- #
# Overrides: --set path.to.field=value
# --------------------------------------------------------------------------- #


def _fields(obj: Any) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj)}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _type_name(args[0]) if args else "Any"
        return f"comma-separated {inner}s"
    return getattr(tp, "__name__", str(tp))


def _parse_value(text: str, tp: Any, where: str) -> Any:
    """Parse ``text`` as a value of type ``tp``; raise ValueError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    bad = ValueError(f"--set {where}={text!r}: expected {_type_name(tp)}")
    if origin is Literal:
        for a in args:
            if str(a) == text:
                return a
        raise bad
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _parse_value(text, a, where)
            except ValueError:
                pass
        raise bad
    if origin is tuple:
        parts = [p.strip() for p in text.strip("()[] ").split(",") if p.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse_value(p, args[0], where) for p in parts)
        if len(parts) != len(args):
            raise ValueError(f"--set {where}={text!r}: expected {len(args)} comma-separated values")
        return tuple(_parse_value(p, a, where) for p, a in zip(parts, args))
    if tp is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise bad
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise bad from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise bad from None
    if tp is str:
        return text
    raise ValueError(f"--set {where}: fields of type {tp} cannot be set from the command line")


def override(cfg: Any, assignment: str) -> Any:
    """Return a copy of ``cfg`` with one field changed.

    ``assignment`` is ``"path.to.field=value"``, e.g. ``"train.lr=1e-3"`` or
    ``"dit.patch=1,2,2"``. Unknown fields and badly typed values raise
    ``ValueError`` naming the field and the valid choices.
    """
    if "=" not in assignment:
        raise ValueError(f"--set {assignment!r}: expected path.to.field=value")
    path, text = assignment.split("=", 1)
    names = path.strip().split(".")

    def set_in(obj: Any, names: list[str], prefix: str) -> Any:
        fields = _fields(obj)
        name = names[0]
        where = f"{prefix}{name}"
        if name not in fields:
            raise ValueError(
                f"--set {where}: unknown field {name!r} in {type(obj).__name__}; "
                f"valid fields: {', '.join(sorted(fields))}"
            )
        hints = typing.get_type_hints(type(obj))
        current = getattr(obj, name)
        if len(names) == 1:
            if dataclasses.is_dataclass(current):
                raise ValueError(
                    f"--set {where}: is a section, set one of its fields "
                    f"({', '.join(sorted(_fields(current)))})"
                )
            value = _parse_value(text.strip(), hints[name], where)
            return dataclasses.replace(obj, **{name: value})
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"--set {where}: {name!r} is a value, not a section")
        return dataclasses.replace(obj, **{name: set_in(current, names[1:], where + ".")})

    new = set_in(cfg, names, "")
    validate(new)
    return new


def apply_overrides(cfg: Any, assignments: list[str] | tuple[str, ...]) -> Any:
    """Apply several ``path=value`` overrides in order."""
    for a in assignments:
        cfg = override(cfg, a)
    return cfg


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


def validate(cfg: Any) -> None:
    """Check cross-field invariants; raise ``ValueError`` naming the bad value."""
    if isinstance(cfg, Config):
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            if dataclasses.is_dataclass(v):
                validate(v)
        return
    if isinstance(cfg, WorldConfig):
        if cfg.height < 1 or cfg.width < 1:
            raise ValueError(f"world size {cfg.height}x{cfg.width}: height and width must be >= 1")
        if cfg.num_frames < 1:
            raise ValueError(f"world.num_frames={cfg.num_frames}: must be >= 1")
        if cfg.dt <= 0 or cfg.substeps < 1:
            raise ValueError(f"world.dt={cfg.dt}, world.substeps={cfg.substeps}: need dt > 0 and substeps >= 1")
        unknown = [f for f in cfg.families if f not in FAMILIES]
        if unknown or not cfg.families:
            raise ValueError(f"world.families={cfg.families!r}: unknown {unknown}; valid: {', '.join(FAMILIES)}")
        if cfg.max_objects < 1:
            raise ValueError(f"world.max_objects={cfg.max_objects}: must be >= 1")
        if cfg.antialias < 1:
            raise ValueError(f"world.antialias={cfg.antialias}: must be >= 1")
    if isinstance(cfg, VAEConfig):
        if cfg.spatial_factor not in (4, 8, 16):
            raise ValueError(f"vae.spatial_factor={cfg.spatial_factor}: valid values are 4, 8, 16")
        if cfg.temporal_factor not in (1, 2, 4):
            raise ValueError(f"vae.temporal_factor={cfg.temporal_factor}: valid values are 1, 2, 4")
        if not 1 <= cfg.latent_channels <= 64:
            raise ValueError(f"vae.latent_channels={cfg.latent_channels}: must be in 1..64")
    if isinstance(cfg, DiTConfig):
        if cfg.hidden % cfg.num_heads:
            raise ValueError(f"dit.hidden={cfg.hidden} is not divisible by dit.num_heads={cfg.num_heads}")
        if any(p < 1 for p in cfg.patch):
            raise ValueError(f"dit.patch={cfg.patch}: every patch size must be >= 1")
    if isinstance(cfg, TrainConfig):
        if cfg.steps < 0 or cfg.batch_size < 1:
            raise ValueError(f"train.steps={cfg.steps}, train.batch_size={cfg.batch_size}: need steps >= 0, batch >= 1")
        if not 0.0 <= cfg.text_dropout <= 1.0:
            raise ValueError(f"train.text_dropout={cfg.text_dropout}: must be in [0, 1]")
        if not 0.0 <= cfg.caption_rate <= 1.0:
            raise ValueError(f"train.caption_rate={cfg.caption_rate}: must be in [0, 1]")
        if cfg.latent_cache < 0:
            raise ValueError(f"train.latent_cache={cfg.latent_cache}: must be >= 0 (0 = encode every batch)")
        if cfg.eval_every < 0 or cfg.val_clips < 0:
            raise ValueError(f"train.eval_every={cfg.eval_every}, train.val_clips={cfg.val_clips}: "
                             "need both >= 0 (0 = no validation)")


# --------------------------------------------------------------------------- #
# Loading config files and (de)serialising
# --------------------------------------------------------------------------- #


def load_config(path: str | os.PathLike, variant: str = "", overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Load ``configs/<name>.py`` (or ``path:variant``), call ``get_config(variant)``, apply overrides."""
    path = str(path)
    if ":" in path and not os.path.exists(path):
        path, variant = path.rsplit(":", 1)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {path!r} does not exist (expected e.g. configs/world_demo.py)")
    spec = importlib.util.spec_from_file_location(f"sora_jax_config_{p.stem}", p)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} has no get_config(variant) function")
    cfg = module.get_config(variant)
    if not isinstance(cfg, Config):
        raise ValueError(f"{path}: get_config({variant!r}) returned {type(cfg).__name__}, expected Config")
    cfg = apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, d: dict) -> Any:
    """Inverse of :func:`to_dict`; unknown keys raise ``ValueError``."""
    hints = typing.get_type_hints(cls)
    fields = _fields(cls)
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)} (written by another version?)")
    kwargs = {}
    for name, value in d.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value)
        elif typing.get_origin(tp) is tuple:
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def smoke_mode() -> bool:
    """True when ``SORA_JAX_SMOKE=1``: notebooks and CLIs switch to tiny variants."""
    return os.environ.get("SORA_JAX_SMOKE", "") not in ("", "0")
