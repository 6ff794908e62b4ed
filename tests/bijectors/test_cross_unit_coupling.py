import math

import numpy as np
import pytest
import tensorflow as tf

from gflow import layers as gl
from gflow import nets
from gflow import testing
from gflow.bijectors import CrossUnitCoupling
from gflow import examples
from gflow.noise import Noise


@pytest.mark.parametrize("factory", [examples.cross_unit_coupling,
                                     examples.cross_unit_coupling_white])
def test_contract(factory):
  testing.check_example(factory)


def test_noise_map_and_log_det():
  """y₂ = μ + σ e with log σ = 2 tanh(raw/2) bounded in (−2, 2); log|det| = Σ log σ."""
  ex = examples.cross_unit_coupling(tf.float32)
  b = ex.bijector
  mu, log_sigma = b.params()
  assert float(tf.reduce_max(tf.abs(log_sigma))) < 2.
  y = b.forward(ex.x)
  np.testing.assert_allclose(y[..., :3], ex.x[..., :3])
  np.testing.assert_allclose(y[..., 3:], mu + tf.exp(log_sigma) * ex.x[..., 3:], rtol=1e-5)
  np.testing.assert_allclose(b.forward_log_det_jacobian(ex.x, event_ndims=3),
                             tf.reduce_sum(log_sigma, [1, 2, 3]), rtol=1e-5)


def test_starts_as_white_noise():
  net = nets.CrossUnitNet(2)
  net.build((None, 4, 4, 3))
  b = CrossUnitCoupling(2, network=net, context=tf.random.normal([1, 4, 4, 3]))
  x = tf.random.normal([1, 4, 4, 5])
  np.testing.assert_allclose(b.forward(x), x)


def test_bad_arguments():
  with pytest.raises(ValueError, match="positive int"):
    CrossUnitCoupling(0)
  with pytest.raises(ValueError, match="needs its context"):
    CrossUnitCoupling(2, network=nets.CrossUnitNet(2))
  with pytest.raises(ValueError, match="more than 2 known channels"):
    CrossUnitCoupling(2).forward(tf.zeros([1, 2, 2, 2]))


def _block(context="all", augment=True, preconditioned=True, growth=2):
  def unit():
    return gl.SequentialFlow([gl.ActNormLayer(), gl.Conv1x1Layer(lu=True)])
  block = gl.CrossUnitBlock([unit() for _ in range(3)], growth, augment=augment,
                            preconditioned=preconditioned, context=context)
  block.build((None, 4, 4, 3))
  for net in block.noise_nets:
    examples.randomize(net, scale=0.3)
  return block


@pytest.mark.parametrize("context,widths", [("all", [3, 3 + 3]), ("last", [3, 3])])
def test_block_noise_networks_see_the_earlier_representations(context, widths):
  """g_i reads [z₀ … z_{i−1}] (dense) or z_{i−1}: z₀ is the block input (3 channels),
  z₁ the first unit's output (3), so g₂ reads 6 channels densely, 3 otherwise."""
  block = _block(context)
  assert [n.hidden.kernel.shape[2] for n in block.noise_nets] == widths
  assert block.compute_output_shape((None, 4, 4, 3)) == (None, 4, 4, 7)


def test_block_generate_drops_exactly_the_added_channels(monkeypatch):
  block = _block()
  x = tf.random.normal([2, 4, 4, 3])
  z, _ = block.forward_and_bound(x, Noise([1, 2]))
  assert z.shape == (2, 4, 4, 7)
  for net in block.noise_nets:  # the generative direction never evaluates g
    monkeypatch.setattr(net, "call", lambda *a, **k: pytest.fail("g was evaluated"))
  np.testing.assert_allclose(block.generate(z, Noise([5, 5])), x, atol=1e-5)
  # With no flow units in between, the inverse is exactly a channel slice.
  ident = gl.CrossUnitBlock([gl.ChannelSwapLayer(), gl.ChannelSwapLayer()], 2)
  ident.build((None, 4, 4, 3))
  y = tf.random.normal([2, 4, 4, 5])
  swap = gl.ChannelSwapLayer().bijector()
  np.testing.assert_array_equal(ident.generate(y, Noise([0, 0])),
                                swap.inverse(swap.inverse(y)[..., :3]))


def test_block_bound_terms():
  """log w = Σ_i (Σ log σ_i − log N(e_i)) + Σ log|det| of the units, from the noise drawn."""
  block = _block(preconditioned=False)
  x = tf.random.normal([2, 4, 4, 3])
  noise = Noise([3, 4])
  z, log_w = block.forward_and_bound(x, noise)
  expected = 0.
  for i in (1, 2):  # white noise: y₂ = e
    e = noise.normal([2, 4, 4, 2], stream=i)
    expected += tf.reduce_sum(0.5 * e ** 2 + 0.5 * math.log(2 * math.pi), [1, 2, 3])
  # Replay the units on the same noise to get their log-dets.
  units_ldj, h = 0., x
  for i, unit in enumerate(block.units):
    if i:
      h = tf.concat([h, noise.normal([2, 4, 4, 2], stream=i)], -1)
    h, ldj = unit.forward_and_log_det(h, 3)
    units_ldj += ldj
  np.testing.assert_allclose(z, h, atol=1e-5)
  np.testing.assert_allclose(log_w, expected + units_ldj, rtol=1e-5)


def test_block_ablation_without_augmentation_keeps_the_width():
  block = _block(augment=False)
  assert block.noise_nets == []
  z, _ = block.forward_and_bound(tf.random.normal([2, 4, 4, 3]), Noise([0, 0]))
  assert z.shape == (2, 4, 4, 3)
