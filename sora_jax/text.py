"""Text conditioning: a byte-level tokenizer and a small transformer text encoder.

Axes: ``b`` batch, ``L`` text tokens (``TextConfig.max_tokens``), ``d`` encoder width
(``TextConfig.width``), ``e`` width of precomputed external embeddings.

Nothing is downloaded. The tokenizer maps a prompt to its UTF-8 bytes plus three
special ids, and the encoder is trained together with the DiT. A bigger pretrained
encoder (T5, CLIP, ...) can be used instead: set ``TextConfig.external_dim`` to its
width, compute its embeddings yourself, and pass ``(b, L, external_dim)`` arrays; the
encoder then only projects them to ``width``.

Two rules a user should know:

* **Long prompts are truncated.** A prompt with more than ``max_tokens - 2`` UTF-8
  bytes keeps its first ``max_tokens - 2`` bytes (BOS and EOS take the other two) and
  a ``UserWarning`` names its length and the limit.
* **The empty prompt is the unconditional prompt.** ``""`` (or only whitespace) encodes
  to an all-padding row, and the encoder maps any row with no real token to the
  learned null embedding, the same one classifier-free guidance uses for "no text".
  Training with ``drop`` (prompt dropout) teaches the model what the null embedding means.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from sora_jax.config import TextConfig
from sora_jax.layers import Attention, Mlp, linear

PAD, BOS, EOS = 0, 1, 2
OFFSET = 3                    # byte value v has id v + OFFSET
VOCAB_SIZE = 256 + OFFSET


@dataclasses.dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes + BOS/EOS/PAD. Ids: PAD=0, BOS=1, EOS=2, byte v -> v + 3 (vocabulary 259)."""

    max_tokens: int = 64

    def __post_init__(self):
        if self.max_tokens < 3:
            raise ValueError(f"max_tokens={self.max_tokens}: need >= 3 (BOS, at least one byte, EOS)")

    def encode(self, prompts: str | Sequence[str]) -> tuple[Int[np.ndarray, "b L"], Bool[np.ndarray, "b L"]]:
        """Prompts -> ``(ids, mask)``, both ``(b, max_tokens)``; ``mask`` is True on real tokens.

        Real tokens always come first (padding at the end). An empty prompt gives an
        all-False mask row (-> the null embedding). Too-long prompts are truncated with
        a warning.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        limit = self.max_tokens - 2
        ids = np.full((len(prompts), self.max_tokens), PAD, np.int32)
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise ValueError(f"prompt {i} is a {type(prompt).__name__}, expected str")
            if not prompt.strip():
                continue
            data = prompt.encode("utf-8")
            if len(data) > limit:
                warnings.warn(
                    f"prompt {i} has {len(data)} UTF-8 bytes, more than the limit of {limit} "
                    f"(TextConfig.max_tokens={self.max_tokens} minus BOS/EOS); it was truncated to "
                    f"{prompt.encode('utf-8')[:limit].decode('utf-8', 'ignore')!r}",
                    stacklevel=2,
                )
                data = data[:limit]
            row = [BOS, *(b + OFFSET for b in data), EOS]
            ids[i, : len(row)] = row
        return ids, ids != PAD

    def decode(self, ids: Int[np.ndarray, "b L"]) -> list[str]:
        """Ids -> prompts (special ids dropped; a character cut by truncation is dropped)."""
        ids = np.asarray(ids)
        out = []
        for row in ids.reshape(-1, ids.shape[-1]):
            data = bytes(int(v) - OFFSET for v in row if v >= OFFSET)
            out.append(data.decode("utf-8", "ignore"))
        return out


class TextBlock(nnx.Module):
    """Pre-LayerNorm transformer block: self-attention over the prompt (padding masked) + MLP."""

    def __init__(self, width: int, num_heads: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(width, rngs=rngs)
        self.attn = Attention(width, num_heads, qk_norm=True, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, rngs=rngs)
        self.mlp = Mlp(width, 4 * width, rngs=rngs)

    def __call__(self, x: Float[Array, "b L d"], mask: Bool[Array, "b L"]) -> Float[Array, "b L d"]:
        x = x + self.attn(self.norm1(x), kv_mask=mask)
        return x + self.mlp(self.norm2(x))


class TextEncoder(nnx.Module):
    """Prompt tokens (or external embeddings) -> ``(b, L, width)`` text tokens and their mask.

    ``TextConfig.external_dim == 0``: byte embeddings + learned positions + ``depth``
    transformer blocks + LayerNorm. ``external_dim > 0``: a Linear(external_dim -> width)
    + LayerNorm over precomputed embeddings from any encoder.

    Either way, rows with no real token and rows with ``drop=True`` are replaced by the
    learned null embedding ``(L, width)`` with an all-True mask (a fully masked row would
    make cross-attention's softmax meaningless). That is the unconditional input of
    classifier-free guidance; :meth:`null` returns it for a batch.
    """

    def __init__(self, cfg: TextConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.width = cfg.width
        self.tokenizer = ByteTokenizer(cfg.max_tokens)
        init = nnx.initializers.normal(0.02)
        self.null_embedding = nnx.Param(init(rngs.params(), (cfg.max_tokens, cfg.width)))
        if cfg.external_dim > 0:
            self.proj = linear(cfg.external_dim, cfg.width, rngs=rngs)
        else:
            self.embed = nnx.Embed(VOCAB_SIZE, cfg.width, embedding_init=init, rngs=rngs)
            self.pos = nnx.Param(init(rngs.params(), (cfg.max_tokens, cfg.width)))
            self.blocks = nnx.List([TextBlock(cfg.width, cfg.num_heads, rngs=rngs) for _ in range(cfg.depth)])
        self.norm = nnx.LayerNorm(cfg.width, rngs=rngs)

    @property
    def external(self) -> bool:
        return self.cfg.external_dim > 0

    def null(self, batch: int) -> tuple[Float[Array, "b L d"], Bool[Array, "b L"]]:
        """The unconditional text: the learned null embedding for ``batch`` rows, all-True mask."""
        emb = jnp.broadcast_to(self.null_embedding[...], (batch, *self.null_embedding.shape))
        return emb, jnp.ones(emb.shape[:2], bool)

    def __call__(
        self,
        tokens: Int[Array, "b L"] | Float[Array, "b L e"],
        mask: Bool[Array, "b L"],
        *,
        drop: Bool[Array, "b"] | None = None,
    ) -> tuple[Float[Array, "b L d"], Bool[Array, "b L"]]:
        """Encode a batch; ``drop`` (b,) replaces chosen rows by the null embedding (prompt dropout)."""
        L = tokens.shape[1]
        if L > self.cfg.max_tokens:
            raise ValueError(f"text length {L} exceeds TextConfig.max_tokens={self.cfg.max_tokens}")
        if self.external:
            if tokens.ndim != 3 or tokens.shape[-1] != self.cfg.external_dim:
                raise ValueError(
                    f"external text embeddings must be (b, L, {self.cfg.external_dim}), got {tuple(tokens.shape)}"
                )
            x = self.proj(tokens.astype(jnp.float32))
        else:
            if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
                raise ValueError(f"token ids must be an int array (b, L), got {tokens.dtype} {tuple(tokens.shape)}")
            x = self.embed(tokens) + self.pos[:L]
            for block in self.blocks:
                x = block(x, mask)
        x = self.norm(x)
        use_null = ~jnp.any(mask, axis=-1)
        if drop is not None:
            use_null = use_null | drop
        null = self.null_embedding[:L]
        x = jnp.where(use_null[:, None, None], null[None], x)
        mask = jnp.where(use_null[:, None], True, mask)
        return x, mask

    def encode_prompts(
        self, prompts: str | Sequence[str], *, drop: Bool[Array, "b"] | None = None
    ) -> tuple[Float[Array, "b L d"], Bool[Array, "b L"]]:
        """Tokenize with the byte tokenizer and encode (internal encoder only).

        ``""`` (or only whitespace) gives the null embedding, i.e. the unconditional prompt;
        a prompt over ``max_tokens - 2`` UTF-8 bytes is truncated with a ``UserWarning``.
        """
        if self.external:
            raise ValueError("this TextEncoder expects precomputed embeddings (TextConfig.external_dim > 0)")
        ids, mask = self.tokenizer.encode(prompts)
        return self(jnp.asarray(ids), jnp.asarray(mask), drop=drop)


def prompt_dropout(key: jax.Array, batch: int, rate: float) -> Bool[Array, "b"]:
    """Which rows to replace by the null prompt during training (``TrainConfig.text_dropout``)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"prompt dropout rate {rate} must be in [0, 1]")
    return jax.random.bernoulli(key, rate, (batch,))
