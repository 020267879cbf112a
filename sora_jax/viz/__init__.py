"""Visualisation helpers: videos (mediapy), plots (matplotlib), apps (ipywidgets).

Everything here works on plain arrays (uint8 videos ``(t, h, w, 3)``, pixel
trajectories ``(t, k, 2)``) and never imports the models, so it can show
ground truth, reconstructions and samples alike. matplotlib, mediapy and
ipywidgets are imported inside the functions, so ``import sora_jax.viz`` is cheap.
"""

from sora_jax.viz.apps import WorldExplorer, world_explorer
from sora_jax.viz.plots import plot_trajectories
from sora_jax.viz.video import frame_grid, show_image, show_video, show_videos, upscale

__all__ = [
    "WorldExplorer", "frame_grid", "plot_trajectories", "show_image", "show_video", "show_videos", "upscale",
    "world_explorer",
]

# Model notebooks (03 patches + DiT, 04 diffusion + samplers): pictures and apps over arrays and callables.
from sora_jax.viz.model_apps import (  # noqa: E402
    ATTENTION_KINDS,
    AttentionExplorer,
    DenoisingScrubber,
    GuidanceExplorer,
    NoiseExplorer,
    TokenCalculator,
    attention_explorer,
    attention_masks,
    causal_frame_groups,
    denoising_scrubber,
    guidance_explorer,
    log_snr,
    mask_image,
    noise_explorer,
    patch_filmstrip,
    plot_error_vs_steps,
    plot_guidance,
    plot_heatmaps,
    plot_paths,
    plot_points,
    plot_schedules,
    plot_token_positions,
    to_uint8,
    token_boards,
    token_calculator,
)

__all__ += [
    "ATTENTION_KINDS", "AttentionExplorer", "DenoisingScrubber", "GuidanceExplorer", "NoiseExplorer",
    "TokenCalculator", "attention_explorer", "attention_masks", "causal_frame_groups", "denoising_scrubber",
    "guidance_explorer", "log_snr", "mask_image", "noise_explorer", "patch_filmstrip", "plot_error_vs_steps",
    "plot_guidance", "plot_heatmaps", "plot_paths", "plot_points", "plot_schedules", "plot_token_positions",
    "to_uint8", "token_boards", "token_calculator",
]
