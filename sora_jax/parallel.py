"""Device mesh and sharding rules: data parallelism and FSDP, applied from outside the model.

Axes: ``b`` batch (the leading axis of every batch array). Mesh axes: ``data`` (pure
data parallelism: each group of devices holds a full copy of the weights) and ``fsdp``
(fully sharded data parallelism: the devices along it hold one slice each of every
large weight and of its optimizer state, and XLA gathers a weight just before it is
used). The batch is split over *both* axes, so every device sees different clips.

Nothing in the model knows about meshes. :func:`param_shardings` decides each array's
placement from its **shape alone** (the big_vision "fsdp" rule): an array with at least
``min_size`` elements is split along its largest dimension that the ``fsdp`` size
divides (ties go to the later dimension); smaller arrays, and arrays with no divisible
dimension, are replicated. Because the rule looks only at shapes, the same call gives
matching placements for the parameters, for AdamW's ``mu``/``nu`` (same shapes), for an
EMA copy, for a checkpoint being restored, and even for tracers inside ``jit``
(:func:`constrain`). ``jax.jit`` then compiles one SPMD program from the placements of
its inputs (GSPMD/Shardy propagation; the mesh axes are ``AxisType.Auto``) and inserts
the all-gathers and reduce-scatters itself. This is what ``nnx.with_partitioning`` +
``nnx.get_named_sharding`` would do with per-layer annotations, without editing a layer.

Every function here is the identity (or returns ``None``) when ``mesh`` is ``None``, so
a trainer calls them unconditionally and runs unchanged on one device.

How a trainer uses it (the batch size must be divisible by ``data * fsdp``)::

    from sora_jax import parallel

    mesh = parallel.make_mesh(data=-1, fsdp=2) if jax.device_count() > 1 else None
    model, optimizer = build(cfg)                          # exactly as on one device
    graphdef, state = nnx.split((model, optimizer))
    state = parallel.shard_state(state, mesh)              # params + AdamW mu/nu: FSDP
    ema = parallel.shard_state(ema_init(model), mesh)      # same rule, same placement

    @jax.jit
    def train_step(state, ema, batch, key, step):
        ...                                                # unchanged single-device code
        return parallel.constrain(state, mesh), parallel.constrain(ema, mesh), metrics

    for step, batch in enumerate(batches, start):
        batch = parallel.shard_batch(batch, mesh)          # leading axis over all devices
        state, ema, metrics = train_step(state, ema, batch, jax.random.fold_in(key, step), step)

``constrain`` pins the outputs to the same placement as the inputs (without it XLA may
choose another layout for the updated state). Checkpoints: orbax restores onto the
placement of the target tree, so restore into ``shard_state(abstract_or_fresh_state, mesh)``.
On several hosts, ``shard_batch`` takes each process's *local* rows and assembles the
global batch (``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA = "data"
FSDP = "fsdp"
AXES = (DATA, FSDP)
BATCH = (DATA, FSDP)          # the leading batch axis is split over both mesh axes
MIN_SIZE = 2**16              # arrays smaller than this (elements) stay replicated

PyTree = Any


# --------------------------------------------------------------------------- #
# Mesh
# --------------------------------------------------------------------------- #


def make_mesh(data: int = -1, fsdp: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(data, fsdp)`` device mesh over ``devices`` (default: all of ``jax.devices()``).

    ``data=-1`` uses every device: ``data = len(devices) // fsdp``. The axes are
    ``AxisType.Auto``: placements come from the inputs and XLA propagates them, so
    model code needs no sharding annotations.

    >>> mesh = make_mesh()            # pure data parallelism over all devices
    >>> mesh.axis_names
    ('data', 'fsdp')
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    for name, value in (("data", data), ("fsdp", fsdp)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"mesh {name}={value!r}: must be an int")
    if fsdp < 1:
        raise ValueError(f"mesh fsdp={fsdp}: must be >= 1")
    if data == -1:
        if n % fsdp:
            raise ValueError(f"mesh fsdp={fsdp} does not divide the {n} available devices; "
                             f"choose fsdp among the divisors of {n}")
        data = n // fsdp
    if data < 1:
        raise ValueError(f"mesh data={data}: must be >= 1, or -1 for 'all remaining devices'")
    if data * fsdp != n:
        raise ValueError(
            f"mesh data={data} x fsdp={fsdp} needs {data * fsdp} devices, but {n} are available "
            f"({devices[0].platform}); choose data * fsdp == {n}, data=-1, or pass devices=jax.devices()[:k]"
        )
    return jax.make_mesh((data, fsdp), AXES, axis_types=(AxisType.Auto, AxisType.Auto), devices=devices)


def num_batch_shards(mesh: Mesh | None) -> int:
    """How many pieces the batch is cut into: ``data * fsdp`` (1 without a mesh)."""
    return 1 if mesh is None else math.prod(mesh.shape[a] for a in BATCH)


# --------------------------------------------------------------------------- #
# Parameter (and optimizer / EMA) placement
# --------------------------------------------------------------------------- #


def fsdp_spec(shape: Sequence[int], fsdp: int, *, min_size: int = MIN_SIZE) -> PartitionSpec:
    """The FSDP rule for one array shape: split its largest dimension divisible by ``fsdp``.

    Replicated (``PartitionSpec()``) when ``fsdp == 1``, when the array has fewer than
    ``min_size`` elements, or when no dimension is divisible.

    >>> fsdp_spec((4, 384, 1152), 2, min_size=0)
    P(None, None, 'fsdp')
    >>> fsdp_spec((259, 128), 2, min_size=0)      # 259 is odd: the 128 side is split
    P(None, 'fsdp')
    """
    shape = tuple(int(s) for s in shape)
    if fsdp <= 1 or math.prod(shape) < max(min_size, 1):
        return PartitionSpec()
    for i in sorted(range(len(shape)), key=lambda i: (-shape[i], -i)):   # largest first, then last
        if shape[i] % fsdp == 0:
            return PartitionSpec(*([None] * i), FSDP)
    return PartitionSpec()


def _state_of(tree: PyTree) -> PyTree:
    """An ``nnx`` module / optimizer becomes its state; any other pytree is used as it is."""
    if isinstance(tree, nnx.Pytree):          # nnx.Module and nnx.Optimizer are both nnx.Pytree
        return nnx.state(tree)
    return tree


def param_shardings(tree: PyTree, mesh: Mesh | None, *, min_size: int = MIN_SIZE) -> PyTree | None:
    """A ``NamedSharding`` for every array in ``tree`` (same structure), by :func:`fsdp_spec`.

    ``tree`` may be an ``nnx.Module``, an ``nnx.Optimizer``, an ``nnx.State`` (e.g.
    ``nnx.state((model, optimizer))``), a nested dict (EMA) or a tree of
    ``jax.ShapeDtypeStruct``. Returns ``None`` without a mesh.
    """
    if mesh is None:
        return None
    fsdp = mesh.shape[FSDP]
    return jax.tree.map(lambda a: NamedSharding(mesh, fsdp_spec(np.shape(a), fsdp, min_size=min_size)),
                        _state_of(tree))


def shard_state(tree: PyTree, mesh: Mesh | None, *, min_size: int = MIN_SIZE) -> PyTree:
    """Place every array of a state pytree on ``mesh`` by the FSDP rule (``jax.device_put``).

    Use it for ``nnx.state((model, optimizer))``, an EMA dict, or any tree of arrays.
    Returns ``tree`` itself without a mesh.
    """
    if mesh is None:
        return tree
    return jax.device_put(tree, param_shardings(tree, mesh, min_size=min_size))


def shard_model(model: Any, mesh: Mesh | None, *, min_size: int = MIN_SIZE) -> Any:
    """Move an ``nnx`` module's (or optimizer's) arrays onto ``mesh`` in place; returns it.

    Same rule as :func:`shard_state`. The identity without a mesh.
    """
    if mesh is None:
        return model
    nnx.update(model, shard_state(nnx.state(model), mesh, min_size=min_size))
    return model


def constrain(tree: PyTree, mesh: Mesh | None, *, min_size: int = MIN_SIZE) -> PyTree:
    """Inside ``jit``: pin a state pytree to the FSDP placement (``with_sharding_constraint``).

    Return the updated state through it so a train step's outputs keep the placement of
    its inputs. The identity without a mesh (and cheap when nothing moves).
    """
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, param_shardings(tree, mesh, min_size=min_size))


def replicated(mesh: Mesh | None) -> NamedSharding | None:
    """Every device holds the whole array (``None`` without a mesh)."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec())


