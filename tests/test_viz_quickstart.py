"""The quickstart app of notebook 01 (sora_jax.viz.quickstart), driven headless with a fake pipeline.

The fake has what the app uses of ``sora_jax.pipeline.Pipeline``: ``generate`` (with the
per-step callback), ``decode`` and ``trained_size``, plus ``config.vae.temporal_factor`` and
``config.diffusion.shift``. Its clips encode the settings in their pixels, so a test can tell
which seed or step it is looking at.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from sora_jax.viz import quickstart as Q

PNG = b"\x89PNG"


class FakePipe:
    """``generate`` returns a clip whose pixels are ``seed % 256`` (red) and ``steps`` (green);
    latents at step ``i`` hold the value ``i``; ``decode`` maps a latent to a clip of its mean."""

    def __init__(self, trained_size=(5, 16, 16), temporal_factor=4, shift=1.0, latent_channels=4):
        self.trained_size = trained_size
        self.config = SimpleNamespace(vae=SimpleNamespace(temporal_factor=temporal_factor),
                                      diffusion=SimpleNamespace(shift=shift))
        self.c = latent_channels
        self.calls: list[tuple] = []
        self.decoded: list[tuple] = []

    def _clip(self, seed, steps, num_frames, height, width):
        clip = np.zeros((num_frames, height, width, 3), np.uint8)
        clip[..., 0], clip[..., 1] = seed % 256, steps
        return clip

    def generate(self, prompt, *, num_frames=None, height=None, width=None, steps=25, guidance=4.0, sampler="euler",
                 seed=0, shift=None, callback=None, **extra):
        T, H, W = self.trained_size
        num_frames, height, width = num_frames or T, height or H, width or W
        if (num_frames - 1) % 4:
            raise ValueError(f"num_frames={num_frames} is not 1 + 4k")
        if (num_frames, height, width) != (T, H, W):
            warnings.warn(f"generating {num_frames} frames; this model was trained for {T}")
        single = isinstance(prompt, str)
        prompts = [prompt] if single else list(prompt)
        seeds = [seed] * len(prompts) if isinstance(seed, int) else list(seed)
        self.calls.append((prompts, dict(num_frames=num_frames, steps=steps, guidance=guidance, sampler=sampler,
                                         seed=seed, shift=shift, **extra)))
        latent = (len(prompts), 1 + (num_frames - 1) // 4, height // 8, width // 8, self.c)
        for i in range(steps):
            if callback is not None:
                callback(dict(i=i, steps=steps, t=np.float32(1 - i / steps), x=np.full(latent, -float(i), np.float32),
                              denoised=np.full(latent, float(i), np.float32)))
        clips = np.stack([self._clip(s, steps, num_frames, height, width) for s in seeds])
        return clips[0] if single else clips

    def decode(self, latents):
        z = np.asarray(latents)
        self.decoded.append(z.shape)
        t = 1 + 4 * (z.shape[0] - 1)
        return np.full((t, z.shape[1] * 8, z.shape[2] * 8, 3), np.clip(z.mean() + 100, 0, 255), np.uint8)


def test_generate_button_makes_a_clip_with_the_widget_settings():
    pipe = FakePipe()
    app = Q.quickstart_app(pipe, defaults={"steps": 3, "guidance": 2.0, "sampler": "heun"},
                           samplers=("euler", "heun"))
    assert app.clip is None and app.step.disabled
    assert app.frames.options == (5, 9) and app.frames.value == 5          # 1 + 4k up to twice the trained length
    app.prompt.value = "two blue squares"
    app.seed.value = 7
    app.button.click()                                                     # as in the browser
    prompts, kw = pipe.calls[-1]
    assert prompts == ["two blue squares"]
    assert kw == dict(num_frames=5, steps=3, guidance=2.0, sampler="heun", seed=7, shift=None)
    assert app.clip.shape == (5, 16, 16, 3) and app.clip[0, 0, 0, 0] == 7
    assert "<video" in app.video_html.value
    assert "5 frames of 16x16" in app.status.value and "heun" in app.status.value
    assert app.progress.value == app.progress.max == 3
    assert app.state()["steps"] == 3 and app.settings["seed"] == 7


def test_the_models_default_eta_is_the_sliders_start_and_is_left_to_the_pipeline():
    pipe = FakePipe()
    pipe.default_eta = 0.5                      # a checkpoint that recommends stochastic sampling
    app = Q.quickstart_app(pipe)
    assert app.eta.value == 0.5
    app.generate(steps=2)
    assert "eta" not in pipe.calls[-1][1] and "eta 0.5 (the model default)" in app.status.value
    app.generate(sampler="heun")                # deterministic-only: the pipeline uses 0 there, no error
    assert "eta" not in pipe.calls[-1][1] and "eta 0.5" not in app.status.value
    app.generate(sampler="euler", eta=0.0)      # moving the slider off the default is passed on
    assert pipe.calls[-1][1]["eta"] == 0.0


def test_every_knob_reaches_the_pipeline():
    pipe = FakePipe(shift=1.0)
    app = Q.quickstart_app(pipe)
    app.steps.value = 4
    app.guidance.value = 6.5
    app.sampler.value = "ddim"
    app.frames.value = 9
    app.shift.value = 3.0
    app.guidance_interval.value = (0.5, 1.0)
    app.eta.value = 0.5
    app.button.click()
    _, kw = pipe.calls[-1]
    assert kw == dict(num_frames=9, steps=4, guidance=6.5, sampler="ddim", seed=0, shift=3.0,
                      guidance_interval=(0.5, 1.0), eta=0.5)
    assert app.clip.shape[0] == 9
    assert "trained on 5 frames" in app.status.value                      # the app says the size is off-distribution
    assert app.state()["warnings"] and "trained for 5" in app.state()["warnings"][0]
    # from code, the same: keyword arguments set the widgets
    n = len(pipe.calls)
    with pytest.raises(ValueError, match="eta=0.5 needs sampler euler or ddim"):    # a deterministic-only sampler
        app.generate(sampler="heun")
    app.button.click()                                                  # from the button: told in the status line
    assert len(pipe.calls) == n and "needs sampler euler or ddim" in app.status.value
    with pytest.raises(ValueError, match="eta=2: must be in 0..1"):
        app.generate(eta=2)
    out = app.generate("a green ball", steps=2, seed=3, frames=5, shift=1.0, sampler="euler", guidance=1.0,
                       guidance_interval=(0, 1), eta=0.0)
    assert pipe.calls[-1] == (["a green ball"], dict(num_frames=5, steps=2, guidance=1.0, sampler="euler", seed=3,
                                                     shift=None))          # back at the model's default shift
                                                                           # and guiding every step
    assert app.seed.value == 3 and app.prompt.value == "a green ball" and out["clip"][0, 0, 0, 0] == 3
    assert "shift 1 (the model default)" in app.status.value


def test_denoising_slider_scrubs_the_predicted_clean_clip():
    pipe = FakePipe()
    app = Q.quickstart_app(pipe, max_frames=3)
    app.generate(steps=4)
    assert [len(app.trajectory[k]) for k in ("x", "denoised", "t")] == [4, 4, 4]
    assert app.trajectory["denoised"][2].shape == (2, 2, 2, 4)             # batch dropped: (t, h, w, c)
    assert not app.step.disabled and app.step.max == 3 and app.step.value == 3    # opens at the last step
    assert bytes(app.step_image.value).startswith(PNG)
    app.step.value = 1                                                     # moving the slider redraws
    assert "step 2 of 4" in app.step_text.value and "t = 0.750" in app.step_text.value
    out = app.scrub(2)
    assert out["step"] == 2 and out["t"] == pytest.approx(0.5)
    assert out["denoised_video"][0, 0, 0, 0] == 102 and out["x_video"][0, 0, 0, 0] == 98   # decoded latents of step 2
    assert out["image_png"].startswith(PNG) and app.step.value == 2
    n = len(pipe.decoded)
    app.scrub(2)                                                           # decodes are cached
    assert len(pipe.decoded) == n
    app.generate(steps=2)                                                  # a new clip: slider and cache reset
    assert app.step.max == 1 and app.scrub(0)["denoised_video"][0, 0, 0, 0] == 100
    with pytest.raises(ValueError, match="step"):
        app.scrub(2)
    with pytest.raises(ValueError, match="which"):
        app.decoded("noise", 0)


def test_seed_grid_shows_one_clip_per_seed():
    pipe = FakePipe()
    app = Q.quickstart_app(pipe, seed=10, grid_seeds=3)
    app.steps.value = 2
    app.grid_button.click()
    prompts, kw = pipe.calls[-1]
    assert len(prompts) == 3 and kw["seed"] == [10, 11, 12] and kw["steps"] == 2
    assert app.grid.shape == (3, 5, 16, 16, 3) and app.grid_seeds == [10, 11, 12]
    assert app.grid[:, 0, 0, 0, 0].tolist() == [10, 11, 12]
    assert app.grid_html.value.count("<video") == 3 and "seed 11" in app.grid_html.value
    out = app.seed_grid(2)
    assert out["seeds"] == [10, 11] and app.grid_n.value == 2
    assert app.seed_grid(seeds=[5, 99])["grid"][:, 0, 0, 0, 0].tolist() == [5, 99]
    assert app.clip is None                                                # the grid does not replace the clip


def test_bad_values_raise_from_code_and_show_in_the_status_from_widgets():
    pipe = FakePipe()
    app = Q.quickstart_app(pipe)
    with pytest.raises(ValueError, match="sampler"):
        app.generate(sampler="rk4")
    with pytest.raises(ValueError, match="frames=7"):
        app.generate(frames=7)
    with pytest.raises(ValueError, match="steps"):
        app.generate(steps=0)
    with pytest.raises(ValueError, match="guidance"):
        app.generate(guidance=-1.0)
    for bad in [(0.7, 0.2), (0.0, 1.5), "ab"]:
        with pytest.raises(ValueError, match="guidance_interval"):
            app.generate(guidance_interval=bad)
    with pytest.raises(ValueError, match="scrub"):
        app.scrub(0)
    app = Q.quickstart_app(pipe, frames=(5, 7))                            # a frame count the model cannot make
    app.frames.value = 7
    app.button.click()                                                     # no exception: the message is shown
    assert "not 1 + 4k" in app.status.value and app.clip is None
    with pytest.raises(ValueError, match="generate"):
        Q.quickstart_app(object())
    with pytest.raises(ValueError, match="samplers"):
        Q.quickstart_app(pipe, samplers=())
    with pytest.raises(ValueError, match="defaults"):
        Q.quickstart_app(pipe, samplers=("euler",), defaults={"sampler": "heun"})


def test_viz_quickstart_does_not_import_the_model():
    import subprocess
    import sys

    code = ("import sys, sora_jax.viz.quickstart; "
            "bad = [m for m in ('sora_jax.pipeline', 'sora_jax.dit', 'sora_jax.vae', 'jax') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
