"""ipywidgets apps for notebooks.

:func:`world_explorer` browses the synthetic world: pick a family, a seed, a
resolution and the ID/OOD split, and see the clip, its dense caption and short
prompt, a frame, and the trajectories. The app only *calls* a clip-making
function you pass in, so this module knows nothing of the world's physics.

Every app keeps its state in plain attributes and has a ``render(...)`` method
that does what moving the widgets does, so a notebook (or a test) can drive it
without a browser. Widgets and figures are plain values (HTML strings and PNG
bytes), never ``display()`` calls, so the app also works headless.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

RESOLUTIONS: dict[str, tuple[int, int]] = {
    "64x64": (64, 64),
    "36x64 (16:9)": (36, 64),
    "64x36 (9:16)": (64, 36),
    "128x128": (128, 128),
}


def _field(clip: Any, name: str) -> Any:
    """``clip.name`` or ``clip[name]`` (a Clip dataclass or a dict)."""
    if isinstance(clip, Mapping):
        return clip.get(name)
    return getattr(clip, name, None)


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class WorldExplorer:
    """Browse clips of the synthetic world with widgets (see :func:`world_explorer`).

    Attributes after each :meth:`render`: ``clip`` (what ``make_clip_fn``
    returned), ``frame`` (index shown), and the widgets ``family``, ``seed``,
    ``resolution``, ``split``, ``frame_slider``, ``video_html``, ``frame_image``,
    ``text``, ``plot``; ``widget`` is the whole app (also displayed when the
    explorer is the last expression of a cell).
    """

    def __init__(self, make_clip_fn: Callable[..., Any], families: Sequence[str], *, seed: int = 0,
                 max_seed: int = 999, resolutions: Mapping[str, tuple[int, int]] = RESOLUTIONS,
                 split: str = "id", fps: float = 10, track_fn: Callable[[Any], np.ndarray] | None = None,
                 text_fns: Mapping[str, Callable[[Any], str]] | None = None) -> None:
        import ipywidgets as w

        families = list(families)
        if not families:
            raise ValueError("world_explorer: families is empty; pass e.g. sora_jax.config.FAMILIES")
        if not callable(make_clip_fn):
            raise ValueError("world_explorer: make_clip_fn must be callable(family, seed, *, height, width, split)")
        if split not in ("id", "ood"):
            raise ValueError(f"split={split!r}: valid: 'id', 'ood'")
        if not resolutions:
            raise ValueError("world_explorer: resolutions is empty")
        self.make_clip_fn = make_clip_fn
        self.track_fn = track_fn
        self.text_fns = dict(text_fns or {})
        self.fps = fps
        self.resolutions = dict(resolutions)
        self.clip: Any = None
        self.frame = 0
        self._key: tuple | None = None
        self._tracked: np.ndarray | None = None

        self.family = w.Dropdown(options=families, value=families[0], description="family")
        self.seed = w.BoundedIntText(value=seed, min=0, max=max_seed, description="seed")
        self.seed_slider = w.IntSlider(value=seed, min=0, max=max_seed, description="", continuous_update=False)
        w.link((self.seed, "value"), (self.seed_slider, "value"))
        self.resolution = w.Dropdown(options=list(self.resolutions), value=next(iter(self.resolutions)),
                                     description="size (hxw)")
        self.split = w.ToggleButtons(options=["id", "ood"], value=split, description="split")
        self.frame_slider = w.IntSlider(value=0, min=0, max=0, description="frame", continuous_update=False)
        self.video_html = w.HTML()
        self.frame_image = w.Image(format="png")
        self.plot = w.Image(format="png")
        self.text = w.HTML()
        self.status = w.HTML()
        controls = w.VBox([self.family, w.HBox([self.seed, self.seed_slider]), self.resolution, self.split,
                           self.frame_slider, self.status])
        self.widget = w.VBox([controls, w.HBox([self.video_html, self.frame_image, self.plot]), self.text])
        self._busy = False
        for wid in (self.family, self.seed, self.resolution, self.split):
            wid.observe(lambda change: self._on_change(), names="value")
        self.frame_slider.observe(lambda change: self._on_frame(), names="value")

    # -- driving the app --------------------------------------------------------
    def render(self, family: str | None = None, seed: int | None = None, resolution: str | None = None,
               split: str | None = None, frame: int | None = None) -> dict[str, Any]:
        """Set any of the controls, make (or reuse) the clip and redraw; returns what is shown.

        The returned dict has ``clip``, ``frame``, ``video_html``, ``text`` (HTML)
        and ``plot_png`` / ``frame_png`` (PNG bytes).
        """
        if family is not None and family not in self.family.options:
            raise ValueError(f"family={family!r}: valid: {', '.join(self.family.options)}")
        if resolution is not None and resolution not in self.resolutions:
            raise ValueError(f"resolution={resolution!r}: valid: {', '.join(self.resolutions)}")
        if split is not None and split not in ("id", "ood"):
            raise ValueError(f"split={split!r}: valid: 'id', 'ood'")
        if seed is not None and not (isinstance(seed, (int, np.integer)) and self.seed.min <= seed <= self.seed.max):
            raise ValueError(f"seed={seed!r}: must be an integer in {self.seed.min}..{self.seed.max}")
        self._busy = True                     # set widgets without each one triggering a redraw
        try:
            if family is not None:
                self.family.value = family
            if seed is not None:
                self.seed.value = int(seed)
                self.seed_slider.value = int(seed)
            if resolution is not None:
                self.resolution.value = resolution
            if split is not None:
                self.split.value = split
        finally:
            self._busy = False
        self._make()
        if frame is not None:
            T = self.frame_slider.max + 1
            if not 0 <= frame < T:
                raise ValueError(f"frame={frame}: must be in 0..{T - 1}")
            self._busy = True
            self.frame_slider.value = int(frame)
            self._busy = False
        self._draw()
        return self.state()

    update = render

    def state(self) -> dict[str, Any]:
        return {"clip": self.clip, "frame": self.frame, "video_html": self.video_html.value, "text": self.text.value,
                "plot_png": bytes(self.plot.value), "frame_png": bytes(self.frame_image.value)}

    def _on_change(self) -> None:
        import html

        if not self._busy:
            try:
                self.render()
            except ValueError as e:           # e.g. a family that cannot fit in this aspect ratio
                self.status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"

    def _on_frame(self) -> None:
        if not self._busy and self.clip is not None:
            self._draw()

    # -- internals --------------------------------------------------------------
    def _make(self) -> None:
        import html

        from sora_jax.viz.video import _check_video, show_video

        h, w = self.resolutions[self.resolution.value]
        key = (self.family.value, int(self.seed.value), h, w, self.split.value)
        if key == self._key:
            return
        self.status.value = "<i>making clip...</i>"
        clip = self.make_clip_fn(self.family.value, int(self.seed.value), height=h, width=w, split=self.split.value)
        video = _check_video(_field(clip, "video"), "make_clip_fn(...).video")
        self.clip, self._key = clip, key
        self._tracked = None
        if self.track_fn is not None:
            self._tracked = np.asarray(self.track_fn(clip), float)
        self._busy = True
        self.frame_slider.max = video.shape[0] - 1
        self.frame_slider.value = min(self.frame_slider.value, video.shape[0] - 1)
        self._busy = False
        self.video_html.value = show_video(video, fps=self.fps, return_html=True)
        rows = [("dense caption", _field(clip, "caption")), ("short prompt", _field(clip, "prompt"))]
        rows += [(name, fn(clip)) for name, fn in self.text_fns.items()]
        self.text.value = "".join(f"<p><b>{html.escape(n)}</b>: {html.escape(str(v))}</p>" for n, v in rows
                                  if v is not None)
        self.status.value = f"{self.family.value} seed {self.seed.value}: {video.shape[0]} frames of {h}x{w}"

    def _draw(self) -> None:
        import matplotlib.pyplot as plt
        import mediapy

        from sora_jax.viz.plots import plot_trajectories
        from sora_jax.viz.video import upscale

        video = np.asarray(_field(self.clip, "video"))
        t = int(self.frame_slider.value)
        self.frame = t
        self.frame_image.value = mediapy.compress_image(upscale(video[t]), fmt="png")
        truth = _field(self.clip, "truth")
        if truth is None:
            self.plot.value = b""
            return
        h, w = video.shape[1:3]
        fig, ax = plt.subplots(figsize=(3.2, 3.2 * h / w + 0.4))
        plot_trajectories(truth.to_pixels(h, w), truth.colour, tracked=self._tracked, ax=ax, frame=video[t],
                          current=t, title=f"frame {t}")
        self.plot.value = _figure_png(fig)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.clip is None:
            self.render()
        display(self.widget)


def world_explorer(make_clip_fn: Callable[..., Any], families: Sequence[str], **kwargs: Any) -> WorldExplorer:
    """An ipywidgets app to browse the synthetic world.

    ``make_clip_fn(family, seed, *, height, width, split)`` must return a clip
    with ``video`` (uint8 ``(t, h, w, 3)``), ``caption``, ``prompt`` and
    ``truth`` (a ``Truth``, or None) -- a ``sora_jax.world.types.Clip`` or a dict.
    Controls: family dropdown, seed box + slider, resolution (64x64, 36x64
    (16:9), 64x36 (9:16), 128x128), ID/OOD toggle, frame slider. Shows the clip
    (mediapy), the caption and prompt (plus ``text_fns``: ``{name: fn(clip) ->
    str}``), the chosen frame and the trajectories over it (plus
    ``track_fn(clip) -> (t, k, 2)`` tracked pixel positions if given).

    Options (keyword): ``seed``, ``max_seed``, ``resolutions``, ``split``,
    ``fps``, ``track_fn``, ``text_fns``. The first clip is made on display or
    on the first ``.render(...)`` call; ``.render(family, seed, resolution,
    split, frame)`` drives it from code.
    """
    return WorldExplorer(make_clip_fn, families, **kwargs)
