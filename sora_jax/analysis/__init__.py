"""Physics-failure analysis: measure where a video model breaks physics (PHYSICS.md).

Sora's makers list where it fails: objects that vanish or multiply, effects that
do not persist, left and right swapped, gravity and collisions that look wrong.
Each of those is a metric here, computed from a clip plus the world's ground
truth (or the prompt it was generated from), reported beside three floors, and
trusted only because it catches injected failures:

- :mod:`~sora_jax.analysis.metrics` -- the ten metrics (velocity, gravity,
  collision, permanence, count, direction, camera, cause_effect, attributes,
  blur) and :func:`evaluate_clip`;
- :mod:`~sora_jax.analysis.inject` -- corrupt ground-truth clips
  (:func:`inject`) and measure detection / false-positive rates
  (:func:`injection_report`);
- :mod:`~sora_jax.analysis.floors` -- ground-truth, VAE and re-simulation floors;
- :mod:`~sora_jax.analysis.physics` -- the experiment runner
  (:func:`evaluate_physics`, :func:`evaluate_physics_clips`) and its report;
- :mod:`~sora_jax.analysis.probe` -- the combinatorial-generalisation probe.

Nothing here imports the model stack at import time; :func:`evaluate_physics`
loads a pipeline only when called with a checkpoint.
"""

from sora_jax.analysis.camera import CameraTrack, estimate_camera
from sora_jax.analysis.floors import FLOORS, floor_clips, floor_results, floors_table
from sora_jax.analysis.inject import (
    INJECTION_FAMILIES,
    INJECTIONS,
    Injection,
    NotApplicable,
    format_injection_report,
    inject,
    injection_report,
)
from sora_jax.analysis.metrics import (
    METRIC_FUNCTIONS,
    METRICS,
    MetricResult,
    aggregate,
    attribute_stability,
    camera_error,
    cause_effect,
    collision_error,
    count_consistency,
    direction_relations,
    evaluate_clip,
    gravity_error,
    interaction_blur,
    permanence,
    velocity_error,
)
from sora_jax.analysis.observe import Observation, Tracklet, classify_shape, link, observe, palette_problem, truth_frames
from sora_jax.analysis.physics import evaluate_physics, evaluate_physics_clips, format_table, scene_seed
from sora_jax.analysis.probe import combinatorial_probe, probe_prompts
from sora_jax.analysis.resim import perturbed, resimulate, scene_from_truth

__all__ = [
    "FLOORS", "INJECTIONS", "INJECTION_FAMILIES", "METRICS", "METRIC_FUNCTIONS",
    "CameraTrack", "Injection", "MetricResult", "NotApplicable", "Observation", "Tracklet",
    "aggregate", "attribute_stability", "camera_error", "cause_effect", "classify_shape", "collision_error",
    "combinatorial_probe", "count_consistency", "direction_relations", "estimate_camera", "evaluate_clip",
    "evaluate_physics", "evaluate_physics_clips", "floor_clips", "floor_results", "floors_table",
    "format_injection_report", "format_table", "gravity_error", "inject", "injection_report", "interaction_blur",
    "link", "observe", "palette_problem", "permanence", "perturbed", "probe_prompts", "resimulate",
    "scene_from_truth", "scene_seed", "truth_frames", "velocity_error",
]
