"""The physics experiment runner with fake pipelines (no trained model), and the PhyWorld study config."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from sora_jax.analysis import evaluate_physics, evaluate_physics_clips, format_table, inject, scene_seed
from sora_jax.config import Config, WorldConfig, load_config
from sora_jax.world import make_clips

WORLD = WorldConfig(height=64, width=64, num_frames=9, families=("uniform", "counting", "cause_effect"))


class FakePipeline:
    """Answers prompts with the ground-truth clip of the scene they came from (optionally corrupted)."""

    def __init__(self, world: WorldConfig, corrupt: str | None = None, blank: bool = False):
        self.config = Config(world=world)
        self.corrupt = corrupt
        self.blank = blank
        self.scenes: dict[str, tuple[np.ndarray, object]] = {}
        self.calls: list[dict] = []

    def _index(self, split_world: WorldConfig, n: int, split: str) -> None:
        fams = split_world.families
        clips = make_clips(split_world, [fams[j % len(fams)] for j in range(n)], [scene_seed(split, j) for j in range(n)])
        self.scenes = {c.prompt: (c.video, c.truth) for c in clips}

    def generate(self, prompts, *, num_frames, height, width, seed, **opts):
        self.calls.append({"n": len(prompts), "frames": num_frames, "size": (height, width), "seed": seed, **opts})
        out = []
        for p in prompts:
            video, truth = self.scenes[p]
            if self.blank:
                video = np.full_like(video, 255)
            elif self.corrupt:
                try:
                    video = inject(self.corrupt, video, truth).video
                except ValueError:
                    pass
            out.append(video)
        return np.stack(out)

    def reconstruct(self, video):
        return video.copy()


class ConditionedFake(FakePipeline):
    def generate(self, prompts, *, num_frames, height, width, seed, first_frames=None, **opts):
        assert first_frames is not None and first_frames.shape[1] == 3
        return super().generate(prompts, num_frames=num_frames, height=height, width=width, seed=seed, **opts)


def _fake(n: int, **kw) -> FakePipeline:
    pipe = FakePipeline(WORLD, **kw)
    pipe._index(WORLD, n, "test")
    return pipe


def test_evaluate_physics_with_a_perfect_model(tmp_path):
    pipe = _fake(6)
    res = evaluate_physics(pipeline=pipe, n_clips=6, split="test", progress=False, steps=3, shift=2.5,
                           json_out=tmp_path / "out.json", report=tmp_path / "report.html",
                           guidance_interval=(0.5, 1.0), eta=1.0)
    assert set(res["table"]) == {"uniform", "counting", "cause_effect", "all"}
    assert res["floors"] == ["ground_truth", "vae", "resim"]
    assert res["mode"] == ["intent"]
    cells = res["table"]["all"]["count"]
    assert cells["model"]["value"] == cells["ground_truth"]["value"] == cells["vae"]["value"]
    assert pipe.calls[0]["steps"] == 3 and pipe.calls[0]["frames"] == 9 and pipe.calls[0]["shift"] == 2.5
    assert pipe.calls[0]["guidance_interval"] == (0.5, 1.0) and res["generate"]["guidance_interval"] == [0.5, 1.0]
    assert pipe.calls[0]["eta"] == 1.0 and res["generate"]["eta"] == 1.0
    on_disk = json.loads((tmp_path / "out.json").read_text())
    assert on_disk["n_clips"] == 6 and on_disk["split"] == "test"
    page = (tmp_path / "report.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page
    assert "uniform" in format_table(res)


def test_evaluate_physics_finds_the_broken_model(tmp_path):
    pipe = _fake(6, corrupt="duplicate")
    res = evaluate_physics(pipeline=pipe, n_clips=6, progress=False, floors=["ground_truth"],
                           report=tmp_path / "worst.png")
    assert res["table"]["all"]["count"]["model"]["flagged_rate"] == 1.0
    assert res["table"]["all"]["count"]["ground_truth"]["flagged_rate"] == 0.0
    assert res["worst"] and "count" in res["worst"][0]["flagged"]
    assert (tmp_path / "worst.png").read_bytes()[:4] == b"\x89PNG"


def test_a_model_that_draws_nothing_is_not_measurable():
    res = evaluate_physics(pipeline=_fake(3, blank=True), n_clips=3, progress=False, floors=["ground_truth"])
    assert all(a["model"]["measurable_rate"] == 0.0 for a in res["table"]["all"].values())
    assert res["clips"][0]["model"]["count"]["reason"].startswith("no object")


def test_conditioning_on_first_frames_scores_against_the_truth():
    pipe = ConditionedFake(WORLD)
    pipe._index(WORLD, 3, "test")
    res = evaluate_physics(pipeline=pipe, n_clips=3, progress=False, condition_frames=3, floors=["ground_truth"])
    assert res["mode"] == ["truth"]
    v = res["table"]["all"]["velocity"]
    assert v["model"]["value"] == pytest.approx(v["ground_truth"]["value"]) and v["model"]["flagged_rate"] == 0.0
    with pytest.raises(ValueError, match="first_frames"):
        evaluate_physics(pipeline=_fake(3), n_clips=3, progress=False, condition_frames=3)


def test_evaluate_physics_rejects_bad_arguments():
    pipe = _fake(2)
    with pytest.raises(ValueError, match="split='dev'.*valid"):
        evaluate_physics(pipeline=pipe, split="dev", progress=False)
    with pytest.raises(ValueError, match="unknown \\['juggling'\\]"):
        evaluate_physics(pipeline=pipe, families="uniform,juggling", progress=False)
    with pytest.raises(ValueError, match="n_clips"):
        evaluate_physics(pipeline=pipe, n_clips=0, progress=False)
    with pytest.raises(ValueError, match="unknown floors"):
        evaluate_physics(pipeline=pipe, n_clips=2, floors=["vae", "dream"], progress=False)


def test_evaluate_physics_ood_uses_ood_scenes():
    pipe = FakePipeline(WORLD)
    pipe._index(dataclasses.replace(WORLD, split="ood", families=("uniform",)), 2, "val")
    res = evaluate_physics(pipeline=pipe, n_clips=2, split="val", ood=True, families="uniform", progress=False,
                           floors=["ground_truth"])
    assert res["ood"] is True and res["families"] == ["uniform"]
    assert {c["split"] for c in res["clips"]} == {"ood"}


def test_evaluate_physics_clips_validates_lengths():
    clips = make_clips(WORLD, ["uniform"], [0])
    with pytest.raises(ValueError, match="1 clips but 2 references"):
        evaluate_physics_clips([clips[0].video], [clips[0].truth, clips[0].truth])
    res = evaluate_physics_clips([clips[0].video], [clips[0].truth], floors=["ground_truth"])
    assert res["mode"] == ["truth"] and res["table"]["uniform"]["velocity"]["model"]["flagged_rate"] == 0.0


def test_scene_seeds_are_the_data_splits():
    from sora_jax.data import clip_seed

    for split in ("train", "val", "test"):
        assert [scene_seed(split, j) for j in range(5)] == [clip_seed(split, j) for j in range(5)]


@pytest.mark.parametrize("variant", ["", "tiny", "ood", "long", "ood,tiny"])
def test_phyworld_uniform_config(variant):
    cfg = load_config("configs/phyworld_uniform.py", variant)
    assert cfg.world.families == ("uniform",) and cfg.world.ranges == "phyworld" and cfg.world.max_objects == 1
    assert cfg.world.split == ("ood" if "ood" in variant else "id")
    assert (cfg.world.num_frames - 1) % 4 == 0
    if "tiny" in variant:
        assert cfg.world.height <= 32 and cfg.train.steps <= 100
    with pytest.raises(ValueError, match="unknown variant"):
        load_config("configs/phyworld_uniform.py", "huge")
