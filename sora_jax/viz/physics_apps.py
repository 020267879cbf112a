"""Pictures and an ipywidgets app for notebook 06 (physics failures): where did a metric fire?

Like the rest of :mod:`sora_jax.viz`, nothing here imports the models, the physics
metrics (:mod:`sora_jax.analysis`) or the tracker: the pictures draw plain arrays and
the plain results the metrics return, and the app *calls* functions the notebook passes
in (make a clip, generate or reconstruct it, score it, track it). That keeps the
pictures honest (they show what the library computes) and lets the tests drive
everything with tiny fakes.

Axes: ``t`` frames, ``k`` ground-truth objects, ``m`` metrics. Videos are uint8
``(t, h, w, 3)``; positions are pixel ``(col, row)`` with row 0 at the top (what
``Truth.to_pixels`` and the tracker give).

A *metric result* is anything with the attributes of
:class:`sora_jax.analysis.MetricResult` -- ``metric``, ``measurable``, ``flagged``,
``value``, ``unit``, ``better``, ``summary``, ``per_object``, ``per_frame``,
``reason`` -- read by name (duck typing), never imported. A *tracklet* is anything
with ``colour``, ``frames`` ``(n,)`` and ``centroid`` ``(n, 2)`` (an
:class:`sora_jax.analysis.Tracklet`), or a ``(colour, frames, centroid)`` tuple.
An *evaluation* is the dict :func:`sora_jax.analysis.evaluate_physics_clips`
returns (``table``, ``clips``, ...).
"""

from __future__ import annotations

import collections
import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import Float, UInt8

from sora_jax.viz.model_apps import _png

# Status of a metric at a frame (see fired_frames).
NOT_MEASURABLE, PASSED, FIRED_HERE, FIRED_IN_CLIP = -1, 0, 1, 2
STATUS_COLOURS: dict[int, tuple[int, int, int]] = {
    NOT_MEASURABLE: (200, 200, 200),   # grey: the clip could not be measured
    PASSED: (236, 246, 236),           # pale green: measured, did not fire
    FIRED_HERE: (215, 40, 40),         # red: fired, at this frame
    FIRED_IN_CLIP: (245, 170, 160),    # pink: fired, somewhere in the clip (not tied to frames)
}
FLOOR_COLUMNS: tuple[str, ...] = ("model", "ground_truth", "vae", "resim")
COLUMN_LABELS: dict[str, str] = {"model": "model", "ground_truth": "ground truth", "vae": "VAE reconstruction",
                                 "resim": "perturbed re-simulation"}
COLUMN_COLOURS: dict[str, str] = {"model": "#c0392b", "ground_truth": "#2c3e50", "vae": "#2980b9",
                                  "resim": "#27ae60"}
MARK: tuple[int, int, int] = (215, 40, 40)     # border of frames where a metric fired


# --------------------------------------------------------------------------- #
# small helpers
# --------------------------------------------------------------------------- #


def _video(x: Any, name: str = "video") -> UInt8[np.ndarray, "t h w 3"]:
    v = np.asarray(x)
    if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8 or min(v.shape) < 1:
        raise ValueError(f"{name}: expected a uint8 video (t, h, w, 3), got {v.dtype} {v.shape}")
    return v


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]`` (a dataclass or a dict)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _check_result(r: Any, name: str) -> Any:
    missing = [a for a in ("measurable", "flagged", "value", "per_object") if not hasattr(r, a)]
    if missing:
        raise ValueError(f"results[{name!r}]: expected a metric result (sora_jax.analysis.MetricResult), "
                         f"got {type(r).__name__} without {', '.join(missing)}")
    return r


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def format_value(x: Any, unit: str = "") -> str:
    """A metric value for people: 3 significant digits and its unit; ``-`` for None/NaN."""
    if not _finite(x):
        return "-"
    x = float(x)
    s = f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"
    return f"{s} {unit}".strip()


