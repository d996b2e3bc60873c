"""Classic unsupervised cross-modal hashing baselines in pure JAX.

Every baseline is a module with

  fit(views: Sequence[[n, d_m]], *, bits: int, rng: jax.Array, **hyper) -> model
  encode(model, x: [n, d_m], modality: int) -> int8 [n, bits] codes in {-1, +1}

trained on paired items (row i of every view is the same item), for M >= 2 views:

- ``cca_itq``: multi-view CCA + iterative quantisation (Gong & Lazebnik).
- ``cvh``: Cross-View Hashing (Kumar & Udupa 2011).
- ``cmfh``: Collective Matrix Factorization Hashing (Ding et al. 2014).
"""

from __future__ import annotations

from types import ModuleType

from hashjax.baselines import cca_itq, cmfh, common, cvh

__all__ = ["BASELINES", "cca_itq", "cmfh", "common", "cvh", "get_baseline"]

BASELINES: dict[str, ModuleType] = {
    "cca_itq": cca_itq,
    "cvh": cvh,
    "cmfh": cmfh,
}


def get_baseline(name: str) -> ModuleType:
  """Returns the baseline module (with ``fit`` and ``encode``) called ``name``.

  Raises:
    ValueError: ``name`` is not in :data:`BASELINES`.
  """
  if not isinstance(name, str) or name not in BASELINES:
    raise ValueError(
        f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}.")
  return BASELINES[name]
