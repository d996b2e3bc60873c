"""DCGH models: CLIP towers with tanh hash heads, and a frozen-feature variant.

``DCGH`` is CLIP (ViT image tower + causal text Transformer, as in OpenAI's CLIP) with
one hash head per modality, ``h = tanh(Dropout(0.2)(Dense(embed -> bits)))``.
``FeatureDCGH`` replaces the towers by MLPs for data that ships features (Wikipedia
SIFT/LDA, UCI views). Both have the parameter tree

  {"image_tower": ..., "text_tower": ..., "image_head": ..., "text_head": ...}

(inside the ``"params"`` collection), so an optimiser can give towers and heads
different learning rates by top-level key. Parameters are float32; ``dtype`` sets the
compute dtype (e.g. ``jnp.bfloat16``); the hash outputs are always float32.

Usage::

  model = factory.build_model(config)  # config.model.kind in {"clip", "features"}
  variables = model.init({"params": k1, "dropout": k2}, images, tokens, train=False)
  h_img, h_txt = model.apply(variables, images, tokens, train=True,
                             rngs={"dropout": k3})
  h_img = model.apply(variables, images, method="encode_image")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hashjax import checks
from hashjax.dcgh.towers_config import (
    CLIPTextConfig,
    CLIPVisionConfig,
    clip_preset,
    quick_gelu,
)
from hashjax.dcgh.towers_config import activation as _activation

__all__ = [
    "CLIPTextConfig",
    "CLIPVisionConfig",
    "DCGH",
    "FeatureDCGH",
    "HashHead",
    "MLPTower",
    "TextTransformer",
    "VisionTransformer",
    "clip_preset",
    "quick_gelu",
]


# ----------------------------------------------------------------------------- blocks


class MultiHeadAttention(nn.Module):
  """Self-attention with separate q/k/v Dense layers (kernels ``[w, w]``)."""
  heads: int
  causal: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n, t, w = x.shape
    dense = lambda name: nn.Dense(w, dtype=self.dtype, name=name)  # noqa: E731
    split = lambda y: y.reshape(n, t, self.heads, w // self.heads)  # noqa: E731
    q, k, v = (split(dense(name)(x)) for name in ("query", "key", "value"))
    y = jax.nn.dot_product_attention(q, k, v, is_causal=self.causal)
    return dense("out")(y.reshape(n, t, w))


class ResidualAttentionBlock(nn.Module):
  """Pre-LN block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""
  heads: int
  mlp_dim: int
  activation: str = "quick_gelu"
  layer_norm_eps: float = 1e-5
  causal: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ln = lambda name: nn.LayerNorm(  # noqa: E731
        epsilon=self.layer_norm_eps, dtype=self.dtype, name=name)
    x = x + MultiHeadAttention(self.heads, self.causal, self.dtype, name="attn")(
        ln("ln_1")(x))
    y = ln("ln_2")(x)
    y = nn.Dense(self.mlp_dim, dtype=self.dtype, name="c_fc")(y)
    y = _activation(self.activation)(y)
    y = nn.Dense(x.shape[-1], dtype=self.dtype, name="c_proj")(y)
    return x + y


class Transformer(nn.Module):
  """A stack of ``layers`` residual blocks named ``resblocks_{i}``."""
  layers: int
  heads: int
  mlp_dim: int
  activation: str = "quick_gelu"
  layer_norm_eps: float = 1e-5
  causal: bool = False
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    block = nn.remat(ResidualAttentionBlock) if self.remat else ResidualAttentionBlock
    for i in range(self.layers):
      x = block(self.heads, self.mlp_dim, self.activation, self.layer_norm_eps,
                self.causal, self.dtype, name=f"resblocks_{i}")(x)
    return x


def _transformer(cfg: Any, *, causal: bool, dtype: Any, remat: bool) -> Transformer:
  return Transformer(cfg.layers, cfg.heads, cfg.mlp_dim or 4 * cfg.width,
                     cfg.activation, cfg.layer_norm_eps, causal, dtype, remat,
                     name="transformer")


# ----------------------------------------------------------------------------- towers


