"""Orbax checkpoints for training loops: the latest states (resume) and the best one.

``Checkpoints(workdir, every_steps=..., keep=...)`` manages two folders:

* ``workdir/checkpoints``: the full training state every ``every_steps`` steps (and on
  ``force``), the ``keep`` most recent kept; ``restore_latest`` resumes from them;
* ``workdir/best``: one tree (e.g. parameters) per evaluation, only the best by a
  validation metric kept (``mode="max"``).

Saves are asynchronous; call ``wait()`` (or ``close()``) before the process exits.
Restores take the *abstract* tree (``jax.ShapeDtypeStruct`` leaves with shardings,
e.g. from ``jax.eval_shape``), so arrays come back with the right sharding.

Integrity: once a step is finalised, process 0 writes ``<step>/hashjax_sha256.json``,
the SHA-256 and size of every file of the step directory (on a background thread, so
saving stays asynchronous). Restores verify it first. A damaged latest step (a file
missing or changed, or a restore that fails) is named in one line and, with
``on_damage="fallback"`` (default), moved to ``workdir/damaged/`` and the next older
step is tried; ``on_damage="refuse"`` raises :class:`CheckpointDamagedError` instead.
A step without a manifest (interrupted between finalising and sealing, or written by
an older hashjax) is restored with a warning. Before restoring, the saved shapes are
compared with the abstract tree: :class:`CheckpointMismatchError` names the leaves
that differ (e.g. a config with other ``bits`` than the checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["CheckpointDamagedError", "CheckpointMismatchError", "Checkpoints",
           "MANIFEST", "abstract_tree", "saved_shapes", "seal_step", "verify_step"]

MANIFEST = "hashjax_sha256.json"
ON_DAMAGE = ("fallback", "refuse")


class CheckpointDamagedError(ValueError):
  """A checkpoint step failed its checksums or could not be restored."""


class CheckpointMismatchError(ValueError):
  """The checkpoint's saved shapes differ from what the config builds."""


