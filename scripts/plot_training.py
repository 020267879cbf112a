"""Training curves of the demo model for its model card.

    python scripts/plot_training.py --dit ~/sora_jax_runs/dit_demo \
        [--continued ~/sora_jax_runs/dit_longer ~/sora_jax_runs/dit_leg3 ~/sora_jax_runs/dit_leg4] \
        [--vae ~/sora_jax_runs/vae_demo] [--decoder ~/sora_jax_runs/vae_decoder] -o data/demo/training_curves.png

Each run folder's ``log.jsonl`` is read; the VAE panel is drawn only when a VAE run is given.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sora_jax.train import read_log  # noqa: E402


def smooth(y, k=8):
    y = np.asarray(y, float)
    if len(y) < k:
        return y
    return np.convolve(y, np.ones(k) / k, mode="valid")


def _steps(rows, k=8):
    s = [r["step"] for r in rows]
    return s[k - 1:] if len(s) >= k else s


def plot_vae(ax, vae_dir, decoder_dir):
    vae = [r for r in read_log(vae_dir) if "psnr" in r]
    ax.plot(_steps(vae), smooth([r["psnr"] for r in vae]), label="VAE, encoder+decoder")
    if decoder_dir:
        dec = [r for r in read_log(decoder_dir) if "psnr" in r]
        if dec:
            off = vae[-1]["step"]
            ax.plot([off + s for s in _steps(dec)], smooth([r["psnr"] for r in dec]), label="decoder only (encoder frozen)")
    ax.set_xlabel("step (batch 8)")
    ax.set_ylabel("train PSNR (dB)")
    ax.set_title("video VAE")
    ax.grid(alpha=0.3)
    ax.legend()


def plot_dit(ax, dit_dir, continued=()):
    dit = [r for r in read_log(dit_dir) if "loss" in r]
    ax.plot([r["step"] for r in dit], [r["loss"] for r in dit], alpha=0.25, color="C0", label="logged (25 steps)")
    ax.plot(_steps(dit), smooth([r["loss"] for r in dit]), color="C0", label="moving average (200 steps)")
    off = dit[-1]["step"]
    # each continued run started from the previous one's weights (train.init_from): its steps count from 0
    for leg, run_dir in enumerate(continued, start=2):
        more = [r for r in read_log(run_dir) if "loss" in r]
        cfg = Path(run_dir) / "config.json"
        shift = json.loads(cfg.read_text()).get("diffusion", {}).get("shift", 1.0) if cfg.exists() else 1.0
        # a timestep shift trains on noisier inputs: its loss is higher, not worse
        note = f", shift {shift:g} (noisier inputs: higher loss)" if shift != 1.0 else ""
        ax.plot([off + r["step"] for r in more], [r["loss"] for r in more], alpha=0.25, color=f"C{leg - 1}")
        ax.plot([off + s for s in _steps(more)], smooth([r["loss"] for r in more]), color=f"C{leg - 1}",
                label=f"leg {leg}: fresh optimiser and cosine{note}")
        ax.axvline(off, color="0.6", lw=0.8, ls="--")
        off += more[-1]["step"]
    ax.set_yscale("log")
    ax.set_xlabel("step (batch 32)")
    ax.set_ylabel("flow-matching loss")
    ax.set_title("DiT + text encoder (on frozen VAE latents)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right", fontsize="small")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dit", required=True, help="DiT run folder")
    ap.add_argument("--continued", nargs="*", default=[],
                    help="DiT runs that continued, in order, from the previous run's weights (optional)")
    ap.add_argument("--vae", help="VAE run folder (optional)")
    ap.add_argument("--decoder", help="decoder-finetune run folder (optional, needs --vae)")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    if a.vae:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=80)
        plot_vae(ax1, a.vae, a.decoder)
    else:
        fig, ax2 = plt.subplots(figsize=(6, 3.6), dpi=80)
    plot_dit(ax2, a.dit, a.continued)
    fig.tight_layout()
    fig.savefig(a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
