"""Fréchet and kernel distances between two sets of features (FID and KID).

    FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)          (Heusel et al. 2017)
    KID = unbiased MMD² with k(x, y) = (x·y/d + 1)³        (Bińkowski et al. 2018)

Both compare a model's samples with real images in the feature space of a network
(`gflow.metrics.features`): InceptionV3's pool features give the published
figures; another network gives figures comparable only among themselves.
"""

import numpy as np

__all__ = ["frechet_distance", "fid", "kid"]


def frechet_distance(mu1, cov1, mu2, cov2):
  """The Fréchet (2-Wasserstein) distance² between N(μ₁, Σ₁) and N(μ₂, Σ₂)."""
  from scipy import linalg
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
  root, _ = linalg.sqrtm(cov1 @ cov2, disp=False)
  if not np.all(np.isfinite(root)):  # a singular product: regularise (as the reference code)
    eye = np.eye(len(cov1)) * 1e-6
    root = linalg.sqrtm((cov1 + eye) @ (cov2 + eye))
  root = root.real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root))


def fid(features1, features2):
  """FID between two feature sets [N, d] (sample means and covariances)."""
  f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
  if len(f1) < 2 or len(f2) < 2:
    raise ValueError("FID needs at least 2 features in each set.")
  return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0),
                          np.cov(f2, rowvar=False))


def kid(features1, features2, subsets=10, subset_size=1000, seed=0):
  """(mean, standard error) of the unbiased MMD² over `subsets` random subsets of
  min(`subset_size`, N₁, N₂) features from each set."""
  f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
  m = min(subset_size, len(f1), len(f2))
  if m < 2:
    raise ValueError("KID needs at least 2 features in each set.")
  d = f1.shape[1]
  rng = np.random.RandomState(seed)
  values = []
  for _ in range(subsets):
    x = f1[rng.choice(len(f1), m, replace=False)]
    y = f2[rng.choice(len(f2), m, replace=False)]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                  + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
  values = np.asarray(values)
  se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
  return float(values.mean()), float(se)
