"""The quickstart app (notebook 01): type a prompt, press Generate, watch the clip appear.

:func:`quickstart_app` builds an ipywidgets app around a loaded text-to-video pipeline:

* a prompt box and a **Generate** button;
* sliders for steps, guidance (and the range of noise levels where it applies), seed,
  frames, timestep shift and sampling stochasticity ``eta``, and a sampler dropdown;
* the clip, shown with mediapy;
* a **denoising** slider that scrubs through the sampler's steps: for each step, the
  noisy latent ``x_t`` the sampler held and the clean clip the model predicted from it
  (both decoded to pixels by the VAE);
* a **seed grid**: the same prompt and settings with several seeds, side by side.

Like the rest of :mod:`sora_jax.viz`, this module never imports the model. The pipeline is
passed in and used duck-typed: ``pipe.generate(prompt, *, num_frames, steps, guidance,
sampler, seed, shift, callback[, guidance_interval, eta])``, ``pipe.decode(latents)`` and ``pipe.trained_size``
(``sora_jax.pipeline.Pipeline`` has all three). ``pipe.config.vae.temporal_factor``,
``pipe.config.diffusion.shift`` and ``pipe.default_eta`` are read when present (valid frame
counts, the default shift and stochasticity). So the tests can drive the app with a fake pipeline.

Axes: ``T, H, W`` frames, rows, columns of a clip (uint8 ``(T, H, W, 3)``); ``t, h, w, c``
the latent grid the sampler works on; ``N`` sampler steps.

The app keeps its state in attributes and every widget action has a method that does the
same from code (``generate``, ``scrub``, ``seed_grid``), so it also runs headless (tests, CI).
"""

from __future__ import annotations

import html
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SAMPLERS = ("euler", "heun", "ddim", "dpmpp_2m")        # sora_jax.sampling.SAMPLERS; pass your own list
STOCHASTIC_SAMPLERS = ("euler", "ddim")                  # sora_jax.sampling.STOCHASTIC_SAMPLERS: take eta > 0
DEFAULTS = {"steps": 25, "guidance": 4.0, "sampler": "euler"}   # sora_jax.pipeline.DEFAULTS; pass your own
PROMPT = "a red ball moves to the right"


def _get(obj: Any, path: str, default: Any) -> Any:
    """``obj.a.b.c`` for ``path="a.b.c"``, or ``default`` when any link is missing."""
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return default
    return obj


def _int_in(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name}={value!r}: must be an integer in {lo}..{hi}")
    return int(value)


def _error(text: str) -> str:
    return f"<span style='color:#b00'>{html.escape(text)}</span>"


