"""Tests for sora_jax.config: --set overrides, validation, (de)serialisation, config files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sora_jax import config as C

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
CONFIG_FILES = sorted(p for p in CONFIG_DIR.glob("*.py") if not p.name.startswith("_"))


# --------------------------------------------------------------------------- #
# Overrides
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "assignment, path, want",
    [
        ("train.steps=123", ("train", "steps"), 123),                       # int
        ("train.lr=1e-3", ("train", "lr"), 1e-3),                           # float (scientific)
        ("diffusion.shift=3", ("diffusion", "shift"), 3.0),                 # int text for a float field
        ("dit.qk_norm=false", ("dit", "qk_norm"), False),                   # bool
        ("dit.remat=yes", ("dit", "remat"), True),
        ("name=my run", ("name",), "my run"),                               # str, top level
        ("train.data_dir=/tmp/a=b", ("train", "data_dir"), "/tmp/a=b"),     # only the first '=' splits
        ("dit.patch=1,4,4", ("dit", "patch"), (1, 4, 4)),                   # fixed-length tuple
        ("vae.channel_mults=(1, 2, 4, 4)", ("vae", "channel_mults"), (1, 2, 4, 4)),  # variable tuple
        ("world.families=uniform,parabola", ("world", "families"), ("uniform", "parabola")),
        ("diffusion.objective=v", ("diffusion", "objective"), "v"),         # Literal
        ("world.split=ood", ("world", "split"), "ood"),
    ],
)
def test_override_parses_each_field_type(assignment, path, want):
    cfg = C.override(C.Config(), assignment)
    got = cfg
    for name in path:
        got = getattr(got, name)
    assert got == want and type(got) is type(want)
    # nothing else changed
    expected = C.to_dict(C.Config())
    section = expected
    for name in path[:-1]:
        section = section[name]
    section[path[-1]] = json.loads(json.dumps(want))
    assert C.to_dict(cfg) == expected


def test_override_returns_a_new_frozen_config():
    base = C.Config()
    new = C.override(base, "train.batch_size=3")
    assert base.train.batch_size == 8 and new.train.batch_size == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.train.batch_size = 4  # type: ignore[misc]


def test_apply_overrides_in_order():
    cfg = C.apply_overrides(C.Config(), ["train.lr=0.1", "train.lr=0.2", "world.height=33"])
    assert cfg.train.lr == 0.2 and cfg.world.height == 33


def test_unknown_field_names_the_valid_ones():
    with pytest.raises(ValueError) as e:
        C.override(C.Config(), "train.learning_rate=1e-3")
    msg = str(e.value)
    assert "learning_rate" in msg and "TrainConfig" in msg
    for valid in ("lr", "steps", "batch_size", "warmup_steps"):
        assert valid in msg
    with pytest.raises(ValueError, match="valid fields: .*train.*world"):
        C.override(C.Config(), "trian.lr=1")


@pytest.mark.parametrize(
    "assignment, expected",
    [
        ("train.steps=1.5", "expected int"),
        ("train.lr=fast", "expected float"),
        ("dit.qk_norm=maybe", "expected bool"),
        ("diffusion.objective=x0", "expected 'flow' | 'eps' | 'v'"),
        ("dit.patch=1,2", "expected 3 comma-separated values"),
        ("dit.patch=1,a,2", "expected int"),
        ("vae.channel_mults=1,two", "expected int"),
    ],
)
def test_wrong_type_names_the_expected_type(assignment, expected):
    with pytest.raises(ValueError) as e:
        C.override(C.Config(), assignment)
    assert expected in str(e.value)
    assert assignment.split("=")[0] in str(e.value)


def test_paths_into_values_and_sections_are_rejected():
    with pytest.raises(ValueError, match="is a value, not a section"):
        C.override(C.Config(), "train.lr.value=1")
    with pytest.raises(ValueError, match="is a section"):
        C.override(C.Config(), "train=1")
    with pytest.raises(ValueError, match="path.to.field=value"):
        C.override(C.Config(), "train.lr")


def test_overrides_are_validated():
    with pytest.raises(ValueError, match="spatial_factor"):
        C.override(C.Config(), "vae.spatial_factor=3")
    with pytest.raises(ValueError, match="divisible"):
        C.override(C.Config(), "dit.num_heads=3")
    with pytest.raises(ValueError, match="valid: uniform"):
        C.override(C.Config(), "world.families=uniform,teleport")
    with pytest.raises(ValueError, match="train.val_clips=-1"):
        C.override(C.Config(), "train.val_clips=-1")


# --------------------------------------------------------------------------- #
# Serialisation
# --------------------------------------------------------------------------- #


def test_to_dict_from_dict_round_trip():
    cfg = C.apply_overrides(C.Config(), ["dit.patch=1,4,4", "world.families=counting", "name=x", "train.lr=0.5"])
    d = C.to_dict(cfg)
    json.dumps(d)                                 # JSON-ready
    back = C.from_dict(C.Config, json.loads(json.dumps(d)))
    assert back == cfg
    assert isinstance(back.dit.patch, tuple) and isinstance(back.world, C.WorldConfig)


def test_from_dict_rejects_unknown_keys():
    d = C.to_dict(C.Config())
    d["train"]["momentum"] = 0.9
    with pytest.raises(ValueError, match="momentum"):
        C.from_dict(C.Config, d)


# --------------------------------------------------------------------------- #
# Config files
# --------------------------------------------------------------------------- #


def test_there_are_config_files():
    assert (CONFIG_DIR / "world.py") in CONFIG_FILES


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.name for p in CONFIG_FILES])
def test_every_config_file_has_default_and_tiny_variants(path):
    for variant in ("", "tiny"):
        cfg = C.load_config(path, variant)
        assert isinstance(cfg, C.Config)
        C.validate(cfg)
        assert C.from_dict(C.Config, C.to_dict(cfg)) == cfg
    default, tiny = C.load_config(path), C.load_config(path, "tiny")
    # tiny must actually be small: no more pixels per clip than the default
    size = lambda c: c.world.num_frames * c.world.height * c.world.width  # noqa: E731
    assert size(tiny) <= size(default)


def test_load_config_path_variant_syntax_and_overrides():
    path = CONFIG_DIR / "world.py"
    a = C.load_config(f"{path}:tiny")
    b = C.load_config(path, "tiny")
    assert a == b and a.world.height == 32 and a.world.num_frames == 5
    c = C.load_config(f"{path}:phyworld", overrides=["world.num_frames=9"])
    assert c.world.ranges == "phyworld" and c.world.num_frames == 9
    assert set(c.world.families) == {"uniform", "collision", "parabola"}


def test_world_config_variants():
    path = CONFIG_DIR / "world.py"
    default = C.load_config(path)
    assert (default.world.num_frames, default.world.height, default.world.width) == (17, 64, 64)
    phy = C.load_config(path, "phyworld")
    assert phy.world.num_frames == 33 and (phy.world.num_frames - 1) % 4 == 0
    assert phy.world.dt == 0.1 and phy.world.gravity == 2.5 and phy.world.view_height == 10.0
    wide = C.load_config(path, "wide").world
    assert wide.width > wide.height and wide.height % 16 == 0 and wide.width % 16 == 0
    assert abs(wide.width / wide.height - 16 / 9) < 0.05
    both = C.load_config(path, "phyworld,ood").world
    assert both.split == "ood" and both.ranges == "phyworld"
    with pytest.raises(ValueError, match="unknown variant 'huge'.*tiny"):
        C.load_config(path, "huge")


def test_load_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.py"):
        C.load_config(tmp_path / "missing.py")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ValueError, match="no get_config"):
        C.load_config(bad)
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def get_config(variant=''):\n    return {'name': variant}\n")
    with pytest.raises(ValueError, match="returned dict, expected Config"):
        C.load_config(wrong)
