import math

import numpy as np
import pytest
import tensorflow as tf

from gflow import testing
from gflow.bijectors import UniformDequantization
from gflow import examples


def test_contract():
  testing.check_example(examples.dequantization)


def test_log_det_and_round_trip_through_levels():
  b = UniformDequantization(256)
  x = tf.constant([[0, 17, 255]], tf.uint8)
  v = b.dequantize(x, seed=[1, 2])
  assert np.all((v >= tf.cast(x, tf.float32)) & (v < tf.cast(x, tf.float32) + 1))
  np.testing.assert_array_equal(b.quantize(v), x)
  np.testing.assert_array_equal(b.dequantize(x, seed=[1, 2]), v)  # stateless
  np.testing.assert_allclose(b.forward_log_det_jacobian(v, event_ndims=2),
                             [-3 * math.log(256)], rtol=1e-6)
  assert np.all(np.abs(b.forward(v)) <= 0.5)


def test_bad_arguments():
  with pytest.raises(ValueError, match="num_levels must be an int >= 2"):
    UniformDequantization(1)
  with pytest.raises(TypeError, match="floating-point inputs; got uint8"):
    UniformDequantization().forward(tf.constant([1], tf.uint8))
