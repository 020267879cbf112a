"""Pictures and ipywidgets apps for the model notebooks: patches, attention, noise, samplers.

Notebook 03 (spacetime patches and the DiT) and notebook 04 (diffusion and samplers)
use these. Like the rest of :mod:`sora_jax.viz`, nothing here imports the model: every
function draws plain arrays, and every app *calls* functions the notebook passes in
(``patches.grid_shape``, ``patches.position_ids``, ``dit.dit_flops``, a sampler, an
``alpha_sigma``...). That keeps the pictures honest (they show what the library
computes) and lets the tests drive the apps with tiny fakes.

Axes: ``t, h, w`` frames, rows, columns of a clip; ``T, H, W`` the patch grid;
``n = T * H * W`` tokens; ``N`` sampler steps; ``b`` samples; ``K`` data points.
Videos are uint8 ``(t, h, w, 3)`` at the edges; model-side pixels are float in [-1, 1]
(:func:`to_uint8` converts). Position ids are integer ``(n, 3)`` arrays of
``(t, h, w)`` grid coordinates in token order (time-major), as
``sora_jax.patches.position_ids`` returns them.

Images are built with numpy and returned as uint8 arrays (show them with
:func:`sora_jax.viz.show_image`); plots return matplotlib objects; apps keep their
state in attributes and have a ``render(...)`` method that does what moving the
widgets does, so they also run headless (tests, CI).
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import Bool, Float, Int, UInt8

Colour = tuple[int, int, int]
LINE: Colour = (230, 40, 40)         # patch boundaries
ON: Colour = (33, 80, 160)           # "may attend"
OFF: Colour = (245, 245, 245)        # "may not attend"
QUERY: Colour = (230, 40, 40)        # the chosen query token
SEPARATOR: Colour = (160, 160, 160)  # frame blocks in a mask image
CMAP = "tab10"


# --------------------------------------------------------------------------- #
# small helpers
# --------------------------------------------------------------------------- #


def to_uint8(x: Float[np.ndarray, "..."]) -> UInt8[np.ndarray, "..."]:
    """Model pixels in [-1, 1] -> uint8 0..255 (values outside [-1, 1] are clipped)."""
    x = np.asarray(x, np.float32)
    return np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _image_png(image: np.ndarray) -> bytes:
    import mediapy

    return mediapy.compress_image(image, fmt="png")


def _auto_factor(size: int, target: int = 256) -> int:
    return max(1, math.ceil(target / max(1, size)))


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r}: must be an integer >= 1")
    return int(value)


def _check_position_ids(position_ids: Any) -> np.ndarray:
    ids = np.asarray(position_ids)
    if ids.ndim != 2 or ids.shape[1] != 3 or ids.shape[0] < 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"position_ids: expected integer (n, 3) (t, h, w) coordinates, got {ids.dtype} {ids.shape}")
    return ids


def _pick_frames(t: int, k: int) -> list[int]:
    """Up to ``k`` frame indices spread evenly over ``0 .. t-1`` (first and last included)."""
    return sorted({int(i) for i in np.linspace(0, t - 1, min(t, k)).round()})


def _grid_of(ids: np.ndarray) -> tuple[int, int, int]:
    """The (T, H, W) grid spanned by position ids."""
    return tuple(int(v) + 1 for v in ids.max(axis=0))  # type: ignore[return-value]


# --------------------------------------------------------------------------- #
# Patches on pixels
# --------------------------------------------------------------------------- #


def causal_frame_groups(num_frames: int, temporal_factor: int, pt: int = 1) -> list[list[int]]:
    """Which pixel frames end up in each temporal layer of tokens, for a causal video VAE.

    A causal VAE with temporal factor ``f`` encodes ``1 + f k`` frames into ``1 + k``
    latent frames: frame 0 alone (so a single image is a valid clip), then every ``f``
    frames. A patch of ``pt`` latent frames merges ``pt`` of those groups.

    >>> causal_frame_groups(9, 4)
    [[0], [1, 2, 3, 4], [5, 6, 7, 8]]
    """
    t, f, pt = (_positive_int(v, n) for v, n in ((num_frames, "num_frames"), (temporal_factor, "temporal_factor"),
                                                  (pt, "pt")))
    if (t - 1) % f:
        valid = ", ".join(str(1 + f * k) for k in range(4))
        raise ValueError(f"num_frames={t}: a causal VAE with temporal factor {f} needs 1 + {f}k frames ({valid}, ...)")
    latent = [[0]] + [list(range(1 + f * k, 1 + f * (k + 1))) for k in range((t - 1) // f)]
    if len(latent) % pt:
        raise ValueError(f"{len(latent)} latent frames cannot be cut into temporal patches of pt={pt}")
    return [sum(latent[i:i + pt], []) for i in range(0, len(latent), pt)]


def patch_filmstrip(video: UInt8[np.ndarray, "t h w 3"], cell: Sequence[int], *,
                    groups: Sequence[Sequence[int]] | None = None, upscale: int = 3, gap: int = 3,
                    line: Colour = LINE, background: int = 255) -> UInt8[np.ndarray, "H W 3"]:
    """Frames with the token grid drawn over them, one row per temporal layer of tokens.

    ``cell = (ch, cw)``: pixels covered by one token (VAE spatial factor x patch size,
    e.g. 8 x 2 = 16). ``groups``: the frames of each temporal token layer (see
    :func:`causal_frame_groups`); default: every frame its own row. Frames are enlarged
    ``upscale`` times; the lines are one pixel wide on the enlarged image, on the first
    row/column of every cell and on the frame's last row/column (so each frame is
    outlined). Rows and the frames inside a row are ``gap`` pixels of ``background``
    apart. Returns a uint8 image.
    """
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8:
        raise ValueError(f"video: expected uint8 (t, h, w, 3), got {v.dtype} {v.shape}")
    t, h, w = v.shape[:3]
    ch, cw = (_positive_int(int(c), "cell") for c in cell)
    if h % ch or w % cw:
        raise ValueError(f"frame {h}x{w} cannot be cut into token cells of {ch}x{cw} pixels: "
                         "height and width must be multiples of the cell")
    f = _positive_int(upscale, "upscale")
    if gap < 0:
        raise ValueError(f"gap={gap}: must be >= 0")
    groups = [[i] for i in range(t)] if groups is None else [list(map(int, g)) for g in groups]
    if not groups or any(not g for g in groups) or any(not 0 <= i < t for g in groups for i in g):
        raise ValueError(f"groups={groups!r}: need non-empty lists of frame indices in 0..{t - 1}")
    big = v.repeat(f, axis=1).repeat(f, axis=2)
    hh, ww = h * f, w * f
    for r in [*range(0, hh, ch * f), hh - 1]:
        big[:, r] = line
    for c in [*range(0, ww, cw * f), ww - 1]:
        big[:, :, c] = line
    cols = max(len(g) for g in groups)
    out = np.full((len(groups) * hh + (len(groups) - 1) * gap, cols * ww + (cols - 1) * gap, 3), background, np.uint8)
    for r, g in enumerate(groups):
        for c, i in enumerate(g):
            out[r * (hh + gap):r * (hh + gap) + hh, c * (ww + gap):c * (ww + gap) + ww] = big[i]
    return out


def plot_token_positions(grids: Mapping[str, Int[np.ndarray, "n 3"]], *, frame: int = 0,
                         axes: Any = None) -> Any:
    """One board per grid: the tokens of latent frame ``frame``, each cell labelled with its
    token index and its ``(h, w)`` position id. Shows that a 16:9 and a 9:16 clip are the
    same kind of object, only the grid of ids differs. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    if not grids:
        raise ValueError("plot_token_positions: no grids given")
    boards = {name: _check_position_ids(ids) for name, ids in grids.items()}
    if axes is None:
        widths = [_grid_of(ids)[2] for ids in boards.values()]
        heights = [_grid_of(ids)[1] for ids in boards.values()]
        scale = 0.55
        _, axes = plt.subplots(1, len(boards), figsize=(max(3.0, scale * sum(widths) + 1.2 * len(boards)),
                                                        scale * max(heights) + 1.0),
                               gridspec_kw={"width_ratios": widths}, squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes)
    if len(axes) != len(boards):
        raise ValueError(f"plot_token_positions: {len(boards)} grids but {len(axes)} axes")
    for ax, (name, ids) in zip(axes, boards.items()):
        T, H, W = _grid_of(ids)
        if not 0 <= frame < T:
            raise ValueError(f"frame={frame}: grid {name!r} has latent frames 0..{T - 1}")
        ax.imshow(np.full((H, W, 3), 0.93), extent=(-0.5, W - 0.5, H - 0.5, -0.5))
        for index in np.flatnonzero(ids[:, 0] == frame):
            _, r, c = ids[index]
            ax.text(c, r, f"{index}\n({r},{c})", ha="center", va="center", fontsize=7)
        ax.set_xticks(np.arange(-0.5, W, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, H, 1), minor=True)
        ax.grid(which="minor", color="white", lw=2)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(f"{name}\ngrid {T}x{H}x{W} = {len(ids)} tokens", fontsize=9)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_heatmaps(maps: Mapping[str, Float[np.ndarray, "rows cols"]], *,
                  marks: Mapping[str, tuple[int, int]] | None = None, cmap: str = "viridis",
                  shared_scale: bool = True, colorbar: bool = True, xlabel: str | None = None,
                  ylabel: str | None = None) -> Any:
    """Several 2D arrays side by side (e.g. RoPE logit maps), optional ``marks[name] = (row, col)``
    drawn as a red cross. ``shared_scale``: one colour range for all. Returns the Figure."""
    import matplotlib.pyplot as plt

    if not maps:
        raise ValueError("plot_heatmaps: no maps given")
    arrays = {}
    for name, m in maps.items():
        a = np.asarray(m, float)
        if a.ndim != 2:
            raise ValueError(f"plot_heatmaps: map {name!r} must be 2D, got shape {a.shape}")
        arrays[name] = a
    marks = dict(marks or {})
    unknown = set(marks) - set(arrays)
    if unknown:
        raise ValueError(f"plot_heatmaps: marks for unknown maps {sorted(unknown)}; maps: {list(arrays)}")
    lo = min(float(np.nanmin(a)) for a in arrays.values()) if shared_scale else None
    hi = max(float(np.nanmax(a)) for a in arrays.values()) if shared_scale else None
    fig, axes = plt.subplots(1, len(arrays), figsize=(3.4 * len(arrays), 3.0), squeeze=False)
    for ax, (name, a) in zip(axes[0], arrays.items()):
        im = ax.imshow(a, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest", aspect="auto")
        if name in marks:
            r, c = marks[name]
            ax.plot(c, r, "x", color="red", ms=10, mew=2)
        ax.set_title(name, fontsize=9)
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if colorbar:
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- #
# Attention patterns
# --------------------------------------------------------------------------- #

ATTENTION_KINDS = ("full", "spatial", "temporal", "spatial then temporal")


def attention_masks(position_ids: Int[np.ndarray, "n 3"]) -> dict[str, Bool[np.ndarray, "n n"]]:
    """Which key each query token may attend to, ``mask[query, key]``, for a DiT's attention kinds.

    * ``full``: every token sees every token (``n^2`` pairs).
    * ``spatial``: the first step of factorised attention: tokens of the same latent frame
      (same ``t``) see each other; ``n H W`` pairs.
    * ``temporal``: the second step: tokens at the same location (same ``h, w``) across
      frames; ``n T`` pairs.
    * ``spatial then temporal``: where information can come from after one factorised
      block (two hops). It is every token again: factorisation restricts each step, not
      what one block can reach.
    """
    ids = _check_position_ids(position_ids)
    same_t = ids[:, None, 0] == ids[None, :, 0]
    same_hw = np.all(ids[:, None, 1:] == ids[None, :, 1:], axis=-1)
    two_hop = (same_hw.astype(np.int64) @ same_t.astype(np.int64)) > 0
    return {"full": np.ones_like(same_t), "spatial": same_t, "temporal": same_hw, "spatial then temporal": two_hop}


def mask_image(mask: Bool[np.ndarray, "n m"], *, block: int | None = None, upscale: int | None = None,
               highlight_row: int | None = None, on: Colour = ON, off: Colour = OFF,
               separator: Colour = SEPARATOR) -> UInt8[np.ndarray, "H W 3"]:
    """An attention mask as a picture: row = query token, column = key token, dark = may attend.

    ``block``: tokens per latent frame (``H * W``); thin lines are drawn between frames so
    time-major blocks are visible. ``highlight_row``: that query's row is drawn in red.
    ``upscale`` (None = automatic, >= 256 pixels) enlarges each entry to a square. The
    image is exactly ``(n * upscale, m * upscale, 3)``: separators overwrite pixels.
    """
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"mask: expected a 2D (queries, keys) array, got shape {m.shape}")
    m = m.astype(bool)
    n, k = m.shape
    f = _auto_factor(max(n, k)) if upscale is None else _positive_int(upscale, "upscale")
    img = np.where(m[..., None], np.array(on, np.uint8), np.array(off, np.uint8))
    if highlight_row is not None:
        if not 0 <= highlight_row < n:
            raise ValueError(f"highlight_row={highlight_row}: must be a query index in 0..{n - 1}")
        pale = np.array((250, 200, 200), np.uint8)
        img[highlight_row] = np.where(m[highlight_row, :, None], np.array(QUERY, np.uint8), pale)
    img = img.repeat(f, axis=0).repeat(f, axis=1)
    if block is not None:
        s = _positive_int(block, "block")
        if f > 1:
            for i in range(s, n, s):
                img[i * f, :] = separator
            for j in range(s, k, s):
                img[:, j * f] = separator
    return img


