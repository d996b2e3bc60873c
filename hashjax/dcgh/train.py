"""DCGH training and evaluation: ``train_and_evaluate(config, workdir)``.

  python -m hashjax.main --config=configs/dcgh_coco_mini.py --workdir=/tmp/dcgh_mini

One linear loop (big_vision / flax examples): mesh -> data -> model and optimisers ->
``jax.eval_shape(create_state)`` -> ``jax.jit(create_state, out_shardings=replicated)``
-> resume from the latest Orbax checkpoint if any -> train, evaluating on a validation
split held out of training (model selection) and on the query set.

``config.parallelism``: ``"jit"`` (batches ``NamedSharding(mesh, P("data"))``, replicated
state; the loss sees the global batch) or ``"pmap"`` (state stacked per device; the loss
``all_gather``s the batch; gradients ``pmean``-ed). Both give the same updates.

Losses are fetched from the device only at log, evaluation and checkpoint steps; a
non-finite loss raises ``FloatingPointError`` naming its step there, before any save,
so the last checkpoint on disk is a good one. ``config.stop_after_steps`` stops early
(after saving) to test resumption; ``config.debug.nan_at_step`` poisons one batch.

Files in ``workdir``: ``config.json``, ``metrics.jsonl`` (a line per log: loss, its
ten terms, learning rates; and per evaluation: validation and query mAPs),
``checkpoints/`` (latest states), ``best/`` (parameters and proxies with the best
validation mAP), ``results.json``, ``tokenizer/`` (locally trained BPE) and, when the
optional ``tensorboardX`` package is importable (``config.tensorboard``, default True),
``tensorboard/`` event files with the same scalars. TensorBoard is optional because
``flax.metrics.tensorboard`` needs TensorFlow and ``clu`` is not a dependency;
:func:`hashjax.plotting.training_curves` plots ``metrics.jsonl``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from hashjax import checkpoint as ckpt_lib
from hashjax.codes import binarize
from hashjax.dcgh import input_pipeline as pp
from hashjax.dcgh import losses, optim
from hashjax.dcgh.export import load_encoder  # noqa: F401  (re-exported)
from hashjax.dcgh.model import build_model

__all__ = ["create_state", "encode_step", "evaluate", "load_encoder", "train_and_evaluate",
           "train_step"]

_MODEL_INPUTS = ("image", "text", "labels", "mask")


# ----------------------------------------------------------------------------- steps


def create_state(rng: jax.Array, sample: dict[str, Any], *, model: Any, tx: Any,
                 proxy_tx: Any, num_classes: int, bits: int) -> dict[str, Any]:
  """Fresh training state ``{params, opt_state, proxies, proxy_opt_state, step}``."""
  k_params, k_drop, k_proxy = jax.random.split(rng, 3)
  params = model.init({"params": k_params, "dropout": k_drop}, sample["image"],
                      sample["text"], train=False)["params"]
  proxies = losses.init_proxies(k_proxy, num_classes, bits)
  return {"params": params, "opt_state": tx.init(params), "proxies": proxies,
          "proxy_opt_state": proxy_tx.init(proxies), "step": jnp.zeros((), jnp.int32)}


def train_step(state: dict[str, Any], batch: dict[str, jax.Array], rng: jax.Array, *,
               model: Any, tx: Any, proxy_tx: Any, neg_weight: float, pos_weight: float,
               axis_name: str | None = None) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One DCGH update of the towers, heads (BertAdam) and proxies (SGD).

  Args:
    state: the training state (see :func:`create_state`).
    batch: ``image``, ``text``, ``labels`` ``[B, C]``, ``mask`` ``[B]`` (global under
      jit; this device's rows under pmap).
    rng: base key; the step's dropout key is ``fold_in(rng, state["step"])``.
    model: the flax module.
    tx: optimiser of the parameters.
    proxy_tx: optimiser of the proxies.
    neg_weight: loss weight of the negative pair terms.
    pos_weight: loss weight of the positive pair terms.
    axis_name: pmap axis (None under jit).

  Returns:
    ``(new_state, metrics)`` with the loss and its ten terms.
  """
  rng = jax.random.fold_in(rng, state["step"])
  if axis_name is not None:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))

  def loss_fn(params, proxies):
    h_i, h_t = model.apply({"params": params}, batch["image"], batch["text"], train=True,
                           rngs={"dropout": rng})
    return losses.dcgh_loss(h_i, h_t, batch["labels"], proxies, neg_weight=neg_weight,
                            pos_weight=pos_weight, mask=batch["mask"], axis_name=axis_name)

  (loss, terms), (g_params, g_proxies) = jax.value_and_grad(
      loss_fn, argnums=(0, 1), has_aux=True)(state["params"], state["proxies"])
  if axis_name is not None:
    g_params, g_proxies = jax.lax.pmean((g_params, g_proxies), axis_name)
  updates, opt_state = tx.update(g_params, state["opt_state"], state["params"])
  p_updates, p_opt_state = proxy_tx.update(g_proxies, state["proxy_opt_state"],
                                           state["proxies"])
  new_state = {"params": optax.apply_updates(state["params"], updates),
               "opt_state": opt_state,
               "proxies": optax.apply_updates(state["proxies"], p_updates),
               "proxy_opt_state": p_opt_state, "step": state["step"] + 1}
  return new_state, {"loss": loss, **terms}


