"""Score-model pieces against closed forms: the denoising loss, the exact score of a
training set, the annealed Langevin sampler, and NCSNv2's noise-level calculators."""

import math

import numpy as np
import pytest
import tensorflow as tf

from gflow import Noise
from gflow.score import noise_levels as nl
from gflow.score.dsm import dsm_loss
from gflow.score.exact_score import ExactScore, gaussian_score, mixture_score
from gflow.score.langevin import AnnealedLangevin

SIGMAS = nl.geometric_sigmas(2.0, 0.05, 6).astype(np.float32)


def _gaussian(n, d, mean, s, seed=0):
  return mean + s * tf.random.stateless_normal([n, d], [seed, 1])


def _within(values, expected, k=4.5):
  """The mean of `values` is `expected` within k standard errors."""
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / math.sqrt(len(values))
  assert abs(values.mean() - expected) < k * se + 1e-9, (values.mean(), expected, se)
  return se


@pytest.mark.parametrize("level", [0, 3, 5])
def test_the_loss_of_the_exact_score_of_gaussian_data_is_d_s2_over_2_s2_plus_sigma2(level):
  d, s, mu = 6, 0.7, 0.3
  x = _gaussian(40_000, d, mu, s)
  sigma = SIGMAS[level]
  levels = tf.fill([40_000], level)
  exact = lambda xt, i: gaussian_score(xt, mu, s ** 2 + tf.gather(SIGMAS, i)[:, None] ** 2)
  loss, _ = dsm_loss(exact, x, SIGMAS, Noise([1, 2]), levels=levels)
  se = _within(loss.numpy(), d / 2 * s ** 2 / (s ** 2 + sigma ** 2))
  assert 4.5 * se < 0.02 * d / 2 * s ** 2 / (s ** 2 + sigma ** 2)  # resolves 2 %


def test_an_error_in_the_score_of_a_mixture_adds_half_sigma2_delta2():
  """Perturbed data from a 3-component mixture, its closed-form score, then that score
  plus δ: the loss grows by ½σ²‖δ‖² in expectation (the cross term averages to 0 at the
  optimum), per level."""
  rng = np.random.RandomState(3)
  means = tf.constant(rng.uniform(-1, 1, (3, 4)), tf.float32)
  weights = tf.constant([0.2, 0.5, 0.3])
  s, n = 0.2, 60_000
  comp = tf.random.stateless_categorical(tf.math.log(weights)[None], n, [4, 4])[0]
  x = tf.gather(means, comp) + s * tf.random.stateless_normal([n, 4], [5, 5])
  delta = tf.constant([0.6, -0.4, 1.0, 0.2])
  for level in (1, 4):
    sigma = float(SIGMAS[level])
    levels = tf.fill([n], level)
    exact = lambda xt, i: mixture_score(xt, means, weights, s ** 2 + sigma ** 2)
    base, _ = dsm_loss(exact, x, SIGMAS, Noise([7, level]), levels)
    worse, _ = dsm_loss(lambda xt, i: exact(xt, i) + delta, x, SIGMAS, Noise([7, level]),
                        levels)
    extra = 0.5 * sigma ** 2 * float(tf.reduce_sum(delta ** 2))
    _within((worse - base).numpy(), extra)
    assert extra > 10 * ((worse - base).numpy().std() / math.sqrt(n))  # the test can tell


def test_levels_are_drawn_uniformly_and_every_level_is_trained():
  x = tf.zeros([30_000, 2])
  _, levels = dsm_loss(lambda xt, i: -xt, x, SIGMAS, Noise([0, 9]))
  counts = np.bincount(levels.numpy(), minlength=len(SIGMAS))
  assert counts.min() > 0.9 * 30_000 / len(SIGMAS) and counts.max() < 1.1 * 30_000 / len(SIGMAS)


