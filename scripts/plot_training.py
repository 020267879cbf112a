"""Training curves of the demo model for its model card.

    python scripts/plot_training.py --vae ~/sora_jax_runs/vae_demo [--decoder ~/sora_jax_runs/vae_decoder] \
        --dit ~/sora_jax_runs/dit_demo -o data/demo/training_curves.png
"""

import argparse

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", required=True)
    ap.add_argument("--decoder")
    ap.add_argument("--dit", required=True)
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=80)
    vae = read_log(a.vae)
    s = [r["step"] for r in vae]
    ax1.plot(s[7:] if len(s) > 8 else s, smooth([r["psnr"] for r in vae]), label="VAE, encoder+decoder")
    if a.decoder:
        dec = read_log(a.decoder)
        if dec:
            off = s[-1]
            ds = [off + r["step"] for r in dec]
            ax1.plot(ds[7:] if len(ds) > 8 else ds, smooth([r["psnr"] for r in dec]), label="decoder only (encoder frozen)")
    ax1.set_xlabel("step (batch 8)")
    ax1.set_ylabel("train PSNR (dB)")
    ax1.set_title("video VAE")
    ax1.grid(alpha=0.3)
    ax1.legend()
    dit = read_log(a.dit)
    ax2.plot([r["step"] for r in dit][7:], smooth([r["loss"] for r in dit]))
    ax2.set_xlabel("step (batch 32)")
    ax2.set_ylabel("flow-matching loss")
    ax2.set_title("DiT + text encoder")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