def _file_digest(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def _files(step_dir: str) -> list[str]:
  out = []
  for root, _, names in os.walk(step_dir):
    for n in names:
      rel = os.path.relpath(os.path.join(root, n), step_dir)
      if rel != MANIFEST:
        out.append(rel)
  return sorted(out)


def seal_step(step_dir: str | os.PathLike) -> None:
  """Writes ``step_dir/hashjax_sha256.json`` (SHA-256 and size of every file)."""
  step_dir = os.fspath(step_dir)
  files = {rel: {"sha256": _file_digest(os.path.join(step_dir, rel)),
                 "size": os.path.getsize(os.path.join(step_dir, rel))}
           for rel in _files(step_dir)}
  tmp = os.path.join(step_dir, f".{MANIFEST}.tmp")
  with open(tmp, "w") as f:
    json.dump({"format": "hashjax-sha256-v1", "files": files}, f, indent=1)
  os.replace(tmp, os.path.join(step_dir, MANIFEST))


def verify_step(step_dir: str | os.PathLike) -> str | None:
  """None when every file of the manifest is present and unchanged, else why not.

  Returns ``"unsealed"`` when the step has no manifest.
  """
  step_dir = os.fspath(step_dir)
  path = os.path.join(step_dir, MANIFEST)
  if not os.path.exists(path):
    return "unsealed"
  try:
    with open(path) as f:
      files = json.load(f)["files"]
  except (OSError, ValueError, KeyError) as e:
    return f"its checksum manifest is unreadable ({type(e).__name__})"
  for rel, want in sorted(files.items()):
    full = os.path.join(step_dir, rel)
    if not os.path.exists(full):
      return f"file {rel} is missing"
    if os.path.getsize(full) != want["size"]:
      return f"file {rel} has {os.path.getsize(full)} bytes, {want['size']} were saved"
    if _file_digest(full) != want["sha256"]:
      return f"file {rel} changed since it was saved (SHA-256 mismatch)"
  return None


def _key_str(path: tuple) -> str:
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def saved_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """``{"params/dense/kernel": shape}`` of every leaf with a shape."""
  leaves = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
  return {_key_str(p): tuple(x.shape) for p, x in leaves if hasattr(x, "shape")}


def _warn(message: str) -> None:
  if jax.process_index() == 0:
    print(f"hashjax: warning: {message}", file=sys.stderr, flush=True)


def abstract_tree(tree: Any) -> Any:
  """``jax.ShapeDtypeStruct`` leaves (with each array's sharding) of ``tree``."""
  def leaf(x):
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
  return jax.tree_util.tree_map(leaf, tree)


class Checkpoints:
  """Latest-N and best-by-metric Orbax checkpoint managers under one workdir.

  Args:
    workdir: run directory (local path or any path ``etils.epath`` reads, e.g. GCS).
    every_steps: save the training state when ``step % every_steps == 0``.
    keep: number of latest states kept.
    best_metric: name of the metric that ranks ``save_best`` calls.
    best_mode: ``"max"`` or ``"min"``.
    on_damage: ``"fallback"`` (resume from the newest intact step) or ``"refuse"``.
  """

  def __init__(self, workdir: str | os.PathLike, *, every_steps: int, keep: int = 2,
               best_metric: str = "val_map", best_mode: str = "max",
               on_damage: str = "fallback"):
    if every_steps < 1 or keep < 1:
      raise ValueError(
          f"every_steps and keep must be >= 1, got {every_steps} and {keep}.")
    if best_mode not in ("max", "min"):
      raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}.")
    if on_damage not in ON_DAMAGE:
      raise ValueError(f"on_damage must be one of {ON_DAMAGE}, got {on_damage!r}.")
    self.every_steps = int(every_steps)
    self.best_metric = best_metric
    self.on_damage = on_damage
    self._workdir = os.fspath(workdir)
    self._local = "://" not in self._workdir
    self._sealer: threading.Thread | None = None
    # Multi-process saves meet at barriers named by step; the two managers save the
    # same step (the last one), so their barriers need distinct names (else the
    # second save fails: "Barrier _async_write_complete.<step> is already ongoing").
    barriers = lambda name: ocp.options.MultiprocessingOptions(  # noqa: E731
        barrier_sync_key_prefix=name)
    self._latest = ocp.CheckpointManager(
        os.path.join(os.fspath(workdir), "checkpoints"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=int(keep), save_interval_steps=1, create=True,
            multiprocessing_options=barriers("latest")),
        item_handlers=ocp.StandardCheckpointHandler())   # item_metadata readable
    self._best = ocp.CheckpointManager(
        os.path.join(os.fspath(workdir), "best"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: float(m[best_metric]),
            best_mode=best_mode, keep_checkpoints_without_metrics=False, create=True,
            multiprocessing_options=barriers("best")),
        item_handlers=ocp.StandardCheckpointHandler())

  # -------------------------------------------------------------------- latest

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def should_save(self, step: int) -> bool:
    return step % self.every_steps == 0

  def save_latest(self, step: int, state: Any, *, force: bool = False) -> bool:
    """Saves ``state`` at ``step`` if it is a save step (or ``force``); True if saved."""
    if not (force or self.should_save(step)):
      return False
    if step in self._latest.all_steps():
      return False
    self._join_sealer()
    saved = self._latest.save(step, args=ocp.args.StandardSave(state), force=True)
    self._start_sealer()
    return saved

  def restore_latest(self, abstract_state: Any) -> tuple[int, Any] | None:
    """``(step, state)`` of the newest intact saved state, or None when there is none.

    Raises:
      CheckpointMismatchError: the saved shapes differ from ``abstract_state``.
      CheckpointDamagedError: the latest step is damaged and ``on_damage="refuse"``,
        or every step is damaged.
    """
    steps = sorted(self._latest.all_steps(), reverse=True)
    for step in steps:
      where = os.path.join(self._workdir, "checkpoints", str(step))
      problem = self._check(self._latest, step)
      if problem in (None, "unsealed"):
        self.check_shapes(step, abstract_state)
        try:
          return step, self._latest.restore(
              step, args=ocp.args.StandardRestore(abstract_state))
        except Exception as e:  # pylint: disable=broad-except
          if problem is None:   # the files are as saved: not damage, a real error
            raise CheckpointDamagedError(
                f"checkpoint step {step} ({where}) passed its checksums but could "
                f"not be restored: {' '.join(str(e).split())[:300]}") from e
          problem = ("unsealed, and its restore failed: "
                     + " ".join(str(e).split())[:200])
      if self.on_damage == "refuse":
        raise CheckpointDamagedError(
            f"checkpoint step {step} ({where}) is damaged: {problem}; not resuming "
            "(checkpoint.on_damage='refuse'); move it away to resume from an older "
            "step.")
      moved = self._quarantine(self._latest, "checkpoints", step)
      _warn(f"checkpoint step {step} is damaged ({problem}); moved to {moved}, "
            "trying the previous step.")
    if steps:
      raise CheckpointDamagedError(
          f"every checkpoint under {os.path.join(self._workdir, 'checkpoints')} is "
          f"damaged (steps {sorted(steps)}, moved to "
          f"{os.path.join(self._workdir, 'damaged')}); delete the workdir's "
          "checkpoints to start afresh.")
    return None

  def check_shapes(self, step: int, abstract_state: Any) -> None:
    """Raises :class:`CheckpointMismatchError` naming the leaves whose shapes differ."""
    try:
      saved = saved_shapes(self._latest.item_metadata(step))
    except Exception:  # pylint: disable=broad-except  (unreadable: restore decides)
      return
    want = saved_shapes(abstract_state)
    if not saved:
      return
    order = lambda k: (not k.startswith(("params", "proxies")), k)  # noqa: E731
    diffs = [f"{k}: checkpoint {saved[k]}, config {want[k]}"
             for k in sorted(want, key=order) if k in saved and saved[k] != want[k]]
    missing = sorted(set(want) - set(saved))
    extra = sorted(set(saved) - set(want))
    if diffs or missing or extra:
      parts = diffs[:3]
      if missing:
        parts.append(f"not in the checkpoint: {', '.join(missing[:3])}")
      if extra:
        parts.append(f"only in the checkpoint: {', '.join(extra[:3])}")
      err = CheckpointMismatchError(
          f"the config and checkpoint step {step} in "
          f"{os.path.join(self._workdir, 'checkpoints')} disagree ("
          + "; ".join(parts) + "); use the config the run was started with or "
          "another --workdir.")
      err.saved, err.wanted = saved, want
      raise err

  # -------------------------------------------------------------------- integrity

  def _step_dir(self, mgr: Any, step: int) -> str:
    return os.path.join(os.fspath(mgr.directory), str(step))

  def _check(self, mgr: Any, step: int) -> str | None:
    """None if the step verifies, ``"unsealed"`` (with a warning), else the reason."""
    if not self._local:
      return None
    problem = verify_step(self._step_dir(mgr, step))
    if problem == "unsealed":
      _warn(f"checkpoint step {step} has no checksum manifest (interrupted before "
            "sealing, or saved by an older hashjax): restoring it unverified.")
    return problem


  def _quarantine(self, mgr: Any, kind: str, step: int) -> str:
    """Moves a damaged step out of the manager's folder (process 0); reloads."""
    dst = os.path.join(self._workdir, "damaged", f"{kind}_{step}")
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      if os.path.exists(dst):
        shutil.rmtree(dst)
      shutil.move(self._step_dir(mgr, step), dst)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f"hashjax_quarantine_{kind}_{step}")
    mgr.reload()
    return dst

  def _seal_all(self) -> None:
    """Waits for pending saves, then writes the manifests missing (process 0)."""
    self._latest.wait_until_finished()
    self._best.wait_until_finished()
    if not self._local or jax.process_index() != 0:
      return
    for mgr in (self._latest, self._best):
      for step in mgr.all_steps():
        d = self._step_dir(mgr, step)
        if os.path.isdir(d) and not os.path.exists(os.path.join(d, MANIFEST)):
          try:
            seal_step(d)
          except FileNotFoundError:   # deleted meanwhile (kept-steps limit)
            pass

  def _start_sealer(self) -> None:
    self._sealer = threading.Thread(target=self._seal_all, daemon=True)
    self._sealer.start()

  def _join_sealer(self) -> None:
    if self._sealer is not None:
      self._sealer.join()
      self._sealer = None

  # -------------------------------------------------------------------- best

  def best_step(self) -> int | None:
    return self._best.best_step()

  def save_best(self, step: int, tree: Any, value: float) -> None:
    """Offers ``tree`` with metric ``value``; only the best offer is kept."""
    self._join_sealer()
    if step in self._best.all_steps():
      self._best.delete(step)
    self._best.save(step, args=ocp.args.StandardSave(tree),
                    metrics={self.best_metric: float(value)}, force=True)
    self._start_sealer()

  def restore_best(self, abstract_tree_: Any) -> tuple[int, Any] | None:
    """``(step, tree)`` of the best saved tree, or None.

    Raises:
      CheckpointDamagedError: the best tree fails its checksums or its restore.
    """
    self.wait()
    step = self._best.best_step()
    if step is None:
      return None
    where = self._step_dir(self._best, step)
    problem = self._check(self._best, step)
    if problem in (None, "unsealed"):
      try:
        return step, self._best.restore(
            step, args=ocp.args.StandardRestore(abstract_tree_))
      except Exception as e:  # pylint: disable=broad-except
        problem = "restore failed: " + " ".join(str(e).split())[:200]
    raise CheckpointDamagedError(f"best checkpoint step {step} ({where}) is damaged: "
                                 f"{problem}.")

  def drop_best_after(self, step: int) -> None:
    """Deletes best-tree candidates saved after ``step`` (they belong to a lost future)."""
    self._join_sealer()
    for s in self._best.all_steps():
      if s > step:
        self._best.delete(s)

  # -------------------------------------------------------------------- lifecycle

  def wait(self) -> None:
    """Waits for pending saves and their checksum manifests."""
    self._join_sealer()
    self._seal_all()

  def close(self) -> None:
    self.wait()
    self._latest.close()
    self._best.close()
