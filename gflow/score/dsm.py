"""Denoising score matching over noise levels (Vincent 2011; Song & Ermon 2019, 2020)."""

import tensorflow as tf

__all__ = ["dsm_loss"]


def dsm_loss(score_fn, x, sigmas, noise, levels=None):
  """Per-example ½‖σ·s(x̃, i) + z‖² (summed over dimensions) with x̃ = x + σ·z.

  The σ²-weighted denoising objective: s(x̃, i) should be −z/σ, the score of
  the perturbation kernel N(x̃; x, σ²I). `score_fn(x̃, i)` takes perturbed data
  and int32 level indices [N]; `sigmas` is the [L] schedule. The level of each
  example is `levels` ([N] int32) or drawn uniformly from `noise` (a
  `gflow.Noise`, stream 0; z from stream 1). Returns (loss [N], levels [N]).
  An error δ in the score adds ½σ²‖δ‖² plus a term linear in δ whose mean is
  zero at the optimum, so the loss is minimised by the perturbed data's score.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  n = tf.shape(x)[0]
  num_levels = tf.shape(sigmas)[0]
  if levels is None:
    u = noise.uniform([n], stream=0)
    levels = tf.minimum(tf.cast(u * tf.cast(num_levels, tf.float32), tf.int32),
                        num_levels - 1)
  sigma = tf.reshape(tf.gather(tf.cast(sigmas, tf.float32), levels),
                     [-1] + [1] * (x.shape.rank - 1))
  z = noise.normal([n, *x.shape[1:]], stream=1)
  score = tf.cast(score_fn(x + sigma * z, levels), tf.float32)
  residual = sigma * score + z
  return 0.5 * tf.reduce_sum(tf.square(residual), axis=list(range(1, x.shape.rank))), levels
