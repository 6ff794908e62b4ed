import numpy as np
import pytest
import tensorflow as tf

from gflow import nets
from gflow import examples


@pytest.mark.parametrize("make,shape", [
    (lambda: nets.GlowCNN(6, width=8), (2, 4, 4, 3)),
    (lambda: nets.ZeroConv2D(4), (2, 4, 4, 3)),
    (lambda: nets.MLP(4, width=8, depth=2), (5, 3)),
])
def test_config_round_trip_gives_the_same_output(make, shape):
  net = make()
  net.build(shape)
  examples.randomize(net)
  clone = net.__class__.from_config(net.get_config())
  clone.build(shape)
  clone.set_weights(net.get_weights())
  x = tf.random.normal(shape)
  np.testing.assert_allclose(clone(x), net(x), rtol=1e-6)


@pytest.mark.parametrize("make,shape", [
    (lambda: nets.GlowCNN(6, width=8), (2, 4, 4, 3)),
    (lambda: nets.MLP(4), (5, 3)),
])
def test_last_layer_starts_at_zero(make, shape):
  net = make()
  out = net(tf.random.normal(shape))
  np.testing.assert_array_equal(out, np.zeros(out.shape))


def test_bad_arguments():
  with pytest.raises(ValueError, match="positive out_channels"):
    nets.GlowCNN(0)
  with pytest.raises(ValueError, match="depth >= 0"):
    nets.MLP(2, depth=-1)


@pytest.mark.parametrize("make,shape,cond_shape", [
    (lambda: nets.GlowCNN(6, width=8, conditioning_channels=2), (2, 4, 4, 3), (2, 4, 4, 2)),
    (lambda: nets.MLP(4, width=8, conditioning_dim=3), (5, 3), (5, 3)),
])
def test_conditioning_input_reaches_the_network(make, shape, cond_shape):
  net = make()
  net.build(shape)
  examples.randomize(net)
  x = tf.random.normal(shape)
  c1, c2 = tf.random.normal(cond_shape, seed=1), tf.random.normal(cond_shape, seed=2)
  assert not np.allclose(net(x, conditioning=c1), net(x, conditioning=c2))
  clone = net.__class__.from_config(net.get_config())
  clone.build(shape)
  clone.set_weights(net.get_weights())
  np.testing.assert_allclose(clone(x, conditioning=c1), net(x, conditioning=c1), rtol=1e-6)
  with pytest.raises(ValueError, match="conditioning input of .* none was given"):
    net(x)
  with pytest.raises(ValueError, match="expects .* conditioning features"):
    net(x, conditioning=c1[..., :1])
  plain = nets.MLP(4)
  with pytest.raises(ValueError, match="takes no conditioning input"):
    plain(tf.zeros([2, 3]), conditioning=tf.zeros([2, 1]))