def encode_step(params: Any, batch: dict[str, jax.Array], *, model: Any
                ) -> tuple[jax.Array, jax.Array]:
  """int8 ``{-1, +1}`` codes ``[B, bits]`` of both modalities (sign(0) = +1)."""
  h_i, h_t = model.apply({"params": params}, batch["image"], batch["text"], train=False)
  return binarize(h_i, jnp.int8), binarize(h_t, jnp.int8)


# ----------------------------------------------------------------------------- helpers


def _to_host(x: jax.Array) -> np.ndarray:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def _device_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, Any]:
  return {k: jax.make_array_from_process_local_data(sharding, batch[k])
          for k in _MODEL_INPUTS}


def _encode(params: Any, source: pp.ItemSource, *, encode_fn: Any, batch_sh: Any,
            cfg: Any) -> tuple[np.ndarray, np.ndarray]:
  """Codes ``([n, bits], [n, bits])`` of every item of ``source``, on every process.

  Each process feeds its share of every padded global batch; the codes are gathered
  to the global batch (process order = batch order), so the padding of the last
  batch is at the end of the concatenation and the first ``n`` rows are the items in
  order. (The per-process masks cannot select rows of the gathered codes: they are
  ``1 / process_count`` as long.)
  """
  outs_i, outs_t = [], []
  for batch in pp.eval_batches(source, batch_size=cfg.input.eval_batch_size,
                               num_threads=cfg.input.get("num_threads", 2),
                               process_index=jax.process_index(),
                               process_count=jax.process_count()):
    c_i, c_t = encode_fn(params, _device_batch(batch, batch_sh))
    outs_i.append(c_i)
    outs_t.append(c_t)
  n = source.num_items
  return (np.concatenate([_to_host(c) for c in outs_i])[:n],
          np.concatenate([_to_host(c) for c in outs_t])[:n])


def evaluate(params: Any, query: pp.ItemSource, database: pp.ItemSource, *,
             encode_fn: Any, batch_sh: Any, config: Any, top_r: int | None = None
             ) -> dict[str, float]:
  """mAP of image->text and text->image retrieval (codes from ``encode_fn``)."""
  from hashjax import metrics  # pylint: disable=g-import-not-at-top

  q_i, q_t = _encode(params, query, encode_fn=encode_fn, batch_sh=batch_sh, cfg=config)
  d_i, d_t = _encode(params, database, encode_fn=encode_fn, batch_sh=batch_sh, cfg=config)
  out = {}
  for name, q, d in (("i2t", q_i, d_t), ("t2i", q_t, d_i)):
    out[f"{name}_map"] = float(metrics.mean_average_precision(
        q, d, query.labels, database.labels))
    if top_r:
      out[f"{name}_map@{top_r}"] = float(metrics.mean_average_precision(
          q, d, query.labels, database.labels, top_k=min(int(top_r), database.num_items)))
  out["mean_map"] = 0.5 * (out["i2t_map"] + out["t2i_map"])
  return out


