"""Training infrastructure shared by every trainer, and the video-VAE trainer.

Pieces a trainer reuses (the DiT trainer too):

* :func:`lr_schedule` / :func:`make_optimizer` -- AdamW, linear warm-up, cosine decay to
  ``min_lr_ratio * lr``, global-norm gradient clipping, no weight decay on biases/norms.
* :func:`ema_init` / :func:`ema_update` -- exponential moving average of parameters
  (a plain nested dict of arrays).
* :func:`make_train_step` -- one jitted step ``(state, ema, batch, key, step) -> (state,
  ema, metrics)`` built from any ``loss_fn(model, batch, key) -> (loss, metrics)``.
  ``state`` is ``nnx.state((model, optimizer))``: the step merges, differentiates with
  ``nnx.value_and_grad``, calls ``nnx.Optimizer.update`` and splits again, so
  ``jax.jit`` sees only arrays (the fast functional NNX pattern).
* :class:`Checkpoints` -- orbax ``CheckpointManager`` (atomic, keeps the last
  ``keep_checkpoints``) saving model + optimizer state, EMA and a JSON record of the step,
  data position and config; :meth:`Checkpoints.restore` resumes a killed run exactly.
* :class:`MetricLog` -- metrics summed on device and fetched every ``log_every`` steps
  (no host sync per step) into ``log.jsonl`` and the tqdm bar.

The VAE trainer: :func:`train_vae`, :func:`evaluate_vae`, :func:`export_checkpoint`,
:func:`load_checkpoint`.

Work directory layout::

    workdir/config.json          the run's Config (written once; a resume must match it)
    workdir/checkpoints/<step>/  orbax checkpoints: state (model+optimizer), ema, meta (JSON)
    workdir/log.jsonl            one JSON object per log line
    workdir/val.jsonl            held-out validation of the EMA weights every ``train.eval_every`` steps
                                 and at the end (VAE: ``val_psnr``; DiT: ``val_loss`` at fixed noise levels)
    workdir/latent_stats.json    per-channel latent shift/scale (written at the end)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from sora_jax import vae as vae_lib
from sora_jax.config import Config, TrainConfig, from_dict, to_dict

# --------------------------------------------------------------------------- #
# Optimiser and schedule
# --------------------------------------------------------------------------- #


def lr_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Linear warm-up from 0 to ``lr`` over ``warmup_steps``, then cosine decay to
    ``lr * min_lr_ratio`` at ``steps`` (``lr_schedule="cosine"``) or constant."""
    warm = max(int(cfg.warmup_steps), 0)
    if cfg.lr_schedule == "constant":
        if warm == 0:
            return optax.constant_schedule(cfg.lr)
        return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warm), optax.constant_schedule(cfg.lr)], [warm])
    if cfg.lr_schedule != "cosine":
        raise ValueError(f"train.lr_schedule={cfg.lr_schedule!r}: valid values are 'cosine', 'constant'")
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.lr, warmup_steps=warm,
        decay_steps=max(int(cfg.steps), warm + 1), end_value=cfg.lr * cfg.min_lr_ratio,
    )


def _decay_mask(params: Any) -> Any:
    """Weight decay on matrices/kernels only, not on biases or norm scales."""
    return jax.tree.map(lambda p: getattr(p, "ndim", 0) >= 2, params)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """AdamW (b1 0.9, b2 0.99) on :func:`lr_schedule`, after global-norm clipping at ``grad_clip``."""
    parts = []
    if cfg.grad_clip and cfg.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip))
    parts.append(optax.adamw(lr_schedule(cfg), b1=0.9, b2=0.99, weight_decay=cfg.weight_decay, mask=_decay_mask))
    return optax.chain(*parts)


# --------------------------------------------------------------------------- #
# EMA
# --------------------------------------------------------------------------- #


def params_dict(model: nnx.Module) -> dict:
    """The model's ``nnx.Param`` values as a nested dict of arrays."""
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def ema_init(model: nnx.Module) -> dict:
    """Start the EMA at the current parameters (a copy)."""
    return jax.tree.map(jnp.array, params_dict(model))


def ema_update(ema: dict, params: dict, decay: float, step: jax.Array) -> dict:
    """``ema <- d * ema + (1 - d) * params`` with ``d = min(decay, (1 + step) / (10 + step))``.

    The warm-up on ``d`` keeps early EMA weights from being dominated by the random init.
    """
    step = jnp.asarray(step, jnp.float32)
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p.astype(e.dtype), ema, params)


def set_params(model: nnx.Module, params: dict) -> None:
    """Load a nested dict of parameter arrays (e.g. the EMA) into ``model`` in place."""
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(model, state)


# --------------------------------------------------------------------------- #
# Jitted train step
# --------------------------------------------------------------------------- #


def make_train_step(
    graphdef: Any,
    loss_fn: Callable[[nnx.Module, Any, jax.Array], tuple[jax.Array, dict]],
    *,
    ema_decay: float,
    wrt: Any = nnx.Param,
) -> Callable:
    """Build ``step(state, ema, batch, key, step) -> (state, ema, metrics)`` under ``jax.jit``.

    ``graphdef, state = nnx.split((model, optimizer))``; ``loss_fn(model, batch, key)``
    returns ``(loss, metrics)`` with scalar metrics. ``metrics`` gains ``loss`` and
    ``grad_norm``. ``wrt`` (an nnx filter, the optimizer's too) picks the parameters that
    are differentiated and updated; the others stay fixed and cost no backward pass.
    """

    @jax.jit
    def step_fn(state, ema, batch, key, step):
        model, optimizer = nnx.merge(graphdef, state)
        grad_fn = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, wrt), has_aux=True)
        (loss, metrics), grads = grad_fn(model, batch, key)
        optimizer.update(model, grads)
        ema = ema_update(ema, params_dict(model), ema_decay, step)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(nnx.state(grads, nnx.Param)))
        return nnx.state((model, optimizer)), ema, metrics

    return step_fn


# --------------------------------------------------------------------------- #
# Checkpoints
# --------------------------------------------------------------------------- #


def _atomic_write_text(path: Path, text: str) -> None:
    vae_lib._atomic_write_text(Path(path), text)


