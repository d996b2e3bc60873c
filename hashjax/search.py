"""Command line for the Hamming index: build an index file, answer queries.

Build an index from a codes file, then search it::

  python -m hashjax.search build --codes=/tmp/db_codes.npz --out=/tmp/db.hjx
  python -m hashjax.search --index=/tmp/db.hjx --queries=/tmp/q_codes.npz --k=100 \
      --out=/tmp/knn.npz
  python -m hashjax.search --index=/tmp/db.hjx --queries=/tmp/q_codes.npz --radius=2

(``query`` may be given as the first word instead of nothing.)

Codes file (``codes.npz``; what :mod:`hashjax.encode` writes):
  - ``codes``: int8 ``[n, bits]`` in {-1, +1}, or instead ``packed``: uint32
    ``[n, ceil(bits / 32)]`` (bit j of word w = entry 32 w + j, padding bits 0)
    together with ``bits``;
  - ``bits``: optional int scalar, checked against the codes and the index;
  - ``ids``: optional int64 ``[n]`` (build: item ids; default 0..n-1);
  - ``labels``, ``modality`` and any other keys are ignored here.

Output file (``--out``): ``distances`` int32 ``[nq, k]`` and ``ids`` int64
``[nq, k]`` sorted by (distance, insertion order), plus ``k``; with ``--radius``
the rows are padded with -1 to the largest hit count and ``counts`` int32 ``[nq]``
and ``radius`` are added. Without ``--out`` a summary is printed.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

from hashjax import fileio

__all__ = ["build_main", "load_codes", "main", "query_main"]


def load_codes(path: str) -> tuple[np.ndarray, int, np.ndarray | None]:
  """Reads a codes file; returns ``(codes_or_packed, bits, ids or None)``.

  Raises:
    ValueError: neither ``codes`` nor ``packed``, ``packed`` without ``bits``, or a
      ``bits`` entry that disagrees with ``codes``.
  """
  if not fileio.exists(path):
    raise FileNotFoundError(2, "no codes file at", path)
  if fileio.isdir(path):
    raise IsADirectoryError(21, "a codes .npz file is expected, got a directory", path)
  data = fileio.read_bytes(path)
  if not data.startswith((b"PK", b"\x93NUMPY")):
    raise ValueError(f"{path} is not a codes .npz file (see --help).")
  try:
    return _load_codes(data, path)
  except (zipfile.BadZipFile, EOFError, zlib.error) as e:
    raise ValueError(f"{path} is damaged or not a codes .npz file ({e}).") from None


def _load_codes(data: bytes, path: str
                ) -> tuple[np.ndarray, int, np.ndarray | None]:
  with np.load(io.BytesIO(data), allow_pickle=False) as f:
    keys = set(f.files)
    bits = int(f["bits"]) if "bits" in keys else None
    ids = np.asarray(f["ids"]) if "ids" in keys else None
    if "codes" in keys:
      codes = np.asarray(f["codes"])
      if codes.ndim != 2:
        raise ValueError(f"{path}: 'codes' must be 2-D [n, bits], got {codes.shape}.")
      if bits is not None and bits != codes.shape[1]:
        raise ValueError(
            f"{path}: 'bits' is {bits} but 'codes' has {codes.shape[1]} columns.")
      if codes.dtype == np.uint32:
        codes = codes.astype(np.int32)  # {-1,+1} stored unsigned would be invalid
      return codes, codes.shape[1], ids
    if "packed" in keys:
      if bits is None:
        raise ValueError(f"{path}: 'packed' codes need a 'bits' entry.")
      return np.asarray(f["packed"]).astype(np.uint32, copy=False), bits, ids
  raise ValueError(f"{path}: expected a 'codes' or 'packed' array, found {sorted(keys)}.")


class _Parser(argparse.ArgumentParser):
  """argparse with a one-line error (exit 2) instead of usage + error."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m hashjax.search build",
              description="Build a Hamming index file from codes.")
  p.add_argument("--codes", required=True, help="codes.npz (see module docstring).")
  p.add_argument("--out", required=True, help="index file to write (.hjx).")
  p.add_argument("--bits", type=int, default=None, help="expected bit width.")
  return p


def _query_parser() -> argparse.ArgumentParser:
  p = _Parser(
      prog="python -m hashjax.search",
      description="Answer queries against a Hamming index (the default command, "
      "also `query`). Build the index first: `python -m hashjax.search build "
      "--codes=db_codes.npz --out=db.hjx` (see `build --help`).",
      epilog="Add --traceback (or set HASHJAX_TRACEBACK=1) to see the full traceback "
      "of an error.")
  p.add_argument("--index", required=True, help="index file from `build`.")
  p.add_argument("--queries", required=True, help="queries codes.npz.")
  p.add_argument("--k", type=int, default=100, help="neighbours per query.")
  p.add_argument("--radius", type=int, default=None,
                 help="return every item within this Hamming radius instead of top-k.")
  p.add_argument("--out", default=None, help="write ids/distances to this .npz.")
  p.add_argument("--bits", type=int, default=None, help="expected bit width.")
  p.add_argument("--chunk_size", type=int, default=None,
                 help="database rows per streamed chunk (default: the index's).")
  p.add_argument("--query_chunk_size", type=int, default=1024,
                 help="queries per jitted call (one progress step).")
  p.add_argument("--shard", action="store_true",
                 help="shard the database rows over all devices.")
  p.add_argument("--no_progress", action="store_true", help="hide the progress bar.")
  return p


