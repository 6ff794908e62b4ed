"""Keras owner of an invertible 1x1 convolution's variables (LU or plain)."""

import keras
import numpy as np
import tensorflow as tf

from gflow.bijectors.conv1x1 import Conv1x1, Conv1x1LU
from gflow.layers.base import FlowLayer

__all__ = ["Conv1x1Layer"]


def _constant(value):
  value = np.asarray(value, np.float32)
  return lambda shape, dtype=None: tf.constant(value, dtype=dtype or tf.float32)


class Conv1x1Layer(FlowLayer):
  """Invertible 1x1 convolution initialised at a random rotation.

  With `lu=True` (Glow's default) the weight is P·L·(U + diag(sign·exp(log_s)))
  with P and sign fixed (non-trainable float variables: checkpointed, and on the
  accelerator like everything else); with `lu=False` it is a dense kernel.
  """

  def __init__(self, lu=True, seed=None, **kwargs):
    super().__init__(**kwargs)
    self.lu = lu
    self.seed = seed

  def build(self, input_shape):
    c = input_shape[-1]
    if c is None:
      raise ValueError(f"Conv1x1Layer needs a known channel count; got {input_shape}.")
    w = keras.ops.convert_to_numpy(
        keras.initializers.Orthogonal(seed=self.seed)((c, c)))
    if not self.lu:
      self.kernel = self.add_weight(name="kernel", shape=(c, c), initializer=_constant(w))
      return
    lu, perm = tf.linalg.lu(w)
    lu, perm = lu.numpy(), perm.numpy()
    # tf.linalg.lu gives L·U = w[perm], so w = P·L·U with P = one_hot(perm)ᵀ.
    p = np.eye(c, dtype=np.float32)[perm].T
    diag = np.diag(lu)
    fixed = dict(trainable=False)
    self.permutation = self.add_weight(name="permutation", shape=(c, c),
                                       initializer=_constant(p), **fixed)
    self.sign = self.add_weight(name="sign", shape=(c,),
                                initializer=_constant(np.sign(diag)), **fixed)
    self.lower = self.add_weight(name="lower", shape=(c, c),
                                 initializer=_constant(np.tril(lu, -1)))
    self.upper = self.add_weight(name="upper", shape=(c, c),
                                 initializer=_constant(np.triu(lu, 1)))
    self.log_s = self.add_weight(name="log_s", shape=(c,),
                                 initializer=_constant(np.log(np.abs(diag))))

  def bijector(self, conditioning=None):
    t = tf.convert_to_tensor
    if not self.lu:
      return Conv1x1(t(self.kernel), name=self.name)
    return Conv1x1LU(t(self.permutation), t(self.lower), t(self.upper),
                     t(self.sign), t(self.log_s), name=self.name)

  def get_config(self):
    return {**super().get_config(), "lu": self.lu, "seed": self.seed}
