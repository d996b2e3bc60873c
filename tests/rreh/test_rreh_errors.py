"""Bad inputs to rreh.fit / rreh.encode / the semi-paired split raise ValueError.

fit validates before any computation, so none of these cases compiles the solver.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hashjax import data as hdata
from hashjax import rreh


def _views(n_p=10, n_u=(5, 6), dims=(4, 3)):
  rs = np.random.default_rng(0)
  paired = [rs.normal(size=(n_p, d)).astype(np.float32) for d in dims]
  unpaired = [rs.normal(size=(n, d)).astype(np.float32) for n, d in zip(n_u, dims)]
  return paired, unpaired


@pytest.mark.parametrize("cfg,match", [
    (dict(bits=0), "bits must be positive"),
    (dict(bits=-3), "bits must be positive"),
    (dict(bits=2.5), "bits must be a positive integer"),
    (dict(num_anchors=0), "num_anchors must be positive"),
    (dict(iterations=0), "iterations must be positive"),
    (dict(theta=0.0), "theta must be > 0"),
    (dict(lam=-1.0), "lam must be > 0"),
    (dict(beta=-0.1), "beta must be >= 0"),
    (dict(beta=float("nan")), "beta must be >= 0 and finite"),
    (dict(kernel="yes"), "kernel must be a bool"),
    (dict(reconstruct_against="all"), "reconstruct_against must be one of"),
    (dict(delta2=0.0), "delta2 must be > 0"),
    (dict(delta2=(1.0, 2.0, 3.0)), "delta2 must have one value per modality"),
    (dict(paired_ratio=0.1), "unknown RREH config key"),
    (dict(orthogonal_v=True, bits=10), "orthogonal_v needs bits < n_p"),
])
def test_fit_bad_config(cfg, match):
  paired, unpaired = _views()
  with pytest.raises(ValueError, match=match):
    rreh.fit(paired, unpaired, cfg, jax.random.key(0))


def test_fit_bad_views():
  paired, unpaired = _views()
  key = jax.random.key(0)
  bad = [p.copy() for p in paired]
  bad[1][2, 1] = np.nan
  with pytest.raises(ValueError, match=r"paired_views\[1\] contains 1 NaN"):
    rreh.fit(bad, unpaired, {}, key)
  badu = [u.copy() for u in unpaired]
  badu[0][0, 0] = np.inf
  with pytest.raises(ValueError, match=r"unpaired_views\[0\] contains 1 NaN or inf"):
    rreh.fit(paired, badu, {}, key)
  with pytest.raises(ValueError, match="row counts differ"):
    rreh.fit([paired[0], paired[1][:7]], unpaired, {}, key)
  with pytest.raises(ValueError, match="at least 2 modalities"):
    rreh.fit(paired[:1], unpaired[:1], {}, key)
  with pytest.raises(ValueError, match=r"one array per modality \(2\), got 3"):
    rreh.fit(paired, unpaired + [unpaired[0]], {}, key)
  with pytest.raises(ValueError, match="must be a list of M arrays"):
    rreh.fit(np.stack([paired[0], paired[0]]), unpaired, {}, key)
  with pytest.raises(ValueError, match="has 5 columns but paired_views"):
    rreh.fit(paired, [unpaired[0], np.zeros((3, 5), np.float32)], {}, key)
  with pytest.raises(ValueError, match="empty"):              # no paired items
    rreh.fit([p[:0] for p in paired], unpaired, {}, key)
  with pytest.raises(ValueError, match=r"must be 2-D"):
    rreh.fit(paired, [unpaired[0], np.zeros(3, np.float32)], {}, key)
  with pytest.raises(ValueError, match="chunk_rows must be positive"):
    rreh.fit(paired, unpaired, {}, key, chunk_rows=0)
  with pytest.raises(ValueError, match=r"unpaired_views\[1\] must hold real numbers"):
    rreh.fit(paired, [unpaired[0], unpaired[1].astype(str)], {}, key)
  with pytest.raises(ValueError, match="mesh needs a 'data' axis"):
    rreh.fit(paired, unpaired, {}, key,
             mesh=jax.make_mesh((1,), ("x",), devices=jax.devices()[:1]))


def _fake_model():
  # A hand-built 2-modality model (dims 4 and 3, k = 5, 2 bits): no fit needed.
  return rreh.RREHModel(
      shift=jnp.zeros((2, 4)), scale=jnp.ones((2,)), anchors=jnp.zeros((2, 5, 4)),
      delta2=jnp.ones((2,)), mean=jnp.zeros((2, 5)),
      W=jnp.ones((2, 5, 2)), dims=jnp.asarray([4, 3], jnp.int32),
      anchor_index=jnp.arange(5, dtype=jnp.int32), kernel=jnp.asarray(True),
      objective=jnp.zeros((1,)))


def test_encode_errors():
  model = _fake_model()
  x = np.zeros((6, 3), np.float32)
  with pytest.raises(ValueError, match="must have 4 columns"):
    rreh.encode(model, x, 0)                     # modality 0 is 4-d
  with pytest.raises(ValueError, match=r"modality must be in \[0, 2\)"):
    rreh.encode(model, x, 2)
  with pytest.raises(ValueError, match=r"modality must be in \[0, 2\)"):
    rreh.encode(model, x, -1)
  with pytest.raises(ValueError, match="modality must be an int"):
    rreh.encode(model, x, 1.0)
  bad = x.copy()
  bad[0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    rreh.encode(model, bad, 1)
  with pytest.raises(ValueError, match="empty"):
    rreh.encode(model, x[:0], 1)
  with pytest.raises(ValueError, match="chunk_rows must be positive"):
    rreh.encode(model, x, 1, chunk_rows=-2)
  # A valid call: phi = exp(0) - 0 = 1, W = 1 -> every bit +1.
  np.testing.assert_array_equal(np.asarray(rreh.encode(model, x, 1)), np.ones((6, 2)))


@pytest.mark.parametrize("ratio,match", [
    (0.0, r"paired_ratio must be in \(0, 1\]"),
    (1.5, r"paired_ratio must be in \(0, 1\]"),
    (float("nan"), r"paired_ratio must be in \(0, 1\]"),
    ("0.1", "paired_ratio must be a number"),
])
def test_semi_paired_split_bad_ratio(ratio, match):
  with pytest.raises(ValueError, match=match):
    hdata.semi_paired_split(100, ratio, 2, "disjoint", 0)


def test_semi_paired_split_bad_mode_and_modalities():
  with pytest.raises(ValueError, match="mode must be one of"):
    hdata.semi_paired_split(100, 0.1, 2, "random", 0)
  with pytest.raises(ValueError, match="num_modalities must be >= 2"):
    hdata.semi_paired_split(100, 0.1, 1, "disjoint", 0)
