import numpy as np
import pytest
import tensorflow as tf

from gflow import layers as gl
from gflow import nets
from gflow import testing
from gflow.bijectors import AdditiveCoupling, AffineCoupling
from gflow import examples


@pytest.mark.parametrize("factory", [
    examples.PLUGIN.bijectors["affine_coupling_sigmoid"],
    examples.PLUGIN.bijectors["affine_coupling_exp_tanh"],
    examples.PLUGIN.bijectors["affine_coupling_exp"],
    examples.affine_vector,
    examples.additive,
])
def test_contract(factory):
  testing.check_example(factory)


def test_zero_initialised_network_makes_additive_and_exp_couplings_the_identity():
  for kind, scale in [("additive", "exp"), ("affine", "exp"), ("affine", "exp_tanh")]:
    layer = gl.CouplingLayer(lambda n: nets.GlowCNN(n, width=8), kind=kind, scale_fn=scale)
    layer.build((None, 4, 4, 6))
    x = tf.random.normal([2, 4, 4, 6])
    np.testing.assert_allclose(layer.bijector().forward(x), x, atol=1e-6)


def test_glow_scale_is_sigmoid_of_h_plus_2():
  layer = gl.CouplingLayer(lambda n: nets.GlowCNN(n, width=8), scale_fn="sigmoid")
  layer.build((None, 2, 2, 4))
  x = tf.random.normal([1, 2, 2, 4])
  y = layer.bijector().forward(x)
  s = 1 / (1 + np.exp(-2.))
  np.testing.assert_allclose(y[..., 2:], x[..., 2:] * s, rtol=1e-5)
  np.testing.assert_allclose(
      layer.bijector().forward_log_det_jacobian(x, event_ndims=3), [8 * np.log(s)], rtol=1e-5)


def test_odd_channels_split_first_half_larger():
  net = nets.GlowCNN(2, width=4)  # C = 3: x1 has 2 channels, x2 has 1
  b = AffineCoupling(net)
  assert b.forward(tf.zeros([1, 2, 2, 3])).shape == (1, 2, 2, 3)


def test_mixed_precision_network_keeps_float32_log_det():
  net = nets.GlowCNN(4, width=8, dtype="mixed_bfloat16")
  net.build((None, 4, 4, 2))
  examples.randomize(net)
  b = AffineCoupling(net)
  x = tf.random.normal([2, 4, 4, 4])
  assert b.forward(x).dtype == tf.float32
  assert b.forward_log_det_jacobian(x, event_ndims=3).dtype == tf.float32
  testing.check_bijector(b, x, 3, rtol=1e-2, atol=1e-2)


def test_bad_arguments():
  net = nets.GlowCNN(4, width=4)
  with pytest.raises(ValueError, match="Unknown scale function 'tanh'.*choose one of"):
    AffineCoupling(net, scale_fn="tanh")
  with pytest.raises(ValueError, match="event_ndims must be 1.*or 3"):
    AffineCoupling(net, event_ndims=2)
  with pytest.raises(ValueError, match="must output 2 channels; got shape"):
    AffineCoupling(net).forward(tf.zeros([1, 2, 2, 2]))
  with pytest.raises(ValueError, match="size >= 2"):
    AdditiveCoupling(net).forward(tf.zeros([1, 2, 2, 1]))
  with pytest.raises(TypeError, match="floating-point inputs; got int32"):
    AffineCoupling(net).forward(tf.zeros([1, 2, 2, 4], tf.int32))
  with pytest.raises(ValueError, match="Unknown coupling kind"):
    gl.CouplingLayer(lambda n: net, kind="spline")
