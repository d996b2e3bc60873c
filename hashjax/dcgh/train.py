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
from hashjax import evaluation, fileio, validate
from hashjax.codes import binarize
from hashjax.dcgh import input_pipeline as pp
from hashjax.dcgh import losses, optim
from hashjax.dcgh.export import load_encoder  # noqa: F401  (re-exported)
from hashjax.dcgh.factory import build_model

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
            batch_size: int, num_threads: int) -> tuple[np.ndarray, np.ndarray]:
  """Codes ``([n, bits], [n, bits])`` of every item of ``source``, on every process.

  Each process feeds its share of every padded global batch; the codes are gathered
  to the global batch (process order = batch order), so the padding of the last
  batch is at the end of the concatenation and the first ``n`` rows are the items in
  order. (The per-process masks cannot select rows of the gathered codes: they are
  ``1 / process_count`` as long.)
  """
  outs_i, outs_t = [], []
  for batch in pp.eval_batches(source, batch_size=batch_size, num_threads=num_threads,
                               process_index=jax.process_index(),
                               process_count=jax.process_count()):
    c_i, c_t = encode_fn(params, _device_batch(batch, batch_sh))
    outs_i.append(c_i)
    outs_t.append(c_t)
  n = source.num_items
  return (np.concatenate([_to_host(c) for c in outs_i])[:n],
          np.concatenate([_to_host(c) for c in outs_t])[:n])


VIEW_NAMES = ("image", "text")


def evaluate(params: Any, query: pp.ItemSource, database: pp.ItemSource, *,
             encode_fn: Any, batch_sh: Any, batch_size: int, num_threads: int = 2,
             **eval_kw: Any) -> dict[str, dict[str, Any]]:
  """Encodes both sources and evaluates them with the shared evaluation path.

  Args:
    params: model parameters.
    query: query items.
    database: database items.
    encode_fn: jitted ``encode_step(params, batch)``.
    batch_sh: sharding of a global batch.
    batch_size: global evaluation batch.
    num_threads: reader threads.
    **eval_kw: ``top_k``, ``ks``, ``pr_curve`` of
      :func:`hashjax.evaluation.evaluate_codes`.

  Returns:
    ``{"image->text": {...}, "text->image": {...}}`` as for every method.
  """
  kw = dict(encode_fn=encode_fn, batch_sh=batch_sh, batch_size=batch_size,
            num_threads=num_threads)
  q = _encode(params, query, **kw)
  d = _encode(params, database, **kw)
  return evaluation.evaluate_codes(q, d, query.labels, database.labels, VIEW_NAMES,
                                   **eval_kw)


def _map_row(res: dict[str, dict[str, Any]]) -> dict[str, float]:
  """``{"i2t_map", "t2i_map", "mean_map"}``: the logged (and selection) numbers."""
  out = {"i2t_map": res["image->text"]["map"], "t2i_map": res["text->image"]["map"]}
  out["mean_map"] = 0.5 * (out["i2t_map"] + out["t2i_map"])
  return out


class _MetricWriter:
  """JSON lines in ``workdir/metrics.jsonl`` (process 0 only); replays the kept history.

  With ``tensorboard=True`` and ``tensorboardX`` importable, every row's numbers also
  go to TensorBoard event files in ``workdir/tensorboard`` (tag = key, e.g.
  ``loss``, ``val/mean_map``); without ``tensorboardX`` the JSON lines are the record.
  """

  def __init__(self, workdir: str | None, *, resume_step: int, tensorboard: bool = False):
    self.path = fileio.join(workdir, "metrics.jsonl") if workdir else None
    self.rows: list[dict[str, Any]] = []   # the whole file: object stores cannot append
    self.history: list[dict[str, Any]] = []
    self.tb = None
    if self.path and fileio.exists(self.path):
      rows = [json.loads(line) for line in fileio.read_text(self.path).splitlines()
              if line.strip()]
      self.rows = [r for r in rows if r["step"] <= resume_step]
      self.history = [r for r in self.rows if r.get("kind") == "eval"]
      self._flush()
    if tensorboard and workdir and jax.process_index() == 0:
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      except ImportError:
        SummaryWriter = None  # noqa: N806
      if SummaryWriter is not None:
        self.tb = SummaryWriter(fileio.join(workdir, "tensorboard"))

  def _flush(self) -> None:
    if self.path and jax.process_index() == 0:
      fileio.write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows))

  def write(self, row: dict[str, Any]) -> None:
    if row.get("kind") == "eval":
      self.history.append(row)
    self.rows.append(row)
    self._flush()
    if self.tb is not None:
      for k, v in row.items():
        if k not in ("kind", "step") and isinstance(v, (int, float)):
          self.tb.add_scalar(k if "/" in k else f"{row['kind']}/{k}", v, row["step"])
      self.tb.flush()

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()


