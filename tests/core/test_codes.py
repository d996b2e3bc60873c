"""hashjax.codes: binarize, packing and Hamming distances against NumPy; the modality check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hashjax import codes


def test_binarize_sign_zero_is_plus_one():
  z = jnp.asarray([-2.0, -0.0, 0.0, 1e-30, 3.0])
  np.testing.assert_array_equal(codes.binarize(z), [-1, 1, 1, 1, 1])
  assert codes.binarize(z).dtype == jnp.float32
  out = jax.jit(lambda x: codes.binarize(x, jnp.int8))(z)
  assert out.dtype == jnp.int8
  np.testing.assert_array_equal(out, [-1, 1, 1, 1, 1])


@pytest.mark.parametrize("bits", [1, 31, 32, 33, 64, 100])
def test_pack_and_hamming_against_numpy(np_rng, bits):
  a = np_rng.choice(np.array([-1, 1], np.int8), size=(7, bits))
  b = np_rng.choice(np.array([-1, 1], np.int8), size=(11, bits))
  pa, pb = codes.pack_codes(a), codes.pack_codes(b)
  assert pa.shape == (7, codes.num_words(bits)) and pa.dtype == jnp.uint32
  np.testing.assert_array_equal(codes.pack_host(a), np.asarray(pa))
  # Bit j of word w is entry 32 w + j (NumPy loop over entries).
  want = np.zeros((7, codes.num_words(bits)), np.uint64)
  for e in range(bits):
    want[:, e // 32] += (a[:, e] > 0).astype(np.uint64) << np.uint64(e % 32)
  np.testing.assert_array_equal(np.asarray(pa), want.astype(np.uint32))
  ref = np.count_nonzero(a[:, None, :] != b[None, :, :], axis=-1)
  np.testing.assert_array_equal(codes.hamming_distance(pa, pb), ref)
  np.testing.assert_array_equal(codes.column_distance(pa, pb.T), ref)


def test_modality_index():
  assert codes.modality_index(1, 2) == 1
  assert codes.modality_index(np.int64(0), 3) == 0
  assert codes.modality_index("text", 2, ("image", "text")) == 1
  assert codes.modality_index("1", 2, ("image", "text")) == 1
  with pytest.raises(ValueError, match=r"modality must be in \[0, 2\)"):
    codes.modality_index(2, 2)
  with pytest.raises(ValueError, match=r"modality must be in \[0, 2\)"):
    codes.modality_index(-1, 2)
  with pytest.raises(ValueError, match="modality must be an int"):
    codes.modality_index(True, 2)
  with pytest.raises(ValueError, match="modality must be an int"):
    codes.modality_index("1", 2)  # strings only where names are given
  with pytest.raises(ValueError, match="unknown modality 'audio'"):
    codes.modality_index("audio", 2, ("image", "text"))
