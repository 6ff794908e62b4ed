"""The Flow distribution: a normalised density, sampling, bits/dim and clear errors."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from gflow import Flow
from gflow import layers as gl
from gflow import nets
from gflow import examples


class _Vector2D(gl.FlowLayer):
  """A 2-D flow of ActNorm, LU mixing and affine coupling (vectors, event_ndims=1)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.body = gl.SequentialFlow([
        gl.ActNormLayer(), gl.Conv1x1Layer(seed=0),
        gl.CouplingLayer(lambda n: nets.MLP(n, width=16), scale_fn="exp_tanh", event_ndims=1),
        gl.Conv1x1Layer(seed=1),
        gl.CouplingLayer(lambda n: nets.MLP(n, width=16), scale_fn="sigmoid", event_ndims=1),
    ])

  def build(self, input_shape):
    self.body.build(input_shape)

  def bijector(self):
    return self.body.bijector()

  def initialize(self, x):
    return self.body.initialize(x)


def _two_d_flow():
  layer = _Vector2D()
  flow = Flow(layer, [2], num_levels=None)
  flow.initialize(tf.random.normal([256, 2]) * [1.5, 0.5] + [0.3, -0.2])
  examples.randomize(layer.body.flow_layers[2], scale=0.4, seed=1)
  examples.randomize(layer.body.flow_layers[4], scale=0.4, seed=2)
  return flow


def test_two_dimensional_density_integrates_to_one():
  flow = _two_d_flow()
  lim, n = 15.0, 1001
  g = np.linspace(-lim, lim, n)
  xx, yy = np.meshgrid(g, g)
  pts = tf.constant(np.stack([xx.ravel(), yy.ravel()], -1), tf.float32)
  density = np.exp(flow.log_prob(pts).numpy())
  total = density.sum() * (g[1] - g[0]) ** 2
  assert abs(total - 1.0) < 1e-3, total
  # The check can fail: a missing log-det term is caught.
  wrong = np.exp(tfp.distributions.Normal(0., 1.).log_prob(flow.bijector.forward(pts))
                 .numpy().sum(-1))
  assert abs(wrong.sum() * (g[1] - g[0]) ** 2 - 1.0) > 1e-2


def test_log_prob_matches_transformed_distribution():
  flow = _two_d_flow()
  x = tf.random.normal([7, 2])
  td = tfp.distributions.TransformedDistribution(
      tfp.distributions.MultivariateNormalDiag(tf.zeros(2)), tfp.bijectors.Invert(flow.bijector))
  np.testing.assert_allclose(flow.log_prob(x), td.log_prob(x), rtol=1e-5, atol=1e-5)


def _image_flow():
  from gflow_glow import build_glow
  return Flow(build_glow(levels=2, steps=2, width=8), (8, 8, 1))


def test_sample_shapes_seed_and_temperature():
  flow = _image_flow()
  rng = np.random.RandomState(0)
  for v in flow.variables:  # move the zero-initialised layers off zero
    if "zero_conv2d" in v.path:
      v.assign(rng.randn(*v.shape).astype(np.float32) * 0.05)
  a = flow.sample(3, seed=1)
  assert a.shape == (3, 8, 8, 1) and a.dtype == tf.float32
  np.testing.assert_array_equal(a, flow.sample(3, seed=1))
  cold = flow.sample(3, seed=1, temperature=0.5)
  assert np.std(cold) < np.std(a)
  z = flow.bijector.forward(cold)
  np.testing.assert_allclose(np.std(z), 0.5, rtol=0.2)
  images = flow.quantize(a)
  assert images.dtype == tf.uint8


def test_bits_per_dim_includes_the_8_bit_term():
  flow = _image_flow()
  x = tf.constant(np.random.RandomState(0).randint(0, 256, (4, 8, 8, 1)), tf.uint8)
  bpd = flow.bits_per_dim(x, seed=[0, 1]).numpy()
  v = flow.dequantize(x, seed=[0, 1])
  expected = -flow.log_prob(v).numpy() / (64 * math.log(2))
  np.testing.assert_allclose(bpd, expected, rtol=1e-6)
  # Near the identity the latent is v/256 − ½ ~ U(−½, ½): 8 bits for the levels
  # plus (½·log 2π + 1/24) / log 2 ≈ 1.39 bits for the Gaussian; Glow's initial
  # coupling scale sigmoid(2) < 1 adds a little.
  assert 9.3 < bpd.mean() < 10.0


def test_clear_errors_for_bad_values():
  flow = _image_flow()
  with pytest.raises(TypeError, match="floating-point values; got uint8.*bits_per_dim"):
    flow.log_prob(tf.zeros([1, 8, 8, 1], tf.uint8))
  with pytest.raises(ValueError, match=r"shape \[\.\.\., 8, 8, 1\]; got \(1, 8, 8, 3\)"):
    flow.log_prob(tf.zeros([1, 8, 8, 3]))
  with pytest.raises(ValueError, match="fully known event shape"):
    Flow(gl.ActNormLayer(), [None, 2])


def test_training_path_equals_the_tfp_bijector_path():
  """Flow.log_prob's one-pass forward_and_log_det agrees with TFP's composition."""
  flow = _image_flow()
  rng = np.random.RandomState(1)
  for v in flow.trainable_variables:
    v.assign(v.numpy() + rng.randn(*v.shape).astype(np.float32) * 0.05)
  x = tf.constant(rng.uniform(0, 256, (3, 8, 8, 1)), tf.float32)
  b = flow.bijector
  z = b.forward(x)
  expected = (tf.reduce_sum(tfp.distributions.Normal(0., 1.).log_prob(z), [1, 2, 3])
              + b.forward_log_det_jacobian(x, event_ndims=3))
  np.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-5)
  z_fast, _ = flow.layer.forward_and_log_det(x / 256 - 0.5, 3)
  np.testing.assert_allclose(z_fast, z, rtol=1e-5, atol=1e-5)