def build_main(argv: Sequence[str]) -> int:
  """``build`` subcommand: codes.npz -> index file."""
  args = _build_parser().parse_args(argv)
  if args.bits is not None and args.bits < 1:
    raise ValueError(f"--bits must be >= 1, got {args.bits}.")
  _check_out(args.out)
  from hashjax import index as hindex  # pylint: disable=g-import-not-at-top

  _check_in(args.codes)
  codes, bits, ids = load_codes(args.codes)
  if args.bits is not None and args.bits != bits:
    raise ValueError(f"{args.codes} holds {bits}-bit codes, expected {args.bits}.")
  idx = hindex.add(hindex.create(bits), codes, ids)
  hindex.save(idx, args.out)
  print(f"wrote index of {idx.count} items x {bits} bits to {args.out}")
  return 0


def query_main(argv: Sequence[str]) -> int:
  """Query mode: index file + queries.npz -> top-k or radius results."""
  args = _query_parser().parse_args(argv)
  for name in ("k", "bits", "chunk_size", "query_chunk_size"):
    v = getattr(args, name)
    if v is not None and v < 1:
      raise ValueError(f"--{name} must be >= 1, got {v}.")
  if args.radius is not None and args.radius < 0:
    raise ValueError(f"--radius must be >= 0, got {args.radius}.")
  for path in (args.index, args.queries):
    _check_in(path)
  if args.out:
    _check_out(args.out)
  import tqdm  # pylint: disable=g-import-not-at-top

  from hashjax import index as hindex  # pylint: disable=g-import-not-at-top

  idx = hindex.load(args.index, bits=args.bits)
  queries, qbits, _ = load_codes(args.queries)
  if qbits != idx.bits:
    raise ValueError(
        f"{args.queries} holds {qbits}-bit codes but the index has {idx.bits} bits.")
  if args.radius is None and args.k > idx.count:   # before the progress bar starts
    raise ValueError(f"k must be at most the index size {idx.count}, got k={args.k}.")
  if args.shard:
    idx = hindex.shard(idx)
  nq = queries.shape[0]
  chunk_size = args.chunk_size or hindex.DEFAULT_CHUNK_SIZE
  t0 = time.perf_counter()
  if args.radius is not None:
    res = hindex.radius_search(idx, queries, args.radius, chunk_size=chunk_size,
                               query_chunk_size=args.query_chunk_size)
    dist, ids = res.distances, res.ids.astype(np.int64)
    extra = {"counts": res.counts, "radius": np.int64(args.radius)}
  else:
    dist = np.zeros((nq, args.k), np.int32)
    ids = np.zeros((nq, args.k), np.int64)
    batches = hindex.iter_search(idx, queries, args.k, chunk_size=chunk_size,
                                 query_chunk_size=args.query_chunk_size)
    total = hindex.num_query_batches(nq, args.query_chunk_size)
    for start, d, i in tqdm.tqdm(batches, total=total, unit="batch",
                                 disable=args.no_progress, file=sys.stderr):
      dist[start:start + d.shape[0]] = np.asarray(d)
      ids[start:start + d.shape[0]] = np.asarray(i)
    extra = {"k": np.int64(args.k)}
  secs = time.perf_counter() - t0
  if args.out:
    buf = io.BytesIO()
    np.savez(buf, distances=dist, ids=ids, **extra)
    fileio.write_bytes(args.out if args.out.endswith(".npz") else args.out + ".npz",
                       buf.getvalue())
  print(f"{nq} queries against {idx.count} items x {idx.bits} bits in {secs:.2f} s "
        f"({nq / max(secs, 1e-9):.0f} queries/s, compilation included)")
  if args.radius is not None:
    c = extra["counts"]
    print(f"radius {args.radius}: hits per query min {c.min()} mean {c.mean():.1f} "
          f"max {c.max()}")
  else:
    print(f"distance of the nearest: mean {dist[:, 0].mean():.2f}; of the {args.k}-th: "
          f"mean {dist[:, -1].mean():.2f}")
  if args.out:
    print(f"wrote {args.out}")
  else:
    for j in range(min(nq, 3)):
      n = int(extra["counts"][j]) if args.radius is not None else args.k
      print(f"query {j}: ids {ids[j, :min(n, 10)].tolist()} "
            f"distances {dist[j, :min(n, 10)].tolist()}")
  return 0


def _check_in(path: str) -> None:
  if not fileio.exists(path):
    raise FileNotFoundError(2, "No such file", path)
  if fileio.isdir(path):
    raise IsADirectoryError(21, "Is a directory, not a file", path)


def _check_out(path: str) -> None:
  if "://" in path:   # object storage: no folders to check
    return
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise ValueError(f"cannot write {path}: folder {folder} does not exist.")


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point; ``argv`` excludes the program name (default ``sys.argv[1:]``)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv and argv[0] == "build":
    return build_main(argv[1:])
  if argv and argv[0] == "query":
    argv = argv[1:]
  return query_main(argv)


if __name__ == "__main__":
  from hashjax import cli  # pylint: disable=g-import-not-at-top

  cli.run_argparse(main, "hashjax.search")