def test_the_exact_score_of_a_training_set_is_the_gradient_of_its_perturbed_log_density():
  rng = np.random.RandomState(0)
  data = tf.constant(rng.uniform(0, 1, (50, 2, 2, 3)), tf.float32)
  score = ExactScore(data, SIGMAS, chunk=16)  # 4 chunks: the streamed softmax
  x = tf.constant(rng.uniform(-0.5, 1.5, (7, 2, 2, 3)), tf.float32)
  levels = tf.constant([0, 1, 2, 3, 4, 5, 5])
  flat = tf.reshape(data, [50, -1])
  with tf.GradientTape() as tape:
    tape.watch(x)
    var = tf.gather(tf.constant(SIGMAS, tf.float32), levels)[:, None] ** 2
    d2 = tf.reduce_sum(tf.square(tf.reshape(x, [7, 1, -1]) - flat[None]), axis=-1)
    log_p = tf.reduce_logsumexp(-d2 / (2 * var), axis=1)
  np.testing.assert_allclose(score(x, levels).numpy(), tape.gradient(log_p, x).numpy(),
                             rtol=2e-4, atol=2e-4)
  mix = mixture_score(tf.reshape(x, [7, -1]), flat, tf.fill([50], 1 / 50), var)
  np.testing.assert_allclose(tf.reshape(score(x, levels), [7, -1]).numpy(), mix.numpy(),
                             rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("denoise", [True, False])
def test_langevin_with_the_exact_score_of_gaussian_data_follows_the_moment_recursion(denoise):
  """For data N(μ, s²I) the perturbed score is linear, so each step maps the mean and
  variance exactly: m ← (1 − a)m + aμ, c ← (1 − a)²c + 2α with a = α/(s² + σᵢ²), from
  U[0, 1] (m 1/2, c 1/12); the denoising step adds m ← (1 − b)m + bμ, c ← (1 − b)²c."""
  mu, s, eps, steps = 0.8, 0.1, 4e-3, 3
  sigmas = nl.geometric_sigmas(1.0, 0.1, 8)  # σ_L = s: the denoising step halves the spread
  score = lambda x, i: gaussian_score(x, mu, s ** 2 + tf.gather(tf.constant(
      sigmas, tf.float32), i)[:, None] ** 2)
  sampler = AnnealedLangevin(score, sigmas, eps, steps, denoise=denoise, levels_per_call=3)
  seen = []
  x = sampler.sample([20_000, 4], seed=[3, 1], progress=lambda d, t: seen.append((d, t)))
  assert seen == [(3, 8), (6, 8), (8, 8)]
  assert sampler.network_evaluations == 8 * 3 + int(denoise)
  m, c = 0.5, 1 / 12
  for sigma in sigmas:
    alpha = eps * sigma ** 2 / sigmas[-1] ** 2
    a = alpha / (s ** 2 + sigma ** 2)
    for _ in range(steps):
      m, c = (1 - a) * m + a * mu, (1 - a) ** 2 * c + 2 * alpha
  if denoise:
    b = sigmas[-1] ** 2 / (s ** 2 + sigmas[-1] ** 2)
    m, c = (1 - b) * m + b * mu, (1 - b) ** 2 * c
  values = x.numpy().ravel()
  _within(values, m)
  _within((values - m) ** 2, c)
  assert abs(m - 0.5) > 0.1 and abs(c - 1 / 12) > 0.01  # the chain moved far from its start
  again = sampler.sample([20_000, 4], seed=[3, 1])  # stateless: equal seeds, equal samples
  np.testing.assert_array_equal(again.numpy(), x.numpy())


def test_the_calculators_reproduce_the_released_ncsnv2_configs():
  assert nl.num_levels_for(50, 0.01, 32 * 32 * 3).value == 232      # CIFAR-10
  assert nl.num_levels_for(90, 0.01, 64 * 64 * 3).value == 500      # CelebA 64
  assert nl.step_size_for(50, 0.01, 232, 5).value == pytest.approx(6.2e-6)
  assert nl.step_size_for(90, 0.01, 500, 5).value == pytest.approx(3.3e-6)
  assert nl.num_levels_for(50, 0.01, 3072, target=0.5).value < 232  # the paper's ≈ 0.5
  with pytest.raises(ValueError, match="2·sigma_L²"):
    nl.check_step_size(2.5e-4, 0.01)
  with pytest.raises(ValueError, match="2·sigma_L²"):
    AnnealedLangevin(lambda x, i: x, [1.0, 0.01], 2e-4, 5)


def test_sigma_1_is_the_exact_maximum_pairwise_distance_not_a_minibatch_estimate():
  rng = np.random.RandomState(1)
  images = rng.uniform(0, 1, (700, 5, 5, 1))
  flat = images.reshape(700, -1)
  brute = max(np.sqrt(((flat[i] - flat) ** 2).sum(-1)).max() for i in range(700))
  got = nl.max_pairwise_distance(images, chunk=128)
  assert got.value == pytest.approx(brute, rel=1e-9)
  batch = nl.max_pairwise_distance(images[:64]).value
  assert batch < got.value  # a minibatch underestimates it
