"""Text-to-video pipeline: loading, generation contract, errors, the CLI."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sora_jax.pipeline import enable_compilation_cache, load_pipeline


@pytest.fixture(scope="module")
def pipe(tiny_runs):
    return load_pipeline(tiny_runs["pipeline"])


def test_generate_shapes_and_determinism(pipe):
    T, H, W = pipe.trained_size
    one = pipe.generate("a red ball moves to the right", steps=2, seed=3)
    assert one.shape == (T, H, W, 3) and one.dtype == np.uint8
    again = pipe.generate("a red ball moves to the right", steps=2, seed=3)
    np.testing.assert_array_equal(one, again)
    other_seed = pipe.generate("a red ball moves to the right", steps=2, seed=4)
    assert np.any(other_seed != one)


def test_a_clip_does_not_depend_on_its_batch(pipe):
    alone = pipe.generate("two blue squares", steps=2, seed=7, guidance=3.0)
    batch = pipe.generate(["a red ball", "two blue squares", ""], steps=2, seed=[1, 7, 2], guidance=3.0)
    assert batch.shape[0] == 3
    np.testing.assert_array_equal(batch[1], alone)


def test_guidance_interval_switches_guidance_per_step(pipe):
    kw = dict(steps=3, seed=5)
    guided = pipe.generate("a red ball", guidance=5.0, **kw)
    # an interval holding every step is plain guidance; one holding none is no guidance
    np.testing.assert_array_equal(pipe.generate("a red ball", guidance=5.0, guidance_interval=(0, 1), **kw), guided)
    unguided = pipe.generate("a red ball", guidance=1.0, **kw)
    np.testing.assert_array_equal(
        pipe.generate("a red ball", guidance=5.0, guidance_interval=(0.0, 0.01), **kw), unguided)
    assert np.any(guided != unguided)
    part = pipe.generate("a red ball", guidance=5.0, guidance_interval=(0.5, 1.0), **kw)
    assert np.any(part != guided) and np.any(part != unguided)


def test_stochastic_sampling_is_seeded_per_clip(pipe):
    kw = dict(steps=3, guidance=3.0)
    ode = pipe.generate("a red ball", seed=5, **kw)
    np.testing.assert_array_equal(pipe.generate("a red ball", seed=5, eta=0.0, **kw), ode)
    sde = pipe.generate("a red ball", seed=5, eta=1.0, **kw)
    assert np.any(sde != ode)
    np.testing.assert_array_equal(pipe.generate("a red ball", seed=5, eta=1.0, **kw), sde)     # reproducible
    batch = pipe.generate(["two blue squares", "a red ball"], seed=[9, 5], eta=1.0, **kw)     # batch-independent
    np.testing.assert_array_equal(batch[1], sde)


def test_a_checkpoint_can_recommend_its_eta(tiny_runs, tmp_path):
    """meta.json "sampling": {"eta": ...} sets generate's default for euler/ddim; other samplers stay
    deterministic, and a bad value is refused at load."""
    ck = tmp_path / "stochastic"
    shutil.copytree(tiny_runs["pipeline"], ck)
    meta = json.loads((ck / "meta.json").read_text())
    (ck / "meta.json").write_text(json.dumps(dict(meta, sampling={"eta": 0.75})))
    p = load_pipeline(ck)
    assert p.default_eta == 0.75 and load_pipeline(tiny_runs["pipeline"]).default_eta == 0.0
    kw = dict(steps=3, seed=2, guidance=3.0)
    np.testing.assert_array_equal(p.generate("a red ball", **kw), p.generate("a red ball", eta=0.75, **kw))
    assert np.any(p.generate("a red ball", **kw) != p.generate("a red ball", eta=0.0, **kw))
    np.testing.assert_array_equal(p.generate("a red ball", sampler="heun", **kw),
                                  p.generate("a red ball", sampler="heun", eta=0.0, **kw))
    for bad, match in (({"eta": 2}, r"sampling\.eta=2; need a number in \[0, 1\]"),
                       ({"steps": 9}, "only the key 'eta'")):
        (ck / "meta.json").write_text(json.dumps(dict(meta, sampling=bad)))
        with pytest.raises(ValueError, match=match):
            load_pipeline(ck)


def test_callback_sees_every_step_and_decodes(pipe):
    seen = []
    final = pipe.generate("a ball", steps=3, seed=0, callback=seen.append)
    assert [d["i"] for d in seen] == [0, 1, 2] and all(d["steps"] == 3 for d in seen)
    clean = pipe.decode(seen[-1]["denoised"])
    assert clean.shape == (1, *final.shape)


def test_first_frames_are_continued(pipe):
    """Image-to-video / PhyWorld's protocol: the clip starts with the VAE reconstruction of the
    given frame (the causal VAE makes it the first latent frame, held fixed while sampling)."""
    T, H, W = pipe.trained_size
    image = np.random.default_rng(0).integers(0, 256, (1, H, W, 3), dtype=np.uint8)
    clip = pipe.generate("a red ball", steps=2, seed=0, first_frames=image)
    assert clip.shape == (T, H, W, 3)
    rec = pipe.reconstruct(image)
    assert np.abs(clip[:1].astype(int) - rec.astype(int)).max() <= 1
    free = pipe.generate("a red ball", steps=2, seed=0)
    assert np.abs(free[:1].astype(int) - rec.astype(int)).mean() > 5      # without it the start is the model's
    both = pipe.generate(["a red ball", "a ball"], steps=2, seed=[0, 1], first_frames=np.stack([image, image[:, ::-1]]))
    np.testing.assert_array_equal(both[0], clip)
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        pipe.generate("a ball", steps=1, first_frames=np.zeros((2, H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        pipe.generate("a ball", steps=1, first_frames=np.zeros((1, H, W, 3), np.float32))
    with pytest.raises(ValueError, match="first_frames: need"):
        pipe.generate("a ball", steps=1, first_frames=np.zeros((1, H + 8, W, 3), np.uint8))


def test_encode_decode_round_trip_shapes(pipe):
    T, H, W = pipe.trained_size
    video = np.zeros((T, H, W, 3), np.uint8)
    z = pipe.encode(video)
    assert z.shape == pipe.latent_shape(T, H, W)
    assert pipe.reconstruct(video).shape == video.shape


@pytest.mark.parametrize("bad, match", [
    (dict(num_frames=6), "1 \\+ 4k"),
    (dict(height=20), "multiple of"),
    (dict(sampler="plms"), "unknown sampler"),
    (dict(steps=0), "steps=0"),
    (dict(guidance=-1.0), "guidance=-1.0"),
    (dict(seed=[1, 2]), "one per prompt"),
    (dict(shift=0.0), "shift=0.0"),
    (dict(guidance_interval=(0.8, 0.2)), "guidance_interval"),
    (dict(eta=1.5), r"eta=1\.5: need a number in \[0, 1\]"),
    (dict(eta=0.5, sampler="heun"), "needs sampler 'euler' or 'ddim'"),
])
def test_bad_arguments_are_named(pipe, bad, match):
    with pytest.raises(ValueError, match=match):
        pipe.generate("a red ball", **bad)


def test_other_sizes_warn_and_work(pipe):
    T, H, W = pipe.trained_size
    with pytest.warns(UserWarning, match="trained for"):
        out = pipe.generate("a red ball", num_frames=T + 4, steps=1)
    assert out.shape == (T + 4, H, W, 3)


def test_a_relative_checkpoint_path_loads(tiny_runs, monkeypatch):
    monkeypatch.chdir(tiny_runs["pipeline"].parent)
    pipe = load_pipeline(tiny_runs["pipeline"].name)
    assert pipe.generate("a ball", steps=1).dtype == np.uint8


def test_missing_partial_and_incompatible_checkpoints(tiny_runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pipeline(tmp_path / "nowhere")
    part = tmp_path / "partial"
    shutil.copytree(tiny_runs["pipeline"], part)
    shutil.rmtree(part / "dit")
    with pytest.raises(FileNotFoundError, match="missing dit/params"):
        load_pipeline(part)
    old = tmp_path / "old"
    shutil.copytree(tiny_runs["pipeline"], old)
    meta = json.loads((old / "meta.json").read_text())
    (old / "meta.json").write_text(json.dumps(dict(meta, format_version=0)))
    with pytest.raises(ValueError, match="format_version"):
        load_pipeline(old)
    wide = tmp_path / "wide"
    shutil.copytree(tiny_runs["pipeline"], wide)
    cfg = json.loads((wide / "config.json").read_text())
    cfg["dit"]["hidden"] = 64
    (wide / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not fit"):
        load_pipeline(wide)


def test_compilation_cache_is_on_and_can_be_turned_off(tmp_path, monkeypatch):
    import jax

    before = jax.config.jax_compilation_cache_dir
    try:
        assert enable_compilation_cache(tmp_path / "c") == str(tmp_path / "c")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
        monkeypatch.setenv("SORA_JAX_CACHE", "off")
        jax.config.update("jax_compilation_cache_dir", None)
        assert enable_compilation_cache() is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_cli_generate_writes_an_mp4(tiny_runs, tmp_path):
    out = tmp_path / "clip.mp4"
    r = subprocess.run([sys.executable, "-m", "sora_jax.cli", "generate", "a red ball moves to the right",
                        "--checkpoint", str(tiny_runs["pipeline"]), "--steps", "2", "--seed", "1", "-o", str(out),
                        "--lossless"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "wrote" in r.stdout
    from sora_jax.data import read_video

    video = read_video(out)
    expect = load_pipeline(tiny_runs["pipeline"]).generate("a red ball moves to the right", steps=2, seed=1)
    np.testing.assert_array_equal(video, expect)
    r = subprocess.run([sys.executable, "-m", "sora_jax.cli", "generate", "x", "--checkpoint", str(tmp_path / "none")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_cli_generate_continues_an_image(tiny_runs, tmp_path):
    import mediapy

    pipe = load_pipeline(tiny_runs["pipeline"])
    T, H, W = pipe.trained_size
    image = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    mediapy.write_image(tmp_path / "start.png", image)
    out = tmp_path / "clip.mp4"
    base = [sys.executable, "-m", "sora_jax.cli", "generate", "a ball", "--checkpoint", str(tiny_runs["pipeline"]),
            "--steps", "2", "-o", str(out), "--lossless"]
    r = subprocess.run(base + ["--first-frames", str(tmp_path / "start.png")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from sora_jax.data import read_video

    np.testing.assert_array_equal(read_video(out), pipe.generate("a ball", steps=2, first_frames=image[None]))
    r = subprocess.run(base + ["--first-frames", str(tmp_path / "start.png"), "--condition-frames", "5"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "has 1 frame(s)" in r.stderr and "Traceback" not in r.stderr
