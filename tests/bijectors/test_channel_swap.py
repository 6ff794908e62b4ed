import numpy as np
import pytest
import tensorflow as tf

from gflow import testing
from gflow.bijectors import ChannelSwap
from gflow import examples


def test_contract():
  testing.check_example(examples.channel_swap)


@pytest.mark.parametrize("c", [2, 5, 6])
def test_swaps_the_coupling_halves(c):
  x = tf.reshape(tf.range(c, dtype=tf.float32), [1, 1, 1, c])
  y = ChannelSwap().forward(x)
  first = c - c // 2  # the half a coupling keeps fixed
  np.testing.assert_array_equal(y[0, 0, 0], np.r_[np.arange(first, c), np.arange(first)])
  np.testing.assert_array_equal(ChannelSwap().inverse(y), x)


def test_one_channel_is_an_error():
  with pytest.raises(ValueError, match="channel count >= 2"):
    ChannelSwap().forward(tf.zeros([1, 2, 2, 1]))
