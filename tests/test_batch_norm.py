"""gflow.nets.BatchNormalization's virtual batches ("ghost" batch normalisation): each run of
`virtual_batch_size` examples is normalised by its own statistics, exactly as Keras'
BatchNormalization normalises that run alone, and the moving statistics move towards
the runs' mean. (Under several replicas, tests/test_distributed.py: XLA stays on and 2
replicas equal 1.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gflow.nets.batch_norm import BatchNormalization, held_statistics


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 3, 3, 5)).astype(np.float32)
  x[:4] = 3.0 * x[:4] + 2.0  # the two runs have very different statistics
  return tf.constant(x)


def _layers(x, **kwargs):
  """A virtual-batch layer and a plain Keras one with the same (non-trivial) weights."""
  layers = [BatchNormalization(momentum=0.9, **kwargs),
            keras.layers.BatchNormalization(momentum=0.9)]
  rng = np.random.default_rng(1)
  gamma, beta = rng.normal(size=(2, 5)).astype(np.float32)
  for layer in layers:
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
  return layers


def test_each_virtual_batch_is_normalised_as_keras_normalises_it_alone():
  x = _data()
  ghost, plain = _layers(x, virtual_batch_size=4)
  y = ghost(x, training=True).numpy()
  parts, means, variances = [], [], []
  for run in (x[:4], x[4:]):
    _, reference = _layers(x)
    parts.append(reference(run, training=True).numpy())
    means.append(reference.moving_mean.numpy())
    variances.append(reference.moving_variance.numpy())
  np.testing.assert_allclose(y, np.concatenate(parts), atol=1e-5)
  # one update per step, towards the runs' mean statistics (the update is linear)
  np.testing.assert_allclose(ghost.moving_mean.numpy(), np.mean(means, 0), atol=1e-6)
  np.testing.assert_allclose(ghost.moving_variance.numpy(), np.mean(variances, 0), atol=1e-5)
  # negative control: normalising the whole batch is far from it
  whole = plain(x, training=True).numpy()
  assert np.max(np.abs(whole - y)) > 0.5
  # inference uses the moving statistics, as Keras does
  _, reference = _layers(x)
  reference.moving_mean.assign(ghost.moving_mean)
  reference.moving_variance.assign(ghost.moving_variance)
  np.testing.assert_allclose(ghost(x, training=False), reference(x, training=False),
                             atol=1e-6)


def test_a_virtual_batch_of_the_whole_batch_is_keras_batch_norm():
  x = _data()
  ghost, plain = _layers(x, virtual_batch_size=8)
  np.testing.assert_allclose(ghost(x, training=True), plain(x, training=True), atol=1e-5)
  np.testing.assert_allclose(ghost.moving_variance.numpy(), plain.moving_variance.numpy(),
                             atol=1e-6)


def test_held_statistics_and_a_traced_batch_of_unknown_size():
  x = _data()
  ghost, _ = _layers(x, virtual_batch_size=4)
  with held_statistics():
    ghost(x, training=True)
  np.testing.assert_array_equal(ghost.moving_mean.numpy(), np.zeros(5))
  fn = tf.function(lambda t: ghost(t, training=True),
                   input_signature=[tf.TensorSpec([None, 3, 3, 5])])
  np.testing.assert_allclose(fn(x), ghost(x, training=True), atol=1e-6)
  with pytest.raises(tf.errors.InvalidArgumentError, match="virtual batches of 4"):
    fn(x[:6])


def test_bad_virtual_batches_are_refused():
  x = _data()
  ghost, _ = _layers(x, virtual_batch_size=3)
  with pytest.raises(ValueError, match="8 examples does not split into virtual batches of 3"):
    ghost(x, training=True)
  with pytest.raises(ValueError, match="positive"):
    BatchNormalization(virtual_batch_size=-2)
  with pytest.raises(ValueError, match="cannot be synchronized"):
    BatchNormalization(virtual_batch_size=4, synchronized=True)
  config = BatchNormalization(virtual_batch_size=4).get_config()
  assert BatchNormalization.from_config(config).virtual_batch_size == 4