class VisionTransformer(nn.Module):
  """CLIP ViT: float ``[n, S, S, 3]`` (NHWC, normalised) -> ``[n, embed_dim]``."""
  config: CLIPVisionConfig
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    c = self.config
    want = (c.image_size, c.image_size, 3)
    if images.ndim != 4 or tuple(images.shape[1:]) != want:
      raise ValueError(f"images must be [n, {want[0]}, {want[1]}, 3] (NHWC), "
                       f"got shape {tuple(images.shape)}.")
    w, init = c.width, nn.initializers.normal(c.width**-0.5)
    x = nn.Conv(w, (c.patch_size, c.patch_size), strides=(c.patch_size,) * 2,
                padding="VALID", use_bias=False, dtype=self.dtype, name="conv1")(
                    images)
    x = x.reshape(x.shape[0], -1, w)
    cls = self.param("class_embedding", init, (w,)).astype(x.dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, w)), x], axis=1)
    pos = self.param("positional_embedding", init, (c.grid * c.grid + 1, w))
    x = x + pos.astype(x.dtype)
    ln = lambda name: nn.LayerNorm(  # noqa: E731
        epsilon=c.layer_norm_eps, dtype=self.dtype, name=name)
    x = ln("ln_pre")(x)
    x = _transformer(c, causal=False, dtype=self.dtype, remat=self.remat)(x)
    x = ln("ln_post")(x[:, 0])
    proj = self.param("proj", init, (w, c.embed_dim))
    return x @ proj.astype(x.dtype)


class TextTransformer(nn.Module):
  """CLIP text tower: ``tokens [n, L]`` int (L <= context) -> ``[n, embed_dim]``."""
  config: CLIPTextConfig
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    c = self.config
    if (tokens.ndim != 2 or not 0 < tokens.shape[1] <= c.context_length
        or not jnp.issubdtype(tokens.dtype, jnp.integer)):
      raise ValueError(f"tokens must be integer [n, L] with 0 < L <= "
                       f"{c.context_length}, got {tokens.dtype} {tuple(tokens.shape)}.")
    x = nn.Embed(c.vocab_size, c.width, dtype=self.dtype,
                 embedding_init=nn.initializers.normal(0.02),
                 name="token_embedding")(tokens)
    pos = self.param("positional_embedding", nn.initializers.normal(0.01),
                     (c.context_length, c.width))
    x = x + pos[: tokens.shape[1]].astype(x.dtype)
    x = _transformer(c, causal=True, dtype=self.dtype, remat=self.remat)(x)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=self.dtype, name="ln_final")(x)
    if c.pooling == "argmax":
      idx = jnp.argmax(tokens, axis=-1)
    else:
      idx = jnp.argmax(tokens == c.eos_token_id, axis=-1)
    x = jnp.take_along_axis(x, idx[:, None, None], axis=1)[:, 0]
    proj = self.param("text_projection", nn.initializers.normal(c.width**-0.5),
                      (c.width, c.embed_dim))
    return x @ proj.astype(x.dtype)


