"""The ``sora-jax`` command line: a thin layer over library functions.

Every subcommand resolves a :class:`~sora_jax.config.Config` the same way::

    --config configs/world.py[:variant]   experiment file (default: configs/world.py)
    --variant tiny                        variant passed to get_config (SORA_JAX_SMOKE=1 -> tiny)
    --set train.lr=1e-3 --set dit.patch=1,2,2   field overrides, checked against the dataclasses
    --workdir runs/x                      where checkpoints and logs go (default: runs/<cfg.name>)

and then calls one library function, imported only when needed, from the
``TARGETS`` table (``"module:function"``). A command whose function is not in
this version of the package says so in one line. Bad input (unknown field, wrong
type, missing file) prints ``sora-jax: error: <what>`` and exits with status 2;
``sora-jax --debug ...`` shows the full traceback instead.

Examples::

    sora-jax config show --config configs/world.py:tiny --set world.num_frames=9
    sora-jax world export --split test --n 64 -o data/world_test --size 64x64 --frames 17
    sora-jax bench world --batch-size 8 --workers 0,2
    sora-jax train-vae --config configs/world.py --workdir runs/vae
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from sora_jax import config as config_lib

PROG = "sora-jax"
DEFAULT_CONFIG = "configs/world.py"

# command -> "module:function". Signatures the CLI calls them with:
TARGETS: dict[str, str] = {
    "generate": "sora_jax.pipeline:generate_from_checkpoint",  # (checkpoint, prompt, *, seed, **opts) -> uint8 (t,h,w,3)
    "train-vae": "sora_jax.train:train_vae",                   # (cfg, workdir)
    "train-dit": "sora_jax.train:train_dit",                   # (cfg, workdir)
    "eval vae": "sora_jax.train:evaluate_vae",                 # (checkpoint, *, n_clips, split)
    "eval loss": "sora_jax.train:evaluate_dit",                # (checkpoint, *, n_clips, split)
    "eval prompts": "sora_jax.analysis.prompts:evaluate_prompts",  # (checkpoint, *, n_clips, split, steps, guidance, ...)
    "eval physics": "sora_jax.analysis:evaluate_physics",      # (checkpoint, *, n_clips, split, families, ood, report, ...)
    "bench world": "sora_jax.bench:bench_world",               # (cfg, *, batch_size, num_batches, workers)
    "bench vae": "sora_jax.vae:bench_vae",                     # (cfg)
    "bench dit": "sora_jax.dit:bench_dit",                     # (cfg, *, presets, steps, batch_size)
    "bench generate": "sora_jax.pipeline:bench_generate",      # (cfg, *, checkpoint, steps, guidance)
    "world export": "sora_jax.data:write_split",               # (world_cfg, out_dir, n_clips, *, split, seed, ...)
}


class Unavailable(Exception):
    """The library function behind a command is not part of this version."""


def resolve(command: str) -> Callable[..., Any]:
    """Import the function behind ``command`` (see ``TARGETS``)."""
    target = TARGETS[command]
    module_name, fn_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # only "this module does not exist" means unavailable; a missing dependency
        # *inside* an existing module is a real error and keeps its traceback
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise Unavailable(f"'{command}' is not available in this version of sora_jax ({target} not found)") from None
        raise
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise Unavailable(f"'{command}' is not available in this version of sora_jax ({target} not found)")
    return fn


# --------------------------------------------------------------------------- #
# Config and output helpers
# --------------------------------------------------------------------------- #


def default_config_path() -> str | None:
    """``configs/world.py`` in the current folder, else next to the installed package (a checkout)."""
    for p in (Path(DEFAULT_CONFIG), Path(__file__).resolve().parent.parent / DEFAULT_CONFIG):
        if p.is_file():
            return str(p)
    return None


def resolve_config(args: argparse.Namespace) -> config_lib.Config:
    """``--config/--variant/--set`` -> a validated Config."""
    path = args.config
    variant = args.variant
    if path is not None and ":" in path and not Path(path).exists():
        path, suffix = path.rsplit(":", 1)
        if variant is not None and variant != suffix:
            raise ValueError(f"--config {args.config!r} names variant {suffix!r} but --variant is {variant!r}")
        variant = suffix
    if variant is None:
        variant = "tiny" if config_lib.smoke_mode() else ""
    overrides = list(args.set or ())
    if path is None:
        path = default_config_path()
        if path is None:  # installed without the configs/ folder: library defaults
            if args.variant:
                raise ValueError(f"--variant {args.variant!r} needs --config (no {DEFAULT_CONFIG} here)")
            cfg = config_lib.apply_overrides(config_lib.Config(), overrides)
            config_lib.validate(cfg)
            return cfg
    return config_lib.load_config(path, variant, overrides)


def workdir_for(args: argparse.Namespace, cfg: config_lib.Config) -> Path:
    return Path(args.workdir) if args.workdir else Path("runs") / cfg.name


def parse_size(text: str) -> tuple[int, int]:
    """``"64x112"`` -> ``(64, 112)`` as (height, width)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--size {text!r}: expected HEIGHTxWIDTH, e.g. 64x64") from None
    if h < 1 or w < 1:
        raise ValueError(f"--size {text!r}: height and width must be >= 1")
    return h, w


