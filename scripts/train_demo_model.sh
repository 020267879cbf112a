#!/usr/bin/env bash
# Train the shipped demo model (data/demo) from scratch on this machine's CPU, with the
# package's own trainers. Every stage resumes where it stopped: run it again after a kill.
#
#   RUNS=~/sora_jax_runs bash scripts/train_demo_model.sh      (or: make demo-model)
#
# Stages (see data/demo/MODEL_CARD.md for what the shipped run actually took):
#   1. the causal video VAE, joint encoder+decoder           (configs/demo.py)
#   2. export it to data/demo/vae with its latent shift/scale -- only when data/demo/vae is absent:
#      on a clone the shipped VAE is there, so remove data/demo/vae first to put the DiT on your own
#   3. the DiT + text encoder on that VAE's latents            (configs/demo.py:dit)
#   4. sharpen the VAE decoder with the encoder frozen           (configs/demo.py:decoder)
#      -- the latents do not change, so the DiT from stage 3 stays valid (SHARPEN_DECODER=0 skips it)
#   5. export the pipeline folder data/demo (VAE + DiT + text encoder + configs)
#   6. continue the DiT from data/demo with a fresh cosine on twice the cached clips
#      (configs/demo.py:dit,longer; LONGER=0 skips it) and export data/demo again
#   7. leg 3: the same once more from leg 2's export, 6,500 steps (LEG3=0 skips it), export again
#   8. leg 4: from leg 3's export, 6,000 steps with timestep shift 3 in training and sampling
#      (LEG4=0 skips it), export again
#   9. leg 5: the same as leg 4 once more, from leg 4's export (LEG5=0 skips it), export again
#  10. leg 6: the same again, from leg 5's export (LEG6=0 skips it), export again
#  11. leg 7: the same again, from leg 6's export (LEG7=0 skips it), export again
# Every pipeline export records the sampling stochasticity the model is evaluated with
# (meta.json "sampling": {"eta": ...}, generate's default; SAMPLING_ETA=0 for deterministic sampling).
set -euo pipefail
BIN=${BIN:-.venv/bin}
RUNS=${RUNS:-$HOME/sora_jax_runs}
VAE_STEPS=${VAE_STEPS:-4000}
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
SAMPLING_ETA=${SAMPLING_ETA:-0.75}
mkdir -p "$RUNS" data/demo

"$BIN/sora-jax" train-vae --config configs/demo.py --workdir "$RUNS/vae_demo" --set train.steps="$VAE_STEPS"
[ -f data/demo/vae/meta.json ] || "$BIN/python" -c "from sora_jax.train import export_checkpoint as e; e('$RUNS/vae_demo', 'data/demo/vae')"
"$BIN/sora-jax" train-dit --config configs/demo.py:dit --workdir "$RUNS/dit_demo"
if [ "${SHARPEN_DECODER:-1}" = 1 ]; then
"$BIN/sora-jax" train-vae --config configs/demo.py:decoder --workdir "$RUNS/vae_decoder"
"$BIN/python" - "$RUNS" <<'PY'
import shutil, sys
from pathlib import Path
from sora_jax.train import export_checkpoint
runs = Path(sys.argv[1])
tmp = runs / "vae_decoder_export"
export_checkpoint(runs / "vae_decoder", tmp)
# keep the latent statistics the DiT was trained with (the encoder is unchanged)
shutil.copy("data/demo/vae/latent_stats.json", tmp / "latent_stats.json")
if Path("data/demo/vae/MODEL_CARD.md").exists():
    shutil.copy("data/demo/vae/MODEL_CARD.md", tmp / "MODEL_CARD.md")
shutil.rmtree("data/demo/vae")
shutil.copytree(tmp, "data/demo/vae")
PY
fi
[ -d "$RUNS/dit_longer/checkpoints" ] || "$BIN/python" -c "from sora_jax.train import export_pipeline as e; print(e('$RUNS/dit_demo', 'data/demo', extra={'sampling': {'eta': $SAMPLING_ETA}}))"
if [ "${LONGER:-1}" = 1 ]; then
"$BIN/sora-jax" train-dit --config configs/demo.py:dit,longer --workdir "$RUNS/dit_longer"
# once leg 3 has started it owns data/demo (it resumes from its own checkpoints, not from data/demo)
[ -d "$RUNS/dit_leg3/checkpoints" ] || "$BIN/python" -c "from sora_jax.train import export_pipeline as e; print(e('$RUNS/dit_longer', 'data/demo', extra={'sampling': {'eta': $SAMPLING_ETA}}))"
fi
# Legs 3-7 continue the previous leg's export with a fresh optimiser and cosine. Same config and seed,
# hence the same 32,768 clips: each reuses the previous leg's encoded cache (hard links) instead of
# ~20 min of encoding, and exports to data/demo unless the next leg has started (that leg owns it).
#   continue_leg <this run> <previous run> <next run or ""> [train-dit options]
continue_leg() {
  local run=$1 prev=$2 next=$3
  shift 3
  if [ ! -d "$RUNS/$run/latents" ] && [ -d "$RUNS/$prev/latents" ]; then
    mkdir -p "$RUNS/$run/latents" && cp -l "$RUNS/$prev"/latents/chunk_*.npz "$RUNS/$run/latents/"
  fi
  "$BIN/sora-jax" train-dit --config configs/demo.py:dit,longer "$@" --workdir "$RUNS/$run"
  if [ -z "$next" ] || [ ! -d "$RUNS/$next/checkpoints" ]; then
    "$BIN/python" -c "from sora_jax.train import export_pipeline as e; print(e('$RUNS/$run', 'data/demo', extra={'sampling': {'eta': $SAMPLING_ETA}}))"
  fi
}
if [ "${LEG3:-1}" = 1 ]; then continue_leg dit_leg3 dit_longer dit_leg4 --set train.steps=6500; fi
if [ "${LEG4:-1}" = 1 ]; then continue_leg dit_leg4 dit_leg3 dit_leg5 --set train.steps=6000 --set diffusion.shift=3.0; fi
if [ "${LEG5:-1}" = 1 ]; then continue_leg dit_leg5 dit_leg4 dit_leg6 --set train.steps=6000 --set diffusion.shift=3.0; fi
if [ "${LEG6:-1}" = 1 ]; then continue_leg dit_leg6 dit_leg5 dit_leg7 --set train.steps=6000 --set diffusion.shift=3.0; fi
if [ "${LEG7:-1}" = 1 ]; then continue_leg dit_leg7 dit_leg6 "" --set train.steps=6000 --set diffusion.shift=3.0; fi
echo "demo model written to data/demo; try: make demo"