class _MetricWriter:
  """JSON lines in ``workdir/metrics.jsonl`` (process 0 only); replays the kept history.

  With ``tensorboard=True`` and ``tensorboardX`` importable, every row's numbers also
  go to TensorBoard event files in ``workdir/tensorboard`` (tag = key, e.g.
  ``loss``, ``val/mean_map``); without ``tensorboardX`` the JSON lines are the record.
  """

  def __init__(self, workdir: str | None, *, resume_step: int, tensorboard: bool = False):
    self.path = os.path.join(workdir, "metrics.jsonl") if workdir else None
    self.history: list[dict[str, Any]] = []
    self.tb = None
    if self.path and os.path.exists(self.path):
      with open(self.path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
      rows = [r for r in rows if r["step"] <= resume_step]
      self.history = [r for r in rows if r.get("kind") == "eval"]
      if jax.process_index() == 0:
        with open(self.path, "w") as f:
          f.writelines(json.dumps(r) + "\n" for r in rows)
    if tensorboard and workdir and jax.process_index() == 0:
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      except ImportError:
        SummaryWriter = None  # noqa: N806
      if SummaryWriter is not None:
        self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, row: dict[str, Any]) -> None:
    if row.get("kind") == "eval":
      self.history.append(row)
    if self.path and jax.process_index() == 0:
      with open(self.path, "a") as f:
        f.write(json.dumps(row) + "\n")
    if self.tb is not None:
      for k, v in row.items():
        if k not in ("kind", "step") and isinstance(v, (int, float)):
          self.tb.add_scalar(k if "/" in k else f"{row['kind']}/{k}", v, row["step"])
      self.tb.flush()

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()


def _check_finite(pending: list[tuple[int, jax.Array]], latest_saved: int | None) -> float:
  """Fetches the pending losses; raises at the first non-finite one."""
  values = jax.device_get([v for _, v in pending])
  for (step, _), v in zip(pending, values):
    if not np.isfinite(v):
      raise FloatingPointError(
          f"non-finite loss ({float(v)}) at step {step}: training stopped without "
          f"saving; the last good checkpoint is step {latest_saved}.")
  last = float(values[-1]) if values else float("nan")
  pending.clear()
  return last


class _Programs(NamedTuple):
  init_raw: Any   # create_state(rng, sample), not jitted (for eval_shape)
  init: Any       # jitted, replicated output
  update: Any     # jitted / pmapped train_step(state, batch, rng), state donated
  encode: Any     # jitted encode_step(params, batch)


# Jitted functions are cached per configuration, so repeated runs in one process
# (seeds of a sweep, a resumed run, tests) reuse their compilations.


@functools.lru_cache(maxsize=8)
def _optimizers(optim_items: tuple, total_steps: int) -> tuple[Any, Any]:
  o = dict(optim_items)
  tx = optim.dcgh_optimizer(
      total_steps=total_steps, tower_lr=o["tower_lr"], head_lr=o["head_lr"],
      warmup=o["warmup"], b1=o["b1"], b2=o["b2"], eps=o["eps"],
      weight_decay=o["weight_decay"], max_grad_norm=o["max_grad_norm"])
  proxy_tx = optim.proxy_optimizer(learning_rate=o["proxy_lr"], momentum=o["proxy_momentum"],
                                   weight_decay=o["proxy_weight_decay"])
  return tx, proxy_tx


