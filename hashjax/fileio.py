"""Run-directory files through ``etils.epath``: local paths and object storage alike.

Every file hashjax writes into a workdir (``config.json``, ``metrics.jsonl``,
``results.json``, ``model.npz``, index files, ``tokenizer/``) goes through these
helpers, so ``--workdir=gs://bucket/run`` works wherever ``epath`` has a backend
(``gs://`` / ``s3://`` through fsspec, or TensorFlow's gfile when installed). Orbax
checkpoints take the same paths natively.

Object stores have no append and no atomic rename: :func:`write_bytes` writes a
temporary object and moves it over the target (atomic on a local disk, a
copy-then-delete on a bucket), and appending files are rewritten whole.
"""

from __future__ import annotations

import json
import os
from typing import Any

from etils import epath

__all__ = [
    "exists",
    "isdir",
    "join",
    "makedirs",
    "path",
    "read_bytes",
    "read_json",
    "read_text",
    "write_bytes",
    "write_config",
    "write_json",
    "write_text",
]

PathLike = str | os.PathLike


def path(p: PathLike) -> epath.Path:
  """``epath.Path`` of a local path or a URI (``gs://...``)."""
  return epath.Path(p)


def join(p: PathLike, *parts: str) -> str:
  """``p / parts`` as a string (keeps a ``scheme://`` prefix)."""
  return os.fspath(path(p).joinpath(*parts))


def exists(p: PathLike) -> bool:
  return path(p).exists()


def isdir(p: PathLike) -> bool:
  return path(p).is_dir()


def makedirs(p: PathLike) -> None:
  path(p).mkdir(parents=True, exist_ok=True)


def read_bytes(p: PathLike) -> bytes:
  return path(p).read_bytes()


def read_text(p: PathLike) -> str:
  return path(p).read_text()


def read_json(p: PathLike) -> Any:
  return json.loads(read_text(p))


def write_bytes(p: PathLike, data: bytes) -> None:
  """Writes ``data`` to ``p`` through a temporary file moved over the target."""
  target = path(p)
  tmp = target.parent / f"{target.name}.tmp"
  tmp.write_bytes(data)
  tmp.replace(target)


def write_text(p: PathLike, text: str) -> None:
  write_bytes(p, text.encode())


def write_json(p: PathLike, obj: Any) -> None:
  write_text(p, json.dumps(obj, indent=2) + "\n")


def write_config(config: Any, workdir: PathLike) -> None:
  """Writes ``workdir/config.json`` (a ConfigDict's best-effort JSON)."""
  makedirs(workdir)
  text = (config.to_json_best_effort(indent=2) if hasattr(config, "to_json_best_effort")
          else json.dumps(dict(config), indent=2, default=str))
  write_text(join(workdir, "config.json"), text)
