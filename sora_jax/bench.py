"""Benchmarks of the input side: how fast the world renders and the pipeline batches.

``sora-jax bench world`` prints the machine (CPU count, JAX backend) and a table:
one row per measurement, e.g. ``world_batches`` throughput with 0 and 2 worker
processes. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import importlib
import os
import platform
import time
from typing import Any, Callable, Iterable

from sora_jax.config import Config


def machine_info() -> dict[str, Any]:
    """CPU count, JAX backend and devices, library versions: the context for any timing."""
    import grain
    import numpy as np

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "grain": grain.__version__,
    }
    try:
        import jax

        info["jax"] = jax.__version__
        info["jax_backend"] = jax.default_backend()
        info["jax_devices"] = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
    except Exception as e:  # a broken accelerator install should not hide the CPU figures
        info["jax_backend"] = f"unavailable ({type(e).__name__})"
    return info


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as an aligned plain-text table (columns in first-seen order)."""
    if not rows:
        return "(no rows)"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    table = [cols] + [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def time_batches(make_iter: Callable[[], Any], num_batches: int) -> dict[str, float]:
    """Time an iterator: seconds to the first batch (start-up), then steady batches per second."""
    t0 = time.perf_counter()
    it = make_iter()
    try:
        next(it)
        t1 = time.perf_counter()
        for _ in range(num_batches):
            next(it)
        t2 = time.perf_counter()
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return {"first_batch_s": t1 - t0, "batches_per_s": num_batches / (t2 - t1)}


def bench_world(
    cfg: Config,
    *,
    batch_size: int = 8,
    num_batches: int = 8,
    workers: Iterable[int] = (0, 2),
    clip_fn: Callable | None = None,
) -> list[dict[str, Any]]:
    """Throughput of ``world_batches`` per worker count, plus the world's own bench when present.

    Each row: pipeline, batch size, clip shape, seconds to the first batch
    (includes starting worker processes), steady batches/s and clips/s over
    ``num_batches`` further batches.
    """
    from sora_jax import data

    if batch_size < 1 or num_batches < 1:
        raise ValueError(f"batch_size={batch_size}, num_batches={num_batches}: both must be >= 1")
    rows: list[dict[str, Any]] = []
    try:  # the renderer's own figures (sora_jax.world.bench), when that module exists
        world_bench = importlib.import_module("sora_jax.world.bench")
    except ModuleNotFoundError as e:
        if e.name not in ("sora_jax.world.bench", "sora_jax.world"):
            raise
        world_bench = None
    if world_bench is not None and hasattr(world_bench, "bench_world"):
        out = world_bench.bench_world(cfg.world)
        rows += [{"pipeline": "world render", **r} for r in (out if isinstance(out, list) else [out])]
    w = cfg.world
    shape = f"{w.num_frames}x{w.height}x{w.width}"
    for n in workers:
        timing = time_batches(
            lambda: data.world_batches(w, batch_size, num_workers=int(n), clip_fn=clip_fn), num_batches
        )
        rows.append({
            "pipeline": f"world_batches workers={n}",
            "batch": batch_size,
            "clip": shape,
            **timing,
            "clips_per_s": timing["batches_per_s"] * batch_size,
        })
    return rows
