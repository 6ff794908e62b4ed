"""The exact score of a training set perturbed by N(0, σ²I): the optimal denoising
score-matching solution, with no training (a baseline that memorises)."""

import tensorflow as tf

__all__ = ["ExactScore", "gaussian_score", "mixture_score"]


class ExactScore:
  """s(x̃, i) = ∇ log (1/N) Σⱼ N(x̃; xⱼ, σᵢ²I) = (Σⱼ wⱼ xⱼ − x̃)/σᵢ², w = softmax_j(−‖x̃ − xⱼ‖²/2σᵢ²).

  The minimiser of the denoising score-matching loss over all functions, for the
  empirical distribution of `data` ([N, …], in the model's units). The softmax
  over the N training points is streamed in chunks of `chunk` points (running
  max and sums), so a batch against 50,000 CIFAR-10 images fits in memory.
  Sampling with it reproduces training points: it is the memorising baseline
  the nearest-neighbour check is for.
  """

  def __init__(self, data, sigmas, chunk=4096):
    data = tf.convert_to_tensor(data, tf.float32)
    self.event_shape = data.shape[1:]
    self.data = tf.reshape(data, [data.shape[0], -1])
    self.norms = tf.reduce_sum(tf.square(self.data), axis=1)
    self.sigmas = tf.cast(tf.convert_to_tensor(sigmas), tf.float32)
    self.chunk = int(chunk)

  def __call__(self, x, levels):
    x = tf.convert_to_tensor(x, tf.float32)
    flat = tf.reshape(x, [tf.shape(x)[0], -1])
    var = tf.square(tf.gather(self.sigmas, levels))[:, None]  # [B, 1]
    x_norm = tf.reduce_sum(tf.square(flat), axis=1, keepdims=True)
    n = self.data.shape[0]
    peak = tf.fill(tf.shape(var), -float("inf"))
    total = tf.zeros_like(var)
    weighted = tf.zeros_like(flat)
    for start in range(0, n, self.chunk):  # a fixed, small number of chunks: traced once
      d = self.data[start:start + self.chunk]
      d2 = x_norm + self.norms[None, start:start + self.chunk] - 2 * tf.matmul(
          flat, d, transpose_b=True)
      logits = -tf.maximum(d2, 0.) / (2 * var)
      new_peak = tf.maximum(peak, tf.reduce_max(logits, axis=1, keepdims=True))
      scale = tf.exp(peak - new_peak)
      w = tf.exp(logits - new_peak)
      total = total * scale + tf.reduce_sum(w, axis=1, keepdims=True)
      weighted = weighted * scale + tf.matmul(w, d)
      peak = new_peak
    mean = weighted / total
    return tf.reshape((mean - flat) / var, tf.shape(x))


def gaussian_score(x, mean, variance):
  """∇ log N(x; mean, variance·I) = −(x − mean)/variance (variance broadcasts per example)."""
  return -(x - mean) / variance


def mixture_score(x, means, weights, variance):
  """∇ log Σₖ πₖ N(x; μₖ, variance·I) for x [B, D], means [K, D], weights [K]."""
  d2 = tf.reduce_sum(tf.square(x[:, None, :] - means[None]), axis=-1)  # [B, K]
  logits = tf.math.log(weights)[None] - d2 / (2 * variance)
  r = tf.nn.softmax(logits, axis=-1)
  return (tf.matmul(r, means) - x) / variance
