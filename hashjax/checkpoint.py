"""Orbax checkpoints for training loops: the latest states (resume) and the best one.

``Checkpoints(workdir, every_steps=..., keep=...)`` manages two folders:

* ``workdir/checkpoints``: the full training state every ``every_steps`` steps (and on
  ``force``), the ``keep`` most recent kept; ``restore_latest`` resumes from them;
* ``workdir/best``: one tree (e.g. parameters) per evaluation, only the best by a
  validation metric kept (``mode="max"``).

Saves are asynchronous; call ``wait()`` (or ``close()``) before the process exits.
Restores take the *abstract* tree (``jax.ShapeDtypeStruct`` leaves with shardings,
e.g. from ``jax.eval_shape``), so arrays come back with the right sharding.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpoints", "abstract_tree"]


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
  """

  def __init__(self, workdir: str | os.PathLike, *, every_steps: int, keep: int = 2,
               best_metric: str = "val_map", best_mode: str = "max"):
    if every_steps < 1 or keep < 1:
      raise ValueError(
          f"every_steps and keep must be >= 1, got {every_steps} and {keep}.")
    if best_mode not in ("max", "min"):
      raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}.")
    self.every_steps = int(every_steps)
    self.best_metric = best_metric
    # Multi-process saves meet at barriers named by step; the two managers save the
    # same step (the last one), so their barriers need distinct names (else the
    # second save fails: "Barrier _async_write_complete.<step> is already ongoing").
    barriers = lambda name: ocp.options.MultiprocessingOptions(  # noqa: E731
        barrier_sync_key_prefix=name)
    self._latest = ocp.CheckpointManager(
        os.path.join(os.fspath(workdir), "checkpoints"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=int(keep), save_interval_steps=1, create=True,
            multiprocessing_options=barriers("latest")))
    self._best = ocp.CheckpointManager(
        os.path.join(os.fspath(workdir), "best"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: float(m[best_metric]),
            best_mode=best_mode, keep_checkpoints_without_metrics=False, create=True,
            multiprocessing_options=barriers("best")))

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
    return self._latest.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore_latest(self, abstract_state: Any) -> tuple[int, Any] | None:
    """``(step, state)`` of the newest saved state, or None when there is none."""
    step = self._latest.latest_step()
    if step is None:
      return None
    return step, self._latest.restore(
        step, args=ocp.args.StandardRestore(abstract_state))

  # -------------------------------------------------------------------- best

  def best_step(self) -> int | None:
    return self._best.best_step()

  def save_best(self, step: int, tree: Any, value: float) -> None:
    """Offers ``tree`` with metric ``value``; only the best offer is kept."""
    if step in self._best.all_steps():
      self._best.delete(step)
    self._best.save(step, args=ocp.args.StandardSave(tree),
                    metrics={self.best_metric: float(value)}, force=True)

  def restore_best(self, abstract_tree_: Any) -> tuple[int, Any] | None:
    """``(step, tree)`` of the best saved tree, or None."""
    self._best.wait_until_finished()
    step = self._best.best_step()
    if step is None:
      return None
    return step, self._best.restore(step, args=ocp.args.StandardRestore(abstract_tree_))

  def drop_best_after(self, step: int) -> None:
    """Deletes best-tree candidates saved after ``step`` (they belong to a lost future)."""
    for s in self._best.all_steps():
      if s > step:
        self._best.delete(s)

  # -------------------------------------------------------------------- lifecycle

  def wait(self) -> None:
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self) -> None:
    self.wait()
    self._latest.close()
    self._best.close()
