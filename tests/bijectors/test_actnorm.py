import numpy as np
import pytest
import tensorflow as tf

from gflow import layers as gl
from gflow import testing
from gflow.bijectors import ActNorm, actnorm_init_from_data
from gflow import examples


def test_contract():
  testing.check_example(examples.actnorm)


def test_log_det_is_hw_sum_log_scale():
  log_scale = tf.constant([0.1, -0.3, 0.5])
  b = ActNorm(tf.zeros(3), log_scale)
  x = tf.random.normal([2, 4, 5, 3])
  ldj = b.forward_log_det_jacobian(x, event_ndims=3)
  np.testing.assert_allclose(ldj, [20 * 0.3] * 2, rtol=1e-6)


def test_init_from_data_gives_zero_mean_unit_variance():
  x = tf.random.normal([64, 4, 4, 3]) * [1., 5., 0.2] + [3., -2., 0.]
  layer = gl.ActNormLayer()
  layer.build(x.shape)
  assert not layer.is_initialized()
  y = layer.initialize(x).numpy()
  assert layer.is_initialized()
  np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0., atol=1e-4)
  np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1., atol=1e-3)
  np.testing.assert_allclose(layer.bijector().forward(x), y, atol=1e-5)


def test_bad_parameters_and_inputs():
  with pytest.raises(ValueError, match="shift.*log_scale.*of one shape"):
    ActNorm(tf.zeros(3), tf.zeros(4))
  with pytest.raises(ValueError, match="expects 3 channels.*got shape"):
    ActNorm(tf.zeros(3), tf.zeros(3)).forward(tf.zeros([2, 4, 4, 5]))
  shift, log_scale = actnorm_init_from_data(tf.ones([8, 2]) * [1., 2.])
  assert np.all(np.isfinite(log_scale))  # constant channels do not divide by zero
