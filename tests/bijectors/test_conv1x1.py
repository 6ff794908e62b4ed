import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from gflow import layers as gl
from gflow import testing
from gflow.bijectors import Conv1x1, Conv1x1LU
from gflow import examples


def test_contract_lu():
  testing.check_example(examples.conv1x1_lu)


def test_contract_plain():
  testing.check_example(examples.conv1x1)


def test_lu_equals_scale_matvec_lu_given_the_same_factors():
  c = 5
  rng = np.random.RandomState(0)
  lu, perm = tf.linalg.lu(tf.constant(rng.randn(c, c), tf.float64))
  lu = lu.numpy()
  diag = np.diag(lu)
  # tf.linalg.lu: L·U = W[perm], so W = P·L·U with P = one_hot(perm)ᵀ.
  p = np.eye(c)[perm.numpy()].T
  ours = Conv1x1LU(p, np.tril(lu, -1), np.triu(lu, 1), np.sign(diag), np.log(np.abs(diag)))
  theirs = tfp.bijectors.ScaleMatvecLU(tf.constant(lu), perm)
  x = tf.constant(rng.randn(2, 3, 4, c), tf.float64)
  np.testing.assert_allclose(ours.forward(x), theirs.forward(x), rtol=1e-10, atol=1e-10)
  np.testing.assert_allclose(ours.inverse(x), theirs.inverse(x), rtol=1e-10, atol=1e-10)
  # ScaleMatvecLU acts on vectors: its log-det per pixel times H·W.
  np.testing.assert_allclose(
      ours.forward_log_det_jacobian(x, event_ndims=3),
      theirs.forward_log_det_jacobian(x[:, 0, 0], event_ndims=1) * 3 * 4, rtol=1e-10)


def test_layer_starts_at_a_rotation_and_plain_agrees():
  for lu in (True, False):
    layer = gl.Conv1x1Layer(lu=lu, seed=1)
    layer.build((None, 4, 4, 6))
    b = layer.bijector()
    w = b.weight().numpy() if lu else layer.kernel.numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-5)
    x = tf.random.normal([2, 4, 4, 6])
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=3), [0., 0.],
                               atol=1e-4)
  lu_layer = gl.Conv1x1Layer(lu=True, seed=2)
  lu_layer.build((None, 2, 2, 4))
  plain = Conv1x1(lu_layer.bijector().weight())
  x = tf.random.normal([3, 2, 2, 4])
  np.testing.assert_allclose(plain.forward(x), lu_layer.bijector().forward(x), atol=1e-5)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_plain_log_det_and_its_gradient_against_slogdet_also_under_xla(jit):
  """log|det W| and its gradient W⁻ᵀ against numpy's float64 slogdet and inverse, for a
  kernel far from a rotation (scales 0.3 … 3, a negative determinant), compiled by XLA
  too: DenseFlow's paper configs train with jit_compile."""
  rng = np.random.default_rng(0)
  q = np.linalg.qr(rng.normal(size=(7, 7)))[0]
  w = tf.Variable((q @ np.diag(np.linspace(0.3, 3.0, 7)) @ q[::-1]).astype(np.float32))
  sign, expected = np.linalg.slogdet(w.numpy().astype(np.float64))

  @tf.function(jit_compile=jit)
  def log_det_and_grad(x):
    with tf.GradientTape() as tape:
      ld = Conv1x1(w).forward_log_det_jacobian(x, event_ndims=3)
      total = tf.reduce_sum(ld)
    return ld, tape.gradient(total, w)
  ld, grad = log_det_and_grad(tf.zeros([2, 3, 4, 7]))
  np.testing.assert_allclose(ld, [12 * expected] * 2, rtol=1e-5)
  inv_t = np.linalg.inv(w.numpy().astype(np.float64)).T
  np.testing.assert_allclose(grad, 2 * 12 * inv_t, rtol=1e-4, atol=1e-4)
  assert sign != 0 and abs(expected) > 0.1  # not a rotation: the check can fail


def test_permutation_is_a_float_constant_not_a_trainable_or_int_variable():
  layer = gl.Conv1x1Layer(lu=True)
  layer.build((None, 2, 2, 4))
  for v in layer.weights:
    assert v.dtype == "float32", v.path
  trainable = {v.path.split("/")[-1] for v in layer.trainable_weights}
  assert trainable == {"lower", "upper", "log_s"}


def test_bad_shapes():
  with pytest.raises(ValueError, match="permutation.*shape \\[3, 3\\]"):
    Conv1x1LU(np.eye(2), np.eye(3), np.eye(3), np.ones(3), np.zeros(3))
  with pytest.raises(ValueError, match="square kernel"):
    Conv1x1(np.ones((2, 3)))
  with pytest.raises(ValueError, match="expects 3 channels"):
    Conv1x1(np.eye(3, dtype=np.float32)).forward(tf.zeros([1, 2, 2, 4]))
