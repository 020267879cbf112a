"""Tests for the sora-jax command line (run in-process through cli.main, one real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sora_jax import cli, data

ROOT = Path(__file__).resolve().parent.parent
WORLD = str(ROOT / "configs" / "world.py")


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# The CLI tests check plumbing; the world's own robustness at tiny sizes is tested in
# test_data.py, so these leave out 'collision' (which can fail to aim in 5 frames).
CALM = "world.families=uniform,parabola,bounce,occlusion,counting,relation,camera_pan,cause_effect"


def test_config_show_with_overrides(capsys):
    code, out, err = run(["config", "show", "--config", f"{WORLD}:tiny", "--set", "world.num_frames=9",
                          "--set", "train.lr=0.002"], capsys)
    assert code == 0 and err == ""
    cfg = json.loads(out)
    assert cfg["world"]["num_frames"] == 9 and cfg["world"]["height"] == 32 and cfg["train"]["lr"] == 0.002


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--set", "world.colour=red"], "valid fields: antialias"),
        (["--set", "world.height=tall"], "world.height='tall': expected int"),
        (["--set", "world.height"], "path.to.field=value"),
        (["--config", "configs/nope.py"], "does not exist"),
        (["--variant", "huge"], "unknown variant 'huge'"),
        (["--config", f"{WORLD}:tiny", "--variant", "wide"], "names variant 'tiny' but --variant is 'wide'"),
    ],
)
def test_bad_config_input_is_one_clean_line(argv, needle, capsys):
    code, out, err = run(["config", "show", *argv], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sora-jax: error: ") and needle in err
    assert "Traceback" not in err


def test_smoke_mode_defaults_to_tiny(monkeypatch, capsys):
    monkeypatch.setenv("SORA_JAX_SMOKE", "1")
    assert json.loads(run(["config", "show", "--config", WORLD], capsys)[1])["world"]["height"] == 32
    assert json.loads(run(["config", "show", "--config", WORLD, "--variant", ""], capsys)[1])["world"]["height"] == 64
    monkeypatch.setenv("SORA_JAX_SMOKE", "0")
    assert json.loads(run(["config", "show", "--config", WORLD], capsys)[1])["world"]["height"] == 64


def test_missing_library_function_is_reported_not_faked(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(cli.TARGETS, "train-dit", "sora_jax.not_a_module:train_dit")
    code, _, err = run(["train-dit", "--config", f"{WORLD}:tiny"], capsys)
    assert code == 2 and "'train-dit' is not available in this version" in err and err.count("\n") == 1
    monkeypatch.setitem(cli.TARGETS, "bench dit", "sora_jax.data:bench_dit")
    code, _, err = run(["bench", "dit", "--config", f"{WORLD}:tiny"], capsys)
    assert code == 2 and "sora_jax.data:bench_dit not found" in err
    # a module that exists but is broken inside is a real error, not "unavailable"
    (tmp_path / "broken_sj_mod.py").write_text("import a_dependency_that_is_missing\ndef f(cfg, workdir): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.TARGETS, "train-vae", "broken_sj_mod:f")
    with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_missing"):
        cli.main(["train-vae", "--config", f"{WORLD}:tiny"])


def test_train_command_calls_the_library_with_config_and_workdir(monkeypatch, capsys, tmp_path):
    calls = []
    monkeypatch.setattr(data, "fake_train", lambda cfg, workdir: calls.append((cfg, workdir)) or {"loss": 0.5},
                        raising=False)
    monkeypatch.setitem(cli.TARGETS, "train-vae", "sora_jax.data:fake_train")
    code, out, _ = run(["train-vae", "--config", f"{WORLD}:tiny", "--set", "train.steps=3",
                        "--workdir", str(tmp_path / "run")], capsys)
    assert code == 0 and json.loads(out) == {"loss": 0.5}
    (cfg, workdir), = calls
    assert cfg.train.steps == 3 and cfg.world.height == 32 and workdir == tmp_path / "run"


def test_eval_prompts_passes_sampling_options_through(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(data, "fake_eval", lambda ckpt, **kw: calls.append((ckpt, kw)) or {"model": 1, "per_prompt": []},
                        raising=False)
    monkeypatch.setitem(cli.TARGETS, "eval prompts", "sora_jax.data:fake_eval")
    code, out, _ = run(["eval", "prompts", "--checkpoint", "ck", "--n", "4", "--shift", "3", "--steps", "9",
                        "--vae-ceiling", "--no-ceiling", "--guidance-interval", "0.5", "1", "--eta", "0.5"], capsys)
    assert code == 0 and json.loads(out) == {"model": 1}       # per-prompt detail only goes to --out
    (ckpt, kw), = calls
    assert ckpt == "ck" and kw["n_clips"] == 4 and kw["shift"] == 3.0 and kw["steps"] == 9
    assert kw["vae_ceiling"] is True and kw["ceiling"] is False and kw["guidance"] is None
    assert kw["guidance_interval"] == [0.5, 1.0] and kw["eta"] == 0.5


def test_eval_physics_passes_sampling_options_through(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(data, "fake_physics", lambda ckpt, **kw: calls.append((ckpt, kw)) or {"table": {}},
                        raising=False)
    monkeypatch.setitem(cli.TARGETS, "eval physics", "sora_jax.data:fake_physics")
    monkeypatch.setattr("sora_jax.analysis.format_table", lambda result: "table")
    code, out, _ = run(["eval", "physics", "--checkpoint", "ck", "--n", "4", "--shift", "2",
                        "--guidance-interval", "0", "0.75", "--eta", "1"], capsys)
    assert code == 0
    (ckpt, kw), = calls
    assert ckpt == "ck" and kw["n_clips"] == 4 and kw["shift"] == 2.0 and kw["guidance_interval"] == [0.0, 0.75]
    assert kw["eta"] == 1.0


def test_world_export_writes_a_small_split(tmp_path, capsys):
    out = tmp_path / "split"
    code, stdout, err = run(["world", "export", "--config", f"{WORLD}:tiny", "--set", CALM, "--split", "val", "--n", "3",
                             "-o", str(out), "--size", "24x40", "--frames", "5"], capsys)
    assert code == 0, err
    assert "wrote 3 val clips (5x24x40)" in stdout
    records = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in records] == [data.clip_seed("val", i) for i in range(3)]
    assert all(r["caption"] and r["truth"]["seed"] == r["seed"] for r in records)
    video = data.read_video(out / records[0]["file"])
    assert video.shape == (5, 24, 40, 3) and video.dtype == np.uint8
    meta = json.loads((out / "world.json").read_text())
    assert meta["split"] == "val" and meta["world"]["width"] == 40
    # exporting again over it is refused in one line
    code, _, err = run(["world", "export", "--config", f"{WORLD}:tiny", "--n", "1", "-o", str(out)], capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    code, _, err = run(["world", "export", "--config", f"{WORLD}:tiny", "--n", "1", "-o", str(tmp_path / "x"),
                        "--size", "64by64"], capsys)
    assert code == 2 and "expected HEIGHTxWIDTH" in err


def test_bench_world_runs_with_tiny_sizes(tmp_path, capsys):
    code, out, err = run(["bench", "world", "--config", f"{WORLD}:tiny", "--set", CALM, "--batch-size", "2", "--batches", "1",
                          "--workers", "0", "--out", str(tmp_path / "bench.json")], capsys)
    assert code == 0, err
    assert "cpus=" in out and "jax_backend=" in out
    assert "world_batches workers=0" in out and "batches_per_s" in out
    saved = json.loads((tmp_path / "bench.json").read_text())
    row = [r for r in saved["rows"] if r["pipeline"] == "world_batches workers=0"][0]
    assert row["clip"] == "5x32x32" and row["batches_per_s"] > 0


def test_console_script_exits_2_with_one_line():
    exe = Path(sys.executable).parent / "sora-jax"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sora_jax.cli"]
    res = subprocess.run([*cmd, "config", "show", "--config", WORLD, "--set", "dit.hidden=wide"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == "sora-jax: error: --set dit.hidden='wide': expected int\n"
    ok = subprocess.run([*cmd, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "world" in ok.stdout and "train-vae" in ok.stdout


def test_bench_dit_presets_from_the_cli(tmp_path, capsys):
    code, out, err = run(["bench", "dit", "--config", "configs/demo.py:tiny", "--presets", "tiny", "--steps", "1",
                          "--batch-size", "2", "--out", str(tmp_path / "b.json")], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert {r["what"].split()[0] for r in rows} >= {"matmul", "dit"} and all("ratio_to_matmul" in r for r in rows)


def test_eval_loss_on_a_real_checkpoint(tiny_runs, tmp_path, capsys):
    code, out, _ = run(["eval", "loss", "--checkpoint", str(tiny_runs["pipeline"]), "--n", "2",
                        "--out", str(tmp_path / "loss.json")], capsys)
    assert code == 0 and "held-out denoising loss" in out and "t=0.5" in out
    saved = json.loads((tmp_path / "loss.json").read_text())
    assert saved["n_clips"] == 2 and saved["split"] == "val" and set(saved["val_loss_t"]) == {"0.1", "0.3", "0.5", "0.7", "0.9"}
    with pytest.raises(SystemExit) as e:   # argparse: only held-out splits
        cli.main(["eval", "loss", "--checkpoint", str(tiny_runs["pipeline"]), "--split", "train"])
    assert e.value.code == 2
