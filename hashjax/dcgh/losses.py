"""DCGH loss (docs/dcgh.md#loss): class proxies, variance, positive and negative pairs.

``dcgh_loss`` follows the official code (``utils/utils.py``, class ``HyP``) term by
term. Every cosine L2-normalises its rows with ``max(||x||, 1e-12)`` (torch's
``F.normalize``); there is no temperature and no margin.

Two additions, both no-ops on a full batch of labelled items:

* ``mask`` ``[n]`` drops padded rows from every sum and every count, so a padded last
  batch gives the loss of its real rows (hashjax keeps the last partial batch, as the
  reference does, without recompiling).
* A term whose count is zero is 0 (the reference divides 0 by 0 when a batch has no
  positive label at all; it already returns 0 for the negative pair terms when no pair
  of multi-label items is disjoint).

Parallelism: under ``jax.jit`` with a batch sharded over devices the loss sees the
global batch and needs nothing more. Under ``jax.pmap`` pass ``axis_name``: codes,
labels and the mask are ``all_gather``-ed over that axis first, so every device computes
the loss of the global batch (gradients must then be ``pmean``-ed over the axis).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["LOSS_TERMS", "dcgh_loss", "init_proxies", "l2_normalize"]

LOSS_TERMS = ("proxy_image", "proxy_text", "var_image", "var_text", "pos_ii",
              "pos_tt", "pos_it", "neg_ii", "neg_tt", "neg_it")

_EPS = 1e-12


def l2_normalize(x: jax.Array) -> jax.Array:
  """Rows of ``x`` ``[n, d]`` divided by ``max(||x_i||, 1e-12)`` (NaN-free gradient)."""
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, _EPS * _EPS))


def init_proxies(rng: jax.Array, num_classes: int, bits: int) -> jax.Array:
  """Initial class proxies: normal with std ``sqrt(2 / C)`` (kaiming, fan_out), tanh.

  Args:
    rng: PRNG key.
    num_classes: C.
    bits: code length.

  Returns:
    float32 ``[C, bits]`` proxies in (-1, 1).
  """
  if num_classes < 1 or bits < 1:
    raise ValueError(
        f"num_classes and bits must be positive, got {num_classes} and {bits}.")
  std = math.sqrt(2.0 / num_classes)
  return jnp.tanh(std * jax.random.normal(rng, (num_classes, bits), jnp.float32))


def _safe_div(num: jax.Array, count: jax.Array) -> jax.Array:
  return jnp.where(count > 0, num / jnp.maximum(count, 1.0), 0.0)


def _proxy_and_variance(h: jax.Array, pos: jax.Array, neg: jax.Array,
                        proxies_n: jax.Array, valid: jax.Array
                        ) -> tuple[jax.Array, jax.Array]:
  cos = l2_normalize(h) @ proxies_n.T                       # [n, C]
  pos_d = jnp.where(pos, 1.0 - cos, 0.0)
  proxy = (_safe_div(jnp.sum(pos_d), jnp.sum(pos)) +
           _safe_div(jnp.sum(jnp.where(neg, jax.nn.relu(cos), 0.0)), jnp.sum(neg)))
  num_classes = pos.shape[1]
  mean = jnp.mean(pos_d, axis=1, keepdims=True)
  var = jnp.sum((pos_d - mean) ** 2, axis=1) / (num_classes - 1)   # ddof = 1
  variance = _safe_div(jnp.sum(jnp.where(valid, var, 0.0)), jnp.sum(valid))
  return proxy, variance


def dcgh_loss(
    h_image: jax.Array,
    h_text: jax.Array,
    labels: jax.Array,
    proxies: jax.Array,
    *,
    neg_weight: float | jax.Array = 0.8,
    pos_weight: float | jax.Array = 0.05,
    mask: jax.Array | None = None,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The DCGH training loss of one batch (docs/dcgh.md#loss).

  Args:
    h_image: float ``[n, bits]`` image hash outputs (tanh, before sign).
    h_text: float ``[n, bits]`` text hash outputs.
    labels: ``[n, C]`` multi-hot labels (any numeric dtype), C >= 2.
    proxies: float ``[C, bits]`` class proxies.
    neg_weight: weight of the three negative pair terms (0.8).
    pos_weight: weight of the three positive pair terms (0.05).
    mask: optional ``[n]`` bool/0-1, False for padding rows; default all True.
    axis_name: pmap axis to ``all_gather`` the batch over (None under jit).

  Returns:
    ``(total, terms)``: scalar float32 loss and a dict of the ten scalar terms
    :data:`LOSS_TERMS`; ``total = proxy_image + proxy_text + var_image + var_text
    + neg_weight * (neg_ii + neg_tt + neg_it) + pos_weight * (pos_ii + pos_tt + pos_it)``.
  """
  for name, x in (("h_image", h_image), ("h_text", h_text)):
    if x.ndim != 2:
      raise ValueError(f"{name} must be [n, bits], got shape {x.shape}.")
  if h_text.shape != h_image.shape:
    raise ValueError(
        f"h_text shape {h_text.shape} differs from h_image shape {h_image.shape}.")
  if labels.ndim != 2 or labels.shape[0] != h_image.shape[0]:
    raise ValueError(
        f"labels must be [n, C] with n = {h_image.shape[0]}, got {labels.shape}.")
  num_classes = labels.shape[1]
  if num_classes < 2:
    raise ValueError(
        f"DCGH needs at least 2 classes (variance over classes, ddof=1), got {num_classes}.")
  if proxies.shape != (num_classes, h_image.shape[1]):
    raise ValueError(
        f"proxies must be [C, bits] = {(num_classes, h_image.shape[1])}, got "
        f"{proxies.shape}.")
  if mask is None:
    mask = jnp.ones((h_image.shape[0],), bool)
  elif mask.shape != (h_image.shape[0],):
    raise ValueError(f"mask must be [{h_image.shape[0]}], got shape {mask.shape}.")

  if axis_name is not None:
    h_image, h_text, labels, mask = (
        jax.lax.all_gather(x, axis_name, axis=0, tiled=True)
        for x in (h_image, h_text, labels, mask))

  y = labels.astype(jnp.float32)
  valid = mask.astype(bool)
  pos = (y == 1) & valid[:, None]
  neg = (y == 0) & valid[:, None]
  proxies_n = l2_normalize(proxies)
  proxy_i, var_i = _proxy_and_variance(h_image, pos, neg, proxies_n, valid)
  proxy_t, var_t = _proxy_and_variance(h_text, pos, neg, proxies_n, valid)

  hi, ht = l2_normalize(h_image), l2_normalize(h_text)
  pair_valid = valid[:, None] & valid[None, :]
  sim = l2_normalize(y) @ l2_normalize(y).T                 # S_ij = cos(y_i, y_j)
  pos_pair = (sim > 0) & pair_valid
  n_pos = jnp.sum(pos_pair)
  multi = (jnp.sum(y, axis=1) >= 2) & valid
  neg_pair = (y @ y.T == 0) & multi[:, None] & multi[None, :]
  n_neg = jnp.sum(neg_pair)

  def pos_term(cos):
    return _safe_div(jnp.sum(jnp.where(pos_pair, jax.nn.relu(sim - cos), 0.0)), n_pos)

  def neg_term(cos):
    return _safe_div(jnp.sum(jnp.where(neg_pair, jax.nn.relu(cos), 0.0)), n_neg)

  cos_ii, cos_tt, cos_it = hi @ hi.T, ht @ ht.T, hi @ ht.T
  terms = {
      "proxy_image": proxy_i, "proxy_text": proxy_t,
      "var_image": var_i, "var_text": var_t,
      "pos_ii": pos_term(cos_ii), "pos_tt": pos_term(cos_tt), "pos_it": pos_term(cos_it),
      "neg_ii": neg_term(cos_ii), "neg_tt": neg_term(cos_tt), "neg_it": neg_term(cos_it),
  }
  total = (terms["proxy_image"] + terms["proxy_text"]
           + neg_weight * (terms["neg_ii"] + terms["neg_tt"] + terms["neg_it"])
           + pos_weight * (terms["pos_ii"] + terms["pos_tt"] + terms["pos_it"])
           + terms["var_image"] + terms["var_text"])
  return total, terms
