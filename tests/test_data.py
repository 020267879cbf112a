"""Tests for sora_jax.data: world stream, resumable batches, mp4 IO, folders of video."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sora_jax import data
from sora_jax.config import Config, TrainConfig, WorldConfig
from sora_jax.world import make_clip as real_clip
from sora_jax.world import types

TINY = WorldConfig(height=24, width=28, num_frames=5, max_objects=3)
HERE = Path(__file__).parent
CARPHONE = HERE / "data" / "carphone_pristine.mp4"


def fake_clip(cfg: WorldConfig, family: str, seed: int) -> types.Clip:
    """A cheap stand-in for the world: 1-2 coloured squares moving in a straight line."""
    rng = np.random.default_rng(seed)
    t, h, w = cfg.num_frames, cfg.height, cfg.width
    k = 1 + seed % 2
    view = (cfg.view_height * w / h, cfg.view_height)
    start = rng.uniform(2.0, 8.0, (k, 2))
    vel = rng.uniform(-1.5, 1.5, (k, 2))
    times = np.arange(t)[:, None, None] * cfg.dt
    positions = start[None] + vel[None] * times                       # (t, k, 2) metres
    colours = tuple(list(types.PALETTE)[(seed + i) % len(types.PALETTE)] for i in range(k))
    truth = types.Truth(
        family=family, seed=seed, split=cfg.split, dt=cfg.dt, view=view,
        positions=positions, velocities=np.broadcast_to(vel, (t, k, 2)).copy(),
        radius=np.full(k, 0.8), colour=colours, shape=("square",) * k,
        visible=np.ones((t, k)), in_frame=np.ones((t, k), bool), camera=np.zeros((t, 2)),
        state=np.zeros((t, k), np.int32), params={"speed": np.float32(1.5)},
    )
    video = np.full((t, h, w, 3), 255, np.uint8)
    px = truth.to_pixels(h, w)
    for f in range(t):
        for i in range(k):
            c, r = np.round(px[f, i]).astype(int)
            video[f, max(r - 2, 0):r + 3, max(c - 2, 0):c + 3] = types.PALETTE[colours[i]]
    return types.Clip(video=video, caption=f"{family} caption {seed}", prompt=f"{family} prompt", truth=truth)


def take(it, n):
    return [next(it) for _ in range(n)]


def assert_batches_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# --------------------------------------------------------------------------- #
# World stream
# --------------------------------------------------------------------------- #


def test_world_batch_shapes_and_types():
    batch = next(data.world_batches(TINY, 3, clip_fn=fake_clip))
    assert batch["video"].shape == (3, 5, 24, 28, 3) and batch["video"].dtype == np.uint8
    assert batch["caption"].shape == (3,) and batch["caption"].dtype.kind == "U"
    assert batch["prompt"].dtype.kind == "U" and batch["family"].dtype.kind == "U"
    assert batch["positions"].shape == (3, 5, 3, 2) and batch["positions"].dtype == np.float32
    assert batch["visible"].shape == (3, 5, 3)
    assert batch["valid"].shape == (3, 3) and batch["valid"].dtype == bool
    # padding: invalid slots are zero and the valid count matches the clip
    for b in range(3):
        n = 1 + int(batch["seed"][b]) % 2
        assert batch["valid"][b].sum() == n
        assert not batch["positions"][b, :, n:].any()
        assert set(batch["family"]) <= set(TINY.families)


def test_truth_positions_point_at_the_object():
    ex = data.world_dataset(TINY, split="val", clip_fn=fake_clip)[4]
    for f in range(TINY.num_frames):
        col, row = np.round(ex["positions"][f, 0]).astype(int)
        if 0 <= row < TINY.height and 0 <= col < TINY.width:
            assert tuple(ex["video"][f, row, col]) != (255, 255, 255)


def test_same_seed_same_batches_other_seed_other_order():
    a = take(data.world_batches(TINY, 4, seed=7, clip_fn=fake_clip), 2)
    b = take(data.world_batches(TINY, 4, seed=7, clip_fn=fake_clip), 2)
    for x, y in zip(a, b):
        assert_batches_equal(x, y)
    c = next(data.world_batches(TINY, 4, seed=8, clip_fn=fake_clip))
    assert not np.array_equal(a[0]["seed"], c["seed"])


def test_splits_are_disjoint_and_heldout_splits_fixed():
    seeds = {}
    for split in data.SPLITS:
        idx = data.clip_indices(split, seed=3)
        seeds[split] = {data.clip_seed(split, idx[i]) for i in range(400)}
    assert not seeds["train"] & seeds["val"]
    assert not seeds["train"] & seeds["test"]
    assert not seeds["val"] & seeds["test"]
    # the training order is a shuffle; val/test are read in order, whatever the seed
    assert sorted(data.clip_indices("train", 3)[i] for i in range(20)) != list(range(20))
    for s in (0, 5):
        assert [data.clip_indices("test", s)[i] for i in range(6)] == list(range(6))
    ex = data.world_dataset(TINY, split="test", seed=11, clip_fn=fake_clip)[2]
    assert ex["seed"] == data.clip_seed("test", 2)
    with pytest.raises(ValueError, match="valid splits"):
        data.world_dataset(TINY, split="holdout", clip_fn=fake_clip)


def test_families_cycle_over_config():
    cfg = dataclasses.replace(TINY, families=("parabola", "counting"))
    fams = [data.world_dataset(cfg, split="val", clip_fn=fake_clip)[i]["family"] for i in range(4)]
    assert fams == ["parabola", "counting", "parabola", "counting"]


def test_resume_at_step_matches_uninterrupted():
    full = take(data.world_batches(TINY, 3, seed=1, clip_fn=fake_clip), 5)
    resumed = take(data.world_batches(TINY, 3, seed=1, start_step=3, clip_fn=fake_clip), 2)
    assert_batches_equal(resumed[0], full[3])
    assert_batches_equal(resumed[1], full[4])


def test_threads_give_the_same_batches():
    a = take(data.world_batches(TINY, 2, seed=4, clip_fn=fake_clip), 3)
    b = take(data.world_batches(TINY, 2, seed=4, num_threads=2, clip_fn=fake_clip), 3)
    for x, y in zip(a, b):
        assert_batches_equal(x, y)


def test_worker_processes_give_the_same_batches():
    a = take(data.world_batches(TINY, 2, seed=4, clip_fn=real_clip, start_step=1), 3)
    it = data.world_batches(TINY, 2, seed=4, num_workers=2, clip_fn=real_clip, start_step=1)
    try:
        b = take(it, 3)
    finally:
        it.close()
    for x, y in zip(a, b):
        assert_batches_equal(x, y)


def test_real_world_batches_and_truth():
    cfg = dataclasses.replace(TINY, height=32, width=36, num_frames=5, max_objects=5)
    batch = next(data.world_batches(cfg, 9, split="val", clip_fn=real_clip))
    assert batch["video"].shape == (9, 5, 32, 36, 3) and batch["video"].dtype == np.uint8
    assert list(batch["family"]) == list(cfg.families)            # val cycles through every family
    assert all(len(c) > 10 for c in batch["caption"]) and all(batch["prompt"])
    assert batch["valid"].any(axis=1).all()
    # a fully visible object's centre pixel is far from the white background
    b, f, k = np.nonzero((batch["visible"] > 0.99) & batch["valid"][:, None, :])
    col, row = np.round(batch["positions"][b, f, k]).astype(int).T
    inside = (row >= 0) & (row < 32) & (col >= 0) & (col < 36)
    pixels = batch["video"][b[inside], f[inside], row[inside], col[inside]].astype(int)
    assert (np.abs(pixels - 255).sum(-1) > 60).mean() > 0.9


@pytest.mark.parametrize("split", data.SPLITS)
def test_world_stream_at_the_tiny_size_never_raises(split):
    """A training stream must not die on an unlucky seed: every family renders at configs/world.py:tiny."""
    from sora_jax.config import load_config

    cfg = load_config(HERE.parent / "configs" / "world.py", "tiny").world
    ds = data.world_dataset(cfg, split=split, seed=0)
    failures = []
    for i in range(4 * len(cfg.families)):
        try:
            ds[i]
        except ValueError as e:
            failures.append(f"clip {i}: {e}")
    assert not failures, "\n".join(failures)


def test_too_many_objects_is_a_clear_error():
    cfg = dataclasses.replace(TINY, max_objects=1)
    ds = data.world_dataset(cfg, split="val", clip_fn=fake_clip)
    assert ds[1]["valid"].tolist() == [True]        # seed 4: one object fits
    with pytest.raises(ValueError, match="2 objects but world.max_objects=1"):
        ds[0]                                       # seed 1: two objects do not


# --------------------------------------------------------------------------- #
# Video IO
# --------------------------------------------------------------------------- #


def _binaries():
    bins = [pytest.param(data.bundled_ffmpeg(), id="imageio-ffmpeg")]
    system = shutil.which("ffmpeg")
    if system:
        bins.append(pytest.param(system, id="system"))
    return bins


@pytest.mark.parametrize("ffmpeg", _binaries())
def test_lossless_video_round_trip_is_exact(tmp_path, ffmpeg):
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (7, 19, 23, 3), dtype=np.uint8)  # odd sizes, noise: worst case
    path = data.write_video(tmp_path / "v.mp4", video, fps=10, ffmpeg=ffmpeg)
    back = data.read_video(path, ffmpeg=ffmpeg)
    np.testing.assert_array_equal(back, video)
    assert data.read_video(path, max_frames=3, ffmpeg=ffmpeg).shape == (3, 19, 23, 3)
    assert not [p for p in tmp_path.iterdir() if p.name != "v.mp4"]  # no temp files left


def test_system_and_bundled_ffmpeg_decode_the_same():
    if not shutil.which("ffmpeg"):
        pytest.skip("no system ffmpeg")
    a = data.read_video(CARPHONE, max_frames=9, ffmpeg=shutil.which("ffmpeg"))
    b = data.read_video(CARPHONE, max_frames=9, ffmpeg=data.bundled_ffmpeg())
    assert a.shape == (9, 144, 176, 3)
    # both are bit-exact H.264 decoders; allow 1 level for a different yuv->rgb path
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_lossy_video_is_close(tmp_path):
    video = fake_clip(dataclasses.replace(TINY, height=32, width=32), "uniform", 3).video
    back = data.read_video(data.write_video(tmp_path / "v.mp4", video, lossless=False))
    assert back.shape == video.shape
    assert np.abs(back.astype(int) - video.astype(int)).mean() < 8
    with pytest.raises(ValueError, match="even height and width"):
        data.write_video(tmp_path / "odd.mp4", video[:, :31], lossless=False)


def test_write_video_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        data.write_video(tmp_path / "v.mp4", np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(t, h, w, 3\)"):
        data.write_video(tmp_path / "v.mp4", np.zeros((8, 8, 3), np.uint8))


def test_real_footage_reads():
    video = data.read_video(CARPHONE)
    assert video.shape == (120, 144, 176, 3) and video.dtype == np.uint8
    assert 40 < video.mean() < 220 and video.std() > 20    # a real picture, not a flat frame


def test_center_crop_resize_keeps_the_middle():
    video = np.zeros((2, 20, 40, 3), np.uint8)
    video[:, :, 10:30] = 200                          # the middle half is bright
    out = data.center_crop_resize(video, 10, 10)      # square crop = columns 10..29, then halve
    assert out.shape == (2, 10, 10, 3)
    assert out.min() >= 190                           # only the bright middle survived
    same = data.center_crop_resize(video, 20, 40)
    assert same is video


# --------------------------------------------------------------------------- #
# Splits on disk and folders of video
# --------------------------------------------------------------------------- #


def test_write_split_folder_dataset_round_trip(tmp_path):
    out = data.write_split(TINY, tmp_path / "test", 4, split="test", clip_fn=fake_clip, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["00000.mp4", "00001.mp4", "00002.mp4", "00003.mp4",
                                                     "captions.jsonl", "world.json"]
    records = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in records] == [data.clip_seed("test", i) for i in range(4)]
    ds = data.folder_dataset(out, num_frames=TINY.num_frames, height=TINY.height, width=TINY.width)
    assert len(ds) == 4
    world = data.world_dataset(TINY, split="test", clip_fn=fake_clip)
    for i in range(4):
        a, b = ds[i], world[i]
        np.testing.assert_array_equal(a["video"], b["video"])   # lossless: bit-exact pixels
        assert (a["caption"], a["prompt"], a["family"], a["seed"]) == (b["caption"], b["prompt"], b["family"], b["seed"])
    # the ground truth survives the trip through JSON
    clips = data.read_split(out)
    truth = fake_clip(TINY, records[1]["family"], records[1]["seed"]).truth
    np.testing.assert_allclose(clips[1].truth.positions, truth.positions)
    assert clips[1].truth.colour == truth.colour
    # folder batches stack like world batches
    batch = next(data.batches_from(ds, 2))
    assert batch["video"].shape == (2, 5, 24, 28, 3) and batch["caption"].dtype.kind == "U"
    # a train export is the start of the shuffled training stream
    tr = data.write_split(TINY, tmp_path / "train", 2, split="train", seed=5, clip_fn=fake_clip, progress=False)
    first = data.world_dataset(TINY, split="train", seed=5, clip_fn=fake_clip)[1]
    assert json.loads((tr / "captions.jsonl").read_text().splitlines()[1])["seed"] == first["seed"]


def test_real_world_split_round_trip_is_exact(tmp_path):
    cfg = dataclasses.replace(TINY, height=32, width=32, num_frames=17, max_objects=5)
    out = data.write_split(cfg, tmp_path / "w", 3, split="test", clip_fn=real_clip, progress=False)
    for i, clip in enumerate(data.read_split(out)):
        want = real_clip(cfg, cfg.families[i], data.clip_seed("test", i))
        np.testing.assert_array_equal(clip.video, want.video)
        assert clip.caption == want.caption and clip.prompt == want.prompt
        np.testing.assert_allclose(clip.truth.positions, want.truth.positions)
        assert clip.truth.events == want.truth.events and clip.truth.family == cfg.families[i]


def test_folder_dataset_frames_stride_and_resize(tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copy(CARPHONE, folder / "carphone.mp4")
    (folder / "captions.jsonl").write_text(json.dumps({"file": "carphone.mp4", "caption": "a man on a phone in a car"}) + "\n")
    ds = data.folder_dataset(folder, num_frames=5, height=16, width=24, frame_stride=4)
    ex = ds[0]
    assert ex["video"].shape == (5, 16, 24, 3) and ex["video"].dtype == np.uint8
    assert ex["caption"] == ex["prompt"] == "a man on a phone in a car" and ex["seed"] == -1 and ex["family"] == ""
    full = data.read_video(CARPHONE, max_frames=17)
    want = data.center_crop_resize(full[::4], 16, 24)
    np.testing.assert_array_equal(ex["video"], want)
    # too short for what was asked: a clear error naming the file
    long = data.folder_dataset(folder, num_frames=50, height=16, width=24, frame_stride=4)
    with pytest.raises(ValueError, match=r"carphone\.mp4: has 120 frames, need 197"):
        long[0]


def test_make_batches_dispatches_on_train_data(tmp_path):
    out = data.write_split(TINY, tmp_path / "f", 3, split="val", clip_fn=fake_clip, progress=False)
    cfg = Config(world=TINY, train=TrainConfig(data="folder", data_dir=str(out)))
    it = data.make_batches(cfg, 2, split="train", seed=0)
    seen = {int(s) for _ in range(3) for s in next(it)["seed"]}   # repeats forever
    assert seen <= {data.clip_seed("val", i) for i in range(3)} and len(seen) >= 2
    once = list(data.make_batches(cfg, 2, split="val"))
    assert [len(b["seed"]) for b in once] == [2, 1]                 # eval: one pass, keeps the remainder
    with pytest.raises(ValueError, match="data_dir"):
        data.make_batches(Config(world=TINY, train=TrainConfig(data="folder")), 2)


def test_bad_folders_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.folder_dataset(tmp_path / "nowhere", num_frames=5, height=8, width=8)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no .mp4 files"):
        data.folder_dataset(empty, num_frames=5, height=8, width=8)
    folder = data.write_split(TINY, tmp_path / "ok", 2, clip_fn=fake_clip, progress=False)
    lines = (folder / "captions.jsonl").read_text()
    (folder / "captions.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="captions.jsonl"):
        data.folder_dataset(folder, num_frames=5, height=8, width=8)
    (folder / "captions.jsonl").write_text(lines + json.dumps({"file": "ghost.mp4", "caption": "x"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"ghost\.mp4"):
        data.folder_dataset(folder, num_frames=5, height=8, width=8)
    (folder / "captions.jsonl").write_text(lines + "{not json\n")
    with pytest.raises(ValueError, match=r"captions\.jsonl:3: not valid JSON"):
        data.folder_dataset(folder, num_frames=5, height=8, width=8)


def test_corrupt_mp4_is_a_value_error_naming_the_file(tmp_path):
    folder = data.write_split(TINY, tmp_path / "c", 2, clip_fn=fake_clip, progress=False)
    good = (folder / "00001.mp4").read_bytes()
    (folder / "00001.mp4").write_bytes(good[: len(good) // 2])          # truncated download
    (folder / "junk.mp4").write_bytes(os.urandom(3000))                  # not a video at all
    ds = data.folder_dataset(folder, num_frames=5, height=24, width=28)
    assert ds[0]["video"].shape == (5, 24, 28, 3)
    with pytest.raises(ValueError, match=r"00001\.mp4"):
        ds[1]
    with pytest.raises(ValueError, match=r"junk\.mp4"):
        data.read_video(folder / "junk.mp4")
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        data.read_video(folder / "missing.mp4")


def test_interrupted_export_leaves_nothing(tmp_path):
    calls = []

    def dies_on_third(cfg, family, seed):
        calls.append(seed)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressed ctrl-C mid-export
        return fake_clip(cfg, family, seed)

    with pytest.raises(KeyboardInterrupt):
        data.write_split(TINY, tmp_path / "out", 5, clip_fn=dies_on_third, progress=False)
    assert list(tmp_path.iterdir()) == []        # no out/, no temp folder
    # an existing split is kept unless overwrite=True, which replaces it whole
    out = data.write_split(TINY, tmp_path / "out", 2, clip_fn=fake_clip, progress=False)
    with pytest.raises(FileExistsError, match="out"):
        data.write_split(TINY, out, 3, clip_fn=fake_clip, progress=False)
    data.write_split(TINY, out, 3, clip_fn=fake_clip, overwrite=True, progress=False)
    assert len((out / "captions.jsonl").read_text().splitlines()) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