def _frame_list(frames: Iterable[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    fs = sorted({int(f) for f in frames})
    if not fs:
        return ""
    out, start, prev = [], fs[0], fs[0]
    for f in fs[1:] + [None]:
        if f is not None and f == prev + 1:
            prev = f
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if f is not None:
            start = prev = f
    return ", ".join(out)


def _rgb(colour: Any) -> tuple[float, float, float]:
    from sora_jax.viz.plots import _rgb as rgb

    return rgb(colour)


# --------------------------------------------------------------------------- #
# Where did a metric fire?
# --------------------------------------------------------------------------- #

_LIST_KEYS = ("flag_frames", "missing_frames", "swap_frames", "shape_mismatch_frames")


def _row_is_bad(row: Mapping[str, Any]) -> bool:
    if row.get("flagged") is True or row.get("ok") is False:
        return True
    if any(row.get(k) is True for k in ("vanished", "emerged", "blinked")):
        return True
    if isinstance(row.get("emerged"), Mapping) or isinstance(row.get("swap"), Mapping):
        return True
    if row.get("bad_runs") or any(row.get(k) for k in ("flag_frames", "swap_frames", "shape_mismatch_frames")):
        return True
    # a run of wrong frames: {"first_frame": s, "frames": n} (count, truth mode)
    return isinstance(row.get("first_frame"), (int, np.integer)) and isinstance(row.get("frames"), (int, np.integer))


def _row_frames(row: Mapping[str, Any], num_frames: int) -> set[int]:
    """Frames a bad per-object row points at (empty when it names none)."""
    out: set[int] = set()
    for k in _LIST_KEYS:
        v = row.get(k)
        if k == "missing_frames" and row.get("vanished") is not True:
            continue                      # missing, but not long enough to be a violation
        if isinstance(v, (list, tuple, np.ndarray)):
            out.update(int(f) for f in v)
            if k == "flag_frames":        # velocities: frame pair (f, f + 1)
                out.update(int(f) + 1 for f in v)
    for s, n in row.get("bad_runs") or ():
        out.update(range(int(s), int(s) + int(n)))
    first, frames = row.get("first_frame"), row.get("frames")
    if isinstance(first, (int, np.integer)) and isinstance(frames, (int, np.integer)):
        out.update(range(int(first), int(first) + int(frames)))
    if isinstance(frames, (list, tuple)) and len(frames) == 2 and "tracklet" in row:
        a, b = int(frames[0]), int(frames[1])     # a tracklet's span (intent-mode permanence / attributes)
        if row.get("blinked") is True:
            out.update(range(a, b + 1))
        if row.get("emerged") is True:
            out.add(a)
        if row.get("vanished") is True:
            out.add(min(b + 1, num_frames - 1))
    for k in ("emerged", "swap"):
        if isinstance(row.get(k), Mapping):
            out |= _row_frames(row[k], num_frames)
    if isinstance(row.get("frame"), (int, np.integer)):
        out.add(int(row["frame"]))
    ev = row.get("event_frame")
    if isinstance(ev, (int, np.integer)) and row.get("ok") is False:
        out.update(range(int(ev), num_frames))     # the effect must hold from the event to the end
    elif row.get("ok") is False and isinstance(row.get("first_effect_frame"), (int, np.integer)):
        out.update(range(int(row["first_effect_frame"]), num_frames))
    return {f for f in out if 0 <= f < num_frames}


def fired_frames(result: Any, num_frames: int) -> np.ndarray:
    """Status of one metric result at every frame: int8 ``(t,)``.

    ``NOT_MEASURABLE`` (-1) everywhere when the clip could not be measured;
    ``PASSED`` (0) where the metric did not fire; ``FIRED_HERE`` (1) at the frames
    its bad objects point at (``flag_frames``, ``missing_frames`` of a vanished
    object, runs of wrong counts, colour/shape swap frames, a collision or contact
    frame, the frames after an event whose effect does not hold, ...);
    ``FIRED_IN_CLIP`` (2) everywhere when it fired but names no frame (a wrong
    direction, a gravity fit, a radius drift). A bad velocity marks both frames of
    its frame pair.
    """
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames={num_frames!r}: must be an integer >= 1")
    r = _check_result(result, _field(result, "metric", "?"))
    if not r.measurable:
        return np.full(num_frames, NOT_MEASURABLE, np.int8)
    out = np.full(num_frames, PASSED, np.int8)
    if not r.flagged:
        return out
    frames: set[int] = set()
    for row in r.per_object or ():
        if isinstance(row, Mapping) and _row_is_bad(row):
            frames |= _row_frames(row, num_frames)
    if frames:
        out[sorted(frames)] = FIRED_HERE
    else:
        out[:] = FIRED_IN_CLIP
    return out


def metric_timeline(results: Mapping[str, Any], num_frames: int) -> tuple[list[str], np.ndarray]:
    """``(metric names, status (m, t))``: :func:`fired_frames` of every result, one row per metric."""
    if not results:
        raise ValueError("metric_timeline: no results given")
    names = list(results)
    return names, np.stack([fired_frames(_check_result(results[n], n), num_frames) for n in names])


def plot_metric_timeline(results: Mapping[str, Any], num_frames: int, *, current: int | None = None,
                         ax: Any = None, title: str | None = None) -> Any:
    """A metrics x frames board: red where a metric fired, pink where it fired in the clip but
    names no frame, pale green where it passed, grey where the clip was not measurable.
    ``current`` outlines a frame (for frame sliders). Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names, status = metric_timeline(results, num_frames)
    if current is not None and not 0 <= current < num_frames:
        raise ValueError(f"current={current}: must be a frame index in 0..{num_frames - 1}")
    img = np.zeros((*status.shape, 3), np.uint8)
    for code, rgb in STATUS_COLOURS.items():
        img[status == code] = rgb
    if ax is None:
        _, ax = plt.subplots(figsize=(min(1.0 + 0.28 * num_frames, 9.0), 0.8 + 0.28 * len(names)))
    ax.imshow(img, aspect="auto", interpolation="nearest", extent=(-0.5, num_frames - 0.5, len(names) - 0.5, -0.5))
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    step = max(1, num_frames // 12)
    ax.set_xticks(range(0, num_frames, step))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xticks(np.arange(-0.5, num_frames, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, len(names), 1), minor=True)
    ax.grid(which="minor", color="white", lw=1)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("frame", fontsize=8)
    if current is not None:
        ax.axvspan(current - 0.5, current + 0.5, fill=False, ec="black", lw=2)
    labels = {NOT_MEASURABLE: "not measurable", PASSED: "passed", FIRED_HERE: "fired here",
              FIRED_IN_CLIP: "fired (whole clip)"}
    present = sorted(set(np.unique(status).tolist()))
    ax.legend(handles=[Patch(color=np.array(STATUS_COLOURS[c]) / 255, label=labels[c]) for c in present],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _detail(r: Any) -> str:
    if not r.measurable:
        return str(getattr(r, "reason", "") or "")
    summ = getattr(r, "summary", {}) or {}
    parts = []
    for k, v in summ.items():
        if isinstance(v, bool) or isinstance(v, str):
            parts.append(f"{k}={v}")
        elif isinstance(v, (int, np.integer)):
            parts.append(f"{k}={int(v)}")
        elif _finite(v):
            parts.append(f"{k}={float(v):.3g}")
    return ", ".join(parts[:5])


def metric_table_html(results: Mapping[str, Any], num_frames: int | None = None) -> str:
    """An HTML table of results: metric, verdict, value, where (frames) and detail (summary or reason)."""
    if not results:
        raise ValueError("metric_table_html: no results given")
    rows = ["<table style='border-collapse:collapse;font-size:12px'>",
            "<tr style='text-align:left'>" + "".join(f"<th>{c}</th>" for c in ("metric", "verdict", "value", "where",
                                                                             "detail")) + "</tr>"]
    for name, r in results.items():
        r = _check_result(r, name)
        if not r.measurable:
            verdict, colour = "not measurable", STATUS_COLOURS[NOT_MEASURABLE]
        elif r.flagged:
            verdict, colour = "FIRED", STATUS_COLOURS[FIRED_IN_CLIP]
        else:
            verdict, colour = "passed", STATUS_COLOURS[PASSED]
        where = ""
        if num_frames is not None and r.measurable and r.flagged:
            st = fired_frames(r, num_frames)
            where = ("frames " + _frame_list(np.nonzero(st == FIRED_HERE)[0])) if (st == FIRED_HERE).any() \
                else "whole clip"
        better = getattr(r, "better", "")
        value = format_value(r.value, getattr(r, "unit", ""))
        if better and _finite(r.value):
            value += f" ({better} is better)"
        rows.append(f"<tr style='background:rgb{colour}'><td><b>{html.escape(str(name))}</b></td>"
                    f"<td>{verdict}</td><td>{html.escape(value)}</td><td>{html.escape(where)}</td>"
                    f"<td>{html.escape(_detail(r))}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def compare_results_html(columns: Mapping[str, Mapping[str, Any]], *, metrics: Sequence[str] | None = None) -> str:
    """An HTML table of several clips' results side by side: one row per metric, one column per clip
    (``{column name: {metric: result}}``); each cell is the value, ``FIRED`` on a flagged result,
    ``not measurable`` (the reason as a tooltip) where the clip could not be measured."""
    if not columns:
        raise ValueError("compare_results_html: no columns given")
    names = list(metrics) if metrics is not None else list(dict.fromkeys(m for res in columns.values() for m in res))
    out = ["<table style='border-collapse:collapse;font-size:12px'><tr><th>metric</th>"
           + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"]
    for m in names:
        cells = []
        for c, res in columns.items():
            r = res.get(m)
            if r is None:
                cells.append("<td>-</td>")
                continue
            r = _check_result(r, m)
            if not r.measurable:
                cells.append(f"<td style='background:rgb{STATUS_COLOURS[NOT_MEASURABLE]}' "
                             f"title='{html.escape(str(getattr(r, 'reason', '')), quote=True)}'>not measurable</td>")
            else:
                status = FIRED_IN_CLIP if r.flagged else PASSED
                text = format_value(r.value, getattr(r, "unit", "")) + (" <b>FIRED</b>" if r.flagged else "")
                cells.append(f"<td style='background:rgb{STATUS_COLOURS[status]}'>{text}</td>")
        out.append(f"<tr><td><b>{html.escape(str(m))}</b></td>{''.join(cells)}</tr>")
    out.append("</table>")
    return "".join(out)


def flag_filmstrip(video: UInt8[np.ndarray, "t h w 3"], marked: Sequence[bool] | np.ndarray, *, every: int = 1,
                   upscale: int = 2, border: int = 2, gap: int = 2, columns: int | None = None,
                   colour: tuple[int, int, int] = MARK,
                   plain: tuple[int, int, int] = (215, 215, 215)) -> UInt8[np.ndarray, "H W 3"]:
    """Frames side by side (every ``every``-th; ``columns`` per row, default all in one row),
    each enlarged ``upscale`` times inside a ``border``-pixel frame: ``colour`` where
    ``marked[t]`` is true, ``plain`` (light grey) otherwise; ``gap`` white pixels between."""
    v = _video(video)
    m = np.asarray(marked)
    if m.shape != (v.shape[0],):
        raise ValueError(f"marked: expected one flag per frame ({v.shape[0]},), got shape {m.shape}")
    for name, val, lo in (("every", every, 1), ("upscale", upscale, 1), ("border", border, 0), ("gap", gap, 0),
                          ("columns", 1 if columns is None else columns, 1)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < lo:
            raise ValueError(f"{name}={val!r}: must be an integer >= {lo}")
    idx = list(range(0, v.shape[0], every))
    cols = len(idx) if columns is None else min(int(columns), len(idx))
    rows = math.ceil(len(idx) / cols)
    h, w = v.shape[1] * upscale, v.shape[2] * upscale
    hh, ww = h + 2 * border, w + 2 * border
    out = np.full((rows * hh + (rows - 1) * gap, cols * ww + (cols - 1) * gap, 3), 255, np.uint8)
    for i, t in enumerate(idx):
        r, c = divmod(i, cols)
        y0, x0 = r * (hh + gap), c * (ww + gap)
        out[y0:y0 + hh, x0:x0 + ww] = colour if bool(m[t]) else plain
        out[y0 + border:y0 + border + h, x0 + border:x0 + border + w] = v[t].repeat(upscale, 0).repeat(upscale, 1)
    return out


# --------------------------------------------------------------------------- #
# Trajectories: what should have happened vs what the tracker read back
# --------------------------------------------------------------------------- #


def _tracklet(tr: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    if isinstance(tr, (tuple, list)) and len(tr) == 3:
        colour, frames, xy = tr
    else:
        colour, frames, xy = _field(tr, "colour"), _field(tr, "frames"), _field(tr, "centroid")
    frames, xy = np.asarray(frames, int).reshape(-1), np.asarray(xy, float)
    if xy.shape != (len(frames), 2):
        raise ValueError(f"tracklet: centroid must be (n, 2) for its {len(frames)} frames, got {xy.shape}")
    return colour, frames, xy


def plot_overlay(frame: UInt8[np.ndarray, "h w 3"], *, truth_px: Float[np.ndarray, "t k 2"] | None = None,
                 colours: Sequence[Any] | None = None, tracklets: Sequence[Any] = (), current: int | None = None,
                 ax: Any = None, title: str | None = None) -> Any:
    """One frame with the true paths (solid lines, dot at the start, ring at ``current``) and
    the tracked paths (dashed, crosses; a square at ``current`` where the tracker found the
    object). True paths may be absent (a prompt has no truth). Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    from sora_jax.viz.plots import plot_trajectories

    img = np.asarray(frame)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"frame: expected a uint8 image (h, w, 3), got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6 * h / w + 0.3))
    if truth_px is not None:
        gt = np.asarray(truth_px, float)
        if colours is None:
            raise ValueError("plot_overlay: truth_px needs colours (one per object)")
        plot_trajectories(gt, colours, ax=ax, frame=img, current=current)
    else:
        ax.imshow(img, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest", alpha=0.6)
    for i, tr in enumerate(tracklets):
        colour, frames, xy = _tracklet(tr)
        rgb = _rgb(colour) if colour is not None else (0.3, 0.3, 0.3)
        ax.plot(xy[:, 0], xy[:, 1], "x--", color=rgb, lw=1, ms=5, mec="black", mew=0.8,
                label="tracked" if i == 0 else None)
        if current is not None and current in frames:
            j = int(np.nonzero(frames == current)[0][0])
            ax.plot(xy[j, 0], xy[j, 1], "s", mfc="none", mec="black", ms=10, mew=1.2)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize="x-small", loc="best")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


# --------------------------------------------------------------------------- #
# Injected failures, floors, worst clips, ID vs OOD
# --------------------------------------------------------------------------- #


def plot_injection_matrix(rows: Mapping[str, tuple[Mapping[str, Any], Sequence[str]]], *,
                          metrics: Sequence[str] | None = None, ax: Any = None) -> Any:
    """Which metric fired on which clip: one row per clip (``{label: (results, target metrics)}``;
    the untouched clip has no targets), one column per metric.

    Cells: ``caught`` (a target fired, green), ``MISSED`` (a target did not fire, red),
    ``also`` (a non-target fired: a side effect of the edit, orange), blank (passed),
    ``n/a`` (not measurable, grey). Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("plot_injection_matrix: no rows given")
    for label, row in rows.items():
        if not (isinstance(row, (tuple, list)) and len(row) == 2 and isinstance(row[0], Mapping)):
            raise ValueError(f"rows[{label!r}]: expected (results dict, target metrics)")
    if metrics is None:
        metrics = list(dict.fromkeys(m for res, _ in rows.values() for m in res))
    metrics = list(metrics)
    colours = {"caught": (39, 174, 96), "MISSED": (215, 40, 40), "also": (243, 156, 18), "": (250, 250, 250),
               "n/a": (200, 200, 200)}
    grid, text = np.zeros((len(rows), len(metrics), 3), np.uint8), []
    for i, (label, (res, targets)) in enumerate(rows.items()):
        line = []
        for j, m in enumerate(metrics):
            r = res.get(m)
            if r is None or not r.measurable:
                cell = "MISSED" if m in targets else "n/a"
            elif r.flagged:
                cell = "caught" if m in targets else "also"
            else:
                cell = "MISSED" if m in targets else ""
            grid[i, j] = colours[cell]
            line.append(cell)
        text.append(line)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.75 * len(metrics), 0.7 + 0.36 * len(rows)))
    ax.imshow(grid, aspect="auto", interpolation="nearest")
    for i, line in enumerate(text):
        for j, cell in enumerate(line):
            ax.text(j, i, cell, ha="center", va="center", fontsize=7,
                    color="white" if cell in ("caught", "MISSED") else "black")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(list(rows), fontsize=8)
    ax.set_xticks(np.arange(-0.5, len(metrics), 1), minor=True)
    ax.set_yticks(np.arange(-0.5, len(rows), 1), minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    return ax


def plot_floors(table: Mapping[str, Mapping[str, Mapping[str, Any]]], *, metrics: Sequence[str] | None = None,
                columns: Sequence[str] = FLOOR_COLUMNS, stat: str = "flagged_rate", ax: Any = None,
                title: str | None = None) -> Any:
    """Grouped bars, one group per metric: ``stat`` of the model and of each floor.

    ``table[metric][column]`` is an aggregate as in ``evaluate_physics_clips(...)["table"][family]``
    (``value``, ``flagged_rate``, ``measurable_rate``, ``n``, ``n_measurable``). ``stat``:
    ``flagged_rate`` or ``measurable_rate`` (both in [0, 1]). A missing or unmeasurable
    cell shows as an ``x`` on the axis. Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if stat not in ("flagged_rate", "measurable_rate"):
        raise ValueError(f"stat={stat!r}: valid: 'flagged_rate', 'measurable_rate'")
    if not table:
        raise ValueError("plot_floors: the table is empty")
    metrics = list(table) if metrics is None else list(metrics)
    bad = [m for m in metrics if m not in table]
    if bad:
        raise ValueError(f"plot_floors: metrics {bad} are not in the table; it has {', '.join(table)}")
    cols = [c for c in columns if any(c in table[m] for m in metrics)]
    if not cols:
        raise ValueError(f"plot_floors: none of the columns {list(columns)} is in the table")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.85 * len(metrics), 3.0))
    width = 0.8 / len(cols)
    for i, c in enumerate(cols):
        xs, ys, missing = [], [], []
        for j, m in enumerate(metrics):
            v = (table[m].get(c) or {}).get(stat)
            x = j - 0.4 + width * (i + 0.5)
            if _finite(v):
                xs.append(x)
                ys.append(float(v))
            else:
                missing.append(x)
        ax.bar(xs, ys, width, color=COLUMN_COLOURS.get(c, f"C{i}"))
        if missing:
            ax.plot(missing, [0.0] * len(missing), "x", color=COLUMN_COLOURS.get(c, f"C{i}"), ms=5, clip_on=False)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel({"flagged_rate": "share of clips flagged", "measurable_rate": "share measurable"}[stat], fontsize=8)
    handles = [Patch(color=COLUMN_COLOURS.get(c, f"C{i}"), label=COLUMN_LABELS.get(c, c)) for i, c in enumerate(cols)]
    handles.append(Line2D([], [], marker="x", ls="none", color="grey", label="no measurable clip"))
    ax.legend(handles=handles, fontsize=7, ncol=len(handles), loc="upper center", bbox_to_anchor=(0.5, -0.28),
              frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _better(evaluation: Mapping[str, Any], metric: str) -> str:
    for fam in evaluation.get("table", {}).values():
        cell = (fam.get(metric) or {}).get("model") or {}
        if cell.get("better"):
            return cell["better"]
    return "lower"


def worst_per_metric(evaluation: Mapping[str, Any], *, n: int = 2, metrics: Sequence[str] | None = None,
                     skip_floor: str | None = "ground_truth") -> dict[str, list[dict[str, Any]]]:
    """The ``n`` worst flagged model clips of every metric: ``{metric: [{index, value, family}, ...]}``.

    From an evaluation (``evaluate_physics_clips``): clips the metric flagged, worst value
    first (largest where lower is better, smallest where higher is better), skipping
    clips whose ``skip_floor`` floor is flagged by the same metric (a failure the
    ground truth shares is the instrument's, not the model's). Metrics no clip fails
    get an empty list.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r}: must be an integer >= 1")
    clips = evaluation.get("clips")
    if clips is None:
        raise ValueError("worst_per_metric: expected the dict evaluate_physics_clips returns (no 'clips')")
    names = list(metrics) if metrics is not None else list(evaluation.get("metrics") or
                                                           (clips[0]["model"] if clips else []))
    out: dict[str, list[dict[str, Any]]] = {}
    for m in names:
        sign = -1.0 if _better(evaluation, m) == "lower" else 1.0
        cands = []
        for c in clips:
            r = c["model"].get(m)
            if not r or not r.get("flagged"):
                continue
            floor = ((c.get("floors") or {}).get(skip_floor) or {}).get(m) if skip_floor else None
            if floor and floor.get("flagged"):
                continue
            v = r.get("value")
            key = sign * float(v) if _finite(v) else 0.0
            cands.append((key, {"index": int(c["index"]), "value": v, "family": c.get("family")}))
        cands.sort(key=lambda kv: kv[0])
        out[m] = [d for _, d in cands[:n]]
    return out


def reason_counts(evaluation: Mapping[str, Any], *, column: str = "model") -> dict[str, int]:
    """Why clips were not measurable: ``{reason: number of (clip, metric) pairs}``, most common first.

    ``column``: ``model`` or a floor name. A reason is cut at its first ``:`` or ``(`` so
    per-clip numbers ("73% of its 1001 pixels") do not split it.
    """
    counts: collections.Counter = collections.Counter()
    for c in evaluation.get("clips", ()):
        res = c.get("model") if column == "model" else (c.get("floors") or {}).get(column, {})
        for r in (res or {}).values():
            if not r.get("measurable", True):
                reason = str(r.get("reason", "")).split(":")[0].split("(")[0].strip() or "unknown"
                counts[reason] += 1
    return dict(counts.most_common())


def plot_id_ood(values: Mapping[str, Mapping[str, float | None]], *, references: Mapping[str, float] | None = None,
                unit: str = "m/s", log: bool = True, ax: Any = None, title: str | None = None,
                splits: Sequence[str] = ("ID", "OOD")) -> Any:
    """Bars of one number per source (``values[source][split]``), in- and out-of-distribution
    side by side (ID solid, OOD hatched); a missing number shows as ``n/a``. ``references``:
    ``{label: value}`` drawn as dotted horizontal lines (e.g. PhyWorld's published numbers).
    ``log``: a log axis (errors spanning decades). Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not values:
        raise ValueError("plot_id_ood: no values given")
    splits = list(splits)
    if not splits:
        raise ValueError("plot_id_ood: splits is empty")
    sources = list(values)
    refs = dict(references or {})
    if ax is None:
        _, ax = plt.subplots(figsize=(1.5 + 1.1 * len(sources), 3.0))
    nums = [float(v) for s in sources for v in values[s].values() if _finite(v)] + [float(v) for v in refs.values()]
    pos = [v for v in nums if v > 0]
    if log:
        lo = min(pos) / 3 if pos else 1e-3
        hi = max(pos) * 3 if pos else 1.0
    else:
        lo, hi = 0.0, (max(nums) * 1.15 if nums and max(nums) > 0 else 1.0)
    width = 0.8 / len(splits)
    hatches = ["", "//", "..", "xx"]
    for i, sp in enumerate(splits):
        for j, s in enumerate(sources):
            v = values[s].get(sp)
            x = j - 0.4 + width * (i + 0.5)
            colour = COLUMN_COLOURS.get(s, f"C{j}")
            if _finite(v):
                top = max(float(v), lo)
                ax.bar(x, top - lo, width, bottom=lo, color=colour, hatch=hatches[i % len(hatches)],
                       edgecolor="white" if i else "black", lw=0.5)
                ax.text(x, top, f"{float(v):.3g}", ha="center", va="bottom", fontsize=6)
            else:
                ax.text(x, lo, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="grey")
    for k, (label, v) in enumerate(refs.items()):
        ax.axhline(v, ls=":", lw=1.2, color=f"C{k + 4}")
    if log:
        ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.set_xlim(-0.6, len(sources) - 0.4)
    ax.set_xticks(range(len(sources)))
    ax.set_xticklabels([COLUMN_LABELS.get(s, s) for s in sources], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(unit, fontsize=8)
    handles = [Patch(facecolor="grey", hatch=hatches[i % len(hatches)], edgecolor="white" if i else "black", label=sp)
               for i, sp in enumerate(splits)]
    handles += [Line2D([], [], ls=":", lw=1.2, color=f"C{k + 4}", label=label) for k, label in enumerate(refs)]
    ax.legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


# --------------------------------------------------------------------------- #
# The app: pick a family and seed, generate, see where physics broke
# --------------------------------------------------------------------------- #


class PhysicsInspector:
    """Pick a scene (family, seed), a source (the model, the ground truth, a VAE reconstruction...)
    and what to score it against; scrub the frames. See :func:`physics_inspector`.

    Attributes after each :meth:`render`: ``clip``, ``video``, ``results``, ``tracklets``,
    ``frame`` and the widgets ``family``, ``seed``, ``source``, ``reference``,
    ``frame_slider``, ``video_html``, ``frame_image``, ``timeline``, ``table``, ``text``,
    ``status``; ``widget`` is the whole app.
    """

    def __init__(self, make_clip_fn: Callable[[str, int], Any], sources: Mapping[str, Callable[[Any], np.ndarray]],
                 evaluate_fn: Callable[[np.ndarray, Any, str], Mapping[str, Any]], families: Sequence[str], *,
                 track_fn: Callable[[np.ndarray], Sequence[Any]] | None = None,
                 references: Sequence[str] = ("prompt", "truth"), seed: int = 0, max_seed: int = 9999,
                 fps: float = 10, notes: Mapping[tuple[str, str], str] | None = None) -> None:
        import ipywidgets as w

        families, references = list(families), list(references)
        if not families:
            raise ValueError("physics_inspector: families is empty; pass e.g. sora_jax.config.FAMILIES")
        if not sources or not all(callable(f) for f in sources.values()):
            raise ValueError("physics_inspector: sources must map a name to callable(clip) -> uint8 video")
        for name, fn in (("make_clip_fn", make_clip_fn), ("evaluate_fn", evaluate_fn)):
            if not callable(fn):
                raise ValueError(f"physics_inspector: {name} must be callable")
        if track_fn is not None and not callable(track_fn):
            raise ValueError("physics_inspector: track_fn must be callable(video) -> tracklets, or None")
        if not references:
            raise ValueError("physics_inspector: references is empty")
        if not (isinstance(seed, (int, np.integer)) and 0 <= seed <= max_seed):
            raise ValueError(f"seed={seed!r}: must be an integer in 0..{max_seed}")
        self.make_clip_fn, self.sources = make_clip_fn, dict(sources)
        self.evaluate_fn, self.track_fn = evaluate_fn, track_fn
        self.fps, self.notes = fps, dict(notes or {})
        self.clip: Any = None
        self.video: np.ndarray | None = None
        self.results: dict[str, Any] = {}
        self.tracklets: list[Any] = []
        self.frame = 0
        self._clips: dict[tuple, Any] = {}
        self._videos: dict[tuple, np.ndarray] = {}
        self._results: dict[tuple, dict[str, Any]] = {}
        self._tracks: dict[tuple, list[Any]] = {}

        self.family = w.Dropdown(options=families, value=families[0], description="family")
        self.seed = w.BoundedIntText(value=int(seed), min=0, max=max_seed, description="seed")
        self.source = w.ToggleButtons(options=list(self.sources), value=next(iter(self.sources)), description="clip")
        self.reference = w.ToggleButtons(options=references, value=references[0], description="score vs")
        self.frame_slider = w.IntSlider(value=0, min=0, max=0, description="frame", continuous_update=False)
        self.video_html = w.HTML()
        self.frame_image = w.Image(format="png")
        self.timeline = w.Image(format="png")
        self.table = w.HTML()
        self.text = w.HTML()
        self.status = w.HTML()
        self.widget = w.VBox([w.HBox([self.family, self.seed]), self.source, self.reference, self.frame_slider,
                              self.status, self.text, w.HBox([self.video_html, self.frame_image]), self.timeline,
                              self.table])
        self._busy = False
        for wid in (self.family, self.seed, self.source, self.reference):
            wid.observe(lambda change: self._on_change(), names="value")
        self.frame_slider.observe(lambda change: self._on_frame(), names="value")

    # -- driving the app --------------------------------------------------------
    def render(self, family: str | None = None, seed: int | None = None, source: str | None = None,
               reference: str | None = None, frame: int | None = None) -> dict[str, Any]:
        """Set any control, make/generate/score what is needed (cached) and redraw.

        Returns ``clip``, ``video``, ``results``, ``frame``, ``fired`` (``{metric: frames
        where it fired}``, ``None`` entries for metrics that fired without naming frames),
        ``status``, ``text``, ``table_html``, ``video_html`` and the PNGs ``frame_png`` and
        ``timeline_png``.
        """
        for name, val, opts in (("family", family, self.family.options), ("source", source, self.source.options),
                                ("reference", reference, self.reference.options)):
            if val is not None and val not in opts:
                raise ValueError(f"{name}={val!r}: valid: {', '.join(map(str, opts))}")
        if seed is not None and not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
                                     and self.seed.min <= seed <= self.seed.max):
            raise ValueError(f"seed={seed!r}: must be an integer in {self.seed.min}..{self.seed.max}")
        self._busy = True
        try:
            for wid, val in ((self.family, family), (self.source, source), (self.reference, reference)):
                if val is not None:
                    wid.value = val
            if seed is not None:
                self.seed.value = int(seed)
        finally:
            self._busy = False
        self._compute()
        if frame is not None:
            T = self.video.shape[0]
            if not (isinstance(frame, (int, np.integer)) and 0 <= frame < T):
                raise ValueError(f"frame={frame!r}: must be an integer in 0..{T - 1}")
            self._busy = True
            self.frame_slider.value = int(frame)
            self._busy = False
        return self._draw()

    update = render

    def state(self) -> dict[str, Any]:
        T = 0 if self.video is None else self.video.shape[0]
        fired = {}
        for m, r in self.results.items():
            st = fired_frames(r, T) if T else np.zeros(0)
            if (st == FIRED_HERE).any():
                fired[m] = np.nonzero(st == FIRED_HERE)[0].tolist()
            elif (st == FIRED_IN_CLIP).any():
                fired[m] = None
        return {"clip": self.clip, "video": self.video, "results": self.results, "frame": self.frame,
                "fired": fired, "status": self.status.value, "text": self.text.value, "table_html": self.table.value,
                "video_html": self.video_html.value, "frame_png": bytes(self.frame_image.value),
                "timeline_png": bytes(self.timeline.value)}

    def _on_change(self) -> None:
        if self._busy:
            return
        try:
            self.render()
        except Exception as e:  # noqa: BLE001 - show any failure of the user's callables in the app
            self.status.value = f"<span style='color:#b00'>{html.escape(type(e).__name__ + ': ' + str(e))}</span>"

    def _on_frame(self) -> None:
        if not self._busy and self.video is not None:
            self._draw()

    # -- internals --------------------------------------------------------------
    def _compute(self) -> None:
        from sora_jax.viz.video import show_video

        fam, seed, src, ref = self.family.value, int(self.seed.value), self.source.value, self.reference.value
        self.status.value = f"<i>{html.escape(src)}: {html.escape(fam)} seed {seed}...</i>"
        key = (fam, seed)
        if key not in self._clips:
            self._clips[key] = self.make_clip_fn(fam, seed)
        clip = self._clips[key]
        vkey = (fam, seed, src)
        new_video = vkey not in self._videos
        if new_video:
            video = np.asarray(self.sources[src](clip))
            if video.ndim == 5 and video.shape[0] == 1:
                video = video[0]
            self._videos[vkey] = _video(video, f"sources[{src!r}](clip)")
        video = self._videos[vkey]
        rkey = (fam, seed, src, ref)
        if rkey not in self._results:
            scored = self.evaluate_fn(video, clip, ref)
            self._results[rkey] = {str(k): _check_result(v, str(k)) for k, v in scored.items()}
        if self.track_fn is not None and vkey not in self._tracks:
            self._tracks[vkey] = list(self.track_fn(video))
        self.clip, self.video, self.results = clip, video, self._results[rkey]
        self.tracklets = self._tracks.get(vkey, [])
        T = video.shape[0]
        self._busy = True
        self.frame_slider.max = T - 1
        self.frame_slider.value = min(self.frame_slider.value, T - 1)
        self._busy = False
        if new_video or self.video_html.value == "" or getattr(self, "_shown", None) != vkey:
            self.video_html.value = show_video(video, fps=self.fps, return_html=True)
            self._shown = vkey
        fired = [m for m, r in self.results.items() if r.measurable and r.flagged]
        unmeasurable = [m for m, r in self.results.items() if not r.measurable]
        prompt = _field(clip, "prompt")
        lines = []
        if prompt:
            lines.append(f"<b>prompt</b>: {html.escape(str(prompt))}")
        lines.append(f"<b>fired</b>: {html.escape(', '.join(fired) or 'none')}; <b>not measurable</b>: "
                     f"{html.escape(', '.join(unmeasurable) or 'none')}")
        note = self.notes.get((src, ref))
        if note:
            lines.append(f"<i>{html.escape(note)}</i>")
        self.text.value = "<br>".join(lines)
        self.table.value = metric_table_html(self.results, T)
        self.status.value = (f"{html.escape(src)} clip of {html.escape(fam)} seed {seed}, "
                             f"scored against the {html.escape(ref)}")

    def _draw(self) -> dict[str, Any]:
        import matplotlib.pyplot as plt

        video = self.video
        T, h, w = video.shape[:3]
        t = int(self.frame_slider.value)
        self.frame = t
        truth = _field(self.clip, "truth")
        here = [m for m, r in self.results.items() if fired_frames(r, T)[t] == FIRED_HERE]
        fig, ax = plt.subplots(figsize=(3.6, 3.6 * h / w + 0.3))
        plot_overlay(video[t], truth_px=None if truth is None else truth.to_pixels(h, w),
                     colours=None if truth is None else truth.colour, tracklets=self.tracklets, current=t, ax=ax,
                     title=f"frame {t}" + (f": {', '.join(here)} fired" if here else ""))
        self.frame_image.value = _png(fig)
        fig, ax = plt.subplots(figsize=(min(1.0 + 0.28 * T, 9.0), 0.8 + 0.28 * len(self.results)))
        plot_metric_timeline(self.results, T, current=t, ax=ax)
        self.timeline.value = _png(fig)
        return self.state()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.video is None:
            self.render()
        display(self.widget)


def physics_inspector(make_clip_fn: Callable[[str, int], Any], sources: Mapping[str, Callable[[Any], np.ndarray]],
                      evaluate_fn: Callable[[np.ndarray, Any, str], Mapping[str, Any]], families: Sequence[str],
                      **kwargs: Any) -> PhysicsInspector:
    """An ipywidgets app: pick a family and seed, make a clip, see which physics metric fired and where.

    ``make_clip_fn(family, seed)`` returns a scene with ``video``, ``prompt`` and ``truth``
    (a ``sora_jax.world.Clip``); ``sources[name](clip)`` gives the uint8 video to inspect
    (``{"model": generate from clip.prompt, "ground truth": clip.video, ...}``; called once
    per scene and cached); ``evaluate_fn(video, clip, reference)`` scores it and returns
    ``{metric: MetricResult}`` -- ``reference`` is one of ``references`` (default
    ``("prompt", "truth")``), e.g. ``evaluate_clip(video, clip.prompt if reference ==
    "prompt" else clip.truth)``. ``track_fn(video)`` (optional) gives tracklets to draw.

    Shows the clip, the chosen frame with the true paths (solid) and the tracked ones
    (dashed), a metrics x frames board (red: fired at that frame) and a table of every
    metric's verdict, value, where it fired and why a clip was not measurable. ``notes``:
    ``{(source, reference): text}`` shown under the prompt (caveats). Options: ``seed``,
    ``max_seed``, ``fps``. ``.render(family, seed, source, reference, frame)`` drives it
    from code.
    """
    return PhysicsInspector(make_clip_fn, sources, evaluate_fn, families, **kwargs)


__all__ = [
    "FIRED_HERE", "FIRED_IN_CLIP", "NOT_MEASURABLE", "PASSED", "PhysicsInspector", "compare_results_html",
    "flag_filmstrip", "fired_frames", "format_value",
    "metric_table_html", "metric_timeline", "physics_inspector", "plot_floors", "plot_id_ood",
    "plot_injection_matrix", "plot_metric_timeline", "plot_overlay", "reason_counts",
    "worst_per_metric",
]
