"""Synthetic clips for the VAE/trainer tests: white background, flat moving discs.

Local to the tests so they do not depend on the world renderer; the real trainer
reads ``sora_jax.data.make_batches``.
"""

from __future__ import annotations

import numpy as np


def disc_clips(n: int, t: int, h: int, w: int, seed: int) -> np.ndarray:
    """``n`` uint8 clips ``(n, t, h, w, 3)``: 1-2 anti-aliased saturated discs moving linearly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    out = np.full((n, t, h, w, 3), 255.0, np.float32)
    colours = np.array([[220, 30, 30], [30, 70, 220], [30, 160, 60], [235, 190, 0]], np.float32)
    for i in range(n):
        for _ in range(rng.integers(1, 3)):
            r = rng.uniform(0.15, 0.3) * min(h, w)
            p = rng.uniform([r, r], [w - r, h - r])
            v = rng.uniform(-1, 1, 2) * min(h, w) / max(t, 2) * 0.5
            c = colours[rng.integers(len(colours))]
            for f in range(t):
                cx, cy = p + v * f
                cover = np.clip(r + 0.5 - np.hypot(xx - cx, yy - cy), 0.0, 1.0)[..., None]
                out[i, f] = out[i, f] * (1 - cover) + c * cover
    return np.round(out).astype(np.uint8)


def batch_stream(batch_size: int, t: int, h: int, w: int, seed: int = 0):
    """``start_step -> iterator`` of ``{"video": uint8}`` batches; batch s depends only on (seed, s)."""

    def make(start_step: int):
        s = start_step
        while True:
            yield {"video": disc_clips(batch_size, t, h, w, seed * 1_000_003 + s)}
            s += 1

    return make
