"""FID and KID against closed forms, and the digits feature network."""

import numpy as np
import pytest

from gflow.metrics.fid import fid, frechet_distance, kid


def test_the_frechet_distance_of_gaussians_is_closed_form():
  rng = np.random.RandomState(0)
  mu1, mu2 = rng.randn(4), rng.randn(4)
  s1, s2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
  # diagonal covariances: ‖μ₁ − μ₂‖² + Σ (σ₁ − σ₂)²
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
  assert frechet_distance(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2)) == pytest.approx(
      expected, rel=1e-9)
  a = rng.randn(4, 4)
  cov = a @ a.T + np.eye(4)
  assert frechet_distance(mu1, cov, mu1, cov) == pytest.approx(0, abs=1e-8)
  # rotating both covariances alike changes nothing
  q, _ = np.linalg.qr(rng.randn(4, 4))
  c1, c2 = np.diag(s1 ** 2), np.diag(s2 ** 2)
  assert frechet_distance(q @ mu1, q @ c1 @ q.T, q @ mu2, q @ c2 @ q.T) == pytest.approx(
      expected, rel=1e-6)


def test_fid_and_kid_of_samples():
  rng = np.random.RandomState(1)
  x = rng.randn(20_000, 3)
  y = 0.5 + 1.5 * rng.randn(20_000, 3)
  assert fid(x, y) == pytest.approx(3 * 0.25 + 3 * 0.25, rel=0.05)
  same, same_se = kid(x[:4000], rng.randn(4000, 3), subsets=10, subset_size=1000)
  assert abs(same) < 4 * same_se + 1e-4  # unbiased: zero in expectation for one distribution
  apart, apart_se = kid(x[:4000], y[:4000], subsets=10, subset_size=1000)
  assert apart > 20 * apart_se and apart > 0.1
  with pytest.raises(ValueError, match="at least 2"):
    fid(x[:1], y)


def test_the_digits_classifier_is_a_feature_network_that_tells_digits_from_noise():
  from gflow.data import load_digits
  from gflow.metrics.features import DigitsClassifier
  net = DigitsClassifier(seed=0, epochs=10)
  assert net.accuracy > 0.9
  data = load_digits(256)
  real_test, real_train = net(data.test), net(data.train)
  noise = net(np.random.RandomState(0).randint(0, 256, (300, 8, 8, 1)).astype(np.uint8))
  assert real_test.shape == (len(data.test), 64)
  floor = fid(real_test, real_train)
  assert fid(noise, real_train) > 20 * floor, (fid(noise, real_train), floor)
