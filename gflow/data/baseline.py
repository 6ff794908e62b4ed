"""The Gaussian baseline of an audio source: the figure a waveform model must beat.

Each sample of audio is modelled as independent N(μ, σ²), with μ and σ the
maximum-likelihood fit to training segments (`fit_gaussian`); its test figure is,
per clip, the mean log-density per sample over the clip's valid samples (the
padding of a batch excluded), in nats/sample, the unit of the waveform models'
`log-likelihood`. A model that has learnt nothing about the shape of speech
scores about this.
"""

import math

import numpy as np
import tensorflow as tf

__all__ = ["GaussianFit", "fit_gaussian", "gaussian_log_likelihood"]


class GaussianFit:
  """μ, σ fitted to `count` training samples."""

  def __init__(self, mean, std, count):
    self.mean, self.std, self.count = float(mean), float(std), int(count)

  def describe(self):
    return f"N(μ={self.mean:.3g}, σ={self.std:.4g}) fitted to {self.count:,} training samples"


def fit_gaussian(source, seed, num_segments=1024, batch_size=64):
  """The ML fit of one Gaussian to every sample of the first `num_segments` (or a few
  more, to fill the last batch) training segments of `source`: a function of `seed`,
  like the training stream."""
  total, total_sq, count = 0.0, 0.0, 0
  batch_size = min(batch_size, source.num_train)
  batches = max(1, -(-num_segments // batch_size))
  for batch in source.train_dataset(batch_size, seed).take(batches):
    x = batch["x"].numpy().astype(np.float64)
    total, total_sq, count = total + x.sum(), total_sq + np.square(x).sum(), count + x.size
  mean = total / count
  var = max(total_sq / count - mean * mean, 1e-12)
  return GaussianFit(mean, math.sqrt(var), count)


def gaussian_log_likelihood(fit, dataset):
  """Per-item mean log N(x; μ, σ²) per sample (numpy [items]) over the clips of
  `dataset` (batches {"x": [B, T], optional "length": [B]})."""
  out = []
  log_norm = -0.5 * math.log(2 * math.pi) - math.log(fit.std)
  for batch in dataset:
    x = tf.cast(batch["x"], tf.float64)
    x = tf.reshape(x, [tf.shape(x)[0], -1])
    length = batch.get("length", tf.fill([tf.shape(x)[0]], tf.shape(x)[1]))
    valid = tf.sequence_mask(length, tf.shape(x)[1], tf.float64)
    log_p = log_norm - 0.5 * tf.square((x - fit.mean) / fit.std)
    out.append((tf.reduce_sum(log_p * valid, 1) / tf.reduce_sum(valid, 1)).numpy())
  return np.concatenate(out)
