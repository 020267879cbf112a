"""parallel: mesh + FSDP rules; a sharded train step equals the one-device step; no mesh = identity.

The multi-device check runs in a subprocess with 8 fake CPU devices
(``--xla_force_host_platform_device_count=8`` must be set before jax starts, and the
rest of the suite shares this process with one device). The child is this file run
as a script; it prints one JSON line that the parent test checks.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from sora_jax import parallel

N_DEVICES, DATA, FSDP = 8, 4, 2
B, LATENT, L = 8, (3, 6, 10, 4), 11                # batch, latent (t, h, w, c), text tokens
MIN_SIZE = 256                                     # shard even the tiny model's arrays


# ------------------------------------------------------------------ child (8 devices)


def _child() -> dict:
    import optax
    from flax import nnx

    from sora_jax import diffusion
    from sora_jax.config import DiffusionConfig, DiTConfig, TextConfig
    from sora_jax.dit import VideoDiT
    from sora_jax.text import TextEncoder

    assert jax.device_count() == N_DEVICES, jax.devices()
    dcfg = DiffusionConfig(objective="flow")

    class TextToVideo(nnx.Module):
        def __init__(self, rngs):
            tcfg = TextConfig(max_tokens=L, width=24, depth=1, num_heads=2)
            self.text = TextEncoder(tcfg, rngs=rngs)
            self.dit = VideoDiT(DiTConfig(hidden=32, depth=2, num_heads=2, mlp_ratio=2.0), LATENT[-1], 24,
                                rngs=rngs)

        def loss(self, batch, key):
            text, mask = self.text(batch["ids"], batch["mask"])
            return diffusion.loss(self.dit, batch["x0"], key, cfg=dcfg, text=text, text_mask=mask)

    def build():
        model = TextToVideo(nnx.Rngs(0))
        # random values everywhere: zero-initialised (adaLN-Zero) weights would hide wrong gradients
        rng = np.random.default_rng(1)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda a: a + 0.1 * rng.standard_normal(a.shape, np.float32), params))
        # AdamW's first step is about lr * g / (|g| + eps): with the default eps=1e-8 an entry whose
        # gradient is at float-noise level (|g| ~ 1e-8) turns a 1e-7 difference in the summation
        # order into a 1e-4 difference in the update. eps=1e-4 bounds that gain by lr / eps = 10.
        tx = optax.adamw(1e-3, eps=1e-4, weight_decay=0.01)
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    model, optimizer = nnx.jit(build)()
    graphdef, state = nnx.split((model, optimizer))
    rng = np.random.default_rng(2)
    lengths = rng.integers(0, L + 1, B)                                  # includes empty prompts
    batch = {"x0": rng.standard_normal((B, *LATENT), np.float32),
             "ids": rng.integers(3, 259, (B, L)).astype(np.int32),
             "mask": np.arange(L)[None] < lengths[:, None]}
    key = jax.random.key(3)

    def make_step(mesh):
        @jax.jit
        def step(state, batch, key):
            model, optimizer = nnx.merge(graphdef, state)
            loss, grads = nnx.value_and_grad(lambda m: m.loss(batch, key))(model)
            optimizer.update(model, grads)
            return loss, grads, parallel.constrain(nnx.state((model, optimizer)), mesh, min_size=MIN_SIZE)
        return step

    # one device: no mesh, every helper is the identity
    loss1, g1, state1 = make_step(None)(parallel.shard_state(state, None), parallel.shard_batch(batch, None), key)

    mesh = parallel.make_mesh(data=DATA, fsdp=FSDP)
    sstate = parallel.shard_state(state, mesh, min_size=MIN_SIZE)
    sbatch = parallel.shard_batch(batch, mesh)
    loss8, g8, state8 = make_step(mesh)(sstate, sbatch, key)

    def rel_err(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))

    before, p1, p8 = (jax.tree.leaves(nnx.state(nnx.merge(graphdef, s)[0], nnx.Param)) for s in (state, state1, state8))
    specs_in = [a.sharding.spec for a in jax.tree.leaves(sstate)]
    specs_out = [a.sharding.spec for a in jax.tree.leaves(state8)]
    big = [a for a in jax.tree.leaves(sstate) if a.size >= MIN_SIZE]
    mem = parallel.memory_per_device(sstate)

    errors = {}
    for name, fn in {
        "batch_not_divisible": lambda: parallel.shard_batch({"x0": np.zeros((6, 2), np.float32)}, mesh),
        "mesh_too_big": lambda: parallel.make_mesh(data=4, fsdp=4),
        "fsdp_not_divisor": lambda: parallel.make_mesh(fsdp=3),
        "string_in_batch": lambda: parallel.shard_batch({"caption": np.array(["a"] * 8)}, mesh),
    }.items():
        try:
            fn()
            errors[name] = None
        except ValueError as e:
            errors[name] = str(e)

    names = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(nnx.state(g1))[0]]
    gerr = [rel_err(a, b) for a, b in zip(jax.tree.leaves(g8), jax.tree.leaves(g1))]
    perr = [rel_err(a, b) for a, b in zip(p8, p1)]
    return {
        "loss1": float(loss1), "loss8": float(loss8),
        "max_grad_rel_err": max(gerr), "worst_grad": names[int(np.argmax(gerr))],
        "max_param_rel_err": max(perr), "worst_param": names[int(np.argmax(perr))],
        "min_param_change": min(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(p1, before)),
        "n_params": len(p1),
        "n_fsdp_in": sum(P(*s) != P() for s in specs_in),
        "n_big": len(big),
        "all_big_sharded": all("fsdp" in str(a.sharding.spec) for a in big),
        "out_specs_match": specs_in == specs_out,
        "batch_spec": str(sbatch["x0"].sharding.spec),
        "batch_shard_rows": sbatch["x0"].addressable_shards[0].data.shape[0],
        "mem": mem,
        "errors": errors,
    }


# ------------------------------------------------------------------ parent tests


@pytest.fixture(scope="module")
def child() -> dict:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "--xla_backend_optimization_level=0")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={N_DEVICES}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sharded_train_step_matches_one_device(child):
    assert np.isfinite(child["loss1"]) and child["loss1"] > 0
    assert abs(child["loss8"] - child["loss1"]) <= 1e-5 * abs(child["loss1"]), child
    assert child["min_param_change"] > 0, "some parameter did not move: the comparison would be vacuous"
    assert child["max_grad_rel_err"] < 1e-5, child
    assert child["max_param_rel_err"] < 1e-5, child


def test_fsdp_placement_on_8_devices(child):
    assert child["n_big"] > 0 and child["all_big_sharded"], child
    assert child["n_fsdp_in"] == child["n_big"], "arrays below min_size must stay replicated"
    assert child["out_specs_match"], "the step's output state lost the input placement"
    assert child["batch_spec"] == str(P(("data", "fsdp"))) and child["batch_shard_rows"] == B // N_DEVICES
    mem = child["mem"]
    assert mem["max_device_bytes"] < 0.75 * mem["total_bytes"], mem      # FSDP=2 about halves it


def test_error_messages_name_the_numbers(child):
    err = child["errors"]
    assert "6" in err["batch_not_divisible"] and "8 batch shards" in err["batch_not_divisible"]
    assert "16" in err["mesh_too_big"] and "8" in err["mesh_too_big"]
    assert "fsdp=3" in err["fsdp_not_divisor"] and "8" in err["fsdp_not_divisor"]
    assert "caption" in err["string_in_batch"]


def test_no_mesh_is_identity():
    tree = {"w": jnp.ones((3, 5)), "b": np.zeros(7, np.float32)}
    batch = {"x": np.zeros((5, 2), np.float32), "caption": ["not", "an", "array"]}
    assert parallel.shard_state(tree, None) is tree
    assert parallel.shard_batch(batch, None) is batch
    assert parallel.constrain(tree, None) is tree
    assert parallel.param_shardings(tree, None) is None
    assert parallel.batch_sharding(None) is None and parallel.replicated(None) is None
    assert parallel.num_batch_shards(None) == 1
    obj = object()
    assert parallel.shard_model(obj, None) is obj


def test_fsdp_rule():
    assert parallel.fsdp_spec((2, 32, 96), 2, min_size=0) == P(None, None, "fsdp")
    assert parallel.fsdp_spec((259, 24), 2, min_size=0) == P(None, "fsdp")       # largest divisible
    assert parallel.fsdp_spec((64, 64), 2, min_size=0) == P(None, "fsdp")        # tie: later axis
    assert parallel.fsdp_spec((7, 11), 2, min_size=0) == P()                     # nothing divisible
    assert parallel.fsdp_spec((64, 64), 2, min_size=64 * 64 + 1) == P()          # small: replicated
    assert parallel.fsdp_spec((64, 64), 1, min_size=0) == P()                    # no fsdp axis
    assert parallel.fsdp_spec((), 2, min_size=0) == P()


def test_one_device_mesh_and_errors():
    mesh = parallel.make_mesh()
    assert dict(mesh.shape) == {"data": jax.device_count(), "fsdp": 1}
    with pytest.raises(ValueError, match=f"{jax.device_count()} are available"):
        parallel.make_mesh(data=jax.device_count() + 1)
    with pytest.raises(ValueError, match="fsdp=0"):
        parallel.make_mesh(fsdp=0)
    x = np.arange(6 * mesh.size, dtype=np.float32).reshape(3 * mesh.size, 2)
    placed = parallel.shard_batch({"x": x, "step": 4}, mesh)
    assert placed["x"].sharding == parallel.batch_sharding(mesh)
    np.testing.assert_array_equal(placed["x"], x)
    assert int(placed["step"]) == 4


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    print(json.dumps(_child()))
