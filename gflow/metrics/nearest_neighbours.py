"""Nearest training neighbours of samples: the memorisation check (NCSNv2's reviewers).

A model that copies its training set produces samples whose nearest training
image is much closer than a held-out test image's nearest training image; one
that generalises produces samples about as far from the training set as unseen
data. `nearest_neighbours` finds the k nearest training images of each sample
by Euclidean distance in a feature space (pixels in [0, 1] by default, or any
`features` function, e.g. a classifier's penultimate layer), and
`neighbour_grid` lays each sample beside them for a PNG grid.
"""

import numpy as np
import tensorflow as tf

__all__ = ["nearest_neighbours", "neighbour_grid", "pixels"]


def pixels(images, num_levels=256):
  """Flattened pixels in [0, 1] (the default feature space)."""
  x = tf.cast(images, tf.float32) / (num_levels - 1)
  return tf.reshape(x, [tf.shape(x)[0], -1])


def nearest_neighbours(queries, train, k=1, features=pixels, chunk=2048):
  """(indices [Q, k], distances [Q, k]) of each query's k nearest `train` items in
  `features` space, exact (‖a‖² + ‖b‖² − 2a·b over `chunk` training items at a time,
  distances recomputed directly for the winners)."""
  q = tf.cast(features(queries), tf.float32)
  best_d, best_i = None, None
  for start in range(0, len(train), chunk):
    t = tf.cast(features(train[start:start + chunk]), tf.float32)
    d2 = (tf.reduce_sum(tf.square(q), 1, keepdims=True) + tf.reduce_sum(tf.square(t), 1)[None]
          - 2 * tf.matmul(q, t, transpose_b=True))
    kk = min(k, d2.shape[1])
    neg, idx = tf.math.top_k(-d2, kk)
    idx = idx + start
    if best_d is None:
      best_d, best_i = -neg, idx
    else:
      both_d, both_i = tf.concat([best_d, -neg], 1), tf.concat([best_i, idx], 1)
      neg, order = tf.math.top_k(-both_d, min(k, both_d.shape[1]))
      best_d, best_i = -neg, tf.gather(both_i, order, batch_dims=1)
  idx = best_i.numpy()
  flat_t = np.asarray(features(np.asarray(train)[idx.ravel()]), np.float64)
  flat_q = np.repeat(np.asarray(q, np.float64), idx.shape[1], axis=0)
  exact = np.sqrt(((flat_q - flat_t) ** 2).sum(-1)).reshape(idx.shape)
  return idx, exact


def neighbour_grid(samples, train, indices):
  """uint8 images [(k + 1)·Q, H, W, C]: each sample followed by its k neighbours, row by
  row (an `ImageGrid` of width k + 1 draws one sample per row)."""
  rows = [np.concatenate([np.asarray(samples)[j:j + 1], np.asarray(train)[indices[j]]])
          for j in range(len(indices))]
  return np.concatenate(rows)