class HashHead(nn.Module):
  """``tanh(Dropout(rate)(Dense(bits)(x)))``, float32 output in (-1, 1).

  Initialised as torch's ``nn.Linear`` (the reference's ``LinearHash``): kernel and
  bias uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, ``fan_in = x.shape[-1]``.
  """
  bits: int
  dropout_rate: float = 0.2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bound = x.shape[-1] ** -0.5
    uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(  # noqa: E731
        key, shape, dtype, -bound, bound)
    x = nn.Dense(self.bits, dtype=self.dtype, kernel_init=uniform, bias_init=uniform,
                 name="dense")(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return jnp.tanh(x.astype(jnp.float32))


class MLPTower(nn.Module):
  """Feature tower: per hidden size ``Dense -> [LayerNorm] -> act -> [Dropout]``."""
  hidden: Sequence[int] = (1024, 512)
  activation: str = "relu"
  layer_norm: bool = True
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim != 2:
      raise ValueError(f"features must be 2-D [n, d], got shape {tuple(x.shape)}.")
    act = _activation(self.activation)
    for i, h in enumerate(self.hidden):
      x = nn.Dense(h, dtype=self.dtype, name=f"dense_{i}")(x)
      if self.layer_norm:
        x = nn.LayerNorm(dtype=self.dtype, name=f"ln_{i}")(x)
      x = act(x)
      if self.dropout_rate:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return x


# ----------------------------------------------------------------------------- models


class DCGH(nn.Module):
  """CLIP towers + hash heads; dropout PRNG stream name ``"dropout"``.

  Attributes:
    vision: image tower sizes.
    text: text tower sizes.
    bits: hash code length c.
    dropout_rate: hash-head dropout (0.2 in DCGH).
    dtype: compute dtype (parameters stay float32).
    remat: rematerialise each Transformer block (saves activation memory).
  """
  vision: CLIPVisionConfig
  text: CLIPTextConfig
  bits: int
  dropout_rate: float = 0.2
  dtype: Any = jnp.float32
  remat: bool = False

  def setup(self):
    checks.check_bits(self.bits)
    self.image_tower = VisionTransformer(self.vision, self.dtype, self.remat)
    self.text_tower = TextTransformer(self.text, self.dtype, self.remat)
    self.image_head = HashHead(self.bits, self.dropout_rate, self.dtype)
    self.text_head = HashHead(self.bits, self.dropout_rate, self.dtype)

  def __call__(self, images: jax.Array, tokens: jax.Array, *, train: bool
               ) -> tuple[jax.Array, jax.Array]:
    """Hash outputs of paired items.

    Args:
      images: float ``[n, S, S, 3]`` NHWC, already normalised.
      tokens: int32 ``[n, L]`` token ids, ``L <= text.context_length``.
      train: enables head dropout (needs ``rngs={"dropout": key}``).

    Returns:
      ``(h_image, h_text)``, float32 ``[n, bits]`` each, in (-1, 1).
    """
    return (self.encode_image(images, train=train),
            self.encode_text(tokens, train=train))

  def encode_image(self, images: jax.Array, *, train: bool = False) -> jax.Array:
    """Images float ``[n, S, S, 3]`` -> float32 ``[n, bits]`` tanh outputs."""
    return self.image_head(self.image_tower(images), train=train)

  def encode_text(self, tokens: jax.Array, *, train: bool = False) -> jax.Array:
    """Tokens int ``[n, L]`` -> float32 ``[n, bits]`` tanh outputs."""
    return self.text_head(self.text_tower(tokens), train=train)

  def embed_image(self, images: jax.Array) -> jax.Array:
    """CLIP image embedding (before the head): ``[n, vision.embed_dim]``."""
    return self.image_tower(images)

  def embed_text(self, tokens: jax.Array) -> jax.Array:
    """CLIP text embedding (before the head): ``[n, text.embed_dim]``."""
    return self.text_tower(tokens)


class FeatureDCGH(nn.Module):
  """MLP towers on fixed features + hash heads; same interface as ``DCGH``.

  ``__call__(x_image [n, d1], x_text [n, d2], *, train)``; the input widths are
  inferred at ``init``.
  """
  bits: int
  hidden: Sequence[int] = (1024, 512)
  activation: str = "relu"
  layer_norm: bool = True
  tower_dropout: float = 0.0
  dropout_rate: float = 0.2
  dtype: Any = jnp.float32

  def setup(self):
    checks.check_bits(self.bits)
    tower = lambda: MLPTower(tuple(self.hidden), self.activation,  # noqa: E731
                             self.layer_norm, self.tower_dropout, self.dtype)
    self.image_tower = tower()
    self.text_tower = tower()
    self.image_head = HashHead(self.bits, self.dropout_rate, self.dtype)
    self.text_head = HashHead(self.bits, self.dropout_rate, self.dtype)

  def __call__(self, x_image: jax.Array, x_text: jax.Array, *, train: bool
               ) -> tuple[jax.Array, jax.Array]:
    """Features ``[n, d1]``, ``[n, d2]`` -> ``(h_image, h_text)``, f32 ``[n, bits]``."""
    return (self.encode_image(x_image, train=train),
            self.encode_text(x_text, train=train))

  def encode_image(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.image_head(self.image_tower(x, train=train), train=train)

  def encode_text(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.text_head(self.text_tower(x, train=train), train=train)
