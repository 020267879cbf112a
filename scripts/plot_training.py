"""Training curves of the demo model for its model card.

    python scripts/plot_training.py --dit ~/sora_jax_runs/dit_demo \
        [--continued ~/sora_jax_runs/dit_longer ~/sora_jax_runs/dit_leg3 ~/sora_jax_runs/dit_leg4] \
        [--vae ~/sora_jax_runs/vae_demo] [--decoder ~/sora_jax_runs/vae_decoder] \
        [--held-out leg1_loss.json leg2_loss.json ...] -o data/demo/training_curves.png

Each run folder's ``log.jsonl`` is read; the VAE panel is drawn only when a VAE run is given.
``--held-out`` takes the JSON files ``sora-jax eval loss --out`` wrote for each leg's weights, in
order, and adds a panel of held-out loss against noise level: unlike the training losses, those
compare across legs trained with different timestep shifts.
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
    ax.plot(_steps(dit), smooth([r["loss"] for r in dit]), color="C0", label="leg 1 (200-step moving average)")
    off = dit[-1]["step"]
    # each continued run started from the previous one's weights (train.init_from): its steps count from 0
    for leg, run_dir in enumerate(continued, start=2):
        more = [r for r in read_log(run_dir) if "loss" in r]
        cfg = Path(run_dir) / "config.json"
        shift = json.loads(cfg.read_text()).get("diffusion", {}).get("shift", 1.0) if cfg.exists() else 1.0
        # a timestep shift trains on noisier inputs: its loss is higher, not worse
        note = f", shift {shift:g}: higher by construction" if shift != 1.0 else ""
        ax.plot([off + r["step"] for r in more], [r["loss"] for r in more], alpha=0.25, color=f"C{leg - 1}")
        ax.plot([off + s for s in _steps(more)], smooth([r["loss"] for r in more]), color=f"C{leg - 1}",
                label=f"leg {leg}{note}")
        ax.axvline(off, color="0.6", lw=0.8, ls="--")
        off += more[-1]["step"]
    ax.set_yscale("log")
    ax.set_xlabel("step (batch 32)")
    ax.set_ylabel("flow-matching loss")
    ax.set_title("DiT + text encoder; each leg: fresh optimiser + cosine", fontsize="medium")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right", fontsize="x-small")


def plot_held_out(ax, files):
    for leg, f in enumerate(files, start=1):
        r = json.loads(Path(f).read_text())
        levels = sorted(r["val_loss_t"], key=float)
        ax.plot([float(t) for t in levels], [r["val_loss_t"][t] for t in levels], marker="o", color=f"C{leg - 1}",
                label=f"leg {leg}: mean {r['val_loss']:.4f}")
    ax.set_yscale("log")
    ax.set_xlabel("noise level t (0 data, 1 noise)")
    ax.set_ylabel("held-out flow-matching loss")
    ax.set_title(f"after each leg ({r['n_clips']} {r['split']} clips, fixed noise)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", fontsize="small")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dit", required=True, help="DiT run folder")
    ap.add_argument("--continued", nargs="*", default=[],
                    help="DiT runs that continued, in order, from the previous run's weights (optional)")
    ap.add_argument("--vae", help="VAE run folder (optional)")
    ap.add_argument("--decoder", help="decoder-finetune run folder (optional, needs --vae)")
    ap.add_argument("--held-out", nargs="*", default=[],
                    help="`sora-jax eval loss --out` JSON of each leg's weights, in order (optional)")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    panels = 1 + bool(a.vae) + bool(a.held_out)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels if panels > 1 else 6, 4.0), dpi=80, squeeze=False)
    axes = list(axes[0])
    if a.vae:
        plot_vae(axes.pop(0), a.vae, a.decoder)
    plot_dit(axes.pop(0), a.dit, a.continued)
    if a.held_out:
        plot_held_out(axes.pop(0), a.held_out)
    fig.tight_layout()
    fig.savefig(a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