def show(result: Any) -> None:
    """Print what a library function returned: a table for rows, JSON for dicts, else str."""
    from sora_jax.bench import format_table

    if result is None:
        return
    if isinstance(result, list) and result and all(isinstance(r, dict) for r in result):
        print(format_table(result))
    elif isinstance(result, dict):
        print(json.dumps(result, indent=2, default=str))
    else:
        print(result)


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (temp name + rename)."""
    import os

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, p)


# --------------------------------------------------------------------------- #
# Commands
# --------------------------------------------------------------------------- #


def cmd_config_show(args: argparse.Namespace) -> None:
    print(json.dumps(config_lib.to_dict(resolve_config(args)), indent=2))


def cmd_world_export(args: argparse.Namespace) -> None:
    overrides = list(args.set or ())
    if args.size:
        h, w = parse_size(args.size)
        overrides += [f"world.height={h}", f"world.width={w}"]
    if args.frames is not None:
        overrides += [f"world.num_frames={args.frames}"]
    args.set = overrides
    cfg = resolve_config(args)
    write_split = resolve("world export")
    out = write_split(cfg.world, args.out, args.n, split=args.split, seed=args.seed, fps=args.fps,
                      lossless=not args.lossy, overwrite=args.overwrite)
    print(f"wrote {args.n} {args.split} clips ({cfg.world.num_frames}x{cfg.world.height}x{cfg.world.width}) to {out}")


def cmd_train(args: argparse.Namespace) -> None:
    fn = resolve(args.command)
    cfg = resolve_config(args)
    show(fn(cfg, workdir_for(args, cfg)))


def cmd_eval(args: argparse.Namespace) -> None:
    fn = resolve(f"eval {args.what}")
    n = args.n if args.n is not None else (9 if config_lib.smoke_mode() else EVAL_DEFAULT_N[args.what])
    kwargs = {"n_clips": n, "split": args.split}
    if args.what == "prompts":
        kwargs.update(steps=args.steps, guidance=args.guidance, sampler=args.sampler, batch_size=args.batch_size,
                      ceiling=not args.no_ceiling, expand=args.expand, shift=args.shift, vae_ceiling=args.vae_ceiling,
                      guidance_interval=args.guidance_interval, eta=args.eta)
    if args.what == "physics":
        fams = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
        kwargs.update(families=fams, ood=args.ood, report=args.report, steps=args.steps, guidance=args.guidance,
                      sampler=args.sampler, seed=args.seed, batch_size=args.batch_size,
                      condition_frames=args.condition_frames, shift=args.shift, json_out=args.out,
                      guidance_interval=args.guidance_interval, eta=args.eta)
    result = fn(args.checkpoint, **kwargs)
    if args.what == "physics":
        from sora_jax.analysis import format_table

        print(format_table(result))
        if args.report:
            print(f"report: {args.report}")
        return
    # per-clip detail goes to --out only; the terminal gets the summary
    show({k: v for k, v in result.items() if k not in ("per_prompt", "per_clip", "clips")} if isinstance(result, dict) else result)
    if args.out:
        write_json(args.out, result)


EVAL_DEFAULT_N = {"vae": 256, "prompts": 256, "physics": 64, "loss": 256}


def cmd_bench(args: argparse.Namespace) -> None:
    from sora_jax.bench import machine_info

    fn = resolve(f"bench {args.what}")
    cfg = resolve_config(args)
    if args.what == "world":
        smoke = config_lib.smoke_mode()
        workers = [int(x) for x in args.workers.split(",")] if args.workers else ([0] if smoke else [0, 2])
        rows = fn(cfg, batch_size=args.batch_size, num_batches=args.batches or (2 if smoke else 8), workers=workers)
    elif args.what == "dit":
        presets = [p.strip() for p in args.presets.split(",") if p.strip()] if args.presets else None
        rows = fn(cfg, presets=presets, steps=args.steps, batch_size=args.batch_size)
    elif args.what == "generate":
        rows = fn(cfg, checkpoint=args.checkpoint, steps=args.steps, guidance=args.guidance)
    else:
        rows = fn(cfg)
    info = machine_info()
    print("  ".join(f"{k}={v}" for k, v in info.items()))
    show(rows)
    if args.out:
        write_json(args.out, {"machine": info, "config": config_lib.to_dict(cfg), "rows": rows})


def cmd_generate(args: argparse.Namespace) -> None:
    import numpy as np

    from sora_jax.data import write_video

    fn = resolve("generate")
    opts = {"steps": args.steps, "guidance": args.guidance, "sampler": args.sampler, "num_frames": args.frames,
            "shift": args.shift, "negative_prompt": args.negative, "guidance_interval": args.guidance_interval,
            "eta": args.eta}
    if args.size:
        opts["height"], opts["width"] = parse_size(args.size)
    if args.config or args.set or args.variant:
        raise ValueError("generate reads its configuration from the checkpoint; drop --config/--set/--variant "
                         "and choose the model with --checkpoint")
    if args.first_frames:
        opts["first_frames"] = _read_first_frames(args.first_frames, args.condition_frames)
    elif args.condition_frames is not None:
        raise ValueError("--condition-frames needs --first-frames FILE (the clip or image to continue)")
    video = np.asarray(fn(args.checkpoint, args.prompt, seed=args.seed, **{k: v for k, v in opts.items() if v is not None}))
    if video.ndim == 5:  # (1, t, h, w, 3)
        video = video[0]
    path = write_video(args.out, video, fps=args.fps, lossless=args.lossless)
    print(f"wrote {path} ({video.shape[0]} frames, {video.shape[1]}x{video.shape[2]}) for prompt {args.prompt!r}, seed {args.seed}")


def _read_first_frames(path: str, n: int | None):
    """An image (png/jpg) or a video (mp4, ...) -> its first ``n`` frames, uint8 (n, h, w, 3)."""
    import numpy as np

    from sora_jax.data import read_video

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--first-frames {path}: no such file")
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
        import mediapy

        frames = np.asarray(mediapy.read_image(p))[None, ..., :3]
        if frames.dtype != np.uint8:
            raise ValueError(f"--first-frames {path}: need an 8-bit RGB image, got {frames.dtype}")
    else:
        frames = read_video(p)
    n = 1 if n is None else n
    if n < 1 or n > len(frames):
        raise ValueError(f"--condition-frames {n}: {path} has {len(frames)} frame(s); need 1 <= n <= {len(frames)}")
    return frames[:n]


# --------------------------------------------------------------------------- #
# Parser
# --------------------------------------------------------------------------- #


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("configuration")
    g.add_argument("--config", metavar="FILE[:VARIANT]", help=f"experiment file (default: {DEFAULT_CONFIG})")
    g.add_argument("--variant", help="variant for get_config (default: '', or 'tiny' with SORA_JAX_SMOKE=1)")
    g.add_argument("--set", action="append", metavar="PATH=VALUE", default=[],
                   help="override a config field, e.g. --set train.lr=1e-3 (repeatable)")
    g.add_argument("--workdir", help="run folder for checkpoints and logs (default: runs/<config name>)")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog=PROG, description="Sora-style text-to-video in JAX: train, sample, measure physics.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", parents=[common], help="sample a clip from a prompt")
    p.add_argument("prompt")
    p.add_argument("-o", "--out", default="out/generated.mp4", help="output mp4 (default: %(default)s)")
    p.add_argument("--checkpoint", help="pipeline checkpoint folder (default: the shipped data/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="sampler steps (default: 25)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: 4; 1 = off)")
    p.add_argument("--sampler", help="euler | heun | ddim | dpmpp_2m (default: euler)")
    p.add_argument("--frames", type=int, help="number of frames, 1 + 4k (default: what the model was trained for)")
    p.add_argument("--size", metavar="HxW", help="frame size, e.g. 64x64 (default: what the model was trained for)")
    p.add_argument("--shift", type=float, help="timestep shift for sampling (default: the training config's)")
    p.add_argument("--negative", metavar="PROMPT", help="negative prompt (replaces the null text in guidance)")
    p.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LO", "HI"),
                   help="guide only at noise levels in [LO, HI] (1 = pure noise, 0 = clean; default: every step)")
    p.add_argument("--eta", type=float, help="sampling stochasticity in [0, 1] for euler/ddim: "
                   "0 = deterministic, 1 = ancestral (fresh noise every step); default: the checkpoint's "
                   "(meta.json sampling.eta, else 0)")
    p.add_argument("--first-frames", metavar="FILE",
                   help="image or video to continue (image-to-video); frames must have the generated size")
    p.add_argument("--condition-frames", type=int, metavar="N",
                   help="how many frames of --first-frames to keep, 1 + 4k (default: 1)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of the mp4 (default: %(default)s)")
    p.add_argument("--lossless", action="store_true", help="bit-exact mp4 instead of a small yuv420p one")
    p.set_defaults(func=cmd_generate)

    for name, what in (("train-vae", "the causal video VAE"), ("train-dit", "the diffusion transformer")):
        p = sub.add_parser(name, parents=[common], help=f"train {what} (resumes from the workdir)")
        p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint")
    esub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    for what, text in (("vae", "reconstruction quality on held-out world clips"),
                       ("prompts", "prompt compliance (count, direction, relation)"),
                       ("loss", "held-out denoising loss at fixed noise levels (compares runs)"),
                       ("physics", "physics-failure metrics on generated clips")):
        e = esub.add_parser(what, parents=[common], help=text)
        e.add_argument("--checkpoint", required=what != "prompts",
                       help="checkpoint folder" + (" (omit: score only the ground-truth ceiling)" if what == "prompts" else ""))
        e.add_argument("--n", type=int, help="clips to evaluate (default: 256 for vae/prompts/loss, 64 for physics; 9 in smoke mode)")
        e.add_argument("--split", choices=("val", "test") if what != "physics" else ("train", "val", "test"),
                       default="val" if what == "loss" else "test",
                       help="world split (default: %(default)s" + ("; the one train-dit validates on)" if what == "loss" else ")"))
        e.add_argument("--out", help="also write the result as JSON here")
        if what == "prompts":
            e.add_argument("--steps", type=int, help="sampler steps (default: the pipeline's, 25)")
            e.add_argument("--guidance", type=float, help="guidance scale (default: the pipeline's, 4)")
            e.add_argument("--sampler", help="euler | heun | ddim | dpmpp_2m")
            e.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default: %(default)s)")
            e.add_argument("--shift", type=float, help="sampling timestep shift (default: the checkpoint's)")
            e.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LO", "HI"),
                           help="guide only at noise levels in [LO, HI] (default: every step)")
            e.add_argument("--eta", type=float, help="sampling stochasticity in [0, 1] for euler/ddim: "
                           "0 = deterministic, 1 = ancestral (fresh noise every step); default: the checkpoint's "
                           "(meta.json sampling.eta, else 0)")
            e.add_argument("--no-ceiling", action="store_true", help="skip scoring the ground-truth clips")
            e.add_argument("--vae-ceiling", action="store_true",
                           help="also score the ground-truth clips after a VAE round trip (the model's real ceiling)")
            e.add_argument("--expand", action="store_true", help="expand each prompt (re-caption style) before generating")
        if what == "physics":
            e.add_argument("--families", help="comma-separated scene families (default: all the model was trained on)")
            e.add_argument("--ood", action="store_true", help="out-of-distribution sizes/speeds instead of in-distribution")
            e.add_argument("--report", help="write a report of the worst clips (.html or .png)")
            e.add_argument("--steps", type=int, help="sampler steps (default: the pipeline's)")
            e.add_argument("--guidance", type=float, help="guidance scale (default: the pipeline's)")
            e.add_argument("--sampler", help="euler | heun | ddim | dpmpp_2m")
            e.add_argument("--shift", type=float, help="sampling timestep shift (default: the checkpoint's)")
            e.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LO", "HI"),
                           help="guide only at noise levels in [LO, HI] (default: every step)")
            e.add_argument("--eta", type=float, help="sampling stochasticity in [0, 1] for euler/ddim: "
                           "0 = deterministic, 1 = ancestral (fresh noise every step); default: the checkpoint's "
                           "(meta.json sampling.eta, else 0)")
            e.add_argument("--seed", type=int, default=0, help="generation seed of the first clip (default: %(default)s)")
            e.add_argument("--batch-size", type=int, default=8, help="clips per generate call (default: %(default)s)")
            e.add_argument("--condition-frames", type=int, default=0,
                           help="> 0: continue the first frames of each scene (PhyWorld's protocol; 1 + 4k frames)")
        e.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="measure speed and memory")
    bsub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    for what, text in (("world", "world rendering and world_batches throughput"), ("vae", "VAE encode/decode"),
                       ("dit", "DiT step time"), ("generate", "end-to-end sampling")):
        b = bsub.add_parser(what, parents=[common], help=text)
        b.add_argument("--out", help="also write machine info and rows as JSON here")
        if what == "world":
            b.add_argument("--batch-size", type=int, default=8)
            b.add_argument("--batches", type=int, help="timed batches per row (default: 8; 2 in smoke mode)")
            b.add_argument("--workers", help="comma-separated worker counts (default: 0,2; 0 in smoke mode)")
        if what == "dit":
            b.add_argument("--presets", help="comma-separated presets to bench, e.g. tiny,S (default: the config's dit)")
            b.add_argument("--steps", type=int, help="timed calls per row (default: 10; 2 in smoke mode)")
            b.add_argument("--batch-size", type=int, help="clips per call (default: train.batch_size)")
        if what == "generate":
            b.add_argument("--checkpoint", help="pipeline folder (default: the shipped data/demo)")
            b.add_argument("--steps", type=int, default=25, help="sampler steps (default: %(default)s)")
            b.add_argument("--guidance", type=float, default=4.0, help="guidance scale (default: %(default)s)")
        b.set_defaults(func=cmd_bench)

    p = sub.add_parser("world", help="the synthetic physics world")
    wsub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    w = wsub.add_parser("export", parents=[common], help="render a split to mp4 + captions.jsonl")
    w.add_argument("--split", choices=("train", "val", "test"), default="test")
    w.add_argument("--n", type=int, default=16, help="number of clips (default: %(default)s)")
    w.add_argument("-o", "--out", required=True, help="output folder (must not exist unless --overwrite)")
    w.add_argument("--size", metavar="HxW", help="frame size, e.g. 64x112 (default: from the config)")
    w.add_argument("--frames", type=int, help="frames per clip (default: from the config)")
    w.add_argument("--seed", type=int, default=0, help="order of the train split (val/test are fixed)")
    w.add_argument("--fps", type=float, help="frame rate (default: 1 / world.dt)")
    w.add_argument("--lossy", action="store_true", help="small yuv420p mp4 for sharing instead of lossless")
    w.add_argument("--overwrite", action="store_true")
    w.set_defaults(func=cmd_world_export)

    p = sub.add_parser("config", help="inspect configurations")
    csub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    c = csub.add_parser("show", parents=[common], help="print the resolved config as JSON")
    c.set_defaults(func=cmd_config_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sora-jax`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except Unavailable as e:
        if args.debug:
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as e:
        if args.debug:
            raise
        msg = " ".join(str(e).split()) if str(e) else type(e).__name__
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `sora-jax config show | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