# --------------------------------------------------------------------------- #
# Batches
# --------------------------------------------------------------------------- #


def batch_sharding(mesh: Mesh | None) -> NamedSharding | None:
    """Leading (batch) axis split over ``('data', 'fsdp')``, other axes whole; ``None`` without a mesh."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(BATCH))


def _path_name(path) -> str:
    return "batch" + "".join(f"[{k.key!r}]" if hasattr(k, "key") else f"[{getattr(k, 'idx', k)}]" for k in path)


def shard_batch(batch: PyTree, mesh: Mesh | None) -> PyTree:
    """Split every array of a batch (a dict or any pytree) along its leading axis over the mesh.

    0-d arrays (e.g. a step number) are replicated. With several processes, each one
    passes its own rows and the result is the global batch (rows of process 0 first).
    The identity without a mesh.

    Raises ValueError naming the entry when its batch size is not divisible by
    ``data * fsdp`` or when it is not a numeric array (strings stay on the host).
    """
    if mesh is None:
        return batch
    shards, procs = num_batch_shards(mesh), jax.process_count()
    rows, spread = batch_sharding(mesh), replicated(mesh)

    def place(path, leaf):
        name = _path_name(path)
        if isinstance(leaf, jax.Array):
            arr = leaf
        else:
            arr = np.asarray(leaf)
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"{name} has dtype {arr.dtype}: shard_batch places numeric arrays only "
                                 "(keep strings on the host, e.g. tokenize captions first)")
        if arr.ndim == 0:
            return jax.device_put(arr, spread)
        b = arr.shape[0] * procs
        if b % shards:
            procs_note = f" ({procs} processes x {arr.shape[0]} local rows)" if procs > 1 else ""
            raise ValueError(
                f"{name} has batch size {b}{procs_note}, not divisible by the {shards} batch shards of the "
                f"mesh (data={mesh.shape[DATA]} x fsdp={mesh.shape[FSDP]}); use a multiple of {shards}"
            )
        if procs > 1:
            return jax.make_array_from_process_local_data(rows, np.asarray(arr))
        return jax.device_put(arr, rows)

    return jax.tree_util.tree_map_with_path(place, batch)


# --------------------------------------------------------------------------- #
# Inspection
# --------------------------------------------------------------------------- #


def memory_per_device(tree: PyTree) -> dict[str, int]:
    """Bytes of ``tree``'s arrays in total and on the fullest device.

    After :func:`shard_state` on a ``(data, fsdp=k)`` mesh, ``max_device_bytes`` is about
    ``total_bytes / k`` when most of the bytes are in large arrays.
    """
    total, per_device = 0, {}
    for leaf in jax.tree.leaves(_state_of(tree)):
        if not isinstance(leaf, jax.Array):
            continue
        total += leaf.nbytes
        for shard in leaf.addressable_shards:
            per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
    return {"total_bytes": int(total), "max_device_bytes": int(max(per_device.values(), default=0))}
