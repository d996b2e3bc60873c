"""The two rank passes of hashjax.metrics._ranking ("scan" and "blocks") at their
edges, each against the shared NumPy per-query loop (tests/retrieval_reference.py)
or a hand-worked case: databases that are not a multiple of the block or the
chunk, heavy ties, queries without relevant items, 8 to 128 bits, multi-label
relevance, full chunks of one distance (the 12-bit in-chunk counts), and database
rows sharded over the 8 forced CPU devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from retrieval_reference import multihot, per_query

from hashjax import metrics
from hashjax.metrics import _ranking

METHODS = ("scan", "blocks")
KS = (1, 7, 100)


def _codes(np_rng, n, bits, distinct=None, density=0.5):
  """``[n, bits]`` int8 codes in {-1, +1}; with ``distinct``, rows drawn from that
  many distinct codes (heavy ties)."""
  if distinct is None:
    return np.where(np_rng.random((n, bits)) < density, 1, -1).astype(np.int8)
  pool = np.where(np_rng.random((distinct, bits)) < 0.5, 1, -1).astype(np.int8)
  return pool[np_rng.integers(0, distinct, n)]


def _labels(np_rng, n, c, p=0.25):
  return (np_rng.random((n, c)) < p).astype(np.uint8)


def _check(got, ref, ks=KS, ndcg=True):
  """``evaluate_retrieval`` output against the per-query reference's means."""
  mean = {key: np.mean(v, axis=0) for key, v in ref.items()}
  np.testing.assert_allclose(got["map"], mean["ap"], atol=1e-6, err_msg="map")
  for k in ks:
    np.testing.assert_allclose(got[f"p@{k}"], mean[f"p@{k}"], atol=1e-6,
                               err_msg=f"p@{k}")
  np.testing.assert_allclose(got["pr_precision"], mean["pr_p"], atol=1e-6)
  np.testing.assert_allclose(got["pr_recall"], mean["pr_r"], atol=1e-6)
  if ndcg:
    r = ks[-1]
    np.testing.assert_allclose(got[f"map@{r}"], mean[f"ap_calc@{r}"], atol=1e-6)
    np.testing.assert_allclose(got[f"ndcg@{r}"], mean[f"ndcg@{r}"], atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bits", [8, 16, 64, 128])
def test_ragged_database_and_bits(np_rng, method, bits):
  # n = 1001: not a multiple of the block (32) nor of the chunk (256); 13 queries
  # in chunks of 8 (the last padded). 128 bits: nothing kept (b > 126).
  c = 5
  q, d = _codes(np_rng, 13, bits), _codes(np_rng, 1001, bits)
  ql, dl = _labels(np_rng, 13, c), _labels(np_rng, 1001, c)
  ql[3] = 0  # a query sharing no label with anything: AP = P@k = NDCG = 0
  opts = {"query_chunk": 8, "chunk": 256, "rank_method": method}
  ref = per_query(q, d, ql, dl, ks=KS)
  assert ref["ap"][3] == 0.0 and ref["ap"].max() > 0
  got = metrics.evaluate_retrieval(q, d, ql, dl, top_r=100, ks=KS[:-1], **opts)
  _check(got, ref)
  # No NDCG: the pass that reads pass 1's kept values (b <= 126).
  for k, key in ((None, "ap"), (7, "ap_calc@7")):
    np.testing.assert_allclose(
        metrics.mean_average_precision(q, d, ql, dl, top_k=k, **opts),
        np.mean(ref[key]), atol=1e-6, err_msg=str(k))
  np.testing.assert_allclose(
      metrics.mean_average_precision(q, d, ql, dl, top_k=7, definition="truncated",
                                     **opts), np.mean(ref["ap@7"]), atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("distinct", [1, 2, 3])
def test_heavy_ties_multilabel(np_rng, method, distinct):
  # Every database row is one of 1-3 codes: long runs of equal distance, ordered
  # by index across blocks and chunks; queries include copies of those codes.
  c, bits = 4, 16
  d = _codes(np_rng, 700, bits, distinct=distinct)
  q = np.concatenate([d[:3], _codes(np_rng, 6, bits)])
  ql, dl = _labels(np_rng, 9, c, 0.4), _labels(np_rng, 700, c, 0.4)
  ref = per_query(q, d, ql, dl, ks=KS)
  for opts in ({"block": 32, "chunk": 128}, {"block": 4, "chunk": 64},
               {"block": 64, "chunk": 128}, {"block": 1, "chunk": 8}):
    got = metrics.evaluate_retrieval(q, d, ql, dl, top_r=100, ks=KS[:-1],
                                     rank_method=method, query_chunk=4, **opts)
    _check(got, ref)
    np.testing.assert_allclose(
        metrics.mean_average_precision(q, d, ql, dl, rank_method=method, **opts),
        np.mean(ref["ap"]), atol=1e-6, err_msg=str(opts))


@pytest.mark.parametrize("method", METHODS)
def test_whole_chunks_at_one_distance(np_rng, method):
  # All 9000 rows equal: inside a 4096-row chunk the last item has 4095 earlier
  # items at its distance, the largest in-chunk count a kept word holds (12 bits).
  bits, c = 16, 3
  d = np.repeat(_codes(np_rng, 1, bits), 9000, axis=0)
  q = np.concatenate([d[:1], -d[:1], _codes(np_rng, 1, bits)])
  ql, dl = _labels(np_rng, 3, c, 0.5), _labels(np_rng, 9000, c, 0.3)
  ql[0] = [1, 0, 0]
  ref = per_query(q, d, ql, dl, ks=(4096, 5000))
  got = metrics.mean_average_precision(q, d, ql, dl, rank_method=method, chunk=4096)
  np.testing.assert_allclose(got, np.mean(ref["ap"]), atol=1e-6)
  for k in (4096, 5000):
    got = metrics.mean_average_precision(q, d, ql, dl, top_k=k, rank_method=method,
                                         chunk=4096)
    np.testing.assert_allclose(got, np.mean(ref[f"ap_calc@{k}"]), atol=1e-6)
    got = metrics.precision_at_k(q, d, ql, dl, k, rank_method=method, chunk=4096)
    np.testing.assert_allclose(got, np.mean(ref[f"p@{k}"]), atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("block", [1, 2, 32])
def test_hand_worked_ties(method, block):
  # 2-bit codes, query [+1, +1]: distances [2, 1, 0, 1, 0] -> stable order
  # 2, 4, 1, 3, 0; relevant items {0, 3, 4} rank 5, 4, 2:
  # AP = (1/2 + 2/4 + 3/5) / 3. Query 2 has no relevant item: AP 0.
  # chunk = block: every block is a chunk of its own (block 1: 5 chunks).
  q = np.array([[1, 1], [-1, -1]])
  d = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [1, 1]])
  ql, dl = np.array([0, 2]), np.array([0, 1, 1, 0, 0])
  got = metrics.mean_average_precision(q, d, ql, dl, rank_method=method, block=block,
                                       chunk=block)
  np.testing.assert_allclose(got, 1.6 / 3 / 2, atol=1e-7)
  got = metrics.precision_at_k(q, d, ql, dl, 3, rank_method=method, block=block,
                               chunk=block)
  np.testing.assert_allclose(got, (1 / 3) / 2, atol=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_jittable_core_with_sharded_database_rows(np_rng, method):
  # retrieval_core under jit on database rows laid over the 8 forced devices
  # (XLA partitions the passes); 8 * 100 rows, blocks of 32 straddle shards.
  assert jax.device_count() == 8
  c, bits = 4, 24
  q, d = _codes(np_rng, 11, bits), _codes(np_rng, 800, bits, distinct=40)
  ql, dl = _labels(np_rng, 11, c), _labels(np_rng, 800, c)
  mesh = Mesh(np.array(jax.devices()), ("data",))  # automatic (GSPMD) axes
  rows = NamedSharding(mesh, P("data", None))
  d_sh, dl_sh = jax.device_put(d, rows), jax.device_put(dl, rows)
  core = jax.jit(lambda *a: metrics.retrieval_core(*a, ks=(7,), query_chunk=4,
                                                   chunk=256, rank_method=method))
  got = core(jnp.asarray(q), d_sh, jnp.asarray(ql), dl_sh)
  ref = per_query(q, d, ql, dl, ks=(7,))
  np.testing.assert_allclose(got["map"], np.mean(ref["ap"]), atol=1e-6)
  np.testing.assert_allclose(got["map@7"], np.mean(ref["ap_calc@7"]), atol=1e-6)
  np.testing.assert_allclose(got["p@7"], np.mean(ref["p@7"]), atol=1e-6)
  # The host-level function takes the sharded rows too (gathered to the host).
  np.testing.assert_allclose(
      metrics.mean_average_precision(q, d_sh, multihot(ql, c), dl_sh,
                                     rank_method=method), np.mean(ref["ap"]), atol=1e-6)


def test_default_method_and_errors():
  assert _ranking.default_method("cpu") == "scan"
  assert _ranking.default_method("gpu") == "blocks"
  assert _ranking.default_method("tpu") == "blocks"
  assert not _ranking.can_keep(127, 4096, 32, "scan")
  assert not _ranking.can_keep(64, 8192, 32, "blocks")  # in-chunk counts > 12 bits
  assert _ranking.can_keep(64, 8192, 32, "scan")
  q = np.array([[1, -1], [-1, 1]])
  with pytest.raises(ValueError, match="rank_method must be one of"):
    metrics.mean_average_precision(q, q, np.array([0, 1]), np.array([0, 1]),
                                   rank_method="sort")


@pytest.mark.parametrize("method", METHODS)
def test_each_statistic_alone_equals_the_reference(np_rng, method):
  # The public metrics ask the rank pass for their statistic only (the others are
  # not accumulated); each must still equal the NumPy loop, on ties and multi-label.
  bits, c = 16, 4
  q, d = _codes(np_rng, 11, bits), _codes(np_rng, 700, bits, distinct=40)
  ql, dl = _labels(np_rng, 11, c), _labels(np_rng, 700, c)
  opts = {"query_chunk": 4, "chunk": 128, "rank_method": method}
  ref = per_query(q, d, ql, dl, ks=(9,))
  pairs = [(metrics.mean_average_precision(q, d, ql, dl, **opts), "ap"),
           (metrics.mean_average_precision(q, d, ql, dl, top_k=9, **opts), "ap_calc@9"),
           (metrics.mean_average_precision(q, d, ql, dl, top_k=9, definition="truncated",
                                           **opts), "ap@9"),
           (metrics.precision_at_k(q, d, ql, dl, 9, **opts), "p@9"),
           (metrics.ndcg_at_k(q, d, ql, dl, 9, **opts), "ndcg@9")]
  for got, key in pairs:
    np.testing.assert_allclose(got, np.mean(ref[key]), atol=1e-6, err_msg=key)
  # ranked_stats returns exactly what is asked for.
  prep = metrics.retrieval._Prepared(q, d, ql, dl, **opts)  # pylint: disable=protected-access
  _, m, qp, qlp = next(iter(prep.query_batches()))
  n = jnp.int32(prep.n)
  ta, tr, tg, per_chunk, _ = _ranking.histograms(
      qp, prep.dp, qlp, prep.dl, n, bits=bits, chunk=prep.chunk, gains=True,
      block=prep.block, method=method)
  kw = dict(bits=bits, chunk=prep.chunk, block=prep.block, ndcg=True, method=method)
  kvec = jnp.asarray([9], jnp.int32)
  full = _ranking.ranked_stats(qp, prep.dp, qlp, prep.dl, n, ta, tr, tg, per_chunk, kvec,
                               **kw)
  assert set(full) == set(_ranking.STATS)
  for key in _ranking.STATS:
    one = _ranking.ranked_stats(qp, prep.dp, qlp, prep.dl, n, ta, tr, tg, per_chunk,
                                kvec, stats=(key,), **kw)
    assert set(one) == {key}
    np.testing.assert_array_equal(np.asarray(one[key])[:m], np.asarray(full[key])[:m])
  for bad in (("map",), ("ndcg_k",)):
    with pytest.raises(ValueError, match="stats must be among"):
      _ranking.ranked_stats(qp, prep.dp, qlp, prep.dl, n, ta, tr, tg, per_chunk, kvec,
                            stats=bad, **dict(kw, ndcg=bad != ("ndcg_k",)))
