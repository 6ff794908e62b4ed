"""Flow++ variational dequantization: the ε → u contract, q's normalisation, noise, size."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gflow import layers as gl
from gflow import testing
from gflow.noise import Noise
from gflow.layers.variational_dequantization import VariationalDequantization
from gflow.nets.dequantization_nets import (
  DequantizationContextNet,
  DequantizationCouplingNet,
)

SMALL = {"num_levels": 4, "num_steps": 2, "context_channels": 4, "width": 8, "depth": 2,
         "growth": 4}


def _randomize(layer, scale, seed=0):
  """Seeded N(0, scale²) draws for every trainable weight, so no coupling is the identity.

  Unlike `gflow.bijectors.examples.randomize`, the fixed LU permutations and
  signs (non-trainable) are left alone.
  """
  rng = np.random.RandomState(seed)
  for v in layer.trainable_weights:
    v.assign(rng.randn(*v.shape) * scale)
  return layer


def _layer(shape, dtype="float32", scale=0.1, seed=0, **kwargs):
  keras.utils.set_random_seed(seed)  # the 1x1 convolutions' fixed permutations and signs
  layer = VariationalDequantization(**{**SMALL, **kwargs}, dtype=dtype)
  layer.build((None, *shape[1:]))
  return _randomize(layer, scale, seed)


def _levels(shape, num_levels=4, seed=1):
  return tf.constant(np.random.RandomState(seed).randint(0, num_levels, size=shape),
                     tf.float32)


@pytest.mark.parametrize("shape", [(2, 2, 2, 1), (2, 4, 4, 1)])
def test_noise_to_u_bijector_contract(shape):
  layer = _layer(shape, "float64", scale=0.2)
  x = _levels(shape)
  b, h, w, c = shape
  eps = tf.constant(np.random.RandomState(2).randn(b, h // 2, w // 2, 4 * c))
  bijector = layer.bijector(x)
  u, _ = testing.check_bijector(bijector, eps, event_ndims=3, rtol=1e-9, atol=1e-9)
  testing.check_log_det_against_jacobian(bijector, eps, event_ndims=3)
  assert u.shape == shape and np.all((u > 0) & (u < 1))


def test_sample_matches_the_bijector_and_log_prob():
  shape = (3, 4, 4, 3)
  layer = _layer(shape, num_levels=256, context_channels=8, growth=8)
  x = _levels(shape, num_levels=256)
  u, log_q = layer.sample(x, Noise([1, 2]), stream=5)
  assert u.shape == shape and log_q.shape == (3,)
  assert np.all((u.numpy() > 0) & (u.numpy() < 1))
  n = Noise([1, 2]).normal([3, 2, 2, 12], 5)
  eps = layer.loc + tf.exp(layer.log_scale) * n
  np.testing.assert_allclose(u, layer.bijector(x).forward(eps), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(log_q, layer.log_prob(u, x), rtol=1e-4, atol=1e-3)


def test_same_seed_same_u_other_seed_or_stream_other_u():
  shape = (2, 4, 4, 1)
  layer = _layer(shape)
  x = _levels(shape)
  u, log_q = layer.sample(x, Noise([7, 0]))
  u_again, log_q_again = layer.sample(tf.cast(x, tf.int32), Noise([7, 0]))  # int levels too
  np.testing.assert_array_equal(u, u_again)
  np.testing.assert_array_equal(log_q, log_q_again)
  for other in (layer.sample(x, Noise([8, 0]))[0], layer.sample(x, Noise([7, 0]), stream=1)[0]):
    assert np.min(np.abs(u - other)) > 0


def test_q_integrates_to_one_over_the_unit_cube():
  """∫ q(u|x) du over (0, 1)^4 by defensive importance sampling, with its standard error.

  The proposal r = ½·U(0, 1)^4 + ½·q(·|x) (half the points each, drawn with
  `sample`) gives ∫ q du = E_r[q/r] with weights q/r = 2·sigmoid(log q) in
  [0, 2): bounded, so the error bar is trustworthy even where q is peaked
  (plain uniform Monte Carlo, E_U[q], has heavy-tailed weights; E_q[1/q] has
  infinite variance).
  """
  layer = _layer((1, 2, 2, 1), "float64", scale=0.2, seed=3)
  m = 50_000
  x = tf.tile(_levels((1, 2, 2, 1), seed=5), [m, 1, 1, 1])
  uniform = tf.constant(np.random.RandomState(4).uniform(size=(m, 2, 2, 1)))
  _, log_q_at_samples = layer.sample(x, Noise([5, 6]))
  w_uniform = 2. * tf.sigmoid(layer.log_prob(uniform, x)).numpy()
  w_q = 2. * tf.sigmoid(log_q_at_samples).numpy()
  estimate = 0.5 * (w_uniform.mean() + w_q.mean())
  stderr = 0.5 * np.sqrt((w_uniform.var(ddof=1) + w_q.var(ddof=1)) / m)
  print(f"∫ q(u|x) du ≈ {estimate:.4f} ± {stderr:.4f} ({2 * m} points)")
  assert stderr < 0.005  # tight enough to catch a missing or wrong log-det term
  assert abs(estimate - 1.) < 3 * stderr


def test_parameter_count_at_32x32x3_with_defaults():
  layer = VariationalDequantization()
  layer.build((None, 32, 32, 3))
  count = layer.count_params()
  print(f"VariationalDequantization parameters at 32x32x3: {count:,}")
  assert abs(count - 2.4e6) < 0.1 * 2.4e6  # the reference DenseFlow dequantizer: ≈ 2.4 M


def test_config_round_trip():
  shape = (2, 4, 4, 1)
  layer = _layer(shape)
  clone = VariationalDequantization.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  clone.build((None, *shape[1:]))
  clone.set_weights(layer.get_weights())
  x = _levels(shape)
  for a, b in zip(layer.sample(x, Noise([3, 4])), clone.sample(x, Noise([3, 4]))):
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("make,shapes", [
    (lambda: DequantizationContextNet(4, num_levels=4, growth=4), [(2, 4, 4, 3)]),
    (lambda: DequantizationCouplingNet(6, width=8, growth=4), [(2, 2, 2, 3), (2, 2, 2, 5)]),
])
def test_net_config_round_trip(make, shapes):
  net = make()
  net.build(*shapes)
  _randomize(net, 0.3)
  clone = net.__class__.from_config(net.get_config())
  clone.build(*shapes)
  clone.set_weights(net.get_weights())
  inputs = [tf.random.normal(s) for s in shapes]
  np.testing.assert_allclose(clone(*inputs), net(*inputs), rtol=1e-6)


def test_coupling_net_starts_at_zero():
  net = DequantizationCouplingNet(6, width=8, growth=4)
  out = net(tf.random.normal([2, 2, 2, 3]), conditioning=tf.random.normal([2, 2, 2, 5]))
  np.testing.assert_array_equal(out, np.zeros(out.shape))


def test_gradient_reaches_every_trainable_variable():
  shape = (2, 4, 4, 1)
  layer = _layer(shape)
  x = _levels(shape)
  with tf.GradientTape() as tape:
    _, log_q = layer.sample(x, Noise([0, 1]), training=True)
    loss = -tf.reduce_mean(log_q)
  grads = tape.gradient(loss, layer.trainable_variables)
  assert len(grads) == len(layer.trainable_variables) > 0
  for v, g in zip(layer.trainable_variables, grads):
    assert g is not None, f"no gradient reaches {v.path}"
    assert np.all(np.isfinite(g)) and np.any(g != 0), f"zero gradient for {v.path}"


def test_bad_input_and_arguments():
  with pytest.raises(ValueError, match=r"even H and W.*\(None, 3, 4, 1\)"):
    VariationalDequantization(**SMALL).build((None, 3, 4, 1))
  with pytest.raises(ValueError, match=r"even H and W.*\(2, 4, 5, 1\)"):
    VariationalDequantization(**SMALL).sample(tf.zeros([2, 4, 5, 1]), Noise([0, 0]))
  with pytest.raises(ValueError, match=r"positive ints for num_steps \(got 0\)"):
    VariationalDequantization(num_steps=0)
  with pytest.raises(ValueError, match=r"num_levels >= 2; got 1"):
    VariationalDequantization(num_levels=1)
  with pytest.raises(TypeError, match="draws noise"):
    _layer((1, 2, 2, 1))(tf.zeros([1, 2, 2, 1]))


def test_exported():
  assert gl.VariationalDequantization is VariationalDequantization