@functools.lru_cache(maxsize=8)
def _init_and_encode(model: Any, optim_items: tuple, total_steps: int, num_classes: int,
                     bits: int, mesh: Any) -> tuple[Any, Any, Any]:
  tx, proxy_tx = _optimizers(optim_items, total_steps)
  repl = NamedSharding(mesh, P())
  init_raw = functools.partial(create_state, model=model, tx=tx, proxy_tx=proxy_tx,
                               num_classes=num_classes, bits=bits)
  encode = jax.jit(functools.partial(encode_step, model=model),
                   in_shardings=(repl, NamedSharding(mesh, P("data"))))
  return init_raw, jax.jit(init_raw, out_shardings=repl), encode


@functools.lru_cache(maxsize=8)
def _programs(model: Any, optim_items: tuple, loss_weights: tuple, total_steps: int,
              num_classes: int, bits: int, parallelism: str, mesh: Any) -> _Programs:
  """The jitted (or pmapped) functions of one configuration."""
  tx, proxy_tx = _optimizers(optim_items, total_steps)
  init_raw, init, encode = _init_and_encode(model, optim_items, total_steps, num_classes,
                                            bits, mesh)
  repl = NamedSharding(mesh, P())
  step_kw = dict(model=model, tx=tx, proxy_tx=proxy_tx, neg_weight=loss_weights[0],
                 pos_weight=loss_weights[1])
  if parallelism == "jit":
    update = jax.jit(functools.partial(train_step, **step_kw),
                     in_shardings=(repl, NamedSharding(mesh, P("data")), repl),
                     out_shardings=(repl, repl), donate_argnums=(0,))
  else:   # the pmap axis is named like the mesh axis, so its arrays match the mesh's
    update = jax.pmap(functools.partial(train_step, axis_name="data", **step_kw),
                      axis_name="data", in_axes=(0, 0, None), donate_argnums=(0,))
  return _Programs(init_raw=init_raw, init=init, update=update, encode=encode)


# ----------------------------------------------------------------------------- main


