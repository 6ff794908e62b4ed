"""Negative controls: `gflow.testing` must reject broken bijectors and layers.

Each broken variant differs from a correct one in one place; the correct one
passes the same checks, so each check is shown able both to pass and to fail.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from gflow import layers as gl
from gflow import testing

X = tf.constant(np.random.RandomState(0).randn(3, 2, 2, 2), tf.float32)


class Scale2(tfp.bijectors.Bijector):
  """y = 2x: the correct reference (inverse y/2, log-det D·log 2), with knobs to break it."""

  def __init__(self, inverse_factor=2.0, log_det_factor=2.0, batch_log_det=True,
               explicit_ildj=None):
    self._inv = inverse_factor
    self._ld = log_det_factor
    self._batch_ld = batch_log_det
    self._ildj = explicit_ildj
    super().__init__(forward_min_event_ndims=3, name="Scale2")

  def _forward(self, x):
    return 2.0 * x

  def _inverse(self, y):
    return y / self._inv

  def _forward_log_det_jacobian(self, x):
    per_example = tf.math.log(self._ld) * tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    if self._batch_ld:
      return tf.fill(tf.shape(x)[:1], per_example)
    return per_example  # a scalar: the wrong shape for a batch

  def _inverse_log_det_jacobian(self, y):
    if self._ildj is None:
      return -self._forward_log_det_jacobian(y / self._inv)
    return tf.fill(tf.shape(y)[:1], tf.constant(self._ildj, y.dtype))


def test_the_correct_bijector_passes():
  testing.check_bijector(Scale2(), X, event_ndims=3)


def test_a_wrong_inverse_is_rejected():
  with pytest.raises(AssertionError, match=r"inverse\(forward\(x\)\) != x"):
    testing.check_bijector(Scale2(inverse_factor=3.0), X, event_ndims=3)


def test_a_wrong_log_det_is_rejected_by_the_jacobian():
  with pytest.raises(AssertionError, match=r"fldj != log\|det batch_jacobian\|"):
    testing.check_bijector(Scale2(log_det_factor=3.0), X, event_ndims=3)


def test_a_log_det_of_the_wrong_shape_is_rejected():
  with pytest.raises(AssertionError, match=r"log-det shape \(\) != batch shape \(3,\)"):
    testing.check_bijector(Scale2(batch_log_det=False), X, event_ndims=3)


def test_an_inconsistent_inverse_log_det_is_rejected():
  with pytest.raises(AssertionError, match=r"fldj\(x\) != -ildj\(forward\(x\)\)"):
    testing.check_bijector(Scale2(explicit_ildj=-1.0), X, event_ndims=3)


class _ScaleLayer(gl.FlowLayer):
  """A layer building Scale2, with a one-pass path that can be made to disagree."""

  def __init__(self, one_pass_log_det=2.0, **kwargs):
    super().__init__(**kwargs)
    self.one_pass_log_det = one_pass_log_det

  def build(self, input_shape):
    pass

  def bijector(self, conditioning=None):
    return Scale2()

  def forward_and_log_det(self, x, event_ndims, training=False, conditioning=None):
    b = Scale2(log_det_factor=self.one_pass_log_det)
    return 2.0 * x, b.forward_log_det_jacobian(x, event_ndims=event_ndims)


def test_a_layer_whose_one_pass_path_agrees_passes():
  testing.check_flow_layer(_ScaleLayer(), X, event_ndims=3)


def test_a_layer_whose_one_pass_log_det_disagrees_is_rejected():
  with pytest.raises(AssertionError, match="forward_and_log_det .* log-det != bijector"):
    testing.check_flow_layer(_ScaleLayer(one_pass_log_det=3.0), X, event_ndims=3)


class _WrongInverseLayer(_ScaleLayer):
  """Its bijector is right; its own inverse (the sampling path) is not."""

  def inverse(self, y, conditioning=None):
    return y / 3.0


def test_a_layer_whose_inverse_disagrees_is_rejected():
  with pytest.raises(AssertionError, match="inverse .* of the forward != x"):
    testing.check_flow_layer(_WrongInverseLayer(), X, event_ndims=3)
