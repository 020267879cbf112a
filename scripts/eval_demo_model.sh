#!/usr/bin/env bash
# Every figure in data/demo/MODEL_CARD.md, measured on this machine (about 7 minutes on a 2-core CPU: the 256-prompt suite with its two ceilings takes ~2).
#
#   OUT=~/sora_jax_runs/final bash scripts/eval_demo_model.sh [checkpoint]
set -euo pipefail
BIN=${BIN:-.venv/bin}
CKPT=${1:-data/demo}
OUT=${OUT:-$HOME/sora_jax_runs/final}
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
mkdir -p "$OUT"
run() { local name=$1; shift; echo "== $name: sora-jax $*"; /usr/bin/time -f "$name: %e s wall" "$BIN/sora-jax" "$@" 2>&1 \
          | grep -v "it/s]\|s/it]" | tee "$OUT/$name.txt"; }

run vae      eval vae --config configs/demo.py --checkpoint "$CKPT/vae" --n 256 --out "$OUT/vae.json"
run loss     eval loss --checkpoint "$CKPT" --n 256 --out "$OUT/loss.json"
run prompts  eval prompts --checkpoint "$CKPT" --n 256 --vae-ceiling --out "$OUT/prompts.json"
run physics_id  eval physics --checkpoint "$CKPT" --n 64 --out "$OUT/physics_id.json" --report "$OUT/physics_id.html"
run physics_ood eval physics --checkpoint "$CKPT" --n 64 --ood --out "$OUT/physics_ood.json"
# PhyWorld's uniform-motion protocol: continue the first 5 frames, track against the simulator
run continue_id  eval physics --checkpoint "$CKPT" --n 64 --families uniform --condition-frames 5 --out "$OUT/continue_id.json"
run continue_ood eval physics --checkpoint "$CKPT" --n 64 --families uniform --condition-frames 5 --ood --out "$OUT/continue_ood.json"
run bench    bench generate --checkpoint "$CKPT"
echo "figures in $OUT"
