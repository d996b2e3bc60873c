"""Standard figures of hashjax experiments (matplotlib, no pyplot, Agg-safe).

Every function builds a fresh :class:`matplotlib.figure.Figure` without touching
pyplot's global state (so it works headless, in threads and under any backend),
optionally writes it as a PNG, and returns it. In a notebook run
``%matplotlib inline`` once and ``display(fig)`` (or end a cell with ``fig``).

  fig = plotting.pr_curve({"RREH I->T": (precision, recall)}, path="pr.png")

Curves are given as ``{label: arrays}`` mappings; one line is drawn per label, in
the mapping's order, so ``fig.axes[0].lines[i].get_xydata()`` holds the i-th curve.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "map_matrix",
    "map_vs",
    "objective_curve",
    "pr_curve",
    "precision_at_topR_curve",
    "save_figure",
    "training_curves",
]

PathLike = str | os.PathLike


def save_figure(fig: Figure, path: PathLike, *, dpi: int = 120) -> str:
  """Writes ``fig`` as a PNG at ``path`` (parent folders are created).

  Returns:
    the path written, as a str.
  """
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
  return path


def _vector(name: str, x: Any) -> np.ndarray:
  arr = np.asarray(x, dtype=np.float64)
  if arr.ndim != 1 or arr.size == 0:
    raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}.")
  return arr


def _unpack(where: str, pair: Any, first: str, second: str) -> tuple[Any, Any]:
  """``pair -> (pair[0], pair[1])`` for a tuple / list / array of length 2."""
  size = len(pair) if hasattr(pair, "__len__") else None
  if isinstance(pair, (str, bytes, Mapping)) or size != 2:
    raise ValueError(
        f"{where} must be a pair ({first}, {second}), got a {type(pair).__name__} "
        f"of length {size}.")
  return pair[0], pair[1]


def _pairs(name: str, curves: Mapping[str, Any], first: str, second: str
           ) -> list[tuple[str, np.ndarray, np.ndarray]]:
  """Validates ``{label: (a [T], b [T])}``; returns ``[(label, a, b)]`` in order."""
  if not isinstance(curves, Mapping) or not curves:
    raise ValueError(f"{name} must be a non-empty mapping label -> ({first}, {second}), "
                     f"got {type(curves).__name__} {str(curves)[:60]}.")
  out = []
  for label, pair in curves.items():
    a, b = _unpack(f"{name}[{label!r}]", pair, first, second)
    a = _vector(f"{name}[{label!r}] {first}", a)
    b = _vector(f"{name}[{label!r}] {second}", b)
    if a.shape != b.shape:
      raise ValueError(
          f"{name}[{label!r}]: {first} has shape {a.shape} but {second} has shape "
          f"{b.shape}; they must match.")
    out.append((str(label), a, b))
  return out


def _finish(fig: Figure, ax: Any, *, title: str | None, path: PathLike | None,
            legend: bool = True, grid: bool = True) -> Figure:
  if title:
    ax.set_title(title)
  if legend and ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize="small")
  if grid:
    ax.grid(True, alpha=0.3)
  if path is not None:
    save_figure(fig, path)
  return fig


def pr_curve(curves: Mapping[str, tuple[Any, Any]], *, title: str | None = None,
             path: PathLike | None = None,
             figsize: tuple[float, float] = (5.0, 4.0)) -> Figure:
  """Precision-recall curves over Hamming radii.

  Args:
    curves: ``{label: (precision [T], recall [T])}``, e.g. the output of
      ``hashjax.metrics.precision_recall_curve`` (T = bits + 1 radii).
    title: axes title.
    path: write a PNG here when given.
    figsize: figure size in inches.

  Returns:
    the Figure; line i has x = recall, y = precision of the i-th label.
  """
  items = _pairs("curves", curves, "precision", "recall")
  fig = Figure(figsize=figsize)
  ax = fig.add_subplot()
  for label, precision, recall in items:
    ax.plot(recall, precision, marker=".", label=label)
  ax.set_xlabel("recall")
  ax.set_ylabel("precision")
  ax.set_xlim(-0.02, 1.02)
  return _finish(fig, ax, title=title, path=path)


def precision_at_topR_curve(curves: Mapping[str, tuple[Any, Any]], *,  # noqa: N802
                            title: str | None = None, path: PathLike | None = None,
                            figsize: tuple[float, float] = (5.0, 4.0)) -> Figure:
  """Precision of the top-R retrieved items as a function of R.

  Args:
    curves: ``{label: (Rs [T], precisions [T])}``.
    title: axes title.
    path: write a PNG here when given.
    figsize: figure size in inches.

  Returns:
    the Figure; line i has x = R, y = precision@R of the i-th label.
  """
  items = _pairs("curves", curves, "Rs", "precisions")
  fig = Figure(figsize=figsize)
  ax = fig.add_subplot()
  for label, rs, precision in items:
    ax.plot(rs, precision, marker=".", label=label)
  ax.set_xlabel("R (number of retrieved items)")
  ax.set_ylabel("precision@R")
  return _finish(fig, ax, title=title, path=path)


def map_vs(x_values: Any, curves: Mapping[str, tuple[Any, Any]], xlabel: str, *,
           ylabel: str = "mAP", title: str | None = None, logx: bool = False,
           path: PathLike | None = None,
           figsize: tuple[float, float] = (5.0, 4.0)) -> Figure:
  """mAP (mean over seeds, +- one std as a band) against a swept setting.

  For mAP vs bits, paired ratio or number of anchors.

  Args:
    x_values: ``[T]`` the swept values (ticks are placed at them).
    curves: ``{label: (means [T], stds [T] or None)}``.
    xlabel: name of the swept setting.
    ylabel: y-axis label.
    title: axes title.
    logx: logarithmic x axis (base 2), e.g. for bits.
    path: write a PNG here when given.
    figsize: figure size in inches.

  Returns:
    the Figure; line i has x = ``x_values``, y = the means of the i-th label (the
    std bands are filled polygons, not lines).
  """
  x = _vector("x_values", x_values)
  if not isinstance(curves, Mapping) or not curves:
    raise ValueError("curves must be a non-empty mapping label -> (means, stds).")
  fig = Figure(figsize=figsize)
  ax = fig.add_subplot()
  for label, pair in curves.items():
    means, stds = _unpack(f"curves[{label!r}]", pair, "means", "stds or None")
    means = _vector(f"curves[{label!r}] means", means)
    if means.shape != x.shape:
      raise ValueError(
          f"curves[{label!r}]: means have shape {means.shape}, x_values {x.shape}.")
    (line,) = ax.plot(x, means, marker="o", label=str(label))
    if stds is not None:
      stds = _vector(f"curves[{label!r}] stds", stds)
      if stds.shape != x.shape:
        raise ValueError(
            f"curves[{label!r}]: stds have shape {stds.shape}, x_values {x.shape}.")
      if np.any(stds < 0):
        raise ValueError(f"curves[{label!r}]: stds must be >= 0, got {stds.tolist()}.")
      ax.fill_between(x, means - stds, means + stds, color=line.get_color(),
                      alpha=0.2, linewidth=0)
  if logx:
    ax.set_xscale("log", base=2)
  ax.set_xticks(x)
  ax.set_xticklabels([f"{v:g}" for v in x])
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  return _finish(fig, ax, title=title, path=path)


def training_curves(curves: Mapping[str, tuple[Any, Any]], *, title: str | None = None,
                    xlabel: str = "step", ncols: int = 3,
                    path: PathLike | None = None) -> Figure:
  """One panel per logged quantity (loss, learning rate, validation mAP, ...).

  Args:
    curves: ``{name: (steps [T], values [T])}``; each gets its own axes (their
      scales differ), in the mapping's order.
    title: figure title.
    xlabel: x-axis label of every panel.
    ncols: panels per row.
    path: write a PNG here when given.

  Returns:
    the Figure; ``fig.axes[i]`` holds one line, x = steps, y = values of the i-th
    name (unused grid cells are removed).
  """
  items = _pairs("curves", curves, "steps", "values")
  ncols = max(1, min(int(ncols), len(items)))
  nrows = -(-len(items) // ncols)
  fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  for ax, (name, steps, values) in zip(axes, items):
    ax.plot(steps, values, marker="." if steps.size <= 50 else None)
    ax.set_title(name, fontsize="medium")
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)
  for ax in axes[len(items):]:
    fig.delaxes(ax)
  if title:
    fig.suptitle(title)
  if path is not None:
    save_figure(fig, path)
  return fig


def objective_curve(objective: Any, *, title: str | None = None, logy: bool = False,
                    path: PathLike | None = None,
                    figsize: tuple[float, float] = (5.0, 4.0)) -> Figure:
  """The solver objective after each iteration (e.g. ``RREHModel.objective``).

  Args:
    objective: ``[iterations]`` values; entries that are negative (the solver's
      ``-1`` = not reached) or not finite are left out.
    title: axes title.
    logy: logarithmic y axis.
    path: write a PNG here when given.
    figsize: figure size in inches.

  Returns:
    the Figure; one line, x = iteration (1-based), y = objective.
  """
  obj = _vector("objective", objective)
  keep = np.isfinite(obj) & (obj >= 0)
  if not keep.any():
    raise ValueError(
        "objective has no reached iteration (every entry is negative or not finite).")
  it = np.arange(1, obj.size + 1, dtype=np.float64)
  fig = Figure(figsize=figsize)
  ax = fig.add_subplot()
  ax.plot(it[keep], obj[keep], marker=".")
  if logy:
    ax.set_yscale("log")
  ax.set_xlabel("iteration")
  ax.set_ylabel("objective")
  return _finish(fig, ax, title=title, path=path, legend=False)


def map_matrix(matrix: Any, names: Any, *, title: str | None = None,
               cmap: str = "viridis", path: PathLike | None = None,
               figsize: tuple[float, float] | None = None) -> Figure:
  """Heat map of mAP for every ordered modality pair (query row -> database column).

  Args:
    matrix: ``[M, M]`` mAP of queries of modality ``i`` against database items of
      modality ``j``; non-finite entries (e.g. the diagonal, NaN) are left blank.
    names: M modality names.
    title: axes title.
    cmap: matplotlib colormap name.
    path: write a PNG here when given.
    figsize: figure size in inches (default grows with M).

  Returns:
    the Figure; ``fig.axes[0].images[0]`` holds ``matrix`` (masked where not
    finite) and every finite cell carries its value as text.
  """
  mat = np.asarray(matrix, dtype=np.float64)
  names = [str(n) for n in names]
  if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or mat.shape[0] == 0:
    raise ValueError(f"matrix must be square [M, M], got shape {mat.shape}.")
  if len(names) != mat.shape[0]:
    raise ValueError(f"{len(names)} names for a {mat.shape[0]} x {mat.shape[0]} matrix.")
  m = mat.shape[0]
  size = figsize or (1.2 + 0.8 * m, 0.8 + 0.8 * m)
  fig = Figure(figsize=size, layout="constrained")
  ax = fig.add_subplot()
  masked = np.ma.masked_invalid(mat)
  im = ax.imshow(masked, cmap=cmap)
  fig.colorbar(im, ax=ax, label="mAP")
  ax.set_xticks(range(m), labels=names, rotation=45, ha="right")
  ax.set_yticks(range(m), labels=names)
  ax.set_xlabel("database modality")
  ax.set_ylabel("query modality")
  finite = mat[np.isfinite(mat)]
  mid = 0.5 * (finite.min() + finite.max()) if finite.size else 0.0
  for i in range(m):
    for j in range(m):
      if np.isfinite(mat[i, j]):
        ax.text(j, i, f"{mat[i, j]:.3f}", ha="center", va="center", fontsize="small",
                color="black" if mat[i, j] > mid else "white")
  return _finish(fig, ax, title=title, path=path, legend=False, grid=False)
