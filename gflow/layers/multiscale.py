"""Multi-scale split for flows whose inner part may change the width: squeeze, split, flatten."""

import math

import tensorflow as tf

from gflow.bijectors.squeeze import Squeeze
from gflow.layers.base import is_initialized
from gflow.layers.stochastic import (StochasticFlowLayer, forward_and_bound, generate,
                                     initialize_with_noise)

__all__ = ["MultiScale"]


def _flatten(t):
  return tf.reshape(t, [tf.shape(t)[0], math.prod(t.shape[1:])])


class MultiScale(StochasticFlowLayer):
  """x ↦ [flat(inner(z₁)), flat(z₂)] with [z₁, z₂] = squeeze(x) split in half (Dinh et al. 2017).

  Inverse: unflatten, z₁ = inner⁻¹(·), x = unsqueeze([z₁, z₂]).  log w = log w_inner.

  The factored half z₂ goes to the latent unchanged, so the base N(0, I)
  scores it (DenseFlow's squeeze-and-drop; RealNVP's factoring out). The
  latent is a flat vector: the inner flow may add dimensions (cross-unit
  coupling), so the scales cannot share an image shape. Every coordinate is
  kept, hence forward then `generate` is the identity given the same noise,
  and a temperature scales the factored half too.
  """

  def __init__(self, inner, **kwargs):
    super().__init__(**kwargs)
    self.inner = inner

  def _halves(self, input_shape):
    *batch, h, w, c = input_shape
    if h is None or w is None or h % 2 or w % 2:
      raise ValueError(f"MultiScale needs even height and width; got {input_shape}.")
    kept = (*batch, h // 2, w // 2, 2 * c)
    return kept, (h // 2) * (w // 2) * 2 * c

  def build(self, input_shape):
    kept, _ = self._halves(input_shape)
    self.inner.build(kept)
    self._inner_shape = tuple(self.inner.compute_output_shape(kept))[1:]

  def compute_output_shape(self, input_shape):
    kept, dropped = self._halves(input_shape)
    inner = self.inner.compute_output_shape(kept)
    return (input_shape[0], math.prod(inner[1:]) + dropped)

  def split(self, x):
    """(z₁, z₂): x squeezed and cut in half along the channels (log-det 0)."""
    y = Squeeze(2).forward(x)
    return tf.split(y, 2, axis=-1)

  def merge(self, z1, z2):
    """The latent [flat(z₁), flat(z₂)] from the inner flow's output z₁ and the factored z₂."""
    return tf.concat([_flatten(z1), _flatten(z2)], axis=-1)

  def forward_and_bound(self, x, noise, training=False):
    z1, z2 = self.split(x)
    z1, log_w = forward_and_bound(self.inner, z1, noise, training)
    return self.merge(z1, z2), log_w

  def generate(self, z, noise, temperature=1.0):
    n_inner = math.prod(self._inner_shape)
    z1, z2 = tf.split(z, [n_inner, z.shape[-1] - n_inner], axis=-1)
    z1 = generate(self.inner, tf.reshape(z1, [-1, *self._inner_shape]), noise, temperature)
    z2 = tf.reshape(z2, [-1, *z1.shape[1:]])
    return Squeeze(2).inverse(tf.concat([z1, z2], axis=-1))

  def initialize(self, x, noise):
    z1, z2 = self.split(x)
    return self.merge(initialize_with_noise(self.inner, z1, noise), z2)

  def is_initialized(self):
    return is_initialized(self.inner)
