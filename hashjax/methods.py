"""The method registry: name -> :class:`Method` (fit / encode / save / load / run).

One table asked by ``hashjax.main`` (which ``train_and_evaluate`` runs a config),
``hashjax.encode`` (load a saved model, encode a split), ``hashjax.experiment`` (fit a
shallow method) and the experiment scripts and tests::

  method = methods.get("cvh")
  model = method.fit(paired, unpaired, config, rng)        # shallow methods
  codes = method.encode(model, x, m)                       # int8 [n, bits] in {-1, +1}
  method.save(path, model, meta={...}); model = method.load(config, path)

Two families share ``encode`` / ``load`` / ``encode_split``:

* ``"shallow"`` (rreh, cca_itq, cvh, cmfh): ``fit(paired, unpaired, config, rng)`` on
  arrays, ``config`` a ConfigDict or mapping with ``bits`` and the method's
  sub-config (``rreh`` or ``baseline``); ``save`` writes one ``model.npz``; the run
  path is :func:`hashjax.experiment.train_and_evaluate`.
* ``"deep"`` (dcgh): ``fit(config, workdir)`` trains from the config's data (and
  evaluates) with :func:`hashjax.dcgh.train.train_and_evaluate`, returning the
  best-validation encoder; checkpoints are Orbax folders in the workdir.

Implementations are imported when first used, so ``import hashjax.methods`` does not
pull in flax or the input pipeline. Layering: this module imports methods and data,
never the entry points or ``hashjax.experiment``; ``Method.trainer`` names the
module whose ``train_and_evaluate(config, workdir)`` runs it (big_vision style).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["METHODS", "Method", "get", "names"]


def _as_dict(cfg: Any) -> dict[str, Any]:
  if cfg is None:
    return {}
  if hasattr(cfg, "to_dict"):
    return cfg.to_dict()
  return dict(cfg)


def _get(cfg: Any, key: str, default: Any = None) -> Any:
  return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)


@dataclasses.dataclass(frozen=True)
class Method:
  """One hashing method.

  Attributes:
    name: registry name (``config.method``).
    family: ``"shallow"`` or ``"deep"`` (see the module docstring).
    trainer: module with ``train_and_evaluate(config, workdir)``.
    checkpoint: what a run leaves in its workdir for :attr:`load` (``"model.npz"``;
      ``""``: the workdir itself).
    fit: trains a model (signature by family).
    encode: ``encode(model, x [n, d_m], m) -> int8 [n, bits]`` in {-1, +1}.
    save: ``save(path, model, meta=None)``.
    load: ``load(config, checkpoint) -> model``.
    encode_split: ``encode_split(config, checkpoint, split, modality)`` -> the
      ``codes.npz`` arrays of one modality of one split, dealt as in training.
    process_local: ``fit(..., process_local=True)`` fits from each process's own
      block of the rows (RREH; see :func:`hashjax.rreh.fit`); the others fit on
      every row in every process.
  """

  name: str
  family: str
  trainer: str
  checkpoint: str
  fit: Callable[..., Any]
  encode: Callable[[Any, Any, int], np.ndarray]
  save: Callable[..., None]
  load: Callable[[Any, str], Any]
  encode_split: Callable[..., dict[str, np.ndarray]]
  process_local: bool = False

  def train_and_evaluate_fn(self) -> Callable[[Any, str | None], dict[str, Any]]:
    """``train_and_evaluate(config, workdir)`` of :attr:`trainer` (imported now)."""
    return importlib.import_module(self.trainer).train_and_evaluate


# ----------------------------------------------------------------------------- shallow


def _impl(name: str) -> Any:
  if name == "rreh":
    from hashjax import rreh  # pylint: disable=g-import-not-at-top
    return rreh
  from hashjax import baselines  # pylint: disable=g-import-not-at-top
  return baselines.get_baseline(name)


def _shallow_fit(name: str) -> Callable[..., Any]:
  def fit(paired_views: Sequence[np.ndarray], unpaired_views: Sequence[np.ndarray],
          config: Any, rng: Any, *, details: dict[str, Any] | None = None,
          **kwargs: Any) -> Any:
    """Fits on semi-paired data: RREH uses both parts, baselines the paired items.

    Args:
      paired_views: M arrays ``[n_p, d_m]``, row i the same item in every modality.
      unpaired_views: M arrays ``[n_u_m, d_m]`` (may have 0 rows).
      config: ``bits`` and ``rreh`` (RREH) or ``baseline`` (hyper-parameters).
      rng: PRNG key.
      details: None, or a dict the fit adds method-specific facts to (results.json
        ``details``): RREH's ``hyper_selection`` (``chosen``: what label-free
        selection picked; ``table``: its score per grid point) when selection ran.
      **kwargs: RREH only: ``process_local`` (see :func:`hashjax.rreh.fit`).
    """
    from hashjax import checks  # pylint: disable=g-import-not-at-top

    bits = checks.check_bits(_get(config, "bits"))
    if name == "rreh":
      cfg = dict(_as_dict(_get(config, "rreh")), bits=bits)

      def record(chosen, table):
        if details is not None:
          details["hyper_selection"] = _json_safe({"chosen": chosen, "table": table})
      return _impl(name).fit(list(paired_views), list(unpaired_views), cfg, rng,
                             on_select=record, **kwargs)
    if kwargs:
      raise ValueError(f"{name} takes no {sorted(kwargs)}.")
    hyper = _as_dict(_get(config, "baseline"))
    return _impl(name).fit(list(paired_views), bits=bits, rng=rng, **hyper)
  return fit


def _json_safe(x: Any) -> Any:
  """``x`` with tuples / NumPy values as lists and floats, non-finite floats as None
  (results.json is strict JSON)."""
  if isinstance(x, dict):
    return {str(k): _json_safe(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_json_safe(v) for v in x]
  if isinstance(x, (bool, np.bool_)):
    return bool(x)
  if isinstance(x, (int, np.integer)):
    return int(x)
  if isinstance(x, (float, np.floating)):
    return float(x) if np.isfinite(x) else None
  return x


def _shallow_encode(name: str) -> Callable[[Any, Any, int], np.ndarray]:
  def encode(model: Any, x: Any, m: int) -> np.ndarray:
    return np.asarray(_impl(name).encode(model, x, m)).astype(np.int8)
  return encode


def _shallow_save(name: str) -> Callable[..., None]:
  def save(path: str, model: Any, meta: Mapping[str, Any] | None = None) -> None:
    import jax  # pylint: disable=g-import-not-at-top

    from hashjax import serialization  # pylint: disable=g-import-not-at-top

    serialization.save_pytree(path, jax.tree_util.tree_map(np.asarray, model),
                              meta={**dict(meta or {}), "method": name})
  return save


def _shallow_load(name: str) -> Callable[[Any, str], Any]:
  def load(config: Any, checkpoint: str) -> Any:
    from hashjax import serialization, validate  # pylint: disable=g-import-not-at-top

    model, meta = serialization.load_pytree(checkpoint)
    if meta.get("method") != name:
      raise ValueError(f"{checkpoint} holds a {meta.get('method')!r} model but the "
                       f"config is for {name!r}.")
    if config is not None:
      validate.check_model_bits(config, meta.get("bits"), checkpoint)
    return model
  return load


def _modality(modality: str | int | None, view_names: Sequence[str]) -> int:
  from hashjax.codes import modality_index  # pylint: disable=g-import-not-at-top

  if modality is None:
    return 0
  return modality_index(modality, len(view_names), tuple(view_names))


def _shallow_encode_split(name: str) -> Callable[..., dict[str, np.ndarray]]:
  def encode_split(config: Any, checkpoint: str, split: str,
                   modality: str | int | None = None) -> dict[str, np.ndarray]:
    from hashjax import data as hdata  # pylint: disable=g-import-not-at-top

    parts = hdata.get_retrieval_split(config.data)
    if split not in parts._fields:
      raise ValueError(f"split must be one of {parts._fields}, got {split!r}.")
    part = getattr(parts, split)
    m = _modality(modality, part.view_names)
    model = _shallow_load(name)(config, checkpoint)
    codes = _shallow_encode(name)(model, part.views[m], m)
    return {"codes": codes, "ids": np.arange(part.num_items, dtype=np.int64),
            "labels": part.labels, "bits": np.int64(codes.shape[1]),
            "modality": np.array(part.view_names[m])}
  return encode_split


def _shallow(name: str) -> Method:
  return Method(name=name, family="shallow", trainer="hashjax.experiment",
                checkpoint="model.npz", fit=_shallow_fit(name),
                encode=_shallow_encode(name), save=_shallow_save(name),
                load=_shallow_load(name), encode_split=_shallow_encode_split(name),
                process_local=name == "rreh")


# ----------------------------------------------------------------------------- dcgh


def _dcgh_fit(config: Any, workdir: str) -> Any:
  """Trains DCGH (:func:`hashjax.dcgh.train.train_and_evaluate`); the best encoder."""
  from hashjax.dcgh import train  # pylint: disable=g-import-not-at-top

  if not workdir:
    raise ValueError("DCGH's fit needs a workdir (its checkpoints live there).")
  train.train_and_evaluate(config, workdir)
  return _dcgh_load(config, workdir)


def _dcgh_encode(model: Any, x: Any, m: int) -> np.ndarray:
  return model(x, m)


def _dcgh_save(path: str, model: Any, meta: Mapping[str, Any] | None = None) -> None:
  from hashjax.dcgh import export  # pylint: disable=g-import-not-at-top

  export.save_encoder(path, model, meta=meta)


def _dcgh_load(config: Any, checkpoint: str) -> Any:
  from hashjax.dcgh import export  # pylint: disable=g-import-not-at-top

  return export.load_encoder(config, checkpoint)


def _dcgh_encode_split(config: Any, checkpoint: str, split: str,
                       modality: str | int | None = None) -> dict[str, np.ndarray]:
  from hashjax.dcgh import export  # pylint: disable=g-import-not-at-top

  return export.encode_split(config, checkpoint, split, modality)


METHODS: dict[str, Method] = {
    **{n: _shallow(n) for n in ("rreh", "cca_itq", "cvh", "cmfh")},
    "dcgh": Method(name="dcgh", family="deep", trainer="hashjax.dcgh.train",
                   checkpoint="", fit=_dcgh_fit, encode=_dcgh_encode, save=_dcgh_save,
                   load=_dcgh_load, encode_split=_dcgh_encode_split),
}


def names(family: str | None = None) -> tuple[str, ...]:
  """Registered method names (of one family if given)."""
  return tuple(n for n, m in METHODS.items() if family is None or m.family == family)


def get(name: str) -> Method:
  """The :class:`Method` called ``name``; raises ``ValueError`` listing known names."""
  if not isinstance(name, str) or name not in METHODS:
    raise ValueError(f"unknown method {name!r}; known: {list(METHODS)}.")
  return METHODS[name]
