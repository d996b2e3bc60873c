"""DCGH optimisers (docs/dcgh.md#optim): the reference BertAdam and the proxies' SGD.

BertAdam (pytorch-pretrained-bert / CLIP4Clip ``optimization.py``, as used by DCHMT,
DSPH and DCGH), per torch parameter ``p`` with gradient ``g``::

  g <- g * min(1, max_norm / (||g|| + 1e-6))        # clip_grad_norm_(p, 1.0)
  m <- b1 m + (1 - b1) g
  v <- b2 v + (1 - b2) g^2
  u  = m / (sqrt(v) + eps) + weight_decay * p       # no bias correction
  p <- p - lr * schedule(step / total_steps) * u    # step counts from 0

with b1 = 0.9, b2 = 0.98, eps = 1e-6, weight_decay = 0.2 on every tensor (biases and
LayerNorm included) and the ``warmup_cosine`` schedule: ``x / w`` while ``x < w``,
else ``0.5 (1 + cos(pi x))`` (w = 0.1; not re-scaled after warm-up, so the first step has
lr 0). The towers get lr 1e-5, the hash heads 1e-3: :func:`dcgh_optimizer` splits the
parameters by their top-level key with ``optax.multi_transform``.

Clipping groups. The reference clips each *torch parameter* on its own, and torch's
``nn.MultiheadAttention`` (used by CLIP) holds q, k and v in one fused
``in_proj_weight [3w, w]`` and one ``in_proj_bias [3w]``. Our attention keeps separate
``query`` / ``key`` / ``value`` Dense layers, so :func:`clip_by_torch_param_norm` clips
the three kernels of a block together (one norm over all three) and likewise the three
biases; every other leaf is its own group, as in the torch parameter list. The moments
and the weight decay are element-wise, so only the clip depends on the grouping.

Proxies: torch SGD, ``d = g + wd p; buf = momentum buf + d; p <- p - lr buf`` with lr 0.02,
momentum 0.9, wd 5e-4, constant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "ScaleByBertAdamState",
    "bert_adam",
    "clip_by_torch_param_norm",
    "dcgh_optimizer",
    "param_labels",
    "proxy_optimizer",
    "scale_by_bert_adam",
    "torch_param_group",
    "warmup_cosine_schedule",
]


def warmup_cosine_schedule(base_lr: float, total_steps: int, *,
                           warmup: float = 0.1) -> Callable[[jax.Array], jax.Array]:
  """``lr(step) = base_lr * f(step / total_steps)`` with BertAdam's ``warmup_cosine``.

  Args:
    base_lr: peak learning rate.
    total_steps: steps of the whole run (batches per epoch x epochs).
    warmup: warm-up fraction w of the run.

  Returns:
    schedule mapping an int step count (from 0) to a float32 learning rate.
  """
  if total_steps <= 0:
    raise ValueError(f"total_steps must be positive, got {total_steps}.")
  if not 0 < warmup <= 1:
    raise ValueError(f"warmup must be in (0, 1], got {warmup}.")

  def schedule(count):
    x = jnp.asarray(count, jnp.float32) / total_steps
    factor = jnp.where(x < warmup, x / warmup, 0.5 * (1.0 + jnp.cos(jnp.pi * x)))
    return base_lr * factor

  return schedule


_FUSED_QKV = ("query", "key", "value")


def _key_name(entry: Any) -> Any:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return getattr(entry, attr)
  return entry


def torch_param_group(path: Sequence[Any]) -> tuple[Any, ...]:
  """Clip group of a leaf path: the torch parameter of the reference that holds it.

  ``(..., "attn", "query"|"key"|"value", "kernel"|"bias")`` -> the fused
  ``(..., "attn", "in_proj", "kernel"|"bias")`` (torch ``in_proj_weight`` /
  ``in_proj_bias``); any other path is its own group.

  Args:
    path: the leaf's key path (``jax.tree_util`` entries or plain names).

  Returns:
    a hashable group key.
  """
  names = tuple(_key_name(k) for k in path)
  if len(names) >= 3 and names[-3] == "attn" and names[-2] in _FUSED_QKV:
    return (*names[:-2], "in_proj", names[-1])
  return names


def clip_by_torch_param_norm(
    max_norm: float, *, eps: float = 1e-6,
    group_fn: Callable[[Sequence[Any]], Any] = torch_param_group,
) -> optax.GradientTransformation:
  """torch ``clip_grad_norm_(p, max_norm)`` per reference parameter ``p``.

  The leaves are grouped by ``group_fn(path)`` (default :func:`torch_param_group`:
  q/k/v of an attention block fused as in torch, everything else alone). Every leaf
  ``g`` of a group ``G`` becomes ``g * min(1, max_norm / (||G||_2 + eps))`` with
  ``||G||_2`` the norm of all the group's entries together. Works inside
  ``optax.multi_transform`` (masked leaves are not part of the tree it sees).

  Args:
    max_norm: the clip norm (reference: 1.0).
    eps: added to the norm, as torch does.
    group_fn: maps a leaf's key path to a hashable group key.

  Returns:
    a stateless ``optax.GradientTransformation``.
  """

  def update_fn(updates, state, params=None):
    del params
    flat, treedef = jax.tree_util.tree_flatten_with_path(updates)
    groups = [group_fn(path) for path, _ in flat]
    sq: dict[Any, jax.Array] = {}
    for key, (_, g) in zip(groups, flat):
      s = jnp.sum(jnp.square(g.astype(jnp.float32)))
      sq[key] = sq[key] + s if key in sq else s
    coef = {k: jnp.minimum(1.0, max_norm / (jnp.sqrt(s) + eps)) for k, s in sq.items()}
    out = [(g * coef[key]).astype(g.dtype) for key, (_, g) in zip(groups, flat)]
    return jax.tree_util.tree_unflatten(treedef, out), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


class ScaleByBertAdamState(NamedTuple):
  """First and second moments, one per parameter tensor."""

  mu: Any
  nu: Any


def scale_by_bert_adam(*, b1: float = 0.9, b2: float = 0.98, eps: float = 1e-6
                       ) -> optax.GradientTransformation:
  """``m / (sqrt(v) + eps)`` with exponential moments and NO bias correction."""

  def init_fn(params):
    zeros = lambda p: jnp.zeros_like(p, dtype=jnp.float32)
    return ScaleByBertAdamState(mu=jax.tree_util.tree_map(zeros, params),
                                nu=jax.tree_util.tree_map(zeros, params))

  def update_fn(updates, state, params=None):
    del params
    mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
    out = jax.tree_util.tree_map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)
    return out, ScaleByBertAdamState(mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def bert_adam(learning_rate: float | Callable[[jax.Array], jax.Array], *,
              b1: float = 0.9, b2: float = 0.98, eps: float = 1e-6,
              weight_decay: float = 0.2, max_grad_norm: float = 1.0
              ) -> optax.GradientTransformation:
  """The reference BertAdam as an optax chain (see the module docstring).

  Args:
    learning_rate: constant or schedule of the step count (counted from 0).
    b1: first-moment decay.
    b2: second-moment decay.
    eps: added to ``sqrt(v)``.
    weight_decay: decoupled decay added to the update before the learning rate.
    max_grad_norm: gradient-norm clip per reference torch parameter (fused q/k/v,
      see :func:`clip_by_torch_param_norm`; <= 0 disables it).

  Returns:
    an ``optax.GradientTransformation``.
  """
  parts = []
  if max_grad_norm > 0:
    parts.append(clip_by_torch_param_norm(max_grad_norm))
  parts.append(scale_by_bert_adam(b1=b1, b2=b2, eps=eps))
  if weight_decay > 0:
    parts.append(optax.add_decayed_weights(weight_decay))
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)


def param_labels(params: Mapping[str, Any], *,
                 head_keys: Sequence[str] = ("image_head", "text_head")) -> dict[str, Any]:
  """Labels every leaf ``"head"`` (top-level key in ``head_keys``) or ``"tower"``."""
  if not isinstance(params, Mapping):
    raise ValueError(f"params must be a dict by module name, got {type(params).__name__}.")
  missing = [k for k in head_keys if k not in params]
  if missing:
    raise ValueError(
        f"hash head keys {missing} not among the parameters' top-level keys "
        f"{sorted(params)}.")
  out = {}
  for k, v in params.items():
    label = "head" if k in head_keys else "tower"
    out[k] = jax.tree_util.tree_map(lambda _, lab=label: lab, v)
  return out


def dcgh_optimizer(*, total_steps: int,
                   tower_lr: float = 1e-5, head_lr: float = 1e-3, warmup: float = 0.1,
                   b1: float = 0.9, b2: float = 0.98, eps: float = 1e-6,
                   weight_decay: float = 0.2, max_grad_norm: float = 1.0,
                   head_keys: Sequence[str] = ("image_head", "text_head")
                   ) -> optax.GradientTransformation:
  """BertAdam with lr ``tower_lr`` on the towers and ``head_lr`` on the hash heads.

  Args:
    total_steps: steps of the whole run, for the schedule.
    tower_lr: peak lr of every parameter outside ``head_keys`` (CLIP: 1e-5).
    head_lr: peak lr of the hash heads (1e-3).
    warmup: warm-up fraction of the schedule.
    b1: BertAdam b1.
    b2: BertAdam b2.
    eps: BertAdam eps.
    weight_decay: decoupled weight decay on every parameter.
    max_grad_norm: clip norm per reference torch parameter (fused q/k/v).
    head_keys: top-level parameter keys of the hash heads.

  Returns:
    ``optax.multi_transform`` over the labels of :func:`param_labels` (the parameters
    must be a dict whose top-level keys include ``head_keys``).
  """
  head_keys = tuple(head_keys)
  kw = dict(b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, max_grad_norm=max_grad_norm)
  transforms = {
      "tower": bert_adam(warmup_cosine_schedule(tower_lr, total_steps, warmup=warmup), **kw),
      "head": bert_adam(warmup_cosine_schedule(head_lr, total_steps, warmup=warmup), **kw),
  }
  return optax.multi_transform(
      transforms, lambda tree: param_labels(tree, head_keys=head_keys))


def proxy_optimizer(*, learning_rate: float = 0.02, momentum: float = 0.9,
                    weight_decay: float = 5e-4) -> optax.GradientTransformation:
  """torch SGD semantics: weight decay added to the gradient before momentum."""
  parts = []
  if weight_decay > 0:
    parts.append(optax.add_decayed_weights(weight_decay))
  parts.append(optax.sgd(learning_rate, momentum=momentum if momentum > 0 else None))
  return optax.chain(*parts)