def _check_finite(pending: list[tuple[int, jax.Array]], latest_saved: int | None) -> float:
  """Fetches the pending losses; raises at the first non-finite one.

  Steps are counted as in ``metrics.jsonl``: 1-based, "after step N" (the batch
  index ``step`` of ``pending`` is 0-based).
  """
  values = jax.device_get([v for _, v in pending])
  for (step, _), v in zip(pending, values):
    if not np.isfinite(v):
      last = (f"the last good checkpoint is step {latest_saved}" if latest_saved
              else "no checkpoint was saved yet")
      raise FloatingPointError(
          f"non-finite loss ({float(v)}) after step {step + 1}: training stopped "
          f"without saving; {last}.")
  last = float(values[-1]) if values else float("nan")
  pending.clear()
  return last


def _mismatch_hint(err: Any, config: Any) -> str:
  """The config field behind a checkpoint shape mismatch, with the saved value."""
  saved, wanted = getattr(err, "saved", {}), getattr(err, "wanted", {})
  hints = []
  proxies = [k for k in saved if k.startswith("proxies") and k in wanted]
  if proxies and saved[proxies[0]][-1:] != wanted[proxies[0]][-1:]:
    hints.append(f"config.bits is {config.bits} but the checkpoint was trained with "
                 f"bits={saved[proxies[0]][-1]}")
  elif any(k.startswith("params") and saved.get(k) != wanted.get(k)
           for k in set(saved) | set(wanted)) and "hidden" in config.model:
    hints.append(f"model size (config.model.hidden={tuple(config.model.hidden)}) "
                 "differs from the checkpoint's layers")
  return (f"{'; '.join(hints)}: " if hints else "") + str(err)


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
    the results record of :func:`hashjax.evaluation.results_record` (the same
    layout as every method's): ``results`` of the validation-selected parameters on
    the query set; ``details`` with ``selected`` (step, epoch, validation mAPs),
    ``best_on_query`` (the best query mAP per direction over all evaluations, as
    papers report), ``history``, ``total_steps``; ``{"stopped_at", "total_steps"}``
    instead when ``config.stop_after_steps`` ended the run early. Rerunning a
    finished run re-evaluates and re-reports it, keeping its ``train_seconds``.
  """
  # ---------------------------------------------------------------- setup
  if config.get("method", "dcgh") != "dcgh":
    raise ValueError(f"config.method must be 'dcgh', got {config.method!r}.")
  validate.validate_dcgh(config)     # every field, before any work (issue 15)
  if jax.process_index() == 0:
    validate.check_workdir(workdir)
  parallelism = config.get("parallelism", "jit")
  if parallelism not in ("jit", "pmap"):
    raise ValueError(f"config.parallelism must be 'jit' or 'pmap', got {parallelism!r}.")
  n_dev = jax.device_count()
  batch_size = pp.check_global_batch(config.input.batch_size, n_dev)
  pp.check_global_batch(config.input.eval_batch_size, n_dev)
  if parallelism == "pmap" and jax.process_count() > 1:
    raise ValueError("parallelism 'pmap' is single-host here; use 'jit' on multi-host.")
  if workdir and jax.process_index() == 0:
    fileio.write_config(config, workdir)
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
                              best_metric="val_map",
                              on_damage=c.get("on_damage", "fallback"))
    try:
      restored = ck.restore_latest(abstract)
    except ckpt_lib.CheckpointMismatchError as e:
      raise ckpt_lib.CheckpointMismatchError(_mismatch_hint(e, config)) from None
  if restored is not None:
    start_step, state = restored
    ck.drop_best_after(start_step)
  else:
    start_step = 0
    state = prog.init(init_rng, sample)
    clip_path = config.model.get("clip_path", None)
    if config.model.get("kind") == "clip" and clip_path:
      from hashjax.dcgh import clip_weights  # pylint: disable=g-import-not-at-top
      towers = clip_weights.load_clip_towers(
          clip_path, vision=model.vision, text=model.text,
          round_fp16=bool(config.model.get("clip_round_fp16", True)))
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
  if stop_after is not None and start_step >= int(stop_after):   # resumed past it
    writer.close()
    ck.close()
    return {"stopped_at": start_step, "total_steps": total_steps}
  nan_at = config.get("debug", {}).get("nan_at_step", None)     # -1 / None: off
  log_every = int(config.get("log_every_steps", 50))
  eval_every = int(config.get("eval_every_epochs", 1))
  top_k = config.eval.get("top_r", None)
  ks = tuple(config.eval.get("ks", ()))
  query_every_eval = bool(config.eval.get("query_every_eval", True))
  ev_kw = dict(encode_fn=encode_fn, batch_sh=batch_sh,
               batch_size=int(config.input.eval_batch_size),
               num_threads=int(config.input.get("num_threads", 2)))
  lr_fns = {f"lr_{k}": optim.warmup_cosine_schedule(float(o[f"{k}_lr"]), total_steps,
                                                    warmup=float(o.warmup))
            for k in ("tower", "head")}   # the lr the step used (its count from 0)
  pending: list[tuple[int, jax.Array]] = []
  stopped_at = None
  t0 = time.perf_counter()
  bar = tqdm(total=total_steps, initial=start_step, desc="dcgh", unit="step",
             disable=not config.get("progress_bar", True) or jax.process_index() != 0)
  postfix: dict[str, str] = {}
  bar.set_description("dcgh (compiling the first step)")
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
      if done == start_step + 1:   # compiled: restart the bar's clock (a sane ETA)
        bar.set_description("dcgh")
        if not bar.disable:
          bar.n = bar.last_print_n = bar.initial = done
          bar.start_t = bar.last_print_t = time.time()   # tqdm's clock
          bar.refresh()
      else:
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
          postfix["loss"] = f"{loss:.4f}"
          bar.set_postfix(postfix)
      if is_eval:
        params = unrep(state)["params"]
        row = {"kind": "eval", "step": done, "epoch": done // spe}
        val = _map_row(evaluate(params, sources.val_query, sources.val_database,
                                pr_curve=False, **ev_kw))
        row.update({f"val/{k}": v for k, v in val.items()})
        if query_every_eval:
          q = _map_row(evaluate(params, sources.query, sources.database, pr_curve=False,
                                **ev_kw))
          row.update({f"query/{k}": v for k, v in q.items()})
        writer.write(row)
        postfix["val_mAP"] = f"{val['mean_map']:.4f}"
        bar.set_postfix(postfix)
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
  q_codes = _encode(sel_tree["params"], sources.query, **ev_kw)
  d_codes = _encode(sel_tree["params"], sources.database, **ev_kw)
  results = evaluation.evaluate_codes(q_codes, d_codes, sources.query.labels,
                                      sources.database.labels, VIEW_NAMES,
                                      top_k=top_k, ks=ks)
  details = {
      "num_validation": sources.val_query.num_items, "total_steps": total_steps,
      "resumed_from_step": start_step,
      "selected": {"step": sel_step, "epoch": sel_row["epoch"],
                   "validation": {k[4:]: v for k, v in sel_row.items()
                                  if k.startswith("val/")}},
      "history": history,
  }
  # Code health (bit balance, distinct codes) of the database, warning on collapse.
  from hashjax import diagnostics  # pylint: disable=g-import-not-at-top
  codes = diagnostics.codes_report(dict(zip(VIEW_NAMES, d_codes)),
                                   warn=jax.process_index() == 0)
  if query_every_eval:
    details["best_on_query"] = {
        d: {"map": max(r[f"query/{d}_map"] for r in history),
            "epoch": max(history, key=lambda r, d=d: r[f"query/{d}_map"])["epoch"]}
        for d in ("i2t", "t2i")}
  results_path = fileio.join(workdir, "results.json") if workdir else None
  if start_step == total_steps and results_path and fileio.exists(results_path):
    # A finished run re-reported: keep the training time of the run that trained.
    train_seconds = float(fileio.read_json(results_path).get("train_seconds",
                                                              train_seconds))
  result = evaluation.results_record(
      method="dcgh", dataset=str(config.data.get("name", "")), bits=int(config.bits),
      num_train=sources.train.num_items, num_query=sources.query.num_items,
      num_database=sources.database.num_items, train_seconds=train_seconds,
      results=results,
      top_k=None if top_k is None else min(int(top_k), sources.database.num_items),
      ks=ks, codes=codes, details=details)
  if ck is not None:
    ck.close()
  if jax.process_index() == 0:
    print(evaluation.format_table(
        results, title=f"### dcgh on {result['dataset']}, {config.bits} bits, "
        f"selected step {sel_step}"))
    if results_path:
      evaluation.write_results(workdir, result)
  return result
