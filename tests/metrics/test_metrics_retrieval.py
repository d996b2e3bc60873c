"""hashjax.metrics retrieval metrics against the shared NumPy per-query loop
(tests/retrieval_reference.py) and hand-worked cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from retrieval_reference import multihot as _multihot
from retrieval_reference import retrieval_metrics as reference
from retrieval_reference import stable_topk

from hashjax import metrics


def _random(np_rng, nq, n, bits, c, single, density=0.5):
  q = np.where(np_rng.random((nq, bits)) < density, 1, -1).astype(np.int8)
  d = np.where(np_rng.random((n, bits)) < density, 1, -1).astype(np.int8)
  if single:
    return q, d, np_rng.integers(0, c, nq), np_rng.integers(0, c, n)
  ql = (np_rng.random((nq, c)) < 0.2).astype(np.uint8)
  dl = (np_rng.random((n, c)) < 0.2).astype(np.uint8)
  return q, d, ql, dl


# ----------------------------------------------------------------------------------
# Random data against the reference.
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 64, 100, 128])
@pytest.mark.parametrize("single", [True, False])
def test_evaluate_matches_numpy_loop(np_rng, bits, single):
  c = 6
  q, d, ql, dl = _random(np_rng, 23, 157, bits, c, single,
                         density=0.5 if bits > 8 else 0.8)  # bits=8: heavy ties
  got = metrics.evaluate_retrieval(q, d, ql, dl, top_r=40, ks=(1, 157), radius=2)
  ref = reference(q.astype(float), d.astype(float), _multihot(ql, c), _multihot(dl, c),
                  ks=(40, 1, 157))
  np.testing.assert_allclose(got["map"], ref["ap"], atol=1e-6)
  assert got["map@k_definition"] == "calc_map_k"
  np.testing.assert_allclose(got["map@40"], ref["ap_calc@40"], atol=1e-6)
  np.testing.assert_allclose(got["p@40"], ref["p@40"], atol=1e-6)
  np.testing.assert_allclose(got["ndcg@40"], ref["ndcg@40"], atol=1e-6)
  np.testing.assert_allclose(got["p@1"], ref["p@1"], atol=1e-6)
  np.testing.assert_allclose(got["p@157"], ref["p@157"], atol=1e-6)
  np.testing.assert_allclose(got["p@r2"], ref["rad"], atol=1e-6)
  np.testing.assert_allclose(got["pr_precision"], ref["pr_p"], atol=1e-6)
  np.testing.assert_allclose(got["pr_recall"], ref["pr_r"], atol=1e-6)


def test_single_metric_functions_match_numpy_loop(np_rng):
  c = 5
  q, d, ql, dl = _random(np_rng, 17, 90, 16, c, single=False)
  ref = reference(q.astype(float), d.astype(float), _multihot(ql, c), _multihot(dl, c),
                  ks=(10,), radius=3)
  args = (q, d, ql, dl)
  np.testing.assert_allclose(metrics.mean_average_precision(*args), ref["ap"], atol=1e-6)
  np.testing.assert_allclose(metrics.mean_average_precision(*args, top_k=10),
                             ref["ap_calc@10"], atol=1e-6)
  np.testing.assert_allclose(
      metrics.mean_average_precision(*args, top_k=10, definition="truncated"),
      ref["ap@10"], atol=1e-6)
  np.testing.assert_allclose(metrics.precision_at_k(*args, k=10), ref["p@10"], atol=1e-6)
  np.testing.assert_allclose(metrics.ndcg_at_k(*args, k=10), ref["ndcg@10"], atol=1e-6)
  np.testing.assert_allclose(metrics.precision_within_radius(*args, radius=3), ref["rad"],
                             atol=1e-6)
  p, r = metrics.precision_recall_curve(*args)
  assert p.shape == r.shape == (17,)
  np.testing.assert_allclose(p, ref["pr_p"], atol=1e-6)
  np.testing.assert_allclose(r, ref["pr_r"], atol=1e-6)


def test_tiny_chunks_equal_numpy_loop(np_rng):
  # n = 37 is not a multiple of any chunk; 7 queries in chunks of 3 (padded).
  c = 4
  q, d, ql, dl = _random(np_rng, 7, 37, 8, c, single=True, density=0.7)
  ref = reference(q.astype(float), d.astype(float), _multihot(ql, c), _multihot(dl, c),
                  ks=(5,))
  # block 2 and 1: bit-parallel in-block counts; block 64: the comparison path.
  for opts in (dict(query_chunk=3, block=2, chunk=4), dict(query_chunk=1, block=1, chunk=1),
               dict(query_chunk=4, block=64, chunk=64)):
    got = metrics.evaluate_retrieval(q, d, ql, dl, top_r=5, num_classes=c, **opts)
    np.testing.assert_allclose(got["map"], ref["ap"], atol=1e-6)
    np.testing.assert_allclose(got["map@5"], ref["ap_calc@5"], atol=1e-6)
    np.testing.assert_allclose(got["ndcg@5"], ref["ndcg@5"], atol=1e-6)
    np.testing.assert_allclose(got["pr_precision"], ref["pr_p"], atol=1e-6)


def test_large_database_path_matches_numpy_loop(np_rng):
  # >= 2^15 padded rows: the kernel keeps item and relevant counts in two arrays.
  c = 3
  q, d, ql, dl = _random(np_rng, 3, 33000, 8, c, single=True, density=0.8)
  got = metrics.evaluate_retrieval(q, d, ql, dl, top_r=1000)
  ref = reference(q.astype(float), d.astype(float), _multihot(ql, c), _multihot(dl, c),
                  ks=(1000,))
  for key, ref_key in (("map", "ap"), ("map@1000", "ap_calc@1000"), ("p@1000", "p@1000"),
                       ("ndcg@1000", "ndcg@1000"), ("pr_precision", "pr_p")):
    np.testing.assert_allclose(got[key], ref[ref_key], atol=1e-6, err_msg=key)
  # mean_average_precision keeps pass 1's pairs (no NDCG): the other pass-2 path.
  np.testing.assert_allclose(metrics.mean_average_precision(q, d, ql, dl, top_k=1000),
                             ref["ap_calc@1000"], atol=1e-6)


# ----------------------------------------------------------------------------------
# Hand-worked cases.
# ----------------------------------------------------------------------------------
def test_hand_worked_ties_and_query_without_relevant_items():
  # 2-bit codes. Query 0 = [+1, +1]; distances to the 5 items are [2, 1, 0, 1, 0].
  # Stable order (ties by index): items 2, 4, 1, 3, 0.
  # Query 0 has class 0; item classes [0, 1, 1, 0, 0] -> relevant items {0, 3, 4};
  # in ranked order rel = [0, 1, 0, 1, 1].
  #   AP = (1/2 + 2/4 + 3/5) / 3 = 1.6 / 3 = 0.533333
  #   (an order putting item 4 before item 2 would give (1 + 2/4 + 3/5) / 3 = 0.7)
  #   AP@3 = (1/2) / 1 = 0.5 (normalised by the 1 relevant item in the top 3)
  #   P@3 = 1/3; NDCG@3 = (1/log2 3) / (1 + 1/log2 3 + 1/2) = 0.630930 / 2.130930
  #   radius 0: {2, 4} -> P 1/2, R 1/3; radius 1: {1, 2, 3, 4} -> P 2/4, R 2/3;
  #   radius 2: all -> P 3/5, R 1.
  # Query 1 = [-1, -1] has class 2, which no item has: AP = P = NDCG = 0 and
  # recall 0; it retrieves items at every radius, none relevant: precision 0.
  # Means over the 2 queries halve query 0's numbers.
  q = np.array([[1, 1], [-1, -1]])
  d = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [1, 1]])
  ql, dl = np.array([0, 2]), np.array([0, 1, 1, 0, 0])
  got = metrics.evaluate_retrieval(q, d, ql, dl, top_r=3, radius=2,
                                   map_k_definition="truncated")
  np.testing.assert_allclose(got["map"], 1.6 / 3 / 2, atol=1e-7)
  np.testing.assert_allclose(got["map@3"], 0.5 / 2, atol=1e-7)
  assert got["map@k_definition"] == "truncated"
  np.testing.assert_allclose(got["p@3"], (1 / 3) / 2, atol=1e-7)
  nd = (1 / np.log2(3)) / (1 + 1 / np.log2(3) + 0.5)
  np.testing.assert_allclose(got["ndcg@3"], nd / 2, atol=1e-7)
  np.testing.assert_allclose(got["pr_precision"], [0.5 / 2, 0.5 / 2, 0.6 / 2], atol=1e-7)
  np.testing.assert_allclose(got["pr_recall"], [1 / 6, 2 / 6, 1 / 2], atol=1e-7)
  np.testing.assert_allclose(got["p@r2"], 0.6 / 2, atol=1e-7)


def test_hand_worked_map_at_k_definitions():
  # The first query above: relevant items rank 2, 4 and 5 (R = 3); the second
  # query has no relevant item and scores 0 under both definitions.
  #   calc_map_k (first min(k, R) relevant items, wherever they rank):
  #     k=1: (1/2) / 1 = 0.5;  k=2: (1/2 + 2/4) / 2 = 0.5;  k=4: (1/2 + 2/4 + 3/5) / 3
  #   truncated (relevant items inside the top k):
  #     k=1: none -> 0;  k=2: (1/2) / 1 = 0.5;  k=4: (1/2 + 2/4) / 2 = 0.5
  q = np.array([[1, 1], [-1, -1]])
  d = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [1, 1]])
  ql, dl = np.array([0, 2]), np.array([0, 1, 1, 0, 0])
  for k, calc, trunc in ((1, 0.5, 0.0), (2, 0.5, 0.5), (4, 1.6 / 3, 0.5)):
    got = metrics.mean_average_precision(q, d, ql, dl, top_k=k)
    np.testing.assert_allclose(got, calc / 2, atol=1e-7, err_msg=f"k={k}")
    got = metrics.mean_average_precision(q, d, ql, dl, top_k=k, definition="truncated")
    np.testing.assert_allclose(got, trunc / 2, atol=1e-7, err_msg=f"k={k}")
  with pytest.raises(ValueError, match="definition must be one of"):
    metrics.mean_average_precision(q, d, ql, dl, top_k=2, definition="dcmh")


def test_jittable_cores_match_reference(np_rng):
  # Features -> codes -> metrics in one jitted eval step (multi-hot labels).
  c, bits = 5, 24
  _, _, ql, dl = _random(np_rng, 19, 70, bits, c, single=False)
  fq = np_rng.normal(size=(19, bits)).astype(np.float32)
  fd = np_rng.normal(size=(70, bits)).astype(np.float32)
  fq[:, :3] = 0.0  # sign(0) = +1

  @jax.jit
  def eval_step(fq, fd, ql, dl):
    q = jnp.where(fq >= 0, 1, -1).astype(jnp.int8)
    d = jnp.where(fd >= 0, 1, -1).astype(jnp.int8)
    out = metrics.retrieval_core(q, d, ql, dl, ks=(10, 70), query_chunk=8, block=4,
                                 chunk=16)
    trunc = metrics.retrieval_core(q, d, ql, dl, ks=(10,), map_k_definition="truncated")
    dist, idx = metrics.topk_hamming_core(q, d, 12, chunk_size=32)
    return out, trunc["map@10"], dist, idx

  out, trunc, dist, idx = eval_step(fq, fd, ql, dl)
  q, d = np.where(fq >= 0, 1, -1), np.where(fd >= 0, 1, -1)
  ref = reference(q, d, ql, dl, ks=(10, 70))
  np.testing.assert_allclose(out["map"], ref["ap"], atol=1e-6)
  np.testing.assert_allclose(out["map@10"], ref["ap_calc@10"], atol=1e-6)
  np.testing.assert_allclose(out["map@70"], ref["ap"], atol=1e-6)  # k >= R: AP@all
  np.testing.assert_allclose(out["p@10"], ref["p@10"], atol=1e-6)
  np.testing.assert_allclose(trunc, ref["ap@10"], atol=1e-6)
  ref_d, ref_i = stable_topk(q, d, 12)
  np.testing.assert_array_equal(np.asarray(dist), ref_d)
  np.testing.assert_array_equal(np.asarray(idx), ref_i)


def test_hand_worked_ndcg_graded_relevance():
  # Query labels {0, 1}; items share 2, 1, 0 labels; distances [2, 0, 1], so the
  # ranking is items 1, 2, 0 with gains 2^1-1 = 1, 0, 2^2-1 = 3.
  #   DCG@2 = 1/log2(2) = 1;  IDCG@2 = 3 + 1/log2(3) = 3.630930 -> 0.275411
  #   DCG@3 = 1 + 3/log2(4) = 2.5; IDCG@3 = 3.630930 -> 0.688527
  q = np.array([[1, 1]])
  d = np.array([[-1, -1], [1, 1], [1, -1]])
  ql = np.array([[1, 1, 0]])
  dl = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]])
  idcg = 3 + 1 / np.log2(3)
  np.testing.assert_allclose(metrics.ndcg_at_k(q, d, ql, dl, k=2), 1 / idcg, atol=1e-7)
  np.testing.assert_allclose(metrics.ndcg_at_k(q, d, ql, dl, k=3), 2.5 / idcg, atol=1e-7)


def test_topk_hamming_stable_against_numpy(np_rng):
  for bits, n, k in ((8, 300, 40), (64, 500, 25), (8, 600, 290)):  # 290: counting
    q = np.where(np_rng.random((9, bits)) < 0.5, 1, -1)
    d = np.where(np_rng.random((n, bits)) < 0.5, 1, -1)
    dist, idx = metrics.topk_hamming(q, d, k, chunk_size=64, query_chunk=4)
    ref_d, ref_i = stable_topk(q, d, k)
    np.testing.assert_array_equal(np.asarray(idx), ref_i)
    np.testing.assert_array_equal(np.asarray(dist), ref_d)
  # hand case: distances [2, 1, 0, 1, 0] -> top-3 rows 2, 4, 1.
  dist, idx = metrics.topk_hamming(np.array([[1, 1]]),
                                   np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [1, 1]]), 3)
  np.testing.assert_array_equal(np.asarray(idx), [[2, 4, 1]])
  np.testing.assert_array_equal(np.asarray(dist), [[0, 0, 1]])


# ----------------------------------------------------------------------------------
# Errors.
# ----------------------------------------------------------------------------------
Q = np.array([[1, -1, 1], [-1, -1, 1]])
D = np.array([[1, 1, 1], [-1, 1, -1], [1, -1, -1]])
QL, DL = np.array([0, 1]), np.array([1, 0, 1])


@pytest.mark.parametrize("args, kw, match", [
    ((Q.astype(float) * np.array([1, np.nan, 1]), D, QL, DL), {}, "only -1 and \\+1"),
    ((np.where(Q > 0, 1, 0), D, QL, DL), {}, "only -1 and \\+1"),
    ((Q[0], D, QL, DL), {}, "2-D"),
    ((Q, D[:, :2], QL, DL), {}, "same code length"),
    ((Q, D, QL[:1], DL), {}, "rows"),
    ((Q, D, QL, DL[:2]), {}, "rows"),
    ((Q, D, np.eye(2), np.eye(3)), {}, "classes"),
    ((Q, D, QL, np.array([1, 0, 5])), {"num_classes": 3}, "out of range"),
    ((Q, D, np.array([0, -1]), DL), {}, ">= 0"),
    ((Q, D, np.array([[0.5, 1], [1, 0]]), np.eye(3)[:, :2]), {}, "multi-hot"),
    ((Q, D, QL, DL), {"top_k": 4}, "larger than the database"),
    ((Q, D, QL, DL), {"top_k": 0}, "positive"),
    ((Q, D, QL, DL), {"query_chunk": 0}, "positive"),
])
def test_map_errors(args, kw, match):
  with pytest.raises(ValueError, match=match):
    metrics.mean_average_precision(*args, **kw)


def test_other_errors():
  args = (Q, D, QL, DL)
  with pytest.raises(ValueError, match="positive"):
    metrics.precision_at_k(*args, k=-1)
  with pytest.raises(ValueError, match="larger than the database"):
    metrics.ndcg_at_k(*args, k=4)
  with pytest.raises(ValueError, match="radius"):
    metrics.precision_within_radius(*args, radius=-1)
  with pytest.raises(ValueError, match="larger than the database"):
    metrics.evaluate_retrieval(*args, top_r=10)
  with pytest.raises(ValueError, match="larger than the database"):
    metrics.topk_hamming(Q, D, 4)
  with pytest.raises(ValueError, match="positive"):
    metrics.topk_hamming(Q, D, 0)
  with pytest.raises(ValueError, match="only -1 and \\+1"):
    metrics.topk_hamming(Q * 2, D, 1)
