import numpy as np
import pytest
import tensorflow as tf

from gflow import testing
from gflow.bijectors import Squeeze
from gflow import examples


def test_contract():
  testing.check_example(examples.squeeze)


def test_glow_channel_order_and_shapes():
  x = tf.reshape(tf.range(16.), [1, 4, 4, 1])
  y = Squeeze().forward(x)
  assert y.shape == (1, 2, 2, 4)
  # channel (c, dy, dx): the top-left 2x2 patch becomes the first pixel's channels
  np.testing.assert_array_equal(y[0, 0, 0], [0., 1., 4., 5.])
  assert Squeeze().forward_event_shape([4, 4, 1]) == [2, 2, 4]
  assert Squeeze().inverse_event_shape([2, 2, 4]) == [4, 4, 1]
  z = Squeeze().forward(tf.zeros([3, 5, 4, 4, 2]))  # two batch dims
  assert z.shape == (3, 5, 2, 2, 8)


def test_bad_shapes():
  with pytest.raises(ValueError, match="divisible by 2.*got event shape"):
    Squeeze().forward(tf.zeros([1, 3, 4, 1]))
  with pytest.raises(ValueError, match="channels divisible by 4"):
    Squeeze().inverse(tf.zeros([1, 2, 2, 3]))
  with pytest.raises(ValueError, match="positive int"):
    Squeeze(0)
