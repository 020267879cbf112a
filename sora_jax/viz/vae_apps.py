"""Pictures and ipywidgets apps for notebook 02 (the causal video autoencoder).

Like the rest of :mod:`sora_jax.viz`, nothing here imports the VAE: the pictures draw
plain arrays, and the apps *call* functions the notebook passes in (an autoencoder, a
chunked encoder, a memory probe). That keeps the pictures honest (they show what the
library computes) and lets the tests drive the apps with tiny fakes.

Axes: ``t, h, w`` pixel frames, rows, columns of a clip; ``T, H, W, C`` latent frames,
rows, columns, channels. A causal VAE with temporal factor ``f`` maps ``t = 1 + f k``
frames to ``T = 1 + k`` latent frames: frame 0 alone, then every ``f`` frames
(:func:`latent_frame_of`, :func:`sora_jax.viz.causal_frame_groups`).

Videos are uint8 ``(t, h, w, 3)`` at the edges; model-side pixels are float in [-1, 1]
(float inputs are converted with :func:`sora_jax.viz.to_uint8`). Images are uint8
arrays; apps keep their state in attributes and have a ``render(...)`` method that does
what moving the widgets does, so they also run headless (tests, CI).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import Float, UInt8

from sora_jax.viz.model_apps import _image_png, _png, _positive_int, causal_frame_groups, to_uint8

GAINS = (1.0, 2.0, 4.0, 8.0, 16.0)      # error-image amplification choices
AutoencodeFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]   # video -> (latent, reconstruction)
EncodeFn = Callable[[int | None], np.ndarray]                          # latent frames per call -> latent
DecodeFn = Callable[[np.ndarray, int | None], np.ndarray]              # (latent, latent frames per call) -> video
MemoryFn = Callable[[int | None], float | Mapping[str, float]]         # latent frames per call -> bytes


# --------------------------------------------------------------------------- #
# small helpers
# --------------------------------------------------------------------------- #


def _as_video(x: Any, name: str) -> UInt8[np.ndarray, "t h w 3"]:
    """uint8 ``(t, h, w, 3)`` as is; float in [-1, 1] converted; anything else a clear error."""
    v = np.asarray(x)
    if v.ndim != 4 or v.shape[-1] != 3 or min(v.shape) < 1:
        raise ValueError(f"{name}: expected a video of shape (t, h, w, 3), got shape {v.shape}")
    if v.dtype == np.uint8:
        return v
    if not np.issubdtype(v.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 pixels or float pixels in [-1, 1], got dtype {v.dtype}")
    return to_uint8(v)


def latent_frame_of(frame: int, temporal_factor: int) -> int:
    """The latent frame that holds pixel frame ``frame``: 0 for frame 0, else ``1 + (frame - 1) // f``.

    >>> [latent_frame_of(i, 4) for i in range(10)]
    [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    """
    f = _positive_int(temporal_factor, "temporal_factor")
    if not isinstance(frame, (int, np.integer)) or frame < 0:
        raise ValueError(f"frame={frame!r}: must be an integer >= 0")
    return 0 if frame == 0 else 1 + (int(frame) - 1) // f


def frame_psnr(original: UInt8[np.ndarray, "t h w 3"],
               reconstruction: UInt8[np.ndarray, "t h w 3"]) -> Float[np.ndarray, "t"]:
    """PSNR in dB of every frame, on the uint8 pixels you see (peak 255; identical frames give 100 dB).

    Float inputs in [-1, 1] are rounded to uint8 first, so this can differ from a PSNR
    computed on the model's float output by a few hundredths of a dB.
    """
    a, b = _as_video(original, "original"), _as_video(reconstruction, "reconstruction")
    if a.shape != b.shape:
        raise ValueError(f"frame_psnr: original {a.shape} and reconstruction {b.shape} differ in shape")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
    return 10.0 * np.log10(255.0**2 / np.maximum(mse, 255.0**2 * 1e-10))


def error_map(original: UInt8[np.ndarray, "... h w 3"], reconstruction: UInt8[np.ndarray, "... h w 3"], *,
              gain: float = 4.0, cmap: str = "Reds") -> UInt8[np.ndarray, "... h w 3"]:
    """``|original - reconstruction|`` (mean over RGB) times ``gain`` as a heat image.

    White = no error, deeper red = larger (``cmap``). An error of ``255 / gain`` levels or
    more gets the darkest colour, so ``gain=4`` saturates at 64 levels (a quarter of the range).
    Works on one frame ``(h, w, 3)`` or a video ``(t, h, w, 3)``.
    """
    import matplotlib

    a, b = np.asarray(original), np.asarray(reconstruction)
    if a.shape != b.shape or a.shape[-1:] != (3,) or a.ndim not in (3, 4):
        raise ValueError(f"error_map: need two (h, w, 3) or (t, h, w, 3) arrays of one shape, got {a.shape}, {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"error_map: expected uint8 pixels, got {a.dtype} and {b.dtype}")
    if not gain > 0:
        raise ValueError(f"gain={gain!r}: must be > 0")
    err = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1) / 255.0
    s = np.clip(err * gain, 0.0, 1.0)[..., None]
    rgb = (1.0 - s) + s * matplotlib.colormaps[cmap](s[..., 0])[..., :3]     # fade from pure white
    return np.round(rgb * 255).astype(np.uint8)


def latent_channel_grid(latent_frame: Float[np.ndarray, "H W C"], *, shift: Sequence[float] | None = None,
                        scale: Sequence[float] | None = None, limit: float | None = 3.0, columns: int = 8,
                        upscale: int | None = None, gap: int = 2,
                        cmap: str = "RdBu_r") -> UInt8[np.ndarray, "rows cols 3"]:
    """Every channel of one latent frame as a small image, ``columns`` per row.

    Values are first normalised per channel, ``(z - shift) / scale`` (the VAE's latent
    statistics, what the diffusion model sees; default: no shift, scale 1), then mapped
    through a diverging colour map over ``[-limit, limit]``: white = 0, red positive,
    blue negative. ``limit=None`` uses the largest magnitude in the frame. ``upscale``
    (None = automatic: a channel at least 64 pixels wide) enlarges each cell; cells are
    ``gap`` white pixels apart.
    """
    import matplotlib

    z = np.asarray(latent_frame, np.float64)
    if z.ndim != 3 or min(z.shape) < 1:
        raise ValueError(f"latent_channel_grid: expected one latent frame (H, W, C), got shape {z.shape}")
    H, W, C = z.shape
    for name, v in (("shift", shift), ("scale", scale)):
        if v is not None and np.shape(v) != (C,):
            raise ValueError(f"{name}: expected {C} values (one per latent channel), got shape {np.shape(v)}")
    if shift is not None:
        z = z - np.asarray(shift, np.float64)
    if scale is not None:
        sc = np.asarray(scale, np.float64)
        if np.any(sc <= 0):
            raise ValueError("scale: every value must be > 0")
        z = z / sc
    lim = float(np.abs(z).max()) if limit is None else float(limit)
    if not lim > 0:
        lim = 1.0
    cols = max(1, min(_positive_int(columns, "columns"), C))
    rows = math.ceil(C / cols)
    f = max(1, math.ceil(64 / max(H, W))) if upscale is None else _positive_int(upscale, "upscale")
    if gap < 0:
        raise ValueError(f"gap={gap}: must be >= 0")
    cells = matplotlib.colormaps[cmap](np.clip(z / lim, -1.0, 1.0) * 0.5 + 0.5)[..., :3]      # (H, W, C, 3)
    cells = np.round(cells * 255).astype(np.uint8).transpose(2, 0, 1, 3)                     # (C, H, W, 3)
    cells = cells.repeat(f, axis=1).repeat(f, axis=2)
    hh, ww = H * f, W * f
    out = np.full((rows * hh + (rows - 1) * gap, cols * ww + (cols - 1) * gap, 3), 255, np.uint8)
    for c in range(C):
        r, k = divmod(c, cols)
        out[r * (hh + gap):r * (hh + gap) + hh, k * (ww + gap):k * (ww + gap) + ww] = cells[c]
    return out


def _side_by_side(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    h = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if im.shape[0] < h:
            im = np.concatenate([im, np.full((h - im.shape[0], im.shape[1], 3), 255, np.uint8)])
        parts.append(im)
        if i < len(images) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


# --------------------------------------------------------------------------- #
# Original vs reconstruction vs error, with the latent frame behind each frame
# --------------------------------------------------------------------------- #


class VAEExplorer:
    """Pick a clip and scrub its frames: original, reconstruction, error, and the latent frame.

    ``clips[name]`` is a uint8 video ``(t, h, w, 3)``; ``autoencode`` is either a
    callable ``video -> (latent (T, H, W, C), reconstruction (t, h, w, 3))`` (called
    once per clip, cached) or a mapping ``name -> (latent, reconstruction)``.
    Reconstructions may be uint8 or float in [-1, 1]. ``temporal_factor`` says which
    latent frame holds each pixel frame; ``latent_stats`` (``{"shift": [...],
    "scale": [...]}``, as the VAE ships them) normalises the channel images.

    Shows, for the chosen frame: original | reconstruction | error x gain, the
    per-frame PSNR of the clip (the chosen frame marked, dotted lines between latent
    frames), and all channels of the latent frame that holds this pixel frame.
    """

    def __init__(self, clips: Mapping[str, np.ndarray],
                 autoencode: AutoencodeFn | Mapping[str, tuple[np.ndarray, np.ndarray]],
                 *, temporal_factor: int = 4, latent_stats: Mapping[str, Sequence[float]] | None = None,
                 gain: float = 4.0, limit: float | None = 3.0, columns: int = 8) -> None:
        import ipywidgets as w

        if not clips:
            raise ValueError("vae_explorer: clips is empty; pass {name: uint8 video (t, h, w, 3)}")
        self.clips = {str(k): _as_video(v, f"clips[{k!r}]") for k, v in clips.items()}
        if isinstance(autoencode, Mapping):
            missing = set(self.clips) - {str(k) for k in autoencode}
            if missing:
                raise ValueError(f"vae_explorer: autoencode has no result for clips {sorted(missing)}")
            self._fn = None
            self.cache = {str(k): v for k, v in autoencode.items()}
        elif callable(autoencode):
            self._fn, self.cache = autoencode, {}
        else:
            raise ValueError("vae_explorer: autoencode must be callable(video) -> (latent, reconstruction) "
                             "or a mapping name -> (latent, reconstruction)")
        self.tf = _positive_int(temporal_factor, "temporal_factor")
        for name, v in self.clips.items():
            if (v.shape[0] - 1) % self.tf:
                raise ValueError(f"clips[{name!r}] has {v.shape[0]} frames; a causal VAE with temporal factor "
                                 f"{self.tf} takes 1 + {self.tf}k frames")
        stats = dict(latent_stats or {})
        self.shift, self.scale = stats.get("shift"), stats.get("scale")
        if float(gain) not in GAINS:
            raise ValueError(f"gain={gain!r}: valid: {', '.join(f'{g:g}' for g in GAINS)}")
        self.limit, self.columns = limit, columns
        names = list(self.clips)
        self.clip = w.Dropdown(options=names, value=names[0], description="clip")
        self.frame = w.IntSlider(value=0, min=0, max=self.clips[names[0]].shape[0] - 1, description="frame",
                                 continuous_update=False)
        self.gain = w.SelectionSlider(options=list(GAINS), value=float(gain), description="error x",
                                      continuous_update=False)
        self.image = w.Image(format="png")
        self.plot = w.Image(format="png")
        self.latent_image = w.Image(format="png")
        self.text = w.HTML()
        self.latent_text = w.HTML()
        self.widget = w.VBox([w.HBox([self.clip, self.frame, self.gain]), self.text, w.HBox([self.image, self.plot]),
                              self.latent_text, self.latent_image])
        self.result: dict[str, Any] = {}
        self._busy = False
        self.clip.observe(lambda change: self._on_clip(), names="value")
        for wid in (self.frame, self.gain):
            wid.observe(lambda change: self._on_change(), names="value")

    def results(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(latent (T, H, W, C) float, reconstruction (t, h, w, 3) uint8)`` of clip ``name`` (cached)."""
        if name not in self.clips:
            raise ValueError(f"clip={name!r}: valid: {', '.join(self.clips)}")
        if name not in self.cache:
            self.cache[name] = self._fn(self.clips[name])
        out = self.cache[name]
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ValueError(f"autoencode for clip {name!r} must give (latent, reconstruction), "
                             f"got {type(out).__name__}")
        z, rec = np.asarray(out[0], np.float32), _as_video(out[1], f"reconstruction of {name!r}")
        video = self.clips[name]
        if rec.shape != video.shape:
            raise ValueError(f"reconstruction of {name!r} has shape {rec.shape}; the clip has {video.shape}")
        T = 1 + (video.shape[0] - 1) // self.tf
        if z.ndim != 4 or z.shape[0] != T:
            raise ValueError(f"latent of {name!r} has shape {z.shape}; expected (T, H, W, C) with T = {T} "
                             f"for {video.shape[0]} frames and temporal factor {self.tf}")
        self.cache[name] = (z, rec)
        return z, rec

    def render(self, clip: str | None = None, frame: int | None = None, gain: float | None = None) -> dict[str, Any]:
        """Set any control and redraw. Returns ``clip``, ``frame``, ``latent_frame``, ``frames``
        (the pixel frames that latent frame holds), ``psnr`` (this frame, dB), ``clip_psnr`` (mean
        over frames), ``psnr_per_frame``, ``images`` (uint8 original | reconstruction | error),
        ``latent_grid`` (uint8) and the PNGs ``image_png``, ``plot_png``, ``latent_png``."""
        if clip is not None and clip not in self.clips:
            raise ValueError(f"clip={clip!r}: valid: {', '.join(self.clips)}")
        if gain is not None and float(gain) not in GAINS:
            raise ValueError(f"gain={gain!r}: valid: {', '.join(f'{g:g}' for g in GAINS)}")
        self._busy = True
        try:
            if clip is not None:
                self.clip.value = clip
            t = self.clips[self.clip.value].shape[0]
            self.frame.max = t - 1
            if frame is not None:
                if not (isinstance(frame, (int, np.integer)) and 0 <= frame < t):
                    raise ValueError(f"frame={frame!r}: must be an integer in 0..{t - 1}")
                self.frame.value = int(frame)
            if gain is not None:
                self.gain.value = float(gain)
        finally:
            self._busy = False
        return self._draw()

    update = render

    def _on_clip(self) -> None:
        if not self._busy:
            self.render()

    def _on_change(self) -> None:
        if not self._busy:
            self._draw()

    def _draw(self) -> dict[str, Any]:
        import matplotlib.pyplot as plt

        name, i, gain = self.clip.value, int(self.frame.value), float(self.gain.value)
        video = self.clips[name]
        z, rec = self.results(name)
        k = latent_frame_of(i, self.tf)
        groups = causal_frame_groups(video.shape[0], self.tf)
        per_frame = frame_psnr(video, rec)
        f = max(1, math.ceil(192 / max(video.shape[1:3])))
        big = [im.repeat(f, 0).repeat(f, 1) for im in (video[i], rec[i], error_map(video[i], rec[i], gain=gain))]
        images = _side_by_side([np.pad(im, ((1, 1), (1, 1), (0, 0)), constant_values=180) for im in big])  # grey frame
        self.image.value = _image_png(images)
        fig, ax = plt.subplots(figsize=(3.6, 2.6))
        ax.plot(np.arange(len(per_frame)), per_frame, "o-", ms=3, color="C0")
        ax.plot([i], [per_frame[i]], "o", ms=9, mfc="none", mec="C3", mew=2)
        for g in groups[1:]:
            ax.axvline(g[0] - 0.5, color="grey", ls=":", lw=0.8)
        ax.set_xlabel("frame (dotted: latent-frame boundaries)", fontsize=8)
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{name}: mean {per_frame.mean():.1f} dB", fontsize=9)
        fig.tight_layout()
        self.plot.value = _png(fig)
        grid = latent_channel_grid(z[k], shift=self.shift, scale=self.scale, limit=self.limit, columns=self.columns)
        self.latent_image.value = _image_png(grid)
        self.text.value = (f"<b>{html.escape(name)}</b>, frame {i}: PSNR {per_frame[i]:.1f} dB "
                           f"(clip mean {per_frame.mean():.1f} dB). Left to right: original, reconstruction, "
                           f"|error| x {gain:g} (white = none).")
        span = f"frame {groups[k][0]}" if len(groups[k]) == 1 else f"frames {groups[k][0]}-{groups[k][-1]}"
        norm = "(z - shift) / scale" if self.shift is not None or self.scale is not None else "z"
        lim = "its largest value" if self.limit is None else f"&plusmn;{self.limit:g}"
        self.latent_text.value = (f"Latent frame <b>{k}</b> of {z.shape[0]} holds {span}: {z.shape[-1]} channels of "
                                  f"{z.shape[1]}x{z.shape[2]}, showing {norm} (blue &lt; 0 &lt; red, full colour at "
                                  f"{lim}).")
        self.result = {"clip": name, "frame": i, "latent_frame": k, "frames": groups[k], "psnr": float(per_frame[i]),
                       "clip_psnr": float(per_frame.mean()), "psnr_per_frame": per_frame, "images": images,
                       "latent_grid": grid, "image_png": bytes(self.image.value), "plot_png": bytes(self.plot.value),
                       "latent_png": bytes(self.latent_image.value)}
        return self.result

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.result:
            self.render()
        display(self.widget)


def vae_explorer(clips: Mapping[str, np.ndarray],
                 autoencode: AutoencodeFn | Mapping[str, tuple[np.ndarray, np.ndarray]],
                 **kwargs: Any) -> VAEExplorer:
    """An app: pick a clip, scrub frames of original vs reconstruction vs error, see the latent channels.

    ``autoencode(video uint8 (t, h, w, 3)) -> (latent (T, H, W, C), reconstruction)`` or a
    mapping ``name -> (latent, reconstruction)``. Options: ``temporal_factor``,
    ``latent_stats``, ``gain`` (error amplification, one of 1, 2, 4, 8, 16), ``limit``
    and ``columns`` (channel images). ``.render(clip, frame, gain)`` drives it from code.
    """
    return VAEExplorer(clips, autoencode, **kwargs)


# --------------------------------------------------------------------------- #
# Temporal chunk size: memory and equality
# --------------------------------------------------------------------------- #


class ChunkExplorer:
    """Choose how many latent frames a chunked encode/decode processes per call; see memory and equality.

    ``encode(n) -> latent`` and ``decode(latent, n) -> video`` run the clip with chunks of
    ``n`` latent frames; ``n = None`` means the whole clip in one call (the reference).
    ``memory(n) -> bytes`` (or ``{part: bytes}``) is optional: what one call of that size
    needs (e.g. XLA's compiled memory analysis). Each option is computed once and cached.
    Shows a table of every option computed so far (memory, largest difference from the
    whole-clip result) and a bar chart of memory.
    """

    def __init__(self, encode: EncodeFn, decode: DecodeFn, *, chunks: Sequence[int] = (1, 2, 4),
                 memory: MemoryFn | None = None,
                 atol: float = 1e-4) -> None:
        import ipywidgets as w

        if not callable(encode) or not callable(decode):
            raise ValueError("chunk_explorer: encode(n) -> latent and decode(latent, n) -> video must be callables")
        if memory is not None and not callable(memory):
            raise ValueError("chunk_explorer: memory must be callable(n) -> bytes or {part: bytes}")
        chunks = [_positive_int(c, "chunks") for c in chunks]
        if not chunks or len(set(chunks)) != len(chunks):
            raise ValueError(f"chunks={chunks}: need at least one chunk size, no repeats")
        if not atol > 0:
            raise ValueError(f"atol={atol!r}: must be > 0")
        self.encode_fn, self.decode_fn, self.memory_fn, self.atol = encode, decode, memory, float(atol)
        self.options: list[int | None] = [*sorted(chunks), None]
        self.rows: dict[int | None, dict[str, Any]] = {}
        self._reference: tuple[np.ndarray, np.ndarray] | None = None
        # the widget holds 0 for "whole clip" (a selection widget's None means "nothing selected")
        self.chunk = w.ToggleButtons(options=[(self._label(n), n or 0) for n in self.options], value=self.options[0],
                                     description="chunk")
        self.table = w.HTML()
        self.plot = w.Image(format="png")
        self.text = w.HTML()
        self.widget = w.VBox([self.chunk, self.text, w.HBox([self.table, self.plot])])
        self.result: dict[str, Any] = {}
        self._busy = False
        self.chunk.observe(lambda change: self._on_change(), names="value")

    @staticmethod
    def _label(n: int | None) -> str:
        return "whole clip" if n is None else f"{n} latent frame{'s' if n > 1 else ''}"

    def _memory(self, n: int | None) -> dict[str, float]:
        if self.memory_fn is None:
            return {}
        m = self.memory_fn(n)
        parts = {str(k): float(v) for k, v in m.items()} if isinstance(m, Mapping) else {"memory": float(m)}
        if any(not (math.isfinite(v) and v >= 0) for v in parts.values()):
            raise ValueError(f"memory({n}) returned {m!r}; expected bytes >= 0")
        return parts

    def _run(self, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        z = np.asarray(self.encode_fn(n), np.float32)
        return z, np.asarray(self.decode_fn(z, n), np.float32)

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """``(latent, video)`` of the whole clip in one call (computed once)."""
        if self._reference is None:
            self._reference = self._run(None)
        return self._reference

    def row(self, n: int | None) -> dict[str, Any]:
        """Compute (once) option ``n``: ``chunk``, ``memory`` ({part: bytes}), ``latent_diff`` and
        ``video_diff`` (max |chunked - whole clip|), ``equal`` (both within ``atol``)."""
        if n not in self.options:
            raise ValueError(f"chunk={n!r}: valid: {', '.join(str(o) for o in self.options)}")
        if n not in self.rows:
            z_ref, x_ref = self.reference()
            z, x = self._run(n) if n is not None else (z_ref, x_ref)
            if z.shape != z_ref.shape or x.shape != x_ref.shape:
                raise ValueError(f"chunk {n}: latent {z.shape} / video {x.shape} differ in shape from the whole clip's "
                                 f"{z_ref.shape} / {x_ref.shape}")
            dz, dx = float(np.abs(z - z_ref).max()), float(np.abs(x - x_ref).max())
            self.rows[n] = {"chunk": n, "memory": self._memory(n), "latent_diff": dz, "video_diff": dx,
                            "equal": dz <= self.atol and dx <= self.atol}
        return self.rows[n]

    def render(self, chunk: int | None | str = "current") -> dict[str, Any]:
        """Select a chunk size (an int from ``chunks``, or None for the whole clip), compute it if
        needed and redraw. Returns the row (see :meth:`row`) plus ``table`` (HTML) and ``plot_png``."""
        if chunk != "current":
            if chunk not in self.options:
                raise ValueError(f"chunk={chunk!r}: valid: {', '.join(str(o) for o in self.options)}")
            self._busy = True
            try:
                self.chunk.value = chunk or 0
            finally:
                self._busy = False
        return self._draw()

    update = render

    def _on_change(self) -> None:
        if not self._busy:
            self._draw()

    def _draw(self) -> dict[str, Any]:
        import matplotlib.pyplot as plt

        n = self.chunk.value or None
        row = self.row(n)
        done = [o for o in self.options if o in self.rows]
        parts = list(dict.fromkeys(p for o in done for p in self.rows[o]["memory"]))      # in the order given
        head = "".join(f"<th>{html.escape(p)} (MiB)</th>" for p in parts)
        lines = []
        for o in done:
            r = self.rows[o]
            mem = "".join(f"<td>{r['memory'].get(p, float('nan')) / 2**20:.2f}</td>" for p in parts)
            style = " style='font-weight:bold'" if o == n else ""
            lines.append(f"<tr{style}><td>{self._label(o)}</td>{mem}<td>{r['latent_diff']:.1e}</td>"
                         f"<td>{r['video_diff']:.1e}</td><td>{'yes' if r['equal'] else 'NO'}</td></tr>")
        self.table.value = (f"<table><tr><th>chunk</th>{head}<th>max |&Delta; latent|</th><th>max |&Delta; video|</th>"
                            f"<th>equal (atol {self.atol:g})</th></tr>{''.join(lines)}</table>")
        if parts:
            fig, ax = plt.subplots(figsize=(4.2, 2.6))
            xs = np.arange(len(done))
            width = 0.8 / len(parts)
            for j, p in enumerate(parts):
                ax.bar(xs + j * width, [self.rows[o]["memory"].get(p, 0.0) / 2**20 for o in done], width, label=p)
            ax.set_xticks(xs + 0.4 - width / 2, ["whole" if o is None else str(o) for o in done])
            ax.set_xlabel("latent frames per call")
            ax.set_ylabel("MiB per call")
            ax.legend(fontsize="small")
            fig.tight_layout()
            self.plot.value = _png(fig)
        else:
            self.plot.value = b""
        total = sum(row["memory"].values())
        mem = f"{total / 2**20:.2f} MiB per call; " if row["memory"] else ""
        verdict = "equal to" if row["equal"] else "DIFFERENT from"
        self.text.value = (f"<b>{self._label(n)}</b>: {mem}latent and video {verdict} the whole-clip result "
                           f"(max differences {row['latent_diff']:.1e}, {row['video_diff']:.1e}).")
        self.result = {**row, "table": self.table.value, "plot_png": bytes(self.plot.value)}
        return self.result

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.result:
            self.render()
        display(self.widget)


def chunk_explorer(encode: EncodeFn, decode: DecodeFn, **kwargs: Any) -> ChunkExplorer:
    """An app: a chunk-size toggle for chunked (streamed) encode/decode, with memory and equality.

    ``encode(n) -> latent``, ``decode(latent, n) -> video`` (``n`` latent frames per call;
    ``None`` = the whole clip at once). Options: ``chunks`` (sizes offered), ``memory``
    (``n -> bytes`` or ``{part: bytes}``), ``atol``. ``.render(n)`` drives it from code.
    """
    return ChunkExplorer(encode, decode, **kwargs)


__all__ = ["GAINS", "ChunkExplorer", "VAEExplorer", "chunk_explorer", "error_map", "frame_psnr",
           "latent_channel_grid", "latent_frame_of", "vae_explorer"]