class QuickstartApp:
    """Prompt in, clip out, with every knob of generation on a widget (see :func:`quickstart_app`).

    Attributes after :meth:`generate`: ``clip`` (uint8 ``(T, H, W, 3)``), ``settings`` (the
    keyword arguments ``pipe.generate`` got), ``seconds``, ``trajectory`` (``x``,
    ``denoised``: lists of ``N`` latents ``(t, h, w, c)``; ``t``: ``N`` noise levels, as the
    sampler callback handed them over), ``warnings`` (messages the pipeline warned).
    After :meth:`seed_grid`: ``grid`` (uint8 ``(n, T, H, W, 3)``) and ``grid_seeds``.
    ``widget`` is the whole app (also displayed when the app is the last value of a cell).
    """

    def __init__(self, pipe: Any, *, prompt: str = PROMPT, samplers: Sequence[str] = SAMPLERS,
                 defaults: Mapping[str, Any] | None = None, seed: int = 0, max_seed: int = 9999,
                 max_steps: int = 100, max_guidance: float = 12.0, frames: Sequence[int] | None = None,
                 grid_seeds: int = 4, max_grid_seeds: int = 8, fps: float = 10, max_frames: int = 6) -> None:
        import ipywidgets as w

        for name in ("generate", "decode"):
            if not callable(getattr(pipe, name, None)):
                raise ValueError(f"quickstart_app: pipe has no {name}() method; pass a loaded pipeline "
                                 "(sora_jax.pipeline.load_pipeline(...))")
        size = getattr(pipe, "trained_size", None)
        if size is None or len(tuple(size)) != 3:
            raise ValueError(f"quickstart_app: pipe.trained_size must be (frames, height, width), got {size!r}")
        samplers = list(samplers)
        if not samplers:
            raise ValueError("quickstart_app: samplers is empty; pass e.g. sora_jax.sampling.SAMPLERS")
        defaults = {**DEFAULTS, **(defaults or {})}
        if defaults["sampler"] not in samplers:
            raise ValueError(f"defaults['sampler']={defaults['sampler']!r} is not one of samplers {samplers}")
        self.pipe = pipe
        self.fps = fps
        self.max_frames = _int_in(max_frames, "max_frames", 1, 10_000)
        self.trained_size = tuple(int(v) for v in size)
        T = self.trained_size[0]
        if frames is None:
            tf = int(_get(pipe, "config.vae.temporal_factor", 4))
            frames = [1 + tf * k for k in range(1, max(2, 2 * (T - 1) // tf) + 1)]
        frames = sorted({int(f) for f in frames} | {T})
        if frames[0] < 1:
            raise ValueError(f"frames={frames}: frame counts must be >= 1")
        self.default_shift = float(_get(pipe, "config.diffusion.shift", 1.0))
        self.default_eta = float(_get(pipe, "default_eta", 0.0))

        self.clip: np.ndarray | None = None
        self.settings: dict[str, Any] = {}
        self.seconds = 0.0
        self.trajectory: dict[str, list] = {"x": [], "denoised": [], "t": []}
        self.warnings: list[str] = []
        self.grid: np.ndarray | None = None
        self.grid_seeds: list[int] = []
        self._decoded: dict[tuple[str, int], np.ndarray] = {}
        self._busy = False

        wide = w.Layout(width="32em")
        self.prompt = w.Text(value=prompt, description="prompt", layout=w.Layout(width="40em"))
        self.button = w.Button(description="Generate", button_style="primary", icon="play")
        self.steps = w.IntSlider(value=int(defaults["steps"]), min=1, max=max_steps, description="steps",
                                 continuous_update=False)
        self.guidance = w.FloatSlider(value=float(defaults["guidance"]), min=0.0, max=max_guidance, step=0.5,
                                      description="guidance", continuous_update=False)
        self.seed = w.IntSlider(value=int(seed), min=0, max=max_seed, description="seed", continuous_update=False)
        self.frames = w.SelectionSlider(options=frames, value=T, description="frames", continuous_update=False)
        self.shift = w.FloatSlider(value=self.default_shift, min=0.25, max=8.0, step=0.25, description="shift",
                                   continuous_update=False)
        self.sampler = w.Dropdown(options=samplers, value=defaults["sampler"], description="sampler")
        self.guidance_interval = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.05,
                                                    description="guide at t", continuous_update=False)
        self.eta = w.FloatSlider(value=self.default_eta, min=0.0, max=1.0, step=0.05, description="eta",
                                 continuous_update=False)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="20em"))
        self.status = w.HTML()
        self.video_html = w.HTML()
        self.step = w.IntSlider(value=0, min=0, max=0, description="step", continuous_update=False,
                                disabled=True, layout=wide)
        self.step_text = w.HTML()
        self.step_image = w.Image(format="png")
        self.grid_n = w.IntSlider(value=int(grid_seeds), min=1, max=max_grid_seeds, description="seeds",
                                  continuous_update=False)
        self.grid_button = w.Button(description="Seed grid", icon="th")
        self.grid_html = w.HTML()

        knobs = w.HBox([w.VBox([self.steps, self.guidance, self.guidance_interval, self.seed]),
                        w.VBox([self.frames, self.shift, self.eta, self.sampler])])
        self.widget = w.VBox([
            w.HBox([self.prompt, self.button]), knobs, w.HBox([self.progress, self.status]), self.video_html,
            w.HTML("<b>Denoising</b>: each step's noisy latent x_t (top) and the clean clip the model "
                   "predicts from it (bottom), decoded by the VAE"),
            self.step, self.step_text, self.step_image,
            w.HTML("<b>Seeds</b>: the same prompt and settings, one clip per seed (seed, seed + 1, ...)"),
            w.HBox([self.grid_n, self.grid_button]), self.grid_html,
        ])
        self.button.on_click(lambda _: self._guard(self.generate))
        self.grid_button.on_click(lambda _: self._guard(self.seed_grid))
        self.step.observe(lambda change: self._on_step(), names="value")

    # -- driving the app ----------------------------------------------------------
    def generate(self, prompt: str | None = None, *, steps: int | None = None, guidance: float | None = None,
                 seed: int | None = None, frames: int | None = None, shift: float | None = None,
                 sampler: str | None = None,
                 guidance_interval: tuple[float, float] | None = None, eta: float | None = None) -> dict[str, Any]:
        """Set any of the controls, generate a clip (what the Generate button does) and show it.

        ``guidance_interval``: the noise levels ``(lo, hi)`` where guidance applies (1 = pure
        noise, 0 = clean); the pipeline is only asked for it when it is not ``(0, 1)``.
        ``eta``: sampling stochasticity (0 = deterministic, 1 = ancestral; ``euler``/``ddim``
        only), passed only when it is not the model's default (``pipe.default_eta``).

        Returns :meth:`state`. A bad value raises ``ValueError`` (from a widget click the
        message is shown in the status line instead).
        """
        self._set(prompt=prompt, steps=steps, guidance=guidance, seed=seed, frames=frames, shift=shift,
                  sampler=sampler, guidance_interval=guidance_interval, eta=eta)
        settings = self._settings()
        traj: dict[str, list] = {"x": [], "denoised": [], "t": []}
        self.progress.max, self.progress.value = settings["steps"], 0
        self.status.value = "<i>generating...</i>"

        def callback(d: dict) -> None:
            traj["x"].append(np.asarray(d["x"])[0])
            traj["denoised"].append(np.asarray(d["denoised"])[0])
            traj["t"].append(float(np.asarray(d["t"])))
            self.progress.value = int(d["i"]) + 1
            self.status.value = f"<i>step {int(d['i']) + 1} of {settings['steps']}</i>"

        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clip = np.asarray(self.pipe.generate(self.prompt.value, callback=callback, **settings))
        self.seconds = time.perf_counter() - start
        if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
            raise ValueError(f"pipe.generate returned {clip.dtype} {clip.shape}; expected a uint8 clip (T, H, W, 3)")
        self.clip, self.settings, self.trajectory = clip, settings, traj
        self.warnings = [str(c.message) for c in caught]
        self._decoded = {}
        self.progress.value = self.progress.max
        from sora_jax.viz.video import show_video

        self.video_html.value = show_video(clip, fps=self.fps, return_html=True)
        T, H, W = clip.shape[:3]
        shown = ", ".join(f"{k} {v}" for k, v in settings.items() if k not in ("num_frames",))
        implied = []                                    # settings the pipeline fills in itself
        if "shift" not in settings:
            implied.append(f"shift {self.default_shift:g} (the model default)")
        if "eta" not in settings and self.default_eta and settings["sampler"] in STOCHASTIC_SAMPLERS:
            implied.append(f"eta {self.default_eta:g} (the model default)")
        text = f"{T} frames of {H}x{W} in {self.seconds:.1f} s ({', '.join([shown, *implied])})"
        if (T, H, W) != self.trained_size:
            text += " -- the model was trained on {} frames of {}x{}, so expect worse clips".format(*self.trained_size)
        self.status.value = html.escape(text) + "".join(f"<br>{_error(m)}" for m in self.warnings)
        n = len(traj["t"])
        self._busy = True
        try:
            self.step.disabled = n == 0
            self.step.max = max(0, n - 1)
            self.step.value = self.step.max
        finally:
            self._busy = False
        if n:
            self.scrub(self.step.max)
        else:
            self.step_text.value = "the pipeline reported no steps (no callback calls)"
            self.step_image.value = b""
        return self.state()

    update = generate

    def scrub(self, step: int) -> dict[str, Any]:
        """Show step ``step`` (``0 .. N-1``) of the last generation: the decoded noisy latent and
        the decoded prediction of the clean clip. Returns ``step``, ``t``, ``x_video``,
        ``denoised_video`` (uint8 clips) and ``image_png``."""
        from sora_jax.viz.model_apps import _image_png, _pick_frames
        from sora_jax.viz.video import frame_grid

        n = len(self.trajectory["t"])
        if n == 0:
            raise ValueError("scrub: nothing generated yet; call generate() (or press Generate) first")
        step = _int_in(step, "step", 0, n - 1)
        if self.step.value != step:
            self._busy = True
            self.step.value = step
            self._busy = False
        x_video, d_video = self.decoded("x", step), self.decoded("denoised", step)
        frames = _pick_frames(d_video.shape[0], self.max_frames)
        f = max(1, 128 // max(d_video.shape[1:3]))          # frames at least 128 px
        top, bottom = (frame_grid(v[frames], gap=2, upscale=f) for v in (x_video, d_video))
        self.step_image.value = _image_png(np.concatenate([top, np.full((6, top.shape[1], 3), 255, np.uint8), bottom]))
        t = self.trajectory["t"][step]
        self.step_text.value = (f"step {step + 1} of {n}: noise level t = {t:.3f}; frames "
                                f"{', '.join(map(str, frames))}")
        return {"step": step, "t": t, "x_video": x_video, "denoised_video": d_video,
                "image_png": bytes(self.step_image.value)}

    def decoded(self, which: str, step: int) -> np.ndarray:
        """The VAE decode of ``trajectory[which][step]`` (``which``: ``"x"`` or ``"denoised"``), cached."""
        if which not in ("x", "denoised"):
            raise ValueError(f"which={which!r}: valid: 'x', 'denoised'")
        key = (which, int(step))
        if key not in self._decoded:
            video = np.asarray(self.pipe.decode(self.trajectory[which][step]))
            if video.ndim != 4 or video.dtype != np.uint8:
                raise ValueError(f"pipe.decode returned {video.dtype} {video.shape}; expected a uint8 clip (T, H, W, 3)")
            self._decoded[key] = video
        return self._decoded[key]

    def seed_grid(self, n: int | None = None, *, seeds: Sequence[int] | None = None) -> dict[str, Any]:
        """Generate the current prompt with ``n`` seeds (``seed, seed + 1, ...``; or the given
        ``seeds``) in one batch and show the clips side by side (what the Seed grid button does).
        Returns ``seeds``, ``grid`` (uint8 ``(n, T, H, W, 3)``), ``seconds`` and ``html``."""
        if seeds is None:
            if n is not None:
                self.grid_n.value = _int_in(n, "n", self.grid_n.min, self.grid_n.max)
            seeds = [int(self.seed.value) + k for k in range(int(self.grid_n.value))]
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seed_grid: seeds is empty")
        settings = self._settings()
        settings.pop("seed")
        self.status.value = f"<i>generating {len(seeds)} clips...</i>"
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grid = np.asarray(self.pipe.generate([self.prompt.value] * len(seeds), seed=seeds, **settings))
        seconds = time.perf_counter() - start
        if grid.ndim != 5 or grid.shape[0] != len(seeds) or grid.dtype != np.uint8:
            raise ValueError(f"pipe.generate returned {grid.dtype} {grid.shape} for {len(seeds)} prompts; "
                             "expected uint8 (n, T, H, W, 3)")
        from sora_jax.viz.video import show_videos

        self.grid, self.grid_seeds = grid, seeds
        self.grid_html.value = show_videos({f"seed {s}": v for s, v in zip(seeds, grid)}, fps=self.fps,
                                           columns=min(len(seeds), 8), return_html=True)
        self.status.value = html.escape(f"{len(seeds)} clips in {seconds:.1f} s")
        return {"seeds": seeds, "grid": grid, "seconds": seconds, "html": self.grid_html.value}

    def state(self) -> dict[str, Any]:
        """What is shown: ``clip``, ``settings``, ``seconds``, ``steps`` (callback calls seen),
        ``warnings``, ``video_html``, ``status`` (HTML)."""
        return {"clip": self.clip, "settings": dict(self.settings), "seconds": self.seconds,
                "steps": len(self.trajectory["t"]), "warnings": list(self.warnings),
                "video_html": self.video_html.value, "status": self.status.value}

    # -- internals ---------------------------------------------------------------------
    def _set(self, **values: Any) -> None:
        checks = {"steps": (self.steps.min, self.steps.max), "seed": (self.seed.min, self.seed.max)}
        for name, (lo, hi) in checks.items():
            if values[name] is not None:
                _int_in(values[name], name, lo, hi)
        if values["guidance"] is not None and not self.guidance.min <= float(values["guidance"]) <= self.guidance.max:
            raise ValueError(f"guidance={values['guidance']!r}: must be in {self.guidance.min:g}..{self.guidance.max:g}")
        if values["shift"] is not None and not self.shift.min <= float(values["shift"]) <= self.shift.max:
            raise ValueError(f"shift={values['shift']!r}: must be in {self.shift.min:g}..{self.shift.max:g}")
        gi = values.get("guidance_interval")
        if gi is not None:
            try:
                lo, hi = (float(v) for v in gi)
            except (TypeError, ValueError):
                lo = hi = float("nan")
            if not 0.0 <= lo < hi <= 1.0:
                raise ValueError(f"guidance_interval={gi!r}: need (lo, hi) with 0 <= lo < hi <= 1")
            values["guidance_interval"] = (lo, hi)
        if values.get("eta") is not None and not 0.0 <= float(values["eta"]) <= 1.0:
            raise ValueError(f"eta={values['eta']!r}: must be in 0..1 (0 = deterministic, 1 = ancestral)")
        if values["frames"] is not None and values["frames"] not in self.frames.options:
            raise ValueError(f"frames={values['frames']!r}: valid: {', '.join(map(str, self.frames.options))}")
        if values["sampler"] is not None and values["sampler"] not in self.sampler.options:
            raise ValueError(f"sampler={values['sampler']!r}: valid: {', '.join(self.sampler.options)}")
        if values["prompt"] is not None and not isinstance(values["prompt"], str):
            raise ValueError(f"prompt must be a str, got {type(values['prompt']).__name__}")
        for name, value in values.items():
            if value is not None:
                getattr(self, name).value = value

    def _settings(self) -> dict[str, Any]:
        """The keyword arguments for ``pipe.generate`` from the widgets. The shift is left out
        (the model's own rule) while the slider sits at the model's default."""
        out = {"num_frames": int(self.frames.value), "steps": int(self.steps.value),
               "guidance": float(self.guidance.value), "sampler": self.sampler.value, "seed": int(self.seed.value)}
        if float(self.shift.value) != self.default_shift:
            out["shift"] = float(self.shift.value)
        lo, hi = (float(v) for v in self.guidance_interval.value)
        if (lo, hi) != (0.0, 1.0):
            out["guidance_interval"] = (lo, hi)
        eta = float(self.eta.value)
        if eta != self.default_eta:
            if eta > 0 and out["sampler"] not in STOCHASTIC_SAMPLERS:
                raise ValueError(f"eta={eta:g} needs sampler {' or '.join(STOCHASTIC_SAMPLERS)} "
                                 f"(got {out['sampler']}); set eta to 0 or pick one of those")
            out["eta"] = eta
        return out

    def _guard(self, action: Any) -> None:
        """Run a button's action; a ValueError (bad size, bad prompt...) goes to the status line."""
        try:
            action()
        except ValueError as e:
            self.status.value = _error(str(e))

    def _on_step(self) -> None:
        if not self._busy and self.trajectory["t"]:
            self.scrub(int(self.step.value))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def quickstart_app(pipe: Any, **kwargs: Any) -> QuickstartApp:
    """An app to generate clips from a loaded pipeline with every knob on a widget.

    ``pipe``: a ``sora_jax.pipeline.Pipeline`` (anything with ``generate``, ``decode`` and
    ``trained_size``). Options (keyword): ``prompt`` (the initial text), ``samplers`` (pass
    ``sora_jax.sampling.SAMPLERS``), ``defaults`` (``steps``, ``guidance``, ``sampler``; pass
    ``sora_jax.pipeline.DEFAULTS``), ``seed``, ``max_seed``, ``max_steps``, ``max_guidance``,
    ``frames`` (the frame counts offered; default ``1 + f k`` up to about twice the trained
    length), ``grid_seeds``, ``max_grid_seeds``, ``fps``, ``max_frames`` (frames per filmstrip).

    Nothing is generated until Generate is pressed or ``.generate(...)`` is called;
    ``.scrub(step)`` and ``.seed_grid(n)`` drive the other two parts from code.
    """
    return QuickstartApp(pipe, **kwargs)