def token_boards(values: Int[np.ndarray, "T H W"], colours: Mapping[int, Colour], *, cell: int = 20,
                 gap: int = 8) -> UInt8[np.ndarray, "rows cols 3"]:
    """A ``(T, H, W)`` grid of small integer categories as T boards side by side (one per latent
    frame), each cell ``cell`` pixels with a one-pixel white grid. ``colours[v]`` paints value ``v``."""
    v = np.asarray(values)
    if v.ndim != 3:
        raise ValueError(f"token_boards: values must be (T, H, W), got shape {v.shape}")
    missing = set(np.unique(v).tolist()) - set(colours)
    if missing:
        raise ValueError(f"token_boards: no colour for values {sorted(missing)}")
    T, H, W = v.shape
    lut = np.zeros((max(colours) + 1, 3), np.uint8)
    for key, col in colours.items():
        lut[key] = col
    boards = lut[v].repeat(cell, axis=1).repeat(cell, axis=2)          # (T, H*cell, W*cell, 3)
    boards[:, ::cell] = 255
    boards[:, :, ::cell] = 255
    out = np.full((H * cell + 1, T * (W * cell + 1) + (T - 1) * gap, 3), 255, np.uint8)
    for t in range(T):
        x0 = t * (W * cell + 1 + gap)
        out[:H * cell, x0:x0 + W * cell] = boards[t]
    return out