class Checkpoints:
    """orbax ``CheckpointManager`` for ``{state, ema, meta}`` under ``workdir/checkpoints``.

    ``state`` and ``ema`` are pytrees of arrays (nested dicts); ``meta`` is JSON
    (step, data position, config). orbax writes each step to a temporary directory
    and renames it when complete, so a run killed mid-save leaves the previous
    checkpoint intact; only the newest ``keep`` are kept.
    """

    def __init__(self, workdir: str | os.PathLike, *, keep: int = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=max(int(keep), 1), create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, ema: Any, meta: dict) -> None:
        ocp = self._ocp
        self.manager.save(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), ema=ocp.args.StandardSave(ema), meta=ocp.args.JsonSave(meta)),
            force=True)

    def restore(self, state_like: Any, ema_like: Any, step: int | None = None) -> tuple[Any, Any, dict] | None:
        """Restore ``(state, ema, meta)`` at ``step`` (default: latest) shaped like the templates."""
        ocp = self._ocp
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        abstract = lambda t: jax.tree.map(ocp.utils.to_shape_dtype_struct, t)
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract(state_like)), ema=ocp.args.StandardRestore(abstract(ema_like)),
            meta=ocp.args.JsonRestore()))
        return out["state"], out["ema"], out["meta"]

    def restore_meta(self, step: int | None = None) -> dict | None:
        ocp = self._ocp
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore_ema(self, ema_like: Any, step: int | None = None) -> Any:
        ocp = self._ocp
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, ema_like)
        return self.manager.restore(step, args=ocp.args.Composite(ema=ocp.args.StandardRestore(abstract)))["ema"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


# --------------------------------------------------------------------------- #
# Logging
# --------------------------------------------------------------------------- #


class MetricLog:
    """Sums scalar metrics on device; every ``log_every`` steps fetches the mean (one sync).

    Lines go to ``workdir/log.jsonl`` (appended, flushed) as
    ``{"step", "loss", "psnr", ..., "lr", "steps_per_s", "time"}``.
    """

    def __init__(self, path: Path, log_every: int, schedule: optax.Schedule):
        self.path, self.every, self.schedule = Path(path), max(int(log_every), 1), schedule
        self.acc: dict | None = None
        self.n = 0
        self.t0 = time.perf_counter()
        self.last: dict = {}

    def add(self, metrics: dict) -> None:
        self.acc = metrics if self.acc is None else jax.tree.map(jnp.add, self.acc, metrics)
        self.n += 1

    def maybe_write(self, step: int, force: bool = False) -> dict | None:
        """``step`` = number of completed steps. Writes when due; returns the line or None."""
        if self.n == 0 or not (force or step % self.every == 0):
            return None
        means = {k: float(v) / self.n for k, v in jax.device_get(self.acc).items()}
        now = time.perf_counter()
        line = {"step": int(step), **means, "lr": float(self.schedule(step - 1)),
                "steps_per_s": self.n / max(now - self.t0, 1e-9), "time": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")
        self.acc, self.n, self.t0, self.last = None, 0, now, line
        return line


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log lines past the restored ``step`` (those steps run again)."""
    if not path.is_file():
        return
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    keep = [l for l in lines if json.loads(l).get("step", 0) <= step]
    if len(keep) != len(lines):
        _atomic_write_text(path, "".join(l + "\n" for l in keep))


def read_log(workdir: str | os.PathLike, name: str = "log") -> list[dict]:
    """All lines of ``workdir/<name>.jsonl``: ``"log"`` (training metrics) or ``"val"`` (validation)."""
    p = Path(workdir) / f"{name}.jsonl"
    if not p.is_file():
        return []
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()]


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #


def prefetch(it: Iterator, size: int = 2) -> Iterator:
    """Run ``it`` in a background thread, ``size`` items ahead (rendering overlaps compute)."""
    q: queue.Queue = queue.Queue(maxsize=size)
    sentinel = object()
    stop = threading.Event()

    def worker():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # hand errors to the consumer
            q.put(e)
        q.put(sentinel)

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is sentinel:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _default_batches(cfg: Config, batch_size: int, split: str, seed: int, start_step: int) -> Iterator[dict]:
    from sora_jax import data

    return data.make_batches(cfg, batch_size, split=split, seed=seed, start_step=start_step)


def _check_workdir_config(workdir: Path, cfg: Config) -> None:
    """Write ``config.json`` on the first run; on a resume, refuse an incompatible config."""
    p = workdir / "config.json"
    if p.is_file():
        saved = from_dict(Config, json.loads(p.read_text()))
        vae_lib.check_compatible(cfg.vae, saved.vae, where=f"workdir {workdir}")
    _atomic_write_text(p, json.dumps(to_dict(cfg), indent=1))


# --------------------------------------------------------------------------- #
# Held-out validation (every ``train.eval_every`` steps, EMA weights)
# --------------------------------------------------------------------------- #

#: Noise levels of the DiT validation loss: fractions of the way from data (0) to noise (1).
VAL_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)


def _validation_on(cfg: Config) -> bool:
    """Validation needs held-out clips: the world's ``val`` split (a folder of videos has none)."""
    t = cfg.train
    return t.eval_every > 0 and t.val_clips > 0 and t.data == "world"


def _append_jsonl(path: Path, line: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def val_videos(cfg: Config, n: int, *, split: str = "val", batch_size: int = 32) -> dict[str, np.ndarray]:
    """The first ``n`` clips of a world split (``val``): uint8 ``video (n, t, h, w, 3)`` and ``prompt``.

    Clip seeds depend only on the split and the index, so every machine and run scores the same clips.
    """
    videos, prompts = [], []
    for b in _default_batches(cfg, batch_size, split, cfg.train.seed, 0):
        videos.append(np.asarray(b["video"]))
        prompts.append(np.asarray(b["prompt"]).astype(str))
        if sum(len(p) for p in prompts) >= n:
            break
    if not videos:
        raise ValueError(f"the world's {split} split gave no clips")
    return {"video": np.concatenate(videos)[:n], "prompt": np.concatenate(prompts)[:n]}


def vae_val_psnr(model: vae_lib.VideoVAE, videos: np.ndarray, *, batch_size: int = 8) -> float:
    """Mean PSNR (dB, uint8 pixels) of ``model``'s reconstructions of ``videos (n, t, h, w, 3)``."""
    scores = []
    for i in range(0, len(videos), batch_size):
        ref = videos[i:i + batch_size]
        recon = vae_lib.to_uint8(_reconstruct(model, jnp.asarray(ref)))
        scores.append(np.asarray(vae_lib.psnr(recon.astype(np.float32), ref.astype(np.float32), 255.0)))
    return float(np.concatenate(scores).mean())


def dit_val_set(cfg: Config, codec: Any, tokenizer: Any, n: int, *, split: str = "val", path: Path | None = None,
                seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` val-split clips ready for :func:`dit_val_loss`: normalised ``latents``, prompt ``ids``/``mask``
    and one fixed ``noise`` draw per clip (cached at ``path`` when given, so a resumed run does not re-encode)."""
    if path is not None and path.is_file():
        with np.load(path) as z:
            if len(z["latents"]) == n:
                return {k: z[k] for k in z.files}
    clips = val_videos(cfg, n, split=split)
    latents = np.concatenate([np.asarray(codec.encode(clips["video"][i:i + 32]), np.float32)
                              for i in range(0, len(clips["video"]), 32)])
    ids, mask = _tokenize(tokenizer, [str(p) for p in clips["prompt"]])
    noise = np.asarray(jax.random.normal(jax.random.key(seed), latents.shape, jnp.float32))
    out = {"latents": latents, "ids": ids, "mask": mask, "noise": noise, "prompt": clips["prompt"]}
    if path is not None:
        tmp = path.parent / f".{path.stem}.tmp-{os.getpid()}.npz"
        np.savez(tmp, **out)
        os.replace(tmp, path)
    return out


@nnx.jit(static_argnames=("dcfg",))
def _dit_val_batch(model, x0, ids, mask, noise, t, dcfg):
    """Per-clip mean squared error to the objective's target at native noise level ``t`` (b,)."""
    from sora_jax import diffusion

    x_t = diffusion.add_noise(dcfg, x0, noise, t)
    pred = model(x_t, diffusion.model_time(dcfg, t), ids, mask)
    err = jnp.square(pred.astype(jnp.float32) - diffusion.target(dcfg, x0, noise, t))
    return jnp.mean(err, axis=tuple(range(1, x0.ndim)))


def dit_val_loss(model: Any, cfg: Config, val: dict[str, np.ndarray], *, levels: tuple[float, ...] = VAL_LEVELS,
                 batch_size: int = 32) -> dict[str, Any]:
    """Held-out denoising loss of a ``TextToVideo`` at fixed noise levels, with fixed noise.

    The training loss depends on how noise levels are drawn (logit-normal, ``shift``), so
    runs with different settings cannot be compared by it. This can: every clip of ``val``
    (:func:`dit_val_set`) is scored at each level in ``levels`` (fractions from data, 0, to
    noise, 1; DDPM maps them onto its steps) against the same noise, conditioned on its prompt.
    Returns ``{"val_loss": mean over the levels, "val_loss_t": {level: loss}}``.
    """
    dcfg = cfg.diffusion
    n = len(val["latents"])
    if n == 0:
        raise ValueError("dit_val_loss: the validation set is empty")
    b = min(batch_size, n)
    per_level = {}
    for lv in levels:
        if not 0.0 <= lv <= 1.0:
            raise ValueError(f"dit_val_loss: level {lv} is not in [0, 1]")
        native = lv if dcfg.objective == "flow" else lv * (dcfg.num_train_timesteps - 1)
        losses = []
        for i in range(0, n, b):
            idx = np.arange(i, i + b) % n            # the last batch wraps round: one compiled shape
            out = _dit_val_batch(model, *(jnp.asarray(val[k][idx]) for k in ("latents", "ids", "mask", "noise")),
                                 jnp.full((b,), native, jnp.float32), dcfg)
            losses.append(np.asarray(out)[: min(b, n - i)])
        per_level[f"{lv:g}"] = float(np.concatenate(losses).mean())
    return {"val_loss": float(np.mean(list(per_level.values()))), "val_loss_t": per_level}


# --------------------------------------------------------------------------- #
# The VAE trainer
# --------------------------------------------------------------------------- #


def _vae_loss_fn(cfg: Config, disc_graphdef=None):
    vcfg = cfg.vae

    def loss_fn(model, batch, key):
        video = batch["video"]
        loss, aux = vae_lib.vae_loss(model, video, key, vcfg)
        metrics = {k: aux[k] for k in ("l1", "l2", "kl", "psnr")}
        if disc_graphdef is not None:
            disc = nnx.merge(disc_graphdef, batch["disc_state"])
            g = vae_lib.hinge_g_loss(disc(aux["recon"]))
            loss = loss + vcfg.disc_weight * g
            metrics["g_loss"] = g
        return loss, metrics

    return loss_fn


def _vae_trainable(tcfg: TrainConfig) -> Any:
    """The nnx filter of the VAE parameters that train (``train.trainable``)."""
    if tcfg.trainable == "all":
        return nnx.Param
    if tcfg.trainable == "decoder":
        return nnx.All(nnx.Param, nnx.PathContains("decoder"))
    raise ValueError(f"train.trainable={tcfg.trainable!r}: valid values are 'all', 'decoder'")


def _make_vae_steps(cfg: Config, graphdef, disc_graphdef=None, disc_module_graphdef=None):
    """Plain step, and (with a discriminator) a step that also trains the discriminator."""
    tcfg = cfg.train

    def prep(batch_u8):
        return {"video": batch_u8.astype(jnp.float32) / 127.5 - 1.0}

    plain = make_train_step(graphdef, _vae_loss_fn(cfg), ema_decay=tcfg.ema_decay, wrt=_vae_trainable(tcfg))

    @jax.jit
    def step_plain(state, ema, video_u8, key, step):
        return plain(state, ema, prep(video_u8), key, step)

    if disc_graphdef is None:
        return step_plain, None

    gan = make_train_step(graphdef, _vae_loss_fn(cfg, disc_module_graphdef), ema_decay=tcfg.ema_decay,
                          wrt=_vae_trainable(tcfg))

    @jax.jit
    def step_gan(state, ema, dstate, video_u8, key, step):
        batch = prep(video_u8)
        batch["disc_state"] = nnx.state(nnx.merge(disc_graphdef, dstate)[0])  # constant for the VAE update
        state, ema, metrics = gan(state, ema, batch, key, step)
        # discriminator update on (real, reconstruction from the updated model)
        model, _ = nnx.merge(graphdef, state)
        recon = jax.lax.stop_gradient(model.decode_frames(model.encode_moments(batch["video"])[0].mean)[0])
        disc, dopt = nnx.merge(disc_graphdef, dstate)

        def d_loss_fn(d):
            return vae_lib.hinge_d_loss(d(batch["video"]), d(recon))

        d_loss, d_grads = nnx.value_and_grad(d_loss_fn)(disc)
        dopt.update(disc, d_grads)
        metrics = dict(metrics, d_loss=d_loss)
        return state, ema, nnx.state((disc, dopt)), metrics

    return step_plain, step_gan


def _disc_optimizer(tcfg: TrainConfig) -> optax.GradientTransformation:
    """The discriminator starts late (``disc_start``): constant LR, no warm-up from zero."""
    return make_optimizer(dataclasses.replace(tcfg, warmup_steps=0, lr_schedule="constant"))


def _build(cfg: Config):
    model = vae_lib.VideoVAE(cfg.vae, rngs=nnx.Rngs(cfg.train.seed))
    optimizer = nnx.Optimizer(model, make_optimizer(cfg.train), wrt=_vae_trainable(cfg.train))
    return model, optimizer


def train_vae(
    cfg: Config,
    workdir: str | os.PathLike,
    *,
    max_steps: int | None = None,
    progress: bool = True,
    batches: Callable[[int], Iterator[dict]] | None = None,
    stats_batches: int = 8,
) -> dict:
    """Train the video VAE on ``cfg.train.data`` (the synthetic world by default).

    Resumes from the newest checkpoint in ``workdir`` when there is one (a killed run
    started again continues exactly where it stopped). Stops after ``max_steps`` total
    steps (default ``cfg.train.steps``; the LR schedule always spans ``cfg.train.steps``).
    ``batches(start_step)`` may supply training batches (dicts with uint8
    ``video (b, t, h, w, 3)``); the default is ``sora_jax.data.make_batches``.
    Every ``eval_every`` steps and at the end, the EMA weights' PSNR on ``val_clips`` clips
    of the world's ``val`` split goes to ``workdir/val.jsonl``. At the end, measures latent
    shift/scale with the EMA weights into ``workdir/latent_stats.json``. Returns a summary dict.
    """
    t_start = time.perf_counter()
    tcfg, vcfg = cfg.train, cfg.vae
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    _check_workdir_config(workdir, cfg)
    total = tcfg.steps if max_steps is None else int(max_steps)
    if batches is None:
        batches = lambda s: _default_batches(cfg, tcfg.batch_size, "train", tcfg.seed, s)

    model, optimizer = _build(cfg)
    ckpt = Checkpoints(workdir, keep=tcfg.keep_checkpoints)
    if tcfg.init_from and ckpt.latest_step() is None:
        init, saved, _ = load_any(tcfg.init_from)
        vae_lib.check_compatible(vcfg, saved.vae, where=f"train.init_from={tcfg.init_from}")
        set_params(model, params_dict(init))
    graphdef, state = nnx.split((model, optimizer))
    ema = ema_init(model)
    use_disc = vcfg.disc_weight > 0
    disc_graphdef = dstate = disc_module_graphdef = None
    if use_disc:
        disc = vae_lib.PatchDiscriminator3D(vcfg, rngs=nnx.Rngs(tcfg.seed + 1))
        dopt = nnx.Optimizer(disc, _disc_optimizer(tcfg), wrt=nnx.Param)
        disc_graphdef, dstate = nnx.split((disc, dopt))
        disc_module_graphdef = nnx.split(disc)[0]

    start = 0
    tree_like = {"train": nnx.to_pure_dict(state), **({"disc": nnx.to_pure_dict(dstate)} if use_disc else {})}
    restored = ckpt.restore(tree_like, ema)
    if restored is not None:
        tree, ema, meta = restored
        nnx.replace_by_pure_dict(state, tree["train"])
        if use_disc:
            nnx.replace_by_pure_dict(dstate, tree["disc"])
        start = int(meta["step"])
        if int(meta.get("data_step", start)) != start:
            raise ValueError(f"checkpoint at step {start} has data_step {meta['data_step']}; cannot resume consistently")
    _truncate_log(workdir / "log.jsonl", start)   # lines past the restored step (or of a run killed before its first checkpoint)
    _truncate_log(workdir / "val.jsonl", start)

    step_plain, step_gan = _make_vae_steps(cfg, graphdef, disc_graphdef, disc_module_graphdef)
    schedule = lr_schedule(tcfg)
    log = MetricLog(workdir / "log.jsonl", tcfg.log_every, schedule)
    base_key = jax.random.key(tcfg.seed)
    val_video = val_videos(cfg, tcfg.val_clips)["video"] if _validation_on(cfg) and start < total else None
    eval_model = vae_lib.VideoVAE(vcfg, rngs=nnx.Rngs(0)) if val_video is not None else None

    def validate(step):
        set_params(eval_model, ema)
        line = {"step": int(step), "val_psnr": vae_val_psnr(eval_model, val_video), "n_clips": len(val_video),
                "time": time.time()}
        _append_jsonl(workdir / "val.jsonl", line)
        return line

    def save(step):
        tree = {"train": nnx.to_pure_dict(state), **({"disc": nnx.to_pure_dict(dstate)} if use_disc else {})}
        ckpt.save(step, tree, ema, {"step": int(step), "data_step": int(step), "config": to_dict(cfg),
                                    "time": time.time()})

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train_vae", dynamic_ncols=True)
    it = prefetch(iter(batches(start))) if start < total else iter(())
    step = start
    try:
        while step < total:
            batch = next(it)
            video = jnp.asarray(batch["video"])
            if video.dtype != jnp.uint8:
                raise ValueError(f"training batches must hold uint8 video, got {video.dtype}")
            key = jax.random.fold_in(base_key, step)
            if use_disc and step >= vcfg.disc_start:
                state, ema, dstate, metrics = step_gan(state, ema, dstate, video, key, step)
            else:
                state, ema, metrics = step_plain(state, ema, video, key, step)
            log.add(metrics)
            step += 1
            line = log.maybe_write(step)
            if bar is not None:
                bar.update(1)
                if line:
                    bar.set_postfix(loss=f"{line['loss']:.4f}", psnr=f"{line['psnr']:.2f}", lr=f"{line['lr']:.2e}")
            if val_video is not None and (step % tcfg.eval_every == 0 or step == total):
                v = validate(step)
                if bar is not None:
                    bar.write(f"step {step}: val PSNR {v['val_psnr']:.2f} dB on {v['n_clips']} held-out clips")
            if step % tcfg.checkpoint_every == 0 or step == total:
                save(step)
    finally:
        if bar is not None:
            bar.close()
        if hasattr(it, "close"):
            it.close()
    log.maybe_write(step, force=True)
    if step > start and ckpt.latest_step() != step:
        save(step)
    ckpt.close()

    # latent statistics with the EMA weights, stored beside the checkpoints
    model, _ = nnx.merge(graphdef, state)
    set_params(model, ema)
    stats_it = batches(10**6)  # batches far from the ones just trained on
    stats = vae_lib.measure_latent_stats(model, (b["video"] for b in stats_it), max_batches=stats_batches)
    stats["step"] = int(step)
    _atomic_write_text(workdir / "latent_stats.json", json.dumps(stats, indent=1))
    return {"workdir": str(workdir), "step": int(step), "start_step": int(start),
            "last_log": log.last, "latent_stats": stats, "wall_s": time.perf_counter() - t_start}


# --------------------------------------------------------------------------- #
# Loading, exporting, evaluating
# --------------------------------------------------------------------------- #


def load_checkpoint(workdir: str | os.PathLike, *, step: int | None = None, use_ema: bool = True) -> tuple[vae_lib.VideoVAE, Config, dict | None]:
    """``(model, cfg, latent_stats)`` from a training ``workdir`` (EMA weights by default)."""
    workdir = Path(workdir).absolute()
    if not (workdir / "config.json").is_file():
        raise FileNotFoundError(f"{workdir} is not a training workdir (no config.json)")
    cfg = from_dict(Config, json.loads((workdir / "config.json").read_text()))
    ckpt = Checkpoints(workdir, keep=cfg.train.keep_checkpoints)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"{workdir}/checkpoints holds no checkpoint yet")
    model, optimizer = _build(cfg)
    if use_ema:
        ema = ckpt.restore_ema(ema_init(model), step)
        set_params(model, ema)
    else:
        state = nnx.state((model, optimizer))
        tree_like = {"train": nnx.to_pure_dict(state)}
        if cfg.vae.disc_weight > 0:
            disc = vae_lib.PatchDiscriminator3D(cfg.vae, rngs=nnx.Rngs(0))
            tree_like["disc"] = nnx.to_pure_dict(nnx.state((disc, nnx.Optimizer(disc, _disc_optimizer(cfg.train), wrt=nnx.Param))))
        tree, _, _ = ckpt.restore(tree_like, ema_init(model), step)
        nnx.replace_by_pure_dict(state, tree["train"])
        nnx.update((model, optimizer), state)
    ckpt.close()
    p = workdir / "latent_stats.json"
    stats = json.loads(p.read_text()) if p.is_file() else None
    return model, cfg, stats


def load_any(checkpoint: str | os.PathLike) -> tuple[vae_lib.VideoVAE, Config, dict | None]:
    """Load an exported inference checkpoint or a training workdir."""
    p = Path(checkpoint)
    if (p / "params").exists() and (p / "config.json").is_file():
        return vae_lib.load_vae(p)
    if (p / "checkpoints").is_dir():
        return load_checkpoint(p)
    raise FileNotFoundError(f"{checkpoint}: neither an exported VAE checkpoint (params/ + config.json) nor a training workdir (checkpoints/)")


def export_checkpoint(workdir: str | os.PathLike, out_dir: str | os.PathLike, dtype: str = "bfloat16") -> Path:
    """Write a small inference-only checkpoint: EMA params in ``dtype``, config JSON, latent stats."""
    model, cfg, stats = load_checkpoint(workdir)
    meta = read_log(workdir)
    extra = {"source_step": meta[-1]["step"] if meta else None, "num_params": vae_lib.num_params(model)}
    return vae_lib.save_vae(out_dir, params_dict(model), cfg, stats, dtype=dtype, extra=extra)


@nnx.jit
def _reconstruct(model: vae_lib.VideoVAE, video_u8):
    x = video_u8.astype(jnp.float32) / 127.5 - 1.0
    post, _ = model.encode_moments(x)
    return model.decode_frames(post.mean)[0]


def evaluate_vae(
    checkpoint: str | os.PathLike,
    *,
    n_clips: int = 256,
    split: str = "test",
    batch_size: int = 8,
    progress: bool = True,
    batches: Iterator[dict] | None = None,
) -> dict:
    """Reconstruction quality on held-out world clips: PSNR (dB, uint8 pixels), SSIM, per family.

    ``checkpoint`` is an exported checkpoint or a training workdir (EMA weights).
    Reconstructions are rounded to uint8 before scoring, as a viewer would see them.
    """
    model, cfg, _ = load_any(checkpoint)
    if batches is None:
        batches = _default_batches(cfg, batch_size, split, cfg.train.seed, 0)
    psnrs, ssims, fams = [], [], []
    ssim_fn = jax.jit(lambda a, b: vae_lib.ssim(a, b, 255.0))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_clips, desc=f"evaluate_vae[{split}]", dynamic_ncols=True)
    for batch in batches:
        if len(psnrs) >= n_clips:
            break
        video = np.asarray(batch["video"])[: n_clips - len(psnrs)]
        recon = vae_lib.to_uint8(_reconstruct(model, jnp.asarray(video)))
        ref = video.astype(np.float32)
        out = recon.astype(np.float32)
        psnrs.extend(np.asarray(vae_lib.psnr(out, ref, 255.0)).tolist())
        b, t = video.shape[:2]
        s = np.asarray(ssim_fn(out.reshape(b * t, *out.shape[2:]), ref.reshape(b * t, *ref.shape[2:]))).reshape(b, t)
        ssims.extend(s.mean(1).tolist())
        fams.extend([str(f) for f in np.asarray(batch.get("family", [""] * b))[:b]])
        if bar is not None:
            bar.update(b)
    if bar is not None:
        bar.close()
    if not psnrs:
        raise ValueError(f"evaluate_vae: split {split!r} gave no clips")
    per_family = {}
    for f in sorted(set(fams)):
        idx = [i for i, g in enumerate(fams) if g == f]
        per_family[f] = {"psnr": float(np.mean([psnrs[i] for i in idx])), "ssim": float(np.mean([ssims[i] for i in idx])), "n": len(idx)}
    w = cfg.world
    result = {
        "psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "n_clips": len(psnrs), "split": split,
        "per_family": per_family,
        "compression_ratio": vae_lib.compression_ratio(cfg.vae, w.num_frames, w.height, w.width),
        "latent_shape": vae_lib.latent_shape(cfg.vae, w.num_frames, w.height, w.width),
    }
    print(f"VAE {checkpoint}: PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  on {len(psnrs)} {split} clips; "
          f"compression {result['compression_ratio']:.1f}x")
    for f, r in per_family.items():
        print(f"  {f:14s} PSNR {r['psnr']:.2f}  SSIM {r['ssim']:.4f}  (n={r['n']})")
    return result


# --------------------------------------------------------------------------- #
# The DiT trainer
# --------------------------------------------------------------------------- #


def load_frozen_vae(cfg: Config) -> tuple[vae_lib.VideoVAE, dict]:
    """The trained VAE named by ``cfg.train.vae_checkpoint`` and its latent stats (both required)."""
    src = cfg.train.vae_checkpoint
    if not src:
        raise ValueError("train.vae_checkpoint is empty: the DiT learns the latents of a trained VAE; "
                         "pass --set train.vae_checkpoint=<exported VAE folder or VAE workdir>")
    if not Path(src).exists():
        raise FileNotFoundError(f"train.vae_checkpoint={src!r} does not exist (train one with `sora-jax train-vae`)")
    vae, saved, stats = load_any(src)
    vae_lib.check_compatible(cfg.vae, saved.vae, where=f"train.vae_checkpoint={src}")
    if stats is None:
        raise ValueError(f"train.vae_checkpoint={src!r} has no latent_stats.json; it is written when train-vae "
                         "finishes (or run sora_jax.vae.measure_latent_stats)")
    return vae, stats


def _pick_texts(batch: dict, rate: float, rng: np.random.Generator) -> list[str]:
    """Per clip: the dense re-caption with probability ``rate``, else the short prompt."""
    prompts = [str(p) for p in np.asarray(batch["prompt"])]
    if rate <= 0 or "caption" not in batch:
        return prompts
    captions = [str(c) for c in np.asarray(batch["caption"])]
    use = rng.random(len(prompts)) < rate
    return [c if u else p for p, c, u in zip(prompts, captions, use)]


def _tokenize(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    import warnings

    with warnings.catch_warnings():  # dense captions may exceed max_tokens: truncation is expected here
        warnings.simplefilter("ignore")
        return tokenizer.encode(texts)


def build_latent_cache(
    cfg: Config,
    codec: Any,
    directory: str | os.PathLike,
    n_clips: int,
    *,
    chunk: int = 1024,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Encode ``n_clips`` training clips once: ``latents`` float16 ``(n, t, h, w, c)``, ``prompt``, ``caption``.

    Written as ``directory/chunk_00000.npz`` ... (each chunk atomic), so a killed run keeps
    the chunks it finished. The clips are the world's train split from its start, so the
    cache is the same on every machine.
    """
    from sora_jax import data

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n_chunks = -(-int(n_clips) // chunk)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_clips, desc="encode latent cache", dynamic_ncols=True)
    parts = []
    for ci in range(n_chunks):
        path = directory / f"chunk_{ci:05d}.npz"
        size = min(chunk, n_clips - ci * chunk)
        if not path.is_file():
            lat, prompts, captions = [], [], []
            start_batch = ci * chunk // batch_size
            it = data.make_batches(cfg, batch_size, split="train", seed=cfg.train.seed + 7919, start_step=start_batch)
            while sum(len(p) for p in prompts) < size:
                b = next(it)
                lat.append(np.asarray(codec.encode(np.asarray(b["video"]))).astype(np.float16))
                prompts.append(np.asarray(b["prompt"]).astype(str))
                captions.append(np.asarray(b["caption"]).astype(str))
                if bar is not None:
                    bar.update(len(b["prompt"]))
            tmp = directory / f".{path.name}.tmp-{os.getpid()}.npz"   # np.savez wants the .npz suffix
            np.savez(tmp, latents=np.concatenate(lat)[:size], prompt=np.concatenate(prompts)[:size],
                     caption=np.concatenate(captions)[:size])
            os.replace(tmp, path)
        elif bar is not None:
            bar.update(size)
        with np.load(path) as z:
            parts.append({k: z[k] for k in ("latents", "prompt", "caption")})
    if bar is not None:
        bar.close()
    return {k: np.concatenate([p[k] for p in parts]) for k in ("latents", "prompt", "caption")}


def _cache_batches(cache: dict, batch_size: int, seed: int, start_step: int) -> Iterator[dict]:
    """Random batches from the latent cache; batch ``s`` depends only on ``(seed, s)`` (exact resume)."""
    n = len(cache["latents"])
    if n < batch_size:
        raise ValueError(f"latent cache has {n} clips, fewer than train.batch_size={batch_size}")
    step = start_step
    while True:
        idx = np.random.default_rng([seed, step, 0xD17]).choice(n, batch_size, replace=False)
        yield {"latents": cache["latents"][idx].astype(np.float32), "prompt": cache["prompt"][idx],
               "caption": cache["caption"][idx]}
        step += 1


def _dit_loss_fn(cfg: Config, num_tokens: int):
    from sora_jax import diffusion
    from sora_jax.text import prompt_dropout

    def loss_fn(model, batch, key):
        k_drop, k_loss = jax.random.split(key)
        x0 = batch["latents"]
        drop = prompt_dropout(k_drop, x0.shape[0], cfg.train.text_dropout)

        def model_fn(x_t, t, *, ids, mask):
            return model(x_t, t, ids, mask, drop=drop)

        loss = diffusion.loss(model_fn, x0, k_loss, cfg=cfg.diffusion, num_tokens=num_tokens,
                              ids=batch["ids"], mask=batch["mask"])
        return loss, {}

    return loss_fn


def train_dit(
    cfg: Config,
    workdir: str | os.PathLike,
    *,
    max_steps: int | None = None,
    progress: bool = True,
    batches: Callable[[int], Iterator[dict]] | None = None,
    mesh: Any = None,
) -> dict:
    """Train the text encoder + VideoDiT on latents of the frozen VAE ``cfg.train.vae_checkpoint``.

    Each step: pick each clip's text (short prompt, or the dense re-caption with
    probability ``train.caption_rate``), drop it to the null text with probability
    ``train.text_dropout`` (for classifier-free guidance), noise the normalised latents
    at a sampled level (``cfg.diffusion``: rectified flow or DDPM) and regress the target.
    AdamW + warm-up/cosine, clipping, EMA, orbax checkpoints every ``checkpoint_every``
    steps; a killed run started again resumes exactly (model, optimizer, EMA, data order).
    Every ``eval_every`` steps and at the end, the EMA weights' held-out loss
    (:func:`dit_val_loss` on ``val_clips`` clips of the world's ``val`` split) goes to
    ``workdir/val.jsonl``.

    Latents come from a cache of ``train.latent_cache`` clips encoded once (under
    ``workdir/latents``), or, with ``latent_cache=0``, from encoding every batch.
    ``batches(start_step)`` may supply batches instead: dicts with ``prompt`` (and
    ``caption``) strings and either uint8 ``video`` or normalised ``latents``.
    With several devices (or an explicit ``mesh`` from :func:`sora_jax.parallel.make_mesh`)
    the same step runs data-parallel/FSDP; the batch must divide over the mesh.
    """
    from sora_jax import parallel
    from sora_jax.patches import grid_shape
    from sora_jax.pipeline import LatentCodec, TextToVideo

    t_start = time.perf_counter()
    tcfg = cfg.train
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    vae, stats = load_frozen_vae(cfg)
    codec = LatentCodec(vae, stats)
    _check_workdir_config(workdir, cfg)
    total = tcfg.steps if max_steps is None else int(max_steps)
    w = cfg.world
    latent = vae_lib.latent_shape(cfg.vae, w.num_frames, w.height, w.width)
    num_tokens = math.prod(grid_shape(latent[:3], cfg.dit.patch))
    if mesh is None and jax.device_count() > 1:
        mesh = parallel.make_mesh()
    shards = parallel.num_batch_shards(mesh)
    if tcfg.batch_size % shards:
        raise ValueError(f"train.batch_size={tcfg.batch_size} does not divide over {shards} devices of the mesh")

    ckpt = Checkpoints(workdir, keep=tcfg.keep_checkpoints)
    # fine-tune start (new optimiser and LR schedule); loaded before the latent cache so a bad
    # train.init_from fails in seconds, not after minutes of encoding
    init = load_dit_weights(tcfg.init_from, cfg) if tcfg.init_from and ckpt.latest_step() is None else None

    if batches is None:
        if tcfg.latent_cache > 0:
            cache = build_latent_cache(cfg, codec, workdir / "latents", tcfg.latent_cache, progress=progress)
            batches = lambda s: _cache_batches(cache, tcfg.batch_size, tcfg.seed, s)
        else:
            batches = lambda s: _default_batches(cfg, tcfg.batch_size, "train", tcfg.seed, s)

    model = TextToVideo(cfg, rngs=nnx.Rngs(tcfg.seed))
    if init is not None:
        set_params(model, init)
    optimizer = nnx.Optimizer(model, make_optimizer(tcfg), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    ema = ema_init(model)
    n_params = sum(a.size for a in jax.tree.leaves(ema))
    start = 0
    restored = ckpt.restore({"train": nnx.to_pure_dict(state)}, ema)
    if restored is not None:
        tree, ema, meta = restored
        nnx.replace_by_pure_dict(state, tree["train"])
        start = int(meta["step"])
    _truncate_log(workdir / "log.jsonl", start)   # lines past the restored step (or of a run killed before its first checkpoint)
    _truncate_log(workdir / "val.jsonl", start)
    state = parallel.shard_state(state, mesh)
    ema = parallel.shard_state(ema, mesh)

    inner = make_train_step(graphdef, _dit_loss_fn(cfg, num_tokens), ema_decay=tcfg.ema_decay)

    @jax.jit
    def step_fn(state, ema, batch, key, step):
        state, ema, metrics = inner(state, ema, batch, key, step)
        return parallel.constrain(state, mesh), parallel.constrain(ema, mesh), metrics

    tokenizer = model.text.tokenizer
    schedule = lr_schedule(tcfg)
    log = MetricLog(workdir / "log.jsonl", tcfg.log_every, schedule)
    base_key = jax.random.key(tcfg.seed)
    val = (dit_val_set(cfg, codec, tokenizer, tcfg.val_clips, path=workdir / "val_set.npz")
           if _validation_on(cfg) and start < total else None)
    eval_model = TextToVideo(cfg, rngs=nnx.Rngs(0)) if val is not None else None

    def validate(step):
        set_params(eval_model, ema)
        line = {"step": int(step), **dit_val_loss(eval_model, cfg, val), "n_clips": len(val["latents"]),
                "time": time.time()}
        _append_jsonl(workdir / "val.jsonl", line)
        return line

    def save(step):
        ckpt.save(step, {"train": nnx.to_pure_dict(state)}, ema,
                  {"step": int(step), "data_step": int(step), "config": to_dict(cfg), "time": time.time(),
                   "num_params": int(n_params)})

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train_dit", dynamic_ncols=True)
    it = prefetch(iter(batches(start))) if start < total else iter(())
    step = start
    try:
        while step < total:
            batch = next(it)
            if "latents" in batch:
                lat = np.asarray(batch["latents"], np.float32)
            elif "video" in batch:
                lat = codec.encode(np.asarray(batch["video"]))
            else:
                raise ValueError(f"training batches need 'latents' or uint8 'video'; got keys {sorted(batch)}")
            if tuple(lat.shape[1:]) != tuple(latent):
                raise ValueError(f"batch latents {tuple(lat.shape)} do not match the config's {tuple(latent)}")
            rng = np.random.default_rng([tcfg.seed, step, 0x7E47])
            ids, mask = _tokenize(tokenizer, _pick_texts(batch, tcfg.caption_rate, rng))
            b = parallel.shard_batch({"latents": jnp.asarray(lat), "ids": jnp.asarray(ids),
                                      "mask": jnp.asarray(mask)}, mesh)
            state, ema, metrics = step_fn(state, ema, b, jax.random.fold_in(base_key, step), step)
            log.add(metrics)
            step += 1
            line = log.maybe_write(step)
            if bar is not None:
                bar.update(1)
                if line:
                    bar.set_postfix(loss=f"{line['loss']:.4f}", lr=f"{line['lr']:.2e}")
            if val is not None and (step % tcfg.eval_every == 0 or step == total):
                v = validate(step)
                if bar is not None:
                    bar.write(f"step {step}: val loss {v['val_loss']:.4f} on {v['n_clips']} held-out clips "
                              f"({', '.join(f't={k}: {x:.4f}' for k, x in v['val_loss_t'].items())})")
            if step % tcfg.checkpoint_every == 0 or step == total:
                save(step)
    finally:
        if bar is not None:
            bar.close()
        if hasattr(it, "close"):
            it.close()
    log.maybe_write(step, force=True)
    if step > start and ckpt.latest_step() != step:
        save(step)
    ckpt.close()
    return {"workdir": str(workdir), "step": int(step), "start_step": int(start), "num_params": int(n_params),
            "num_tokens": int(num_tokens), "last_log": log.last, "wall_s": time.perf_counter() - t_start}


def load_dit_checkpoint(workdir: str | os.PathLike, *, step: int | None = None) -> tuple[Any, Config, dict]:
    """``(TextToVideo with EMA weights, cfg, meta)`` from a ``train_dit`` workdir."""
    from sora_jax.pipeline import TextToVideo

    workdir = Path(workdir).absolute()
    if not (workdir / "config.json").is_file():
        raise FileNotFoundError(f"{workdir} is not a training workdir (no config.json)")
    cfg = from_dict(Config, json.loads((workdir / "config.json").read_text()))
    ckpt = Checkpoints(workdir, keep=cfg.train.keep_checkpoints)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"{workdir}/checkpoints holds no checkpoint yet")
    model = TextToVideo(cfg, rngs=nnx.Rngs(0))
    ema = ckpt.restore_ema(ema_init(model), step)
    meta = ckpt.restore_meta(step)
    ckpt.close()
    set_params(model, ema)
    return model, cfg, meta


def _load_text_to_video(source: str | os.PathLike, what: str) -> tuple[Any, Config, int | None, Any]:
    """``(TextToVideo, cfg, step, codec)`` from a pipeline folder (``data/demo``, with its latent
    codec) or a ``train-dit`` workdir (newest EMA weights; codec ``None``). ``what`` names it in errors."""
    p = Path(source)
    if (p / "dit").is_dir() and (p / "config.json").is_file():
        from sora_jax.pipeline import load_pipeline

        pipe = load_pipeline(p, cache=False)
        return pipe.model, pipe.config, pipe.meta.get("step"), pipe.codec
    if (p / "checkpoints").is_dir():
        model, cfg, meta = load_dit_checkpoint(p)
        return model, cfg, meta.get("step"), None
    raise FileNotFoundError(f"{what}: neither a pipeline folder (dit/ + config.json) nor a train-dit workdir (checkpoints/)")


def load_dit_weights(source: str | os.PathLike, cfg: Config) -> dict:
    """Text-encoder + DiT params (float32) to start a run from, checked against ``cfg``.

    ``source`` is a pipeline folder (what :func:`export_pipeline` writes, e.g. ``data/demo``)
    or a ``train_dit`` workdir (its newest EMA weights). The DiT, text encoder, diffusion
    objective and VAE configs must match ``cfg`` (the VAE's weights are not compared: continue
    only from a run on the same frozen VAE); the optimiser, LR schedule, noise-level sampling
    and data settings may differ (that is what fine-tuning changes).
    """
    model, saved, _, _ = _load_text_to_video(source, f"train.init_from={str(source)!r}")
    for name, have, want in (("dit", saved.dit, cfg.dit), ("text", saved.text, cfg.text),
                             ("diffusion.objective", saved.diffusion.objective, cfg.diffusion.objective)):
        if have != want:
            raise ValueError(f"train.init_from={str(source)!r} was trained with {name}={have}, "
                             f"but this config has {name}={want}; they must match to continue from it")
    vae_lib.check_compatible(cfg.vae, saved.vae, where=f"train.init_from={source}")
    return params_dict(model)


def evaluate_dit(checkpoint: str | os.PathLike, *, n_clips: int = 256, split: str = "val", batch_size: int = 32,
                 levels: tuple[float, ...] = VAL_LEVELS) -> dict[str, Any]:
    """Held-out denoising loss of a text-to-video checkpoint (``sora-jax eval loss``); lower is better.

    ``checkpoint`` is a pipeline folder (``data/demo``) or a ``train-dit`` workdir (EMA weights).
    The first ``n_clips`` clips of ``split``, the noise and the noise levels are the same on
    every call (:func:`dit_val_loss`), so checkpoints trained with different timestep
    sampling, shift or length compare directly -- which their training losses do not.
    The noise is drawn for all ``n_clips`` at once: compare figures taken with the same
    ``n_clips`` (``train-dit`` validates with ``train.val_clips``, 256 by default, as here).
    """
    from sora_jax.pipeline import LatentCodec

    if split not in ("val", "test"):
        raise ValueError(f"split={split!r}: valid splits are 'val', 'test' (held out from training)")
    if n_clips < 1:
        raise ValueError(f"n_clips={n_clips}: need >= 1")
    model, cfg, step, codec = _load_text_to_video(checkpoint, str(checkpoint))
    if codec is None:   # a workdir: the frozen VAE it trained on
        codec = LatentCodec(*load_frozen_vae(cfg))
    t0 = time.perf_counter()
    val = dit_val_set(cfg, codec, model.text.tokenizer, n_clips, split=split)
    result = {"checkpoint": str(checkpoint), "step": step, "split": split, "n_clips": len(val["latents"]),
              "objective": cfg.diffusion.objective, **dit_val_loss(model, cfg, val, levels=levels, batch_size=batch_size),
              "wall_s": round(time.perf_counter() - t0, 1)}
    print(f"held-out denoising loss of {checkpoint}: {result['n_clips']} {split} clips, fixed noise "
          f"({cfg.diffusion.objective} target; t = 0 data, 1 noise)")
    for lv, x in result["val_loss_t"].items():
        print(f"  t={lv:<4s} {x:.4f}")
    print(f"  mean   {result['val_loss']:.4f}")
    return result


def export_pipeline(workdir: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str = "bfloat16",
                    extra: dict | None = None) -> Path:
    """Write a pipeline checkpoint folder (what :func:`sora_jax.pipeline.load_pipeline` reads).

    The DiT and text encoder get their EMA weights in ``dtype``; the VAE named by the
    run's ``train.vae_checkpoint`` is copied (an exported folder) or exported (a workdir)
    into ``out_dir/vae``. The folder is built beside ``out_dir`` and renamed into place,
    so a crash never leaves a half-written checkpoint; files in ``out_dir`` other than
    the checkpoint (e.g. ``MODEL_CARD.md``) are kept. ``extra`` adds keys to ``meta.json``,
    e.g. ``{"sampling": {"eta": 0.75}}``, the sampling stochasticity ``generate`` defaults to.
    """
    import shutil

    from sora_jax.pipeline import FORMAT_VERSION, check_sampling_meta, num_params, save_dit

    check_sampling_meta((extra or {}).get("sampling"), "export_pipeline(extra=...)")
    model, cfg, meta = load_dit_checkpoint(workdir)
    out_dir = Path(out_dir).absolute()
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    src = Path(cfg.train.vae_checkpoint)
    if (src / "params").exists():
        shutil.copytree(src, tmp / "vae")   # an exported VAE (may be out_dir/vae itself: copied before the swap)
    else:
        export_checkpoint(src, tmp / "vae", dtype=dtype)
    save_dit(tmp / "dit" / "params", params_dict(model), dtype=dtype)
    _atomic_write_text(tmp / "config.json", json.dumps(to_dict(cfg), indent=1))
    info = {"format_version": FORMAT_VERSION, "step": int(meta["step"]), "dtype": dtype,
            "num_params_dit": num_params(model.dit), "num_params_text": num_params(model.text),
            "source_workdir": str(Path(workdir).absolute()), "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
            **(extra or {})}
    _atomic_write_text(tmp / "meta.json", json.dumps(info, indent=1))
    if out_dir.exists():
        for keep in out_dir.iterdir():  # carry over files that are not part of the checkpoint
            if keep.name not in ("vae", "dit", "config.json", "meta.json") and not (tmp / keep.name).exists():
                if keep.is_dir():
                    shutil.copytree(keep, tmp / keep.name)
                else:
                    shutil.copy2(keep, tmp / keep.name)
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out_dir)
    return out_dir
