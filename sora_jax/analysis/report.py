"""Reports of a physics evaluation: a PNG of the worst clips, or an HTML page with tables and that PNG.

matplotlib is imported only when a report is written.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _strip(video: np.ndarray, n: int = 6) -> np.ndarray:
    """``n`` evenly spaced frames side by side with a 1-pixel grey gap: uint8 (h, n (w + 1), 3)."""
    t = video.shape[0]
    idx = np.linspace(0, t - 1, min(n, t)).round().astype(int)
    h, w = video.shape[1:3]
    out = np.full((h, len(idx) * (w + 1) - 1, 3), 200, np.uint8)
    for i, f in enumerate(idx):
        out[:, i * (w + 1):i * (w + 1) + w] = video[f]
    return out


def worst_clips_png(path: str | os.PathLike | None, worst: Sequence[Mapping[str, Any]],
                    videos: Mapping[int, np.ndarray], references: Mapping[int, np.ndarray] | None = None,
                    *, frames: int = 6) -> bytes:
    """A figure with one row per clip in ``worst``: its frames (and the ground truth's), prompt and failures.

    ``worst`` rows carry ``index``, ``family``, ``prompt``, ``flagged`` ({metric: note}).
    ``videos[index]`` is the evaluated clip, ``references[index]`` the ground-truth render.
    Writes ``path`` (PNG) when given; returns the PNG bytes.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [w for w in worst if w["index"] in videos] or [{"index": None}]
    ncol = 2 if references else 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(6.5 * ncol, 1.9 * len(rows) + 0.3), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            ax.axis("off")
            if row["index"] is None:
                ax.text(0.5, 0.5, "no clip was flagged", ha="center", va="center")
                continue
            src = videos if c == 0 else references
            ax.imshow(_strip(src[row["index"]], frames), interpolation="nearest")
            if c == 0:
                failures = "; ".join(f"{k}: {v}" for k, v in row.get("flagged", {}).items())
                ax.set_title(f"#{row['index']} {row.get('family', '')}: {row.get('prompt', '')[:70]}\n{failures[:110]}",
                             fontsize=7, loc="left")
            else:
                ax.set_title("ground truth", fontsize=7, loc="left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        _write_bytes(Path(path), data)
    return data


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}"
    return html.escape(str(x))


def table_html(table: Mapping[str, Mapping[str, Mapping[str, Any]]], columns: Sequence[str]) -> str:
    """One HTML table per family: rows are metrics, columns model and floors (value / flagged rate)."""
    parts = []
    for family, rows in table.items():
        parts.append(f"<h3>{html.escape(family)}</h3><table><tr><th>metric</th><th>unit</th>"
                     + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for metric, cells in rows.items():
            unit = next((cells[c].get("unit") for c in columns if c in cells and cells[c].get("unit")), "")
            tds = []
            for c in columns:
                a = cells.get(c)
                if a is None:
                    tds.append("<td>-</td>")
                else:
                    tds.append(f"<td>{_fmt(a.get('value'))} <small>flagged {_fmt(a.get('flagged_rate'))}, "
                               f"measurable {_fmt(a.get('measurable_rate'))}</small></td>")
            parts.append(f"<tr><td>{html.escape(metric)}</td><td>{html.escape(str(unit))}</td>{''.join(tds)}</tr>")
        parts.append("</table>")
    return "\n".join(parts)


def write_report(path: str | os.PathLike, result: Mapping[str, Any], videos: Mapping[int, np.ndarray],
                 references: Mapping[int, np.ndarray] | None = None) -> Path:
    """Write ``path``: ``.png`` -> the worst clips figure; ``.html`` -> tables per family plus that figure.

    ``result`` is what :func:`~sora_jax.analysis.physics.evaluate_physics_clips` returns.
    """
    path = Path(path)
    if path.suffix.lower() not in (".png", ".html", ".htm"):
        raise ValueError(f"report {str(path)!r}: valid extensions are .png and .html")
    png = worst_clips_png(None, result.get("worst", []), videos, references)
    if path.suffix.lower() == ".png":
        _write_bytes(path, png)
        return path
    columns = ["model"] + list(result.get("floors", []))
    head = html.escape(str(result.get("title", "physics evaluation")))
    meta = ", ".join(f"{k}: {html.escape(str(result[k]))}" for k in ("checkpoint", "split", "ood", "n_clips", "mode")
                     if k in result)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{head}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}} small{{color:#666}}</style></head><body>
<h1>{head}</h1><p>{meta}</p>
<p>Each cell: mean value over measurable clips, the share of measurable clips flagged, and the share measurable.
Floors: ground_truth (the tracker on true renders), vae (reconstructions), resim (two perturbed re-simulations).</p>
{table_html(result.get("table", {}), columns)}
<h2>Worst clips</h2><img src="data:image/png;base64,{base64.b64encode(png).decode()}" style="max-width:100%">
</body></html>"""
    _write_bytes(path, page.encode())
    return path


def _write_bytes(path: Path, data: bytes) -> None:
    """Write atomically: a temporary sibling, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
