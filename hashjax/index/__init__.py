"""Exact Hamming-distance retrieval index over bit-packed hash codes.

A :class:`HammingIndex` is a pytree holding the database codes packed into uint32
words (bit ``j`` of word ``w`` is code entry ``32 w + j``, as
:func:`hashjax.metrics.pack_codes`), one id per item and the static bit width::

  index = hashjax.index.create(64)
  index = hashjax.index.add(index, db_codes)          # {-1,+1} [n, 64] or packed
  index = hashjax.index.shard(index)                  # optional: rows over devices
  dist, ids = hashjax.index.search(index, queries, k=100)

Results are exact and deterministic: the ``k`` nearest items by Hamming distance,
ties broken by insertion order (the item added first comes first), the same
sharded or not and whatever the chunk and group sizes. The database is streamed in
chunks of ``chunk_size`` rows (``lax.scan``); for k <= 256 keeping a running top-k
of groups of ``group_size`` consecutive rows ranked by their minimum distance (the
rows of the k best groups are then re-scored exactly), for larger k by a counting
select (a distance histogram per query gives the k-th distance; a second pass keeps
the rows below it and the first ones at it); see :mod:`hashjax.topk`. The full
``[nq, n]`` distance matrix is never built; queries are processed on the host in
batches of ``query_chunk_size``.

Sharding: :func:`shard` lays the rows over the ``"data"`` axis of a mesh
(``NamedSharding(mesh, P("data", None))``, padded to a multiple of the axis size);
each device streams its own rows and the per-device top-k lists are merged after an
``all_gather`` of ``[nq, k]`` results only.

File format (:func:`save` / :func:`load`, little-endian, one file)::

  offset  size  field
  0       8     magic b"HJXINDEX"
  8       4     format version (uint32, currently 1)
  12      4     bits (uint32)
  16      4     words per item = ceil(bits / 32) (uint32)
  20      4     reserved, 0 (uint32)
  24      8     count, number of items (uint64)
  32      8     payload size in bytes = count * (4 * words + 8) (uint64)
  40      32    SHA-256 of the payload
  72      4     CRC-32 of bytes 0..71 (uint32)
  76      ...   payload: packed codes uint32 [count, words], then ids int64 [count]

Ids are int64 on disk; in memory they are int32 unless ``jax_enable_x64`` is set
(ids that do not fit raise ``ValueError``).
"""

from hashjax.index.core import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_GROUP_SIZE,
    DEFAULT_QUERY_CHUNK_SIZE,
    MAX_REFINE_CANDIDATES,
    HammingIndex,
    RadiusResult,
    add,
    create,
    default_group_size,
    default_method,
    iter_search,
    num_query_batches,
    pack_host,
    radius_search,
    search,
    shard,
)
from hashjax.index.io import FORMAT_VERSION, MAGIC, load, save
from hashjax.topk import DATA_AXIS

__all__ = [
    "DATA_AXIS",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_GROUP_SIZE",
    "DEFAULT_QUERY_CHUNK_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_REFINE_CANDIDATES",
    "HammingIndex",
    "RadiusResult",
    "add",
    "create",
    "default_group_size",
    "default_method",
    "iter_search",
    "load",
    "num_query_batches",
    "pack_host",
    "radius_search",
    "save",
    "search",
    "shard",
]
