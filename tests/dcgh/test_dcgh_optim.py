"""DCGH optimisers against hand-written NumPy updates (BertAdam, torch SGD)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hashjax.dcgh import optim


def _params(np_rng):
  def t(*shape, scale=1.0):
    return (np_rng.normal(size=shape) * scale).astype(np.float32)

  return {
      "image_tower": {"dense": {"kernel": t(3, 4), "bias": t(4)}, "ln": {"scale": t(4)}},
      "text_tower": {"kernel": t(5, 4)},
      "image_head": {"kernel": t(4, 2), "bias": t(2)},
      "text_head": {"kernel": t(4, 2), "bias": t(2)},
  }


def _grads(np_rng, params):
  # Mixed scales: some tensors have norm > 1 (clipped), some < 1 (not clipped).
  leaves, tree = jax.tree_util.tree_flatten(params)
  scales = [3.0, 0.05, 0.4, 2.0, 0.01, 5.0, 0.2, 1.5]
  return jax.tree_util.tree_unflatten(
      tree, [(np_rng.normal(size=x.shape) * s).astype(np.float32)
             for x, s in zip(leaves, scales)])


def _factor(step, total, warmup=0.1):
  x = step / total
  return x / warmup if x < warmup else 0.5 * (1 + math.cos(math.pi * x))


def _np_bert_adam(p, grads_seq, lrs, b1=0.9, b2=0.98, eps=1e-6, wd=0.2, clip=1.0):
  """One tensor, several steps, exactly the reference loop."""
  p = np.array(p, np.float64)
  m = np.zeros_like(p)
  v = np.zeros_like(p)
  for g, lr in zip(grads_seq, lrs):
    g = np.array(g, np.float64)
    norm = math.sqrt(float((g * g).sum()))
    coef = clip / (norm + 1e-6)
    if coef < 1:
      g = g * coef
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    update = m / (np.sqrt(v) + eps) + wd * p
    p = p - lr * update
  return p


def test_schedule_values():
  s = optim.warmup_cosine_schedule(2.0, 20)
  got = [float(s(i)) for i in (0, 1, 2, 10, 19)]
  want = [0.0, 2.0 * 0.5, 2.0 * 0.5 * (1 + math.cos(0.1 * math.pi)), 2.0 * 0.5,
          2.0 * 0.5 * (1 + math.cos(0.95 * math.pi))]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("num_steps", [1, 2])
def test_dcgh_optimizer_matches_numpy(np_rng, num_steps):
  params = _params(np_rng)
  grads = [_grads(np_rng, params) for _ in range(num_steps)]
  total = 4   # steps 0, 1: factors 0 and 0.5 (1 + cos(pi/4))
  tx = optim.dcgh_optimizer(total_steps=total, tower_lr=0.3, head_lr=0.7)
  state = tx.init(params)
  p = jax.tree_util.tree_map(jnp.asarray, params)
  update = jax.jit(tx.update)
  for g in grads:
    upd, state = update(g, state, p)
    p = jax.tree_util.tree_map(lambda a, b: a + b, p, upd)
  for top in params:
    base = 0.7 if top.endswith("_head") else 0.3
    lrs = [base * _factor(i, total) for i in range(num_steps)]
    flat_p = jax.tree_util.tree_leaves_with_path(params[top])
    flat_got = jax.tree_util.tree_leaves(p[top])
    for idx, ((path, p0), got) in enumerate(zip(flat_p, flat_got)):
      gseq = [jax.tree_util.tree_leaves(g[top])[idx] for g in grads]
      want = _np_bert_adam(p0, gseq, lrs)
      np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=2e-7,
                                 err_msg=f"{top}{jax.tree_util.keystr(path)}")
  if num_steps == 1:   # first step: lr 0, parameters unchanged
    jax.tree_util.tree_map(np.testing.assert_array_equal, p, params)


def test_bert_adam_constant_lr_two_steps(np_rng):
  p0 = np_rng.normal(size=(6,)).astype(np.float32)
  g1 = (np_rng.normal(size=(6,)) * 4).astype(np.float32)   # clipped
  g2 = (np_rng.normal(size=(6,)) * 0.1).astype(np.float32)   # not clipped
  tx = optim.bert_adam(0.01)
  st = tx.init(p0)
  p = jnp.asarray(p0)
  for g in (g1, g2):
    u, st = tx.update(g, st, p)
    p = p + u
  want = _np_bert_adam(p0, [g1, g2], [0.01, 0.01])
  np.testing.assert_allclose(np.asarray(p), want, rtol=2e-6, atol=1e-7)
  # Hand-worked first step without clipping: m = 0.1 g, v = 0.02 g^2,
  # u = 0.1 g / (sqrt(0.02) |g| + 1e-6) + 0.2 p.
  g = np.float64(0.5)
  u = 0.1 * g / (math.sqrt(0.02) * g + 1e-6) + 0.2 * 1.0
  tx1 = optim.bert_adam(1.0)
  out, _ = tx1.update(jnp.array([0.5]), tx1.init(jnp.array([1.0])), jnp.array([1.0]))
  np.testing.assert_allclose(float(out[0]), -u, rtol=1e-6)


def test_proxy_sgd_torch_semantics(np_rng):
  p0 = np_rng.normal(size=(3, 4)).astype(np.float32)
  gs = [np_rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3)]
  tx = optim.proxy_optimizer()
  st = tx.init(p0)
  p = jnp.asarray(p0)
  for g in gs:
    u, st = tx.update(g, st, p)
    p = p + u
  want = np.array(p0, np.float64)
  buf = None
  for g in gs:   # torch.optim.SGD(lr=0.02, momentum=0.9, weight_decay=5e-4)
    d = g + 5e-4 * want
    buf = d.copy() if buf is None else 0.9 * buf + d
    want = want - 0.02 * buf
  np.testing.assert_allclose(np.asarray(p), want, rtol=1e-5, atol=1e-7)


def test_param_labels_and_errors():
  params = {"image_tower": {"w": 1.0}, "image_head": {"w": 1.0}, "text_head": {"b": 1.0}}
  assert optim.param_labels(params) == {
      "image_tower": {"w": "tower"}, "image_head": {"w": "head"}, "text_head": {"b": "head"}}
  with pytest.raises(ValueError, match="hash head keys"):
    optim.param_labels({"image_tower": {"w": 1.0}})
  with pytest.raises(ValueError, match="total_steps"):
    optim.warmup_cosine_schedule(1.0, 0)


def _np_clip(t, max_norm=1.0):
  """torch ``clip_grad_norm_(p, max_norm)`` of one tensor, in float64."""
  t = np.asarray(t, np.float64)
  coef = max_norm / (math.sqrt(float((t * t).sum())) + 1e-6)
  return t * coef if coef < 1 else t


def _attn_block(np_rng, w=4, scales=(0.2, 0.7, 0.8, 3.0)):
  """One attention block in our layout; q, k, v each < 1 but fused > 1."""
  def t(*shape, s):
    x = np_rng.normal(size=shape)
    return (x / np.linalg.norm(x) * s).astype(np.float32)   # norm exactly s

  sq, sk, sv, so = scales
  return {"attn": {name: {"kernel": t(w, w, s=s), "bias": t(w, s=s)}
                   for name, s in (("query", sq), ("key", sk), ("value", sv),
                                   ("out", so))},
          "ln_1": {"scale": t(w, s=2.0), "bias": t(w, s=0.1)}}


def test_clip_groups_fuse_qkv_like_torch_in_proj(np_rng):
  blk = _attn_block(np_rng)
  grads = {"image_tower": {"transformer": {"resblocks_0": blk}},
           "image_head": {"dense": {"kernel": np.full((4, 2), 0.1, np.float32)}}}
  got, _ = optim.clip_by_torch_param_norm(1.0).update(grads, optax.EmptyState())
  a = blk["attn"]
  # Independent reference: torch's fused in_proj_weight [3w, w] (rows q, k, v of the
  # [out, in] weights) and in_proj_bias [3w], each clipped as one tensor.
  w_in = np.concatenate([a[n]["kernel"].T for n in ("query", "key", "value")], axis=0)
  b_in = np.concatenate([a[n]["bias"] for n in ("query", "key", "value")])
  for fused_t in (w_in, b_in):   # q, k, v norms 0.2, 0.7, 0.8; fused 1.08
    assert np.linalg.norm(fused_t) > 1
  w_want, b_want = np.split(_np_clip(w_in), 3, axis=0), np.split(_np_clip(b_in), 3)
  g = got["image_tower"]["transformer"]["resblocks_0"]
  for j, n in enumerate(("query", "key", "value")):
    np.testing.assert_allclose(np.asarray(g["attn"][n]["kernel"]), w_want[j].T,
                               rtol=1e-6, atol=1e-8, err_msg=n)
    np.testing.assert_allclose(np.asarray(g["attn"][n]["bias"]), b_want[j],
                               rtol=1e-6, atol=1e-8, err_msg=n)
  # q alone has norm 0.2 < 1: clipping it on its own would leave it unchanged.
  assert np.linalg.norm(np.asarray(g["attn"]["query"]["kernel"])) < 0.2 / 1.07
  # Every other leaf is its own torch parameter.
  for path in (("attn", "out", "kernel"), ("attn", "out", "bias"),
               ("ln_1", "scale"), ("ln_1", "bias")):
    x, y = blk, g
    for k in path:
      x, y = x[k], y[k]
    np.testing.assert_allclose(np.asarray(y), _np_clip(x), rtol=1e-6, atol=1e-8)
  np.testing.assert_array_equal(got["image_head"]["dense"]["kernel"],
                                grads["image_head"]["dense"]["kernel"])


def test_dcgh_optimizer_clips_fused_qkv(np_rng):
  """Two steps of dcgh_optimizer (multi_transform) vs NumPy BertAdam on in_proj."""
  blk = _attn_block(np_rng)
  params = {"text_tower": {"transformer": {"resblocks_0": blk}},
            "image_head": {"kernel": np.ones((2, 2), np.float32)},
            "text_head": {"kernel": np.ones((2, 2), np.float32)}}
  grads = [jax.tree.map(lambda x, s=s: (x * s).astype(np.float32), params)
           for s in (1.5, -0.7)]
  total = 4
  tx = optim.dcgh_optimizer(total_steps=total, tower_lr=0.3, head_lr=0.7)
  state, p = tx.init(params), params
  for g in grads:
    upd, state = tx.update(g, state, p)
    p = optax.apply_updates(p, upd)

  def fused(tree, leaf):
    a = tree["text_tower"]["transformer"]["resblocks_0"]["attn"]
    parts = [a[n][leaf] for n in ("query", "key", "value")]
    return np.concatenate([x.T for x in parts] if leaf == "kernel" else parts)

  lrs = [0.3 * _factor(i, total) for i in range(2)]
  for leaf in ("kernel", "bias"):
    want = _np_bert_adam(fused(params, leaf), [fused(g, leaf) for g in grads], lrs)
    got = fused(jax.tree.map(np.asarray, p), leaf)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-7, err_msg=leaf)


def test_torch_param_groups_of_the_clip_model():
  """The tiny DCGH has as many clip groups as torch CLIP + 2 heads has parameters."""
  from hashjax.dcgh import model as dm  # pylint: disable=g-import-not-at-top
  vision, text = dm.clip_preset("tiny")
  net = dm.DCGH(vision, text, bits=8)
  shapes = jax.eval_shape(
      lambda k: net.init(k, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 8), jnp.int32),
                         train=False), jax.random.key(0))["params"]
  groups = {optim.torch_param_group(path)
            for path, _ in jax.tree_util.tree_leaves_with_path(shapes)}
  # torch CLIP (model.py of the reference): per block in_proj_weight, in_proj_bias,
  # out_proj.{weight,bias}, ln_1/ln_2/c_fc/c_proj .{weight,bias} = 12 tensors;
  # visual: conv1, class_embedding, positional_embedding, ln_pre x2, ln_post x2, proj;
  # text: token_embedding, positional_embedding, ln_final x2, text_projection;
  # each LinearHash: fc.weight, fc.bias. (logit_scale gets no gradient.)
  want = (8 + 12 * vision.layers) + (5 + 12 * text.layers) + 2 * 2
  assert len(groups) == want
  fused = ("image_tower", "transformer", "resblocks_1", "attn", "in_proj", "bias")
  assert fused in groups
