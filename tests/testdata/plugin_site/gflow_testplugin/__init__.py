"""A third-party plugin as a user would write it: a bijector and a model.

Found by gflow only through the `gflow.plugins` entry point in this folder's
dist-info (put the folder on sys.path / PYTHONPATH).
"""

import functools

import tensorflow as tf
import tensorflow_probability as tfp

import gflow
from gflow import layers as gl
from gflow import nets


class SoftSignedShift(tfp.bijectors.Bijector):
  """y = x + a·tanh(x) with 0 ≤ a < 1 (strictly increasing).

  Inverse by Newton's method.  log|det J| = Σ log(1 + a·(1 − tanh²x)).
  """

  def __init__(self, a=0.5, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "SoftSignedShift") as name:
      self._a = a
      super().__init__(forward_min_event_ndims=0, parameters=parameters, name=name)

  def _forward(self, x):
    return x + self._a * tf.tanh(x)

  def _inverse(self, y):
    x = y / (1 + self._a)
    for _ in range(30):
      x = x - (x + self._a * tf.tanh(x) - y) / (1 + self._a * (1 - tf.tanh(x) ** 2))
    return x

  def _forward_log_det_jacobian(self, x):
    return tf.math.log1p(self._a * (1 - tf.tanh(x) ** 2))


class SoftSignedShiftLayer(gl.FlowLayer):
  def build(self, input_shape):
    pass

  def bijector(self):
    return SoftSignedShift(0.5)


def _example(dtype):
  x = tf.random.stateless_normal([3, 2, 2, 2], seed=[1, 2], dtype=dtype) * 2
  return gflow.BijectorExample(SoftSignedShift(0.5), x, 3)


def build_model(model_config, event_shape):
  net = functools.partial(nets.GlowCNN, width=model_config.width)
  layer = gl.SequentialFlow([
      gl.SqueezeLayer(), gl.ActNormLayer(), gl.CouplingLayer(net, kind="additive"),
      gl.Conv1x1Layer(), gl.CouplingLayer(net), SoftSignedShiftLayer(),
      gl.SqueezeLayer(unsqueeze=True)])
  return gflow.Flow(layer, event_shape, num_levels=256, name="TestFlow")


PLUGIN = gflow.Plugin(
    name="testflow",
    build_model=build_model,
    bijectors={"soft_signed_shift": _example},
    description="test-only plugin (tests/testdata/plugin_site)",
)