class AttentionExplorer:
    """Pick a grid, a query token and an attention kind; see which keys that query reads.

    Shows the grid as T boards (red = the query, blue = keys it attends to) and the
    whole ``n x n`` mask with the query's row highlighted. ``render(T, H, W, query, kind)``
    drives it from code and returns the numbers and images shown.
    """

    def __init__(self, position_ids_fn: Callable[[tuple[int, int, int]], np.ndarray], *,
                 grid: Sequence[int] = (3, 3, 4), max_size: int = 8) -> None:
        import ipywidgets as w

        if not callable(position_ids_fn):
            raise ValueError("attention_explorer: position_ids_fn must be callable(grid) -> (n, 3) ids, "
                             "e.g. sora_jax.patches.position_ids")
        T, H, W = (_positive_int(int(g), "grid") for g in grid)
        if max(T, H, W) > max_size:
            raise ValueError(f"grid={tuple(grid)}: every size must be <= max_size={max_size}")
        self.position_ids_fn = position_ids_fn
        self.T = w.IntSlider(value=T, min=1, max=max_size, description="T (frames)", continuous_update=False)
        self.H = w.IntSlider(value=H, min=1, max=max_size, description="H (rows)", continuous_update=False)
        self.W = w.IntSlider(value=W, min=1, max=max_size, description="W (cols)", continuous_update=False)
        self.query = w.IntSlider(value=0, min=0, max=T * H * W - 1, description="query token", continuous_update=False)
        self.kind = w.ToggleButtons(options=list(ATTENTION_KINDS), value="full", description="attention")
        self.boards = w.Image(format="png")
        self.mask = w.Image(format="png")
        self.text = w.HTML()
        self.widget = w.VBox([w.HBox([self.T, self.H, self.W]), self.query, self.kind, self.text,
                              w.HBox([self.boards, self.mask])])
        self.result: dict[str, Any] = {}
        self._busy = False
        for wid in (self.T, self.H, self.W, self.query, self.kind):
            wid.observe(lambda change: self._on_change(), names="value")

    def render(self, T: int | None = None, H: int | None = None, W: int | None = None, query: int | None = None,
               kind: str | None = None) -> dict[str, Any]:
        """Set any control and redraw. Returns ``grid``, ``query``, ``kind``, ``mask`` (n, n),
        ``keys`` (n,) bool, ``pairs`` (allowed pairs) and ``boards_png`` / ``mask_png``."""
        if kind is not None and kind not in ATTENTION_KINDS:
            raise ValueError(f"kind={kind!r}: valid: {', '.join(ATTENTION_KINDS)}")
        for value, slider in ((T, self.T), (H, self.H), (W, self.W)):
            if value is not None and not (isinstance(value, (int, np.integer)) and slider.min <= value <= slider.max):
                raise ValueError(f"{slider.description}={value!r}: must be an integer in {slider.min}..{slider.max}")
        self._busy = True
        try:
            for value, slider in ((T, self.T), (H, self.H), (W, self.W)):
                if value is not None:
                    slider.value = int(value)
            n = self.T.value * self.H.value * self.W.value
            self.query.max = n - 1
            if query is not None:
                if not (isinstance(query, (int, np.integer)) and 0 <= query < n):
                    raise ValueError(f"query={query!r}: must be a token index in 0..{n - 1}")
                self.query.value = int(query)
            if kind is not None:
                self.kind.value = kind
        finally:
            self._busy = False
        return self._draw()

    update = render

    def _on_change(self) -> None:
        if not self._busy:
            self.render()

    def _draw(self) -> dict[str, Any]:
        grid = (int(self.T.value), int(self.H.value), int(self.W.value))
        ids = _check_position_ids(self.position_ids_fn(grid))
        n = len(ids)
        if n != math.prod(grid):
            raise ValueError(f"position_ids_fn({grid}) returned {n} ids, expected {math.prod(grid)}")
        q, kind = int(self.query.value), self.kind.value
        mask = attention_masks(ids)[kind]
        keys = mask[q]
        values = np.zeros(grid, np.int64)
        values[tuple(ids[keys].T)] = 1
        values[tuple(ids[q])] = 2
        boards = token_boards(values, {0: OFF, 1: ON, 2: QUERY}, cell=max(8, 120 // max(grid[1:])))
        img = mask_image(mask, block=grid[1] * grid[2], highlight_row=q)
        pairs = int(mask.sum())
        t, r, c = ids[q]
        self.text.value = (f"<b>{n}</b> tokens; query {q} at (t, h, w) = ({t}, {r}, {c}) reads "
                           f"<b>{int(keys.sum())}</b> keys. <b>{html.escape(kind)}</b>: {pairs:,} query-key pairs "
                           f"per layer ({pairs / n**2:.0%} of full attention's {n * n:,}).")
        self.boards.value = _image_png(boards)
        self.mask.value = _image_png(img)
        self.result = {"grid": grid, "query": q, "kind": kind, "mask": mask, "keys": keys, "pairs": pairs,
                       "boards_png": bytes(self.boards.value), "mask_png": bytes(self.mask.value)}
        return self.result

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.result:
            self.render()
        display(self.widget)


def attention_explorer(position_ids_fn: Callable[[tuple[int, int, int]], np.ndarray],
                       **kwargs: Any) -> AttentionExplorer:
    """An app to see full vs factorised attention on a small grid.

    ``position_ids_fn(grid) -> (n, 3)`` gives the token coordinates (pass
    ``sora_jax.patches.position_ids``). Options: ``grid`` (start, default (3, 3, 4)),
    ``max_size`` (slider limit, 8). ``.render(T, H, W, query, kind)`` drives it from code.
    """
    return AttentionExplorer(position_ids_fn, **kwargs)


# --------------------------------------------------------------------------- #
# Token counts
# --------------------------------------------------------------------------- #


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


class TokenCalculator:
    """Clip size, VAE factors and patch size -> latent shape, patch grid, tokens and compute.

    The latent of a ``t x h x w`` clip through a causal VAE with factors
    ``(temporal, spatial)`` is ``(1 + (t - 1) / temporal) x (h / spatial) x (w / spatial)``;
    ``grid_fn(latent_thw, patch)`` (``sora_jax.patches.grid_shape``) cuts it into the patch
    grid, and ``flops_fn(preset, attention, patch, grid)`` (a wrapper around
    ``sora_jax.dit.dit_flops``) says what one forward pass costs. Sizes that do not divide
    show the library's error message instead of a table.
    """

    def __init__(self, grid_fn: Callable[[tuple[int, int, int], tuple[int, int, int]], Sequence[int]],
                 flops_fn: Callable[[str, str, tuple[int, int, int], tuple[int, int, int]],
                                    Mapping[str, float]] | None = None,
                 *, presets: Sequence[str] = ("tiny", "S", "B", "L", "XL"), frames: int = 17, height: int = 64,
                 width: int = 64, latent_channels: int = 8) -> None:
        import ipywidgets as w

        if not callable(grid_fn):
            raise ValueError("token_calculator: grid_fn must be callable(latent_thw, patch) -> grid, "
                             "e.g. sora_jax.patches.grid_shape")
        if flops_fn is not None and not callable(flops_fn):
            raise ValueError("token_calculator: flops_fn must be callable(preset, attention, patch, grid) or None")
        presets = list(presets)
        if not presets:
            raise ValueError("token_calculator: presets is empty")
        self.grid_fn, self.flops_fn = grid_fn, flops_fn
        style = {"description_width": "9em"}
        self.frames = w.IntSlider(value=frames, min=1, max=257, step=4, description="frames (1+4k)", style=style,
                                  continuous_update=False)
        self.height = w.IntSlider(value=height, min=16, max=1088, step=16, description="height (px)", style=style,
                                  continuous_update=False)
        self.width = w.IntSlider(value=width, min=16, max=1920, step=16, description="width (px)", style=style,
                                 continuous_update=False)
        self.temporal = w.Dropdown(options=[1, 2, 4], value=4, description="VAE time factor", style=style)
        self.spatial = w.Dropdown(options=[4, 8, 16], value=8, description="VAE space factor", style=style)
        self.channels = w.Dropdown(options=sorted({4, 8, 16, int(latent_channels)}), value=int(latent_channels),
                                   description="latent channels", style=style)
        self.pt = w.Dropdown(options=[1, 2, 4], value=1, description="patch pt", style=style)
        self.ph = w.Dropdown(options=[1, 2, 4], value=2, description="patch ph = pw", style=style)
        self.preset = w.Dropdown(options=presets, value=presets[0], description="DiT preset", style=style)
        self.table = w.HTML()
        controls = [self.frames, self.height, self.width, self.temporal, self.spatial, self.channels, self.pt, self.ph]
        if flops_fn is not None:
            controls.append(self.preset)
        self.widget = w.HBox([w.VBox(controls), self.table])
        self.result: dict[str, Any] = {}
        self._busy = False
        for wid in controls:
            wid.observe(lambda change: self._on_change(), names="value")

    _NAMES = ("frames", "height", "width", "temporal", "spatial", "channels", "pt", "ph", "preset")

    def render(self, **values: Any) -> dict[str, Any]:
        """Set controls by name (``frames, height, width, temporal, spatial, channels, pt, ph,
        preset``) and recompute. Returns the numbers shown (``error`` is set when the sizes do
        not divide)."""
        unknown = set(values) - set(self._NAMES)
        if unknown:
            raise ValueError(f"token_calculator.render: unknown controls {sorted(unknown)}; "
                             f"valid: {', '.join(self._NAMES)}")
        self._busy = True
        try:
            for name, value in values.items():
                wid = getattr(self, name)
                options = getattr(wid, "options", None)
                if options is not None and value not in options:
                    raise ValueError(f"{name}={value!r}: valid: {', '.join(map(str, options))}")
                if options is None and not (isinstance(value, (int, np.integer)) and wid.min <= value <= wid.max):
                    raise ValueError(f"{name}={value!r}: must be an integer in {wid.min}..{wid.max}")
                wid.value = value
        finally:
            self._busy = False
        return self._compute()

    update = render

    def _on_change(self) -> None:
        if not self._busy:
            self._compute()

    def _compute(self) -> dict[str, Any]:
        t, h, wd = int(self.frames.value), int(self.height.value), int(self.width.value)
        ft, fs, c = int(self.temporal.value), int(self.spatial.value), int(self.channels.value)
        patch = (int(self.pt.value), int(self.ph.value), int(self.ph.value))
        res: dict[str, Any] = {"pixels": (t, h, wd, 3), "patch": patch, "error": None}
        try:
            if (t - 1) % ft:
                raise ValueError(f"{t} frames: a causal VAE with time factor {ft} needs 1 + {ft}k frames")
            if h % fs or wd % fs:
                raise ValueError(f"{h}x{wd} pixels: height and width must be multiples of the VAE space factor {fs}")
            latent = (1 + (t - 1) // ft, h // fs, wd // fs)
            res["latent"] = (*latent, c)
            grid = tuple(int(g) for g in self.grid_fn(latent, patch))
        except ValueError as e:
            res["error"] = str(e)
            self.table.value = f"<p style='color:#b00;max-width:36em'>{html.escape(str(e))}</p>"
            self.result = res
            return res
        T, H, W = grid
        n = T * H * W
        res.update(grid=grid, tokens=n, values_per_token=math.prod(patch) * c, pairs_full=n * n,
                   pairs_factorized=n * (H * W + T))
        rows = [
            ("pixels (t, h, w, 3)", " x ".join(map(str, res["pixels"])), _fmt(t * h * wd * 3) + " values"),
            ("latents (t, h, w, c)", " x ".join(map(str, res["latent"])),
             f"{_fmt(math.prod(res['latent']))} values ({t * h * wd * 3 / math.prod(res['latent']):.0f}x smaller)"),
            ("patch grid (T, H, W)", " x ".join(map(str, grid)), f"patch {patch}"),
            ("tokens n", _fmt(n), f"{res['values_per_token']} values each"),
            ("attention pairs / layer", f"full {_fmt(n * n)}", f"factorised {_fmt(n * (H * W + T))}"),
        ]
        if self.flops_fn is not None:
            preset = self.preset.value
            for kind in ("full", "factorized"):
                fl = self.flops_fn(preset, kind, patch, grid)
                res[f"gflops_{kind}"] = float(fl["total"]) / 1e9
                res[f"attention_share_{kind}"] = float(fl["attention"]) / float(fl["total"])
            rows.append((f"forward GFLOP ({html.escape(str(preset))})", f"full {res['gflops_full']:,.1f}",
                         f"factorised {res['gflops_factorized']:,.1f}"))
            rows.append(("attention share", f"{res['attention_share_full']:.0%}",
                         f"{res['attention_share_factorized']:.0%}"))
        self.table.value = ("<table style='border-collapse:collapse'>" + "".join(
            f"<tr><td style='padding:2px 10px'><b>{a}</b></td><td style='padding:2px 10px'>{b}</td>"
            f"<td style='padding:2px 10px'>{cc}</td></tr>" for a, b, cc in rows) + "</table>")
        self.result = res
        return res

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.result:
            self._compute()
        display(self.widget)


def token_calculator(grid_fn: Callable[..., Sequence[int]], flops_fn: Callable[..., Mapping[str, float]] | None = None,
                     **kwargs: Any) -> TokenCalculator:
    """An app: clip size, VAE factors, patch size (and DiT preset) -> tokens and FLOPs.

    ``grid_fn(latent_thw, patch) -> (T, H, W)``: pass ``sora_jax.patches.grid_shape``.
    ``flops_fn(preset, attention, patch, grid) -> {"total", "attention", ...}``: e.g.
    ``lambda p, a, patch, g: dit.dit_flops(dit.preset(p, attention=a, patch=patch), g, text_len)``.
    Options: ``presets``, ``frames``, ``height``, ``width``, ``latent_channels``.
    ``.render(frames=..., height=..., ...)`` drives it from code.
    """
    return TokenCalculator(grid_fn, flops_fn, **kwargs)


# --------------------------------------------------------------------------- #
# Noise schedules
# --------------------------------------------------------------------------- #

Schedule = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _alpha_sigma(schedule: Schedule, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, s = schedule(np.asarray(u, np.float64))
    return tuple(np.broadcast_to(np.asarray(v, np.float64), np.shape(u)) for v in (a, s))  # type: ignore[return-value]


def log_snr(alpha: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``log(alpha^2 / sigma^2)``: +inf at clean data, -inf at pure noise."""
    with np.errstate(divide="ignore"):
        return 2.0 * (np.log(np.asarray(alpha, np.float64)) - np.log(np.asarray(sigma, np.float64)))


def plot_schedules(schedules: Mapping[str, Schedule], *, mark: float | None = None, axes: Any = None,
                   num: int = 201) -> Any:
    """Two panels over the noise level ``u`` in [0, 1]: alpha (solid) and sigma (dashed), and
    log-SNR. ``schedules[name](u) -> (alpha, sigma)`` (numpy in, numpy out). ``mark``: a
    vertical line at that level. Returns the axes."""
    import matplotlib.pyplot as plt

    if not schedules:
        raise ValueError("plot_schedules: no schedules given")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    u = np.linspace(0.0, 1.0, num)
    for i, (name, fn) in enumerate(schedules.items()):
        a, s = _alpha_sigma(fn, u)
        colour = f"C{i}"
        axes[0].plot(u, a, "-", color=colour, label=f"{name}: alpha")
        axes[0].plot(u, s, "--", color=colour, label=f"{name}: sigma")
        axes[1].plot(u, log_snr(a, s), "-", color=colour, label=name)
    axes[0].set_xlabel("noise level u (1 = pure noise)")
    axes[0].set_title("x_u = alpha x_0 + sigma eps")
    axes[0].legend(fontsize="x-small")
    axes[1].set_xlabel("noise level u (1 = pure noise)")
    axes[1].set_ylabel("log SNR = log(alpha^2 / sigma^2)")
    axes[1].set_ylim(-15, 15)
    axes[1].axhline(0.0, color="grey", lw=0.5)
    axes[1].legend(fontsize="x-small")
    if mark is not None:
        for ax in axes:
            ax.axvline(float(mark), color="black", lw=1)
    axes[0].figure.tight_layout()
    return axes


class NoiseExplorer:
    """Noise a clip to any level under any schedule and see ``x = alpha x_0 + sigma eps``.

    ``x0`` and ``noise`` are float arrays of one shape, ``(t, h, w, 3)`` or ``(h, w, 3)``
    pixels in [-1, 1]; ``schedules[name](u) -> (alpha, sigma)`` for a noise level ``u`` in
    [0, 1] (wrap ``sora_jax.diffusion.alpha_sigma_np``). Shows up to ``max_frames`` frames of
    the noised clip, alpha, sigma and the SNR, and the schedule curves with the level marked.
    """

    def __init__(self, x0: Float[np.ndarray, "..."], noise: Float[np.ndarray, "..."], schedules: Mapping[str, Schedule],
                 *, level: float = 0.5, max_frames: int = 5) -> None:
        import ipywidgets as w

        self.x0, self.noise = np.asarray(x0, np.float32), np.asarray(noise, np.float32)
        if self.x0.shape != self.noise.shape:
            raise ValueError(f"noise_explorer: x0 {self.x0.shape} and noise {self.noise.shape} differ in shape")
        if self.x0.ndim == 3:
            self.x0, self.noise = self.x0[None], self.noise[None]
        if self.x0.ndim != 4 or self.x0.shape[-1] != 3:
            raise ValueError(f"noise_explorer: x0 must be (t, h, w, 3) or (h, w, 3) pixels, got {np.shape(x0)}")
        if not schedules or not all(callable(f) for f in schedules.values()):
            raise ValueError("noise_explorer: schedules must map names to callables u -> (alpha, sigma)")
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"level={level}: must be in [0, 1]")
        self.schedules = dict(schedules)
        t = self.x0.shape[0]
        self.frames = _pick_frames(t, _positive_int(max_frames, "max_frames"))
        self.level = w.FloatSlider(value=level, min=0.0, max=1.0, step=0.01, description="noise level u",
                                   continuous_update=False, readout_format=".2f")
        self.schedule = w.Dropdown(options=list(self.schedules), value=next(iter(self.schedules)),
                                   description="schedule")
        self.image = w.Image(format="png")
        self.plot = w.Image(format="png")
        self.text = w.HTML()
        self.widget = w.VBox([w.HBox([self.schedule, self.level]), self.text, self.image, self.plot])
        self.result: dict[str, Any] = {}
        self._busy = False
        for wid in (self.level, self.schedule):
            wid.observe(lambda change: self._on_change(), names="value")

    def render(self, level: float | None = None, schedule: str | None = None) -> dict[str, Any]:
        """Set the level and/or schedule and redraw. Returns ``x`` (the noised clip, float),
        ``alpha``, ``sigma``, ``snr``, ``image`` (uint8 filmstrip) and ``image_png``/``plot_png``."""
        if schedule is not None and schedule not in self.schedules:
            raise ValueError(f"schedule={schedule!r}: valid: {', '.join(self.schedules)}")
        if level is not None and not 0.0 <= float(level) <= 1.0:
            raise ValueError(f"level={level}: must be in [0, 1]")
        self._busy = True
        try:
            if schedule is not None:
                self.schedule.value = schedule
            if level is not None:
                self.level.value = float(level)
        finally:
            self._busy = False
        return self._draw()

    update = render

    def _on_change(self) -> None:
        if not self._busy:
            self._draw()

    def _draw(self) -> dict[str, Any]:
        import matplotlib.pyplot as plt

        from sora_jax.viz.video import frame_grid

        name, u = self.schedule.value, float(self.level.value)
        a, s = (float(v) for v in _alpha_sigma(self.schedules[name], np.array(u)))
        x = a * self.x0 + s * self.noise
        image = frame_grid(to_uint8(x[self.frames]), gap=2, upscale=max(1, 192 // max(x.shape[1:3])))
        snr = a * a / (s * s) if s > 0 else math.inf
        self.text.value = (f"<b>{html.escape(name)}</b> at u = {u:.2f}: alpha = {a:.3f}, sigma = {s:.3f}, "
                           f"SNR = alpha&sup2;/sigma&sup2; = {snr:.3g} (log SNR {float(log_snr(a, s)):.2f})")
        self.image.value = _image_png(image)
        fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
        plot_schedules({name: self.schedules[name]}, mark=u, axes=axes)
        self.plot.value = _png(fig)
        self.result = {"schedule": name, "level": u, "x": x if self.x0.shape[0] > 1 else x[0], "alpha": a,
                       "sigma": s, "snr": snr, "image": image, "image_png": bytes(self.image.value),
                       "plot_png": bytes(self.plot.value)}
        return self.result

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.result:
            self.render()
        display(self.widget)


def noise_explorer(x0: Float[np.ndarray, "..."], noise: Float[np.ndarray, "..."], schedules: Mapping[str, Schedule],
                   **kwargs: Any) -> NoiseExplorer:
    """An app: a noise-level slider and a schedule dropdown over one clip (see :class:`NoiseExplorer`).

    Options: ``level`` (start), ``max_frames`` (frames shown). ``.render(level, schedule)``
    drives it from code.
    """
    return NoiseExplorer(x0, noise, schedules, **kwargs)


# --------------------------------------------------------------------------- #
# Samplers
# --------------------------------------------------------------------------- #


def plot_error_vs_steps(results: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, ax: Any = None,
                        xlabel: str = "denoiser calls", orders: Sequence[int] = (1, 2)) -> Any:
    """Log-log error curves, ``results[name] = (calls, errors)``, with dotted slope guides for
    the given convergence ``orders`` (error ~ calls^-order), anchored at the first curve."""
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("plot_error_vs_steps: no results given")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    markers = "osd^v<>"
    for i, (name, (x, e)) in enumerate(results.items()):
        x, e = np.asarray(x, float), np.asarray(e, float)
        if x.shape != e.shape or x.ndim != 1:
            raise ValueError(f"plot_error_vs_steps: {name!r} needs equal-length 1D calls and errors, "
                             f"got {x.shape}, {e.shape}")
        ax.loglog(x, e, marker=markers[i % len(markers)], label=name, alpha=0.85)
    x0, e0 = (np.asarray(v, float) for v in next(iter(results.values())))
    span = np.array([x0.min(), x0.max()])
    for p in orders:
        ax.loglog(span, e0[0] * (span / span[0]) ** (-float(p)), ":", color="grey", lw=1)
        ax.annotate(f"order {p}", (span[1], e0[0] * (span[1] / span[0]) ** (-float(p))), fontsize=8, color="grey")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=2))             # 1, 2, 4, 8, ... calls
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    return ax


def plot_points(samples: Float[np.ndarray, "b 2"] | None, data: Float[np.ndarray, "K 2"] | None = None,
                labels: Int[np.ndarray, "K"] | None = None, *, ax: Any = None, title: str | None = None,
                lim: float | None = None) -> Any:
    """2D samples (black dots) over data points (large, coloured by ``labels``). Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    if data is not None:
        d = np.asarray(data, float)
        if d.ndim != 2 or d.shape[1] != 2:
            raise ValueError(f"plot_points: data must be (K, 2), got {d.shape}")
        lab = np.zeros(len(d), int) if labels is None else np.asarray(labels).astype(int)
        if lab.shape != (len(d),):
            raise ValueError(f"plot_points: labels must be ({len(d)},), got {lab.shape}")
        ax.scatter(d[:, 0], d[:, 1], s=160, c=[f"C{k % 10}" for k in lab], alpha=0.35, edgecolors="none")
    if samples is not None:
        s = np.asarray(samples, float)
        if s.ndim != 2 or s.shape[1] != 2:
            raise ValueError(f"plot_points: samples must be (b, 2), got {s.shape}")
        ax.scatter(s[:, 0], s[:, 1], s=6, c="black")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_paths(paths: Mapping[str, Float[np.ndarray, "steps b 2"]], data: Float[np.ndarray, "K 2"] | None = None,
               labels: Int[np.ndarray, "K"] | None = None, *, lim: float | None = None, max_paths: int = 64) -> Any:
    """One panel per sampler: 2D sample paths from noise (grey lines, start = small dot) to
    the end point (black), over the data. ``paths[name]`` is ``(steps + 1, b, 2)``. Returns the Figure."""
    import matplotlib.pyplot as plt

    if not paths:
        raise ValueError("plot_paths: no paths given")
    fig, axes = plt.subplots(1, len(paths), figsize=(3.0 * len(paths), 3.2), squeeze=False)
    for ax, (name, p) in zip(axes[0], paths.items()):
        p = np.asarray(p, float)
        if p.ndim != 3 or p.shape[-1] != 2 or p.shape[0] < 2:
            raise ValueError(f"plot_paths: {name!r} must be (steps + 1, b, 2) with >= 2 points, got {p.shape}")
        plot_points(p[-1], data, labels, ax=ax, title=f"{name} ({p.shape[0] - 1} steps)", lim=lim)
        for j in range(min(p.shape[1], max_paths)):
            ax.plot(p[:, j, 0], p[:, j, 1], "-", color="grey", lw=0.6, alpha=0.7)
            ax.plot(p[0, j, 0], p[0, j, 1], ".", color="grey", ms=2)
    fig.tight_layout()
    return fig


def plot_guidance(x: Float[np.ndarray, "2"], guided: Mapping[float, Float[np.ndarray, "2"]],
                  data: Float[np.ndarray, "K 2"] | None = None, labels: Int[np.ndarray, "K"] | None = None, *,
                  ax: Any = None, lim: float | None = None) -> Any:
    """Classifier-free guidance as geometry: from a noisy point ``x``, the guided denoised
    estimate ``D_u + w (D_c - D_u)`` for several ``w`` (``guided[w]``) lies on one line;
    ``w = 0`` is the unconditional estimate, ``w = 1`` the conditional one, ``w > 1``
    extrapolates past it. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    if not guided:
        raise ValueError("plot_guidance: no guided points given")
    plot_points(None, data, labels, ax=ax, lim=lim)
    x = np.asarray(x, float).reshape(2)
    ws = sorted(guided)
    pts = np.stack([np.asarray(guided[w], float).reshape(2) for w in ws])
    ax.plot(pts[:, 0], pts[:, 1], "-", color="grey", lw=1)
    ax.plot(*x, "o", color="black", ms=7, label="noisy x_t")
    for w, p in zip(ws, pts):
        ax.annotate("", xy=p, xytext=x, arrowprops={"arrowstyle": "->", "color": "C3" if w > 1 else "black", "lw": 1})
        ax.annotate(f"w={w:g}", p, xytext=(0, -12), textcoords="offset points", fontsize=8, ha="center")
    if lim is not None:                       # keep every guided point in view
        lim = max(float(lim), float(np.abs(pts).max()) + 0.5, float(np.abs(x).max()) + 0.5)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_title("denoised estimate under guidance w", fontsize=9)
    ax.legend(fontsize="small", loc="lower left")
    return ax


class DenoisingScrubber:
    """Scrub through sampler trajectories step by step.

    ``trajectories[name]`` has ``x`` ``(N, ...)`` (the input of each step), ``denoised``
    ``(N, ...)`` (the denoiser's estimate of the clean sample there), ``t`` ``(N,)`` and
    optionally ``final`` ``(...)`` (the sampler's output, shown at step ``N``): exactly what
    ``sora_jax.sampling.sample(..., callback=...)`` hands to its callback, stacked.

    ``kind="video"``: each entry is one clip ``(t, h, w, 3)`` (or image ``(h, w, 3)``) in
    [-1, 1], shown as two filmstrips (``x_t`` on top, denoised below). ``kind="points"``:
    each entry is ``(b, 2)`` samples, shown as a scatter (``x_t`` black, denoised orange,
    trails grey) over ``data`` (``(K, 2)``, coloured by ``labels``).
    """

    def __init__(self, trajectories: Mapping[str, Mapping[str, Any]], *, kind: str = "video",
                 data: Float[np.ndarray, "K 2"] | None = None, labels: Int[np.ndarray, "K"] | None = None,
                 max_frames: int = 5, lim: float | None = None) -> None:
        import ipywidgets as w

        if kind not in ("video", "points"):
            raise ValueError(f"kind={kind!r}: valid: 'video', 'points'")
        if not trajectories:
            raise ValueError("denoising_scrubber: no trajectories given")
        self.kind, self.data, self.labels, self.lim = kind, data, labels, lim
        self.max_frames = _positive_int(max_frames, "max_frames")
        self.trajectories: dict[str, dict[str, np.ndarray]] = {}
        for name, tr in trajectories.items():
            missing = {"x", "denoised", "t"} - set(tr)
            if missing:
                raise ValueError(f"trajectory {name!r} lacks {sorted(missing)} (need x, denoised, t; final optional)")
            x, d, t = (np.asarray(tr[k], np.float32) for k in ("x", "denoised", "t"))
            if x.shape != d.shape or t.shape != (x.shape[0],) or x.shape[0] < 1:
                raise ValueError(f"trajectory {name!r}: x {x.shape}, denoised {d.shape} and t {t.shape} must be "
                                 "(N, ...), (N, ...), (N,)")
            if kind == "points" and (x.ndim != 3 or x.shape[-1] != 2):
                raise ValueError(f"trajectory {name!r}: kind='points' needs x of shape (N, b, 2), got {x.shape}")
            if kind == "video" and (x.ndim not in (4, 5) or x.shape[-1] != 3):
                raise ValueError(f"trajectory {name!r}: kind='video' needs x of shape (N, t, h, w, 3) or (N, h, w, 3), "
                                 f"got {x.shape}")
            entry = {"x": x, "denoised": d, "t": t}
            if tr.get("final") is not None:
                final = np.asarray(tr["final"], np.float32)
                if final.shape != x.shape[1:]:
                    raise ValueError(f"trajectory {name!r}: final {final.shape} must have the shape of one step "
                                     f"{x.shape[1:]}")
                entry["final"] = final
            self.trajectories[name] = entry
        first = next(iter(self.trajectories))
        self.name = w.Dropdown(options=list(self.trajectories), value=first, description="sampler")
        self.step = w.IntSlider(value=0, min=0, max=self._last(first), description="step", continuous_update=False)
        self.image = w.Image(format="png")
        self.text = w.HTML()
        self.widget = w.VBox([w.HBox([self.name, self.step]), self.text, self.image])
        self.result: dict[str, Any] = {}
        self._busy = False
        self.name.observe(lambda change: self._on_name(), names="value")
        self.step.observe(lambda change: self._on_step(), names="value")

    def _last(self, name: str) -> int:
        tr = self.trajectories[name]
        return tr["x"].shape[0] - (0 if "final" in tr else 1)

    def render(self, name: str | None = None, step: int | None = None) -> dict[str, Any]:
        """Pick a trajectory and a step (``0 .. N``, ``N`` = the final output if given) and redraw.
        Returns ``name``, ``step``, ``t``, ``x``, ``denoised`` and ``image_png``."""
        if name is not None and name not in self.trajectories:
            raise ValueError(f"name={name!r}: valid: {', '.join(self.trajectories)}")
        self._busy = True
        try:
            if name is not None:
                self.name.value = name
            self.step.max = self._last(self.name.value)
            if step is not None:
                if not (isinstance(step, (int, np.integer)) and 0 <= step <= self.step.max):
                    raise ValueError(f"step={step!r}: must be an integer in 0..{self.step.max}")
                self.step.value = int(step)
        finally:
            self._busy = False
        return self._draw()

    update = render

    def _on_name(self) -> None:
        if not self._busy:
            self.render()

    def _on_step(self) -> None:
        if not self._busy:
            self._draw()

    def _draw(self) -> dict[str, Any]:
        import matplotlib.pyplot as plt

        name, i = self.name.value, int(self.step.value)
        tr = self.trajectories[name]
        n = tr["x"].shape[0]
        if i < n:
            x, d, t = tr["x"][i], tr["denoised"][i], float(tr["t"][i])
            label = f"step {i} of {n}: t = {t:.3f}"
        else:
            x = d = tr["final"]
            t = 0.0
            label = f"after step {n}: the output"
        if self.kind == "video":
            from sora_jax.viz.video import frame_grid

            clip_x, clip_d = (v if v.ndim == 4 else v[None] for v in (x, d))
            frames = _pick_frames(clip_x.shape[0], self.max_frames)
            f = max(1, 160 // max(clip_x.shape[1:3]))
            top, bottom = (frame_grid(to_uint8(v[frames]), gap=2, upscale=f) for v in (clip_x, clip_d))
            image = np.concatenate([top, np.full((6, top.shape[1], 3), 255, np.uint8), bottom])
            self.image.value = _image_png(image)
            self.text.value = f"<b>{html.escape(name)}</b>, {label}. Top: x_t. Bottom: denoised estimate."
        else:
            fig, ax = plt.subplots(figsize=(4.2, 4.2))
            plot_points(None, self.data, self.labels, ax=ax, lim=self.lim)
            trail = tr["x"][:i + 1] if i < n else np.concatenate([tr["x"], tr["final"][None]])
            for j in range(min(trail.shape[1], 64)):
                ax.plot(trail[:, j, 0], trail[:, j, 1], "-", color="grey", lw=0.5, alpha=0.6)
            ax.scatter(d[:, 0], d[:, 1], s=8, c="C1", label="denoised")
            ax.scatter(x[:, 0], x[:, 1], s=8, c="black", label="x_t")
            ax.legend(fontsize="small", loc="lower left")
            ax.set_title(f"{name}: {label}", fontsize=9)
            self.image.value = _png(fig)
            self.text.value = f"<b>{html.escape(name)}</b>, {label}."
        self.result = {"name": name, "step": i, "t": t, "x": x, "denoised": d, "image_png": bytes(self.image.value)}
        return self.result

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.result:
            self.render()
        display(self.widget)


def denoising_scrubber(trajectories: Mapping[str, Mapping[str, Any]], **kwargs: Any) -> DenoisingScrubber:
    """An app: a sampler dropdown and a step slider that scrub ``x_t`` and the denoised estimate.

    ``trajectories[name] = {"x": (N, ...), "denoised": (N, ...), "t": (N,), "final": (...)}``
    (stack what ``sampling.sample``'s callback receives). Options: ``kind`` ("video" or
    "points"), ``data``, ``labels``, ``max_frames``, ``lim``. ``.render(name, step)`` drives it.
    """
    return DenoisingScrubber(trajectories, **kwargs)


class GuidanceExplorer:
    """A guidance-scale slider over 2D samples: ``sample_fn(w) -> (b, 2)`` is called once per scale
    (results are cached) and drawn over the data. Reports the fraction of samples whose nearest
    data point has label ``target`` and their mean distance to it."""

    def __init__(self, sample_fn: Callable[[float], np.ndarray], data: Float[np.ndarray, "K 2"],
                 labels: Int[np.ndarray, "K"], *, scales: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0), target: int = 0,
                 lim: float | None = None) -> None:
        import ipywidgets as w

        if not callable(sample_fn):
            raise ValueError("guidance_explorer: sample_fn must be callable(scale) -> (b, 2) samples")
        self.data = np.asarray(data, float)
        self.labels = np.asarray(labels).astype(int)
        if self.data.ndim != 2 or self.data.shape[1] != 2 or self.labels.shape != (len(self.data),):
            raise ValueError(f"guidance_explorer: data must be (K, 2) and labels (K,), got {self.data.shape}, "
                             f"{self.labels.shape}")
        if target not in set(self.labels.tolist()):
            raise ValueError(f"target={target}: not one of the labels {sorted(set(self.labels.tolist()))}")
        scales = [float(s) for s in scales]
        if not scales or any(s < 0 for s in scales):
            raise ValueError(f"scales={scales}: need at least one scale, all >= 0")
        self.sample_fn, self.target, self.lim = sample_fn, int(target), lim
        self.cache: dict[float, np.ndarray] = {}
        self.scale = w.SelectionSlider(options=scales, value=scales[min(1, len(scales) - 1)], description="guidance w",
                                       continuous_update=False)
        self.plot = w.Image(format="png")
        self.text = w.HTML()
        self.widget = w.VBox([self.scale, self.text, self.plot])
        self.result: dict[str, Any] = {}
        self.scale.observe(lambda change: self._draw(), names="value")

    def samples(self, scale: float) -> np.ndarray:
        """The (cached) samples at guidance ``scale``."""
        scale = float(scale)
        if scale not in self.cache:
            s = np.asarray(self.sample_fn(scale), float)
            if s.ndim != 2 or s.shape[1] != 2:
                raise ValueError(f"sample_fn({scale}) returned shape {s.shape}; expected (b, 2)")
            self.cache[scale] = s
        return self.cache[scale]

    def render(self, scale: float | None = None) -> dict[str, Any]:
        """Pick a scale (one of the slider's) and redraw. Returns ``scale``, ``samples``,
        ``on_target`` (fraction), ``distance`` (mean to the nearest target point), ``plot_png``."""
        if scale is not None:
            if float(scale) not in self.scale.options:
                raise ValueError(f"scale={scale!r}: valid: {', '.join(f'{s:g}' for s in self.scale.options)}")
            if float(scale) != self.scale.value:
                self.scale.value = float(scale)       # triggers _draw
                return self.result
        return self._draw()

    update = render

    def _draw(self) -> dict[str, Any]:
        import matplotlib.pyplot as plt

        w = float(self.scale.value)
        s = self.samples(w)
        dist = np.linalg.norm(s[:, None] - self.data[None], axis=-1)                  # (b, K)
        on_target = float(np.mean(self.labels[dist.argmin(1)] == self.target))
        distance = float(dist[:, self.labels == self.target].min(1).mean())
        fig, ax = plt.subplots(figsize=(4, 4))
        plot_points(s, self.data, self.labels, ax=ax, lim=self.lim, title=f"guidance w = {w:g}")
        self.plot.value = _png(fig)
        self.text.value = (f"w = {w:g}: {on_target:.0%} of samples are nearest to class {self.target}; "
                           f"mean distance to its nearest point {distance:.3f}")
        self.result = {"scale": w, "samples": s, "on_target": on_target, "distance": distance,
                       "plot_png": bytes(self.plot.value)}
        return self.result

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.result:
            self.render()
        display(self.widget)


def guidance_explorer(sample_fn: Callable[[float], np.ndarray], data: Float[np.ndarray, "K 2"],
                      labels: Int[np.ndarray, "K"], **kwargs: Any) -> GuidanceExplorer:
    """An app: a guidance-scale slider over 2D samples (see :class:`GuidanceExplorer`).

    ``sample_fn(w) -> (b, 2)``: e.g. ``lambda w: sampling.sample(den, (b, 2), guidance=w, cond=...,
    uncond=..., ...)``. Options: ``scales``, ``target`` (the class asked for), ``lim``.
    """
    return GuidanceExplorer(sample_fn, data, labels, **kwargs)