def train_and_evaluate(config: Any, workdir: str | None) -> dict[str, Any]:
  """Trains DCGH as ``config`` says, resuming from ``workdir`` when it holds a checkpoint.

  Args:
    config: ConfigDict (see ``configs/dcgh_*.py``).
    workdir: run directory (checkpoints, metrics, results); None: nothing written,
      no resumption.

  Returns:
    dict with ``selected`` (validation-selected evaluation: step, epoch, validation and
    query mAPs), ``best_on_query`` (the best query mAP per direction over all
    evaluations, as papers report), ``history`` and run sizes; ``stopped_at`` instead
    when ``config.stop_after_steps`` ended the run early.
  """
  # ---------------------------------------------------------------- setup
  if config.get("method", "dcgh") != "dcgh":
    raise ValueError(f"config.method must be 'dcgh', got {config.method!r}.")
  parallelism = config.get("parallelism", "jit")
  if parallelism not in ("jit", "pmap"):
    raise ValueError(f"config.parallelism must be 'jit' or 'pmap', got {parallelism!r}.")
  n_dev = jax.device_count()
  batch_size = pp.check_global_batch(config.input.batch_size, n_dev)
  pp.check_global_batch(config.input.eval_batch_size, n_dev)
  if parallelism == "pmap" and jax.process_count() > 1:
    raise ValueError("parallelism 'pmap' is single-host here; use 'jit' on multi-host.")
  if workdir and jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  mesh = jax.make_mesh((n_dev,), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  repl = NamedSharding(mesh, P())
  batch_sh = NamedSharding(mesh, P("data"))

  # ---------------------------------------------------------------- data
  sources = pp.build_sources(config, workdir)
  spe = pp.steps_per_epoch(sources.train.num_items, batch_size)
  total_steps = spe * int(config.num_epochs)
  sample = {k: v[:1] for k, v in sources.train.load(np.zeros(1, np.int64), step=0,
                                                    train=False).items()}

  # ---------------------------------------------------------------- model, optimisers
  model_cfg = {"model": config.model.to_dict(), "bits": int(config.bits)}
  if sources.tokenizer is not None and config.text.get("tokenizer") == "bpe":
    text = dict(model_cfg["model"].get("text", None) or {})
    text.update(vocab_size=sources.tokenizer.vocab_size,
                eos_token_id=sources.tokenizer.vocab_size - 1)
    model_cfg["model"]["text"] = text
  model = build_model(model_cfg)
  o = config.optim
  prog = _programs(
      model, tuple(sorted(o.to_dict().items())),
      (float(config.loss.neg_weight), float(config.loss.pos_weight)), total_steps,
      sources.num_classes, int(config.bits), parallelism, mesh)
  rng = jax.random.key(int(config.seed))
  init_rng, dropout_rng = jax.random.split(rng)
  abstract = jax.eval_shape(prog.init_raw, init_rng, sample)
  abstract = jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl), abstract)
  update_fn, encode_fn = prog.update, prog.encode

  # ---------------------------------------------------------------- resume or init
  ck = None
  restored = None
  if workdir:
    c = config.checkpoint
    ck = ckpt_lib.Checkpoints(workdir, every_steps=c.every_steps, keep=c.keep,
                              best_metric="val_map")
    restored = ck.restore_latest(abstract)
  if restored is not None:
    start_step, state = restored
    ck.drop_best_after(start_step)
  else:
    start_step = 0
    state = prog.init(init_rng, sample)
    clip_path = config.model.get("clip_path", None)
    if config.model.get("kind") == "clip" and clip_path:
      from hashjax.dcgh import clip_weights  # pylint: disable=g-import-not-at-top
      towers = clip_weights.load_clip_towers(clip_path, vision=model.vision, text=model.text)
      state["params"] = jax.device_put(
          clip_weights.replace_towers(jax.device_get(state["params"]), towers), repl)
  writer = _MetricWriter(workdir, resume_step=start_step,
                         tensorboard=bool(config.get("tensorboard", True)))
  latest_saved = start_step if restored is not None else None
  best_params_tree = lambda st: {"params": st["params"], "proxies": st["proxies"]}  # noqa: E731

  if parallelism == "pmap":
    state = jax.device_put(
        jax.tree_util.tree_map(lambda x: np.broadcast_to(x, (n_dev, *x.shape)),
                               jax.device_get(state)), batch_sh)
    unrep = lambda st: jax.tree_util.tree_map(lambda x: x[0], st)  # noqa: E731
  else:
    unrep = lambda st: st  # noqa: E731

  # ---------------------------------------------------------------- train loop
  stop_after = config.get("stop_after_steps", None) or None   # 0 / None: no early stop
  nan_at = config.get("debug", {}).get("nan_at_step", None)     # -1 / None: off
  log_every = int(config.get("log_every_steps", 50))
  eval_every = int(config.get("eval_every_epochs", 1))
  top_r = config.eval.get("top_r", None)
  query_every_eval = bool(config.eval.get("query_every_eval", True))
  lr_fns = {f"lr_{k}": optim.warmup_cosine_schedule(float(o[f"{k}_lr"]), total_steps,
                                                    warmup=float(o.warmup))
            for k in ("tower", "head")}   # the lr the step used (its count from 0)
  pending: list[tuple[int, jax.Array]] = []
  stopped_at = None
  t0 = time.perf_counter()
  bar = tqdm(total=total_steps, initial=start_step, desc="dcgh", unit="step",
             disable=not config.get("progress_bar", True) or jax.process_index() != 0)
  batches = pp.train_batches(
      sources.train, batch_size=batch_size, num_epochs=int(config.num_epochs),
      seed=int(config.seed), start_step=start_step,
      num_threads=config.input.get("num_threads", 2),
      prefetch=config.input.get("prefetch", 4), process_index=jax.process_index(),
      process_count=jax.process_count())
  try:
    for batch in batches:
      step = int(batch["step"])
      if nan_at is not None and step == int(nan_at):
        batch["image"] = np.full_like(batch["image"], np.nan)
      if parallelism == "jit":
        state, metrics = update_fn(state, _device_batch(batch, batch_sh), dropout_rng)
        pending.append((step, metrics["loss"]))
      else:
        shard = {k: batch[k].reshape(n_dev, -1, *batch[k].shape[1:])
                 for k in _MODEL_INPUTS}
        state, metrics = update_fn(state, shard, dropout_rng)
        pending.append((step, metrics["loss"][0]))
      done = step + 1
      bar.update(1)
      epoch_end = done % spe == 0
      is_eval = epoch_end and ((done // spe) % eval_every == 0 or done == total_steps)
      is_save = ck is not None and (ck.should_save(done) or done == total_steps
                                    or done == stop_after)
      is_log = done % log_every == 0 or done == total_steps
      if is_log or is_eval or is_save or done == stop_after:
        loss = _check_finite(pending, latest_saved)
        if is_log:
          m = jax.device_get(metrics)
          m = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in m.items()}
          writer.write({"kind": "train", "step": done, "epoch": done / spe,
                        "seconds": time.perf_counter() - t0, **m,
                        **{k: float(f(step)) for k, f in lr_fns.items()}})
          bar.set_postfix(loss=f"{loss:.4f}")
      if is_eval:
        params = unrep(state)["params"]
        row = {"kind": "eval", "step": done, "epoch": done // spe}
        val = evaluate(params, sources.val_query, sources.val_database,
                       encode_fn=encode_fn, batch_sh=batch_sh, config=config)
        row.update({f"val/{k}": v for k, v in val.items()})
        if query_every_eval:
          q = evaluate(params, sources.query, sources.database, encode_fn=encode_fn,
                       batch_sh=batch_sh, config=config)
          row.update({f"query/{k}": v for k, v in q.items()})
        writer.write(row)
        if ck is not None:
          ck.save_best(done, jax.device_get(best_params_tree(unrep(state))),
                       val["mean_map"])
      if is_save:
        ck.save_latest(done, jax.device_get(unrep(state)), force=True)
        latest_saved = done
      if stop_after is not None and done >= int(stop_after):
        stopped_at = done
        break
  finally:
    bar.close()
    writer.close()
    if ck is not None:
      ck.wait()
  train_seconds = time.perf_counter() - t0

  # ---------------------------------------------------------------- report
  if stopped_at is not None:
    ck.close()
    return {"stopped_at": stopped_at, "total_steps": total_steps}
  history = writer.history
  if not history:
    raise ValueError("no evaluation ran: check num_epochs and eval_every_epochs.")
  best_abstract = best_params_tree(abstract)
  best = ck.restore_best(best_abstract) if ck is not None else None
  if best is not None:
    sel_step, sel_tree = best
  else:   # no workdir: the final parameters
    sel_step, sel_tree = total_steps, best_params_tree(unrep(state))
  sel_row = next(r for r in history if r["step"] == sel_step)
  final_query = evaluate(sel_tree["params"], sources.query, sources.database,
                         encode_fn=encode_fn, batch_sh=batch_sh, config=config,
                         top_r=top_r)
  result = {
      "method": "dcgh", "bits": int(config.bits), "num_train": sources.train.num_items,
      "num_validation": sources.val_query.num_items, "num_query": sources.query.num_items,
      "num_database": sources.database.num_items, "total_steps": total_steps,
      "resumed_from_step": start_step, "train_seconds": train_seconds,   # this process
      "selected": {"step": sel_step, "epoch": sel_row["epoch"],
                   "validation": {k[4:]: v for k, v in sel_row.items() if k.startswith("val/")},
                   "query": final_query},
      "history": history,
  }
  if query_every_eval:
    result["best_on_query"] = {
        d: {"map": max(r[f"query/{d}_map"] for r in history),
            "epoch": max(history, key=lambda r, d=d: r[f"query/{d}_map"])["epoch"]}
        for d in ("i2t", "t2i")}
  if ck is not None:
    ck.close()
  if workdir and jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(result, f, indent=2)
  return result
