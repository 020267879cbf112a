"""The shipped demo model (data/demo): loads, and makes a clip of the world, not noise."""

from pathlib import Path

import numpy as np
import pytest

from sora_jax.pipeline import load_pipeline
from sora_jax.world.track import track
from sora_jax.world.types import BACKGROUND

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline(DEMO)


def test_demo_checkpoint_is_small_and_complete():
    files = [p for p in DEMO.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total < 50 * 2**20, f"data/demo is {total / 2**20:.1f} MB; the budget for all checkpoints is 50 MB"
    assert (DEMO / "MODEL_CARD.md").is_file() and (DEMO / "vae" / "latent_stats.json").is_file()


def test_demo_generates_a_world_clip(pipe):
    T, H, W = pipe.trained_size
    video = pipe.generate("a red ball moves to the right", steps=8, seed=0)
    assert video.shape == (T, H, W, 3) and video.dtype == np.uint8
    assert video.std() > 10                                        # not a constant clip
    near_bg = np.abs(video.astype(int) - np.array(BACKGROUND)).max(-1) < 30
    assert near_bg.mean() > 0.5                                    # mostly the world's white background, not noise
    tracks = track(video)
    found = tracks.count()                                         # objects per frame, any colour
    assert (found >= 1).mean() > 0.5, f"tracker found objects in only {(found >= 1).mean():.0%} of frames"
