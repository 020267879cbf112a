"""Input pipelines: the synthetic world as an endless stream, folders of real video, mp4 IO.

Axes: ``b`` batch, ``t`` frames, ``h, w`` pixels, ``c`` = 3 colour channels,
``k`` object slots (``cfg.max_objects``). Pixels are uint8 here; models convert
to float in [-1, 1] themselves.

Everything is built on `grain <https://github.com/google/grain>`_ ``MapDataset``:
a dataset is a function ``index -> example`` with random access. That makes the
two properties a trainer needs cheap:

* **determinism** -- example ``i`` depends only on ``(cfg, split, seed, i)``;
* **resumption** -- batch ``s`` is ``dataset.batch(b)[s]``, so a run killed at
  step ``s`` restarts with ``start_step=s`` and sees exactly the batches it would
  have seen (``batches_from`` slices the batched dataset at ``start_step``).

An example is a dict of numpy arrays and strings::

    video     uint8   (t, h, w, 3)
    caption   str     dense caption (what the model is trained on)
    prompt    str     short prompt a person would type
    family    str     scene family ("" for real footage)
    seed      int     clip seed (-1 for real footage)
    # world examples only, padded to k = cfg.max_objects so batches stack:
    positions float32 (t, k, 2)   object centres in pixels as (col, row); 0 where invalid
    visible   float32 (t, k)      visible fraction in [0, 1]; 0 where invalid
    valid     bool    (k,)        which object slots hold a real object

Batching stacks every leaf along a new leading axis ``b``; strings become numpy
``str`` arrays.

Held-out splits of the world
----------------------------
Clip ``j`` of a split is rendered with seed ``3 * j + offset`` where the offset is
0 for ``train``, 1 for ``val`` and 2 for ``test``; its family is
``cfg.families[j % len(cfg.families)]``. Seeds of different splits fall in
different residue classes mod 3, so no validation or test clip can ever appear in
training, whatever ``seed`` and however long a run is. ``val`` and ``test`` are
read in order (clip ``i`` is always the same clip); ``train`` is read in a global
random order (grain's index shuffle over a pool of ``2**30`` clips) that depends
on ``seed``, reshuffled every pass over the pool.

Video files
-----------
``write_video``/``read_video`` drive an ``ffmpeg`` binary through a pipe: the one
bundled in the ``imageio-ffmpeg`` wheel (so a fresh ``pip install`` can read and
write mp4), else the system one (``/usr/bin/ffmpeg``); ``ffmpeg=`` forces either.
Lossless files use ``libx264rgb -qp 0``: H.264 that stores RGB directly, so
reading gives back the rendered pixels bit for bit (``yuv444p -qp 0`` is off by up
to 2 levels because of the RGB <-> YUV rounding). Lossy files (``lossless=False``)
are ordinary ``yuv420p`` H.264 that any browser plays.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import grain
import numpy as np
from jaxtyping import UInt8

from sora_jax.config import Config, WorldConfig, to_dict
from sora_jax.world import types

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}
TRAIN_POOL = 2**30          # clips per training "epoch" (index_shuffle works on 32-bit indices)
CAPTIONS = "captions.jsonl"


# --------------------------------------------------------------------------- #
# The synthetic world as a grain dataset
# --------------------------------------------------------------------------- #


def clip_seed(split: str, index: int) -> int:
    """Seed of clip ``index`` of ``split``: ``3 * index + {train: 0, val: 1, test: 2}``."""
    if split not in _SPLIT_OFFSET:
        raise ValueError(f"split={split!r}: valid splits are {', '.join(SPLITS)}")
    return 3 * int(index) + _SPLIT_OFFSET[split]


def _default_clip_fn(cfg: WorldConfig, family: str, seed: int) -> types.Clip:
    from sora_jax import world  # imported lazily: also runs inside worker processes

    return world.make_clip(cfg, family, seed)


def truth_arrays(truth: types.Truth, height: int, width: int, max_objects: int) -> dict[str, np.ndarray]:
    """Fixed-size ground truth for batching: ``positions (t,k,2)``, ``visible (t,k)``, ``valid (k,)``.

    Objects are padded with zeros up to ``max_objects`` slots; ``valid`` marks the
    real ones. Positions are pixel centres ``(col, row)`` as in ``Truth.to_pixels``.
    """
    t, n = truth.num_frames, truth.num_objects
    if n > max_objects:
        raise ValueError(
            f"clip {truth.family!r} seed {truth.seed} has {n} objects but world.max_objects={max_objects}; "
            f"raise world.max_objects to at least {n}"
        )
    positions = np.zeros((t, max_objects, 2), np.float32)
    visible = np.zeros((t, max_objects), np.float32)
    valid = np.zeros((max_objects,), bool)
    if n:
        positions[:, :n] = truth.to_pixels(height, width)
        visible[:, :n] = truth.visible
        valid[:n] = True
    return {"positions": positions, "visible": visible, "valid": valid}


@dataclasses.dataclass(frozen=True)
class WorldExample:
    """``j -> example dict`` for clip ``j`` of one split (a picklable callable for worker processes)."""

    cfg: WorldConfig
    split: str
    clip_fn: Callable[[WorldConfig, str, int], types.Clip] | None = None

    def clip(self, j: int) -> tuple[str, int, types.Clip]:
        """``(family, seed, Clip)`` of clip ``j`` of this split."""
        cfg = self.cfg
        family = cfg.families[int(j) % len(cfg.families)]
        seed = clip_seed(self.split, j)
        clip = (self.clip_fn or _default_clip_fn)(cfg, family, seed)
        want = (cfg.num_frames, cfg.height, cfg.width, 3)
        if clip.video.shape != want or clip.video.dtype != np.uint8:
            raise ValueError(
                f"world clip {family!r} seed {seed}: got video {clip.video.dtype}{clip.video.shape}, expected uint8{want}"
            )
        return family, seed, clip

    def __call__(self, j: int) -> dict[str, Any]:
        family, seed, clip = self.clip(j)
        example = {"video": clip.video, "caption": clip.caption, "prompt": clip.prompt, "family": family, "seed": seed}
        if clip.truth is not None:
            example.update(truth_arrays(clip.truth, self.cfg.height, self.cfg.width, self.cfg.max_objects))
        return example


def clip_indices(split: str = "train", seed: int = 0) -> grain.MapDataset:
    """Position in the stream -> clip number ``j`` of ``split`` (shuffled with ``seed`` for train)."""
    clip_seed(split, 0)  # validates split
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed={seed}: must be in [0, 2**32)")
    ds = grain.MapDataset.range(TRAIN_POOL)
    if split == "train":
        ds = ds.shuffle(seed=int(seed)).repeat()  # a new order on each pass over the pool
    return ds


def world_dataset(
    cfg: WorldConfig,
    *,
    split: str = "train",
    seed: int = 0,
    clip_fn: Callable[[WorldConfig, str, int], types.Clip] | None = None,
) -> grain.MapDataset:
    """The synthetic world as an endless ``grain.MapDataset`` of example dicts.

    ``split`` picks disjoint clip seeds (see the module docstring); ``seed`` only
    changes the order of ``train``. ``clip_fn(cfg, family, seed) -> Clip`` defaults
    to ``sora_jax.world.make_clip`` (tests inject a cheap fake).

    >>> ds = world_dataset(cfg.world, split="test")    # doctest: +SKIP
    >>> ds[0]["video"].shape                            # (t, h, w, 3)
    """
    if not isinstance(cfg, WorldConfig):
        raise ValueError(f"world_dataset expects a WorldConfig (cfg.world), got {type(cfg).__name__}")
    return clip_indices(split, seed).map(WorldExample(cfg, split, clip_fn))


# --------------------------------------------------------------------------- #
# Batching, shared by every source
# --------------------------------------------------------------------------- #


def _absl_flags_usable() -> None:
    """Let grain's worker processes read their absl flags outside an ``absl.app`` program.

    With JAX installed, grain 0.2.x reads an absl flag when starting workers and
    fails with ``UnparsedFlagAccessError`` unless flags were parsed
    (google/grain#1355, fixed upstream by #1361/#1362). Marking them parsed keeps
    every default; a later ``absl.app.run`` still parses its argv.
    """
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def batches_from(
    dataset: grain.MapDataset,
    batch_size: int,
    *,
    start_step: int = 0,
    num_workers: int = 0,
    num_threads: int = 0,
    drop_remainder: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Iterate over ``dataset`` in batches of ``batch_size``, starting at batch ``start_step``.

    Batch ``s`` always holds examples ``s*b .. s*b + b - 1`` whatever the number of
    workers, so resuming with ``start_step=s`` continues a killed run exactly.

    ``num_workers > 0`` computes whole batches in that many worker processes
    (grain ``mp_prefetch``, spawned, order preserved); ``num_threads > 0`` reads
    batches with a thread pool in this process (helps only where the per-example
    work releases the GIL, e.g. video decoding). The returned grain iterator should
    be ``close()``-d when done with it when workers are used.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    if start_step < 0 or num_workers < 0 or num_threads < 0:
        raise ValueError(f"start_step={start_step}, num_workers={num_workers}, num_threads={num_threads}: must be >= 0")
    batched = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if start_step:
        batched = batched[start_step:]
    read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * num_threads)
    it = batched.to_iter_dataset(read)
    if num_workers:
        _absl_flags_usable()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=2))
    return iter(it)


def world_batches(
    cfg: WorldConfig,
    batch_size: int,
    *,
    split: str = "train",
    seed: int = 0,
    num_workers: int = 0,
    num_threads: int = 0,
    start_step: int = 0,
    clip_fn: Callable[[WorldConfig, str, int], types.Clip] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches of world examples: ``video (b, t, h, w, 3)`` uint8, ``caption (b,)`` str, ...

    Resumable: ``world_batches(..., start_step=s)`` yields what the uninterrupted
    iterator yields from its ``s``-th batch on.
    """
    ds = world_dataset(cfg, split=split, seed=seed, clip_fn=clip_fn)
    return batches_from(ds, batch_size, start_step=start_step, num_workers=num_workers, num_threads=num_threads)


def make_batches(
    cfg: Config,
    batch_size: int,
    *,
    split: str = "train",
    seed: int = 0,
    start_step: int = 0,
    num_workers: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """The trainer's data: ``cfg.train.data`` is ``"world"`` or ``"folder"`` (``cfg.train.data_dir``).

    Folder data is read at the world's size (``cfg.world.num_frames/height/width``).
    For ``split="train"`` it is shuffled with ``seed`` (a new order each pass) and
    repeated forever; other splits read the folder once, in file order, keeping a
    final partial batch.
    """
    source = cfg.train.data
    if source == "world":
        return world_batches(cfg.world, batch_size, split=split, seed=seed, num_workers=num_workers, start_step=start_step)
    if source == "folder":
        if not cfg.train.data_dir:
            raise ValueError("train.data='folder' needs train.data_dir=<folder of mp4 files + captions.jsonl>")
        w = cfg.world
        ds = folder_dataset(cfg.train.data_dir, num_frames=w.num_frames, height=w.height, width=w.width)
        if split == "train":
            ds = ds.shuffle(seed=int(seed)).repeat()
            return batches_from(ds, batch_size, start_step=start_step, num_workers=num_workers)
        return batches_from(ds, batch_size, start_step=start_step, num_workers=num_workers, drop_remainder=False)
    raise ValueError(f"train.data={source!r}: valid values are 'world', 'folder'")


# --------------------------------------------------------------------------- #
# Video files through an ffmpeg pipe
# --------------------------------------------------------------------------- #


def bundled_ffmpeg() -> str:
    """Path of the ffmpeg binary shipped inside the ``imageio-ffmpeg`` wheel (when it has one)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def find_ffmpeg() -> str:
    """The ffmpeg to use: imageio-ffmpeg's choice (its bundled static binary, else the system one).

    The bundled binary is preferred because it is always there after ``pip install``
    and starts in ~15 ms, against ~125 ms for Debian's dynamically linked
    ``/usr/bin/ffmpeg``; that start-up is most of the cost of reading a short clip.
    Every reader/writer also takes ``ffmpeg=<path>`` to force a binary.
    """
    try:
        return bundled_ffmpeg()
    except RuntimeError:
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise FileNotFoundError(
                "no ffmpeg found: reinstall imageio-ffmpeg (pip install imageio-ffmpeg) or install ffmpeg"
            ) from None
        return exe


def _run_ffmpeg(args: list[str], *, ffmpeg: str | None, data: bytes | None = None) -> subprocess.CompletedProcess:
    exe = ffmpeg or find_ffmpeg()
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    return subprocess.run(cmd, input=data, capture_output=True, check=False)


def write_video(
    path: str | os.PathLike,
    video: UInt8[np.ndarray, "t h w 3"],
    *,
    fps: float = 10.0,
    lossless: bool = True,
    ffmpeg: str | None = None,
) -> Path:
    """Write a uint8 ``(t, h, w, 3)`` clip as H.264 mp4, atomically (temp name + rename).

    ``lossless=True``: ``libx264rgb -qp 0`` (bit-exact RGB). ``lossless=False``:
    ``libx264 yuv420p -crf 18`` (small, plays everywhere; needs even height/width).
    ``ffmpeg`` forces a binary (default :func:`find_ffmpeg`).
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8 or video.shape[0] < 1:
        raise ValueError(f"write_video expects uint8 (t, h, w, 3) with t >= 1, got {video.dtype}{video.shape}")
    t, h, w, _ = video.shape
    if lossless:
        codec = ["-c:v", "libx264rgb", "-pix_fmt", "rgb24", "-qp", "0", "-preset", "medium"]
    else:
        if h % 2 or w % 2:
            raise ValueError(f"lossy yuv420p video needs even height and width, got {h}x{w}; use lossless=True")
        codec = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", "medium"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.mp4")
    args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "pipe:0",
            *codec, "-y", str(tmp)]
    try:
        proc = _run_ffmpeg(args, ffmpeg=ffmpeg, data=np.ascontiguousarray(video).tobytes())
        if proc.returncode != 0:
            raise ValueError(f"ffmpeg could not write {path}: {proc.stderr.decode(errors='replace').strip()[-500:]}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


_PPM_HEADER = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s")


def read_video(
    path: str | os.PathLike,
    *,
    max_frames: int | None = None,
    ffmpeg: str | None = None,
) -> UInt8[np.ndarray, "t h w 3"]:
    """Decode a video file to uint8 ``(t, h, w, 3)`` RGB (at most ``max_frames`` frames).

    ffmpeg writes the frames to a pipe as PPM images: a tiny self-describing format
    (text header ``P6 <width> <height> 255`` then raw RGB bytes), so one process
    gives both the size and the pixels, with any ffmpeg version (no ``-vsync``).
    A missing file raises ``FileNotFoundError``; a file ffmpeg cannot decode raises
    ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {str(path)!r} does not exist")
    limit = ["-frames:v", str(int(max_frames))] if max_frames is not None else []
    args = ["-i", str(path), "-map", "0:v:0", *limit, "-f", "image2pipe", "-c:v", "ppm", "pipe:1"]
    proc = _run_ffmpeg(args, ffmpeg=ffmpeg)
    out = proc.stdout
    m = _PPM_HEADER.match(out)
    if proc.returncode != 0 or m is None:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"cannot decode video {str(path)!r} (corrupt or not a video?): {msg[-1] if msg else 'no frames'}")
    w, h, maxval = int(m[1]), int(m[2]), int(m[3])
    if maxval != 255:
        raise ValueError(f"{path}: unexpected PPM maxval {maxval} from ffmpeg")
    frame_bytes = m.end() + w * h * 3
    n = len(out) // frame_bytes
    if n * frame_bytes != len(out):
        raise ValueError(f"cannot decode video {str(path)!r}: ffmpeg output is not a whole number of frames")
    frames = np.frombuffer(out, np.uint8).reshape(n, frame_bytes)[:, m.end():]
    return frames.reshape(n, h, w, 3)


# --------------------------------------------------------------------------- #
# Writing a split of the world to disk, reading folders of video
# --------------------------------------------------------------------------- #


def _json_default(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (tuple, set)):
        return list(x)
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def write_split(
    cfg: WorldConfig,
    out_dir: str | os.PathLike,
    n_clips: int,
    *,
    split: str = "test",
    seed: int = 0,
    fps: float | None = None,
    lossless: bool = True,
    overwrite: bool = False,
    clip_fn: Callable[[WorldConfig, str, int], types.Clip] | None = None,
    progress: bool = True,
) -> Path:
    """Render the first ``n_clips`` clips of ``split`` to ``out_dir`` as mp4 + ``captions.jsonl``.

    Writes ``00000.mp4, 00001.mp4, ...``, ``captions.jsonl`` (one JSON object per
    line: file, caption, prompt, family, seed, truth) and ``world.json`` (the
    WorldConfig and split). Everything goes into a temporary sibling folder that is
    renamed to ``out_dir`` at the end, so an interrupted export leaves nothing
    half-written. An existing ``out_dir`` raises ``FileExistsError`` unless
    ``overwrite=True``. ``fps`` defaults to ``1 / cfg.dt``.
    """
    from tqdm.auto import tqdm

    if n_clips < 1:
        raise ValueError(f"n_clips={n_clips}: must be >= 1")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} already exists; pick another folder or pass overwrite=True (--overwrite)")
    fps = float(fps) if fps is not None else 1.0 / cfg.dt
    indices = clip_indices(split, seed)
    make = WorldExample(cfg, split, clip_fn)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        lines = []
        for i in tqdm(range(n_clips), desc=f"world {split} -> {out.name}", disable=not progress):
            family, cseed, clip = make.clip(indices[i])  # the i-th clip of the stream world_dataset gives
            video, caption, prompt, truth = clip.video, clip.caption, clip.prompt, clip.truth
            name = f"{i:05d}.mp4"
            write_video(tmp / name, np.asarray(video), fps=fps, lossless=lossless)
            lines.append({"file": name, "caption": caption, "prompt": prompt, "family": family, "seed": int(cseed),
                          "truth": truth.to_json() if truth is not None else None})
        with open(tmp / CAPTIONS, "w") as f:
            for rec in lines:
                f.write(json.dumps(rec, default=_json_default) + "\n")
        meta = {"world": to_dict(cfg), "split": split, "seed": seed, "n_clips": n_clips, "fps": fps, "lossless": lossless}
        (tmp / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():  # overwrite: swap the old folder out, then drop it
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_captions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Parse ``<path>/captions.jsonl`` and check every entry names an existing file.

    Each line is a JSON object with at least ``file`` and ``caption``. Raises
    ``FileNotFoundError`` for a missing folder, captions file or video, and
    ``ValueError`` for a bad line.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder {str(folder)!r} does not exist")
    if not any(folder.glob("*.mp4")):
        raise ValueError(f"video folder {str(folder)!r} has no .mp4 files (expected *.mp4 + {CAPTIONS})")
    cap = folder / CAPTIONS
    if not cap.is_file():
        raise FileNotFoundError(
            f"{str(cap)!r} is missing: a video folder needs {CAPTIONS} with one JSON object per line, "
            f'e.g. {{"file": "00000.mp4", "caption": "a red ball rolls to the right"}}'
        )
    records = []
    for lineno, line in enumerate(cap.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{cap}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("file"), str) or not isinstance(rec.get("caption"), str):
            raise ValueError(f"{cap}:{lineno}: each line needs string fields 'file' and 'caption', got {line[:120]!r}")
        if not (folder / rec["file"]).is_file():
            raise FileNotFoundError(f"{cap}:{lineno}: names {rec['file']!r}, which is not in {str(folder)!r}")
        records.append(rec)
    if not records:
        raise ValueError(f"{cap} lists no videos")
    return records


def read_split(path: str | os.PathLike) -> list[types.Clip]:
    """Read a folder written by :func:`write_split` back into ``Clip``s (full frames, with Truth)."""
    clips = []
    for rec in read_captions(path):
        truth = types.Truth.from_json(rec["truth"]) if rec.get("truth") else None
        video = read_video(Path(path) / rec["file"])
        clips.append(types.Clip(video=video, caption=rec["caption"], prompt=rec.get("prompt", rec["caption"]), truth=truth))
    return clips


def center_crop_resize(video: UInt8[np.ndarray, "t h w 3"], height: int, width: int) -> UInt8[np.ndarray, "t height width 3"]:
    """Crop the largest centred window with the target aspect ratio, then resize it (Lanczos).

    Nothing is stretched: the crop keeps ``height/width``, so a 4:3 source going to
    a square drops equal strips left and right. Resizing uses ``mediapy.resize_video``
    (PIL's Lanczos filter, anti-aliased when shrinking). Already the right size:
    returned unchanged, bit for bit.
    """
    t, h, w, _ = video.shape
    if (h, w) == (height, width):
        return video
    # crop size (ch, cw) with ch/cw == height/width, as large as fits
    if h * width > w * height:       # source is taller than the target: crop rows
        ch, cw = max(1, round(w * height / width)), w
    else:                            # source is wider: crop columns
        ch, cw = h, max(1, round(h * width / height))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = video[:, top:top + ch, left:left + cw]
    if (ch, cw) == (height, width):
        return np.ascontiguousarray(crop)
    import mediapy

    return mediapy.resize_video(crop, (height, width))


@dataclasses.dataclass(frozen=True)
class FolderExample:
    """``i -> example dict`` for entry ``i`` of a folder's captions.jsonl (picklable for workers)."""

    folder: str
    records: tuple[dict[str, Any], ...]
    num_frames: int
    height: int
    width: int
    frame_stride: int = 1

    def __call__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        path = Path(self.folder) / rec["file"]
        need = 1 + (self.num_frames - 1) * self.frame_stride
        video = read_video(path, max_frames=need)
        if video.shape[0] < need:
            raise ValueError(
                f"{path}: has {video.shape[0]} frames, need {need} (num_frames={self.num_frames}, "
                f"frame_stride={self.frame_stride}); drop it from {CAPTIONS} or lower num_frames"
            )
        video = center_crop_resize(video[: need : self.frame_stride], self.height, self.width)
        seed = rec.get("seed")
        return {
            "video": video,
            "caption": rec["caption"],
            "prompt": rec.get("prompt") or rec["caption"],
            "family": rec.get("family") or "",
            "seed": int(seed) if seed is not None else -1,
        }


def folder_dataset(
    path: str | os.PathLike,
    *,
    num_frames: int,
    height: int,
    width: int,
    frame_stride: int = 1,
) -> grain.MapDataset:
    """A folder of ``*.mp4`` + ``captions.jsonl`` as a finite ``grain.MapDataset`` of example dicts.

    Entry ``i`` of ``captions.jsonl`` becomes example ``i`` (mp4 files not listed
    there are ignored). Frames ``0, s, 2s, ...`` (``s = frame_stride``) are kept,
    ``num_frames`` of them (the causal VAE wants ``1 + 4k``); then each frame is
    centre-cropped to the target aspect ratio and resized to ``(height, width)``
    with a Lanczos filter (:func:`center_crop_resize`). The folder and captions
    are checked here; a corrupt file or a clip shorter than needed raises a
    ``ValueError`` naming the file when that example is read.
    """
    if num_frames < 1 or height < 1 or width < 1 or frame_stride < 1:
        raise ValueError(
            f"num_frames={num_frames}, height={height}, width={width}, frame_stride={frame_stride}: all must be >= 1"
        )
    records = tuple(read_captions(path))
    return grain.MapDataset.source(range(len(records))).map(
        FolderExample(str(path), records, num_frames, height, width, frame_stride)
    )


__all__ = [
    "SPLITS", "clip_seed", "clip_indices", "WorldExample", "FolderExample", "truth_arrays", "world_dataset", "batches_from", "world_batches", "make_batches",
    "find_ffmpeg", "bundled_ffmpeg", "write_video", "read_video", "write_split", "read_captions", "read_split",
    "center_crop_resize", "folder_dataset",
]
