"""Annealed Langevin dynamics (Song & Ermon 2019) with NCSNv2's final denoising step."""

import math
import sys
import time

import numpy as np
import tensorflow as tf

from gflow.score.noise_levels import check_step_size

__all__ = ["AnnealedLangevin", "step_sizes", "TextProgress"]


def step_sizes(sigmas, eps):
  """αᵢ = ε·σᵢ²/σ_L² per level (technique 4)."""
  sigmas = tf.cast(sigmas, tf.float32)
  return eps * tf.square(sigmas) / tf.square(sigmas[-1])


class AnnealedLangevin:
  """x ← x + αᵢ·s(x, i) + √(2αᵢ)·z, T steps at each level i = 1 … L, then (by default)
  the noise-free step x ← x + σ_L²·s(x, L), from x₀ ~ U[0, 1]^D.

  `score_fn(x, levels)` is any score: a network's, `ExactScore`'s, a closed form;
  `sigmas` an array or a (TF or Keras) variable (read at each run, e.g. a model's restored
  schedule).
  The steps of `levels_per_call` levels (and the denoising step, in the last chunk)
  run as one compiled `tf.function` whose loop body holds the only copy of the score
  network (XLA with `jit_compile`), so Python sees one call per chunk, when `progress`
  (a callable (levels done, levels in all)) is told. Noise is stateless: z of step
  t at level i is drawn from fold_in(seed, i·T + t), so equal seeds give equal samples
  in any chunking. `network_evaluations` counts the score calls of a run.
  """

  def __init__(self, score_fn, sigmas, eps, steps_per_level, denoise=True, jit_compile=True,
               levels_per_call=None):
    self.score_fn = score_fn
    if steps_per_level < 1:
      raise ValueError(f"steps_per_level must be >= 1; got {steps_per_level}.")
    if hasattr(sigmas, "assign"):  # a variable: read at every run (a restore updates it)
      self._sigmas, first = sigmas, np.asarray(sigmas.numpy(), np.float64)
    else:
      first = np.asarray(sigmas, np.float64)
      self._sigmas = tf.constant(first, tf.float32)
    self.eps = check_step_size(float(eps), float(first[-1]))
    self.num_levels = int(first.shape[0])
    self.steps = int(steps_per_level)
    self.denoise = bool(denoise)
    self.levels_per_call = levels_per_call or max(1, math.ceil(self.num_levels / 50))
    self._chunk = tf.function(self._levels, jit_compile=jit_compile, reduce_retracing=True)

  @property
  def sigmas(self):
    return tf.cast(tf.convert_to_tensor(self._sigmas), tf.float32)

  @property
  def network_evaluations(self):
    return self.num_levels * self.steps + int(self.denoise)

  def _levels(self, x, seed, first, count, final):
    """`count` levels from level `first`, then, if `final`, the denoising step: one loop
    whose body evaluates the score once (one copy of the network in the graph)."""
    n = tf.shape(x)[0]
    sigmas = self.sigmas
    alphas = step_sizes(sigmas, self.eps)
    steps = count * self.steps

    def body(k, x):
      last = k >= steps  # the denoising step: x + σ_L² s(x, σ_L), no noise
      i = tf.where(last, self.num_levels - 1, first + k // self.steps)
      t = k % self.steps
      z = tf.random.stateless_normal(tf.shape(x), tf.random.experimental.stateless_fold_in(
          seed, i * self.steps + t))
      score = tf.cast(self.score_fn(x, tf.fill([n], i)), tf.float32)
      alpha = alphas[i]
      move = tf.where(last, tf.square(sigmas[-1]), alpha)
      noise = tf.where(last, 0., tf.sqrt(2 * alpha))
      return k + 1, x + move * score + noise * z
    _, x = tf.while_loop(lambda k, x: k < steps + tf.cast(final, tf.int32), body,
                         [tf.constant(0), x])
    return x

  def initial(self, shape, seed):
    """x₀ ~ U[0, 1] of `shape`, from the stateless `seed`."""
    return tf.random.stateless_uniform(shape, tf.random.experimental.stateless_fold_in(
        seed, -1))

  def run(self, x, seed, progress=None):
    """The chain from x (e.g. `initial`): returns the final samples."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    x = tf.convert_to_tensor(x, tf.float32)
    done = 0
    # Inside a tf.function (no progress to show) the whole chain is one call: a call
    # per chunk would put a copy of the network per chunk into the caller's graph.
    per_call = self.levels_per_call if tf.executing_eagerly() else self.num_levels
    while done < self.num_levels:
      count = min(per_call, self.num_levels - done)
      final = self.denoise and done + count == self.num_levels
      x = self._chunk(x, seed, tf.constant(done), tf.constant(count), tf.constant(final))
      done += count
      if progress is not None:
        progress(done, self.num_levels)
    return x

  def sample(self, shape, seed, progress=None):
    """Samples of `shape` ([N, …]) from uniform noise."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    return self.run(self.initial(shape, seed), seed, progress)


class TextProgress:
  """A one-line progress bar on stderr: levels done, elapsed time and ETA."""

  def __init__(self, label="Langevin", stream=None, width=30):
    self.label = label
    self.stream = stream or sys.stderr
    self.width = width
    self.start = None

  def __call__(self, done, total):
    now = time.perf_counter()
    if self.start is None or done <= 0:
      self.start = now
    elapsed = now - self.start
    eta = elapsed / done * (total - done) if done else 0.
    filled = int(self.width * done / total)
    end = "\n" if done >= total else ""
    self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                      f"level {done}/{total} | {elapsed:.1f} s | ETA {eta:.1f} s{end}")
    self.stream.flush()
