"""Noise levels and Langevin step sizes of a score model, from the data (Song & Ermon 2020).

NCSNv2's techniques 1, 2 and 4, each a function that returns its value and the
rule it applied (for `gflow-noise-schedule` and the configs):

* **σ₁** (technique 1): the largest pairwise Euclidean distance between training
  examples, so that the widest Gaussian can move any example to any other. It is
  computed exactly over the whole set (a minibatch estimate underestimates it).
* **L** (technique 2): σ₁ > … > σ_L geometric with ratio γ = σ_{i−1}/σ_i chosen so
  that consecutive perturbation shells overlap:
      C(γ) = Φ(√(2D)(γ − 1) + 3γ) − Φ(√(2D)(γ − 1) − 3γ),
  D the data dimension. The paper asks for C ≈ 0.5; its released configs
  (CIFAR-10: σ₁ 50, σ_L 0.01, L 232; CelebA 64: σ₁ 90, L 500) correspond to
  C ≈ 0.567, the default here (C(γ) is 0.56697 at L = 232 and 0.56692 at L = 500).
  L is the count whose ratio γ = (σ₁/σ_L)^(1/(L−1)) gives the C(γ) nearest C.
* **ε** (technique 4): with step αᵢ = ε·σᵢ²/σ_L² and T steps per level, Langevin
  dynamics started from one level's marginal ends (for one data point) with
      s_T²/σᵢ² = (1 − ε/σ_L²)^(2T) (γ² − 2ε/(σ_L² − σ_L²(1 − ε/σ_L²)²))
                 + 2ε/(σ_L² − σ_L²(1 − ε/σ_L²)²),
  and ε is chosen to bring that ratio closest to 1 (for the released configs the
  ratio stays above 1 and ε is its minimiser: 6.2e-6 for CIFAR-10 at T = 5,
  3.3e-6 for CelebA 64). ε < 2σ_L² is required (larger steps diverge).
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

__all__ = ["Choice", "geometric_sigmas", "max_pairwise_distance", "overlap",
           "num_levels_for", "variance_ratio", "step_size_for", "DEFAULT_OVERLAP",
           "check_step_size"]

DEFAULT_OVERLAP = 0.567  # the C of the released NCSNv2 configs (the paper writes ≈ 0.5)


@dataclasses.dataclass(frozen=True)
class Choice:
  """A recommended value and the rule that gave it."""
  value: float
  rule: str


def geometric_sigmas(sigma_1, sigma_l, num_levels):
  """σ₁ > … > σ_L, geometric, as float64 numpy (the model stores them as a variable)."""
  if not (sigma_1 > sigma_l > 0):
    raise ValueError(f"Noise levels need sigma_1 > sigma_L > 0; got {sigma_1}, {sigma_l}.")
  if int(num_levels) < 2:
    raise ValueError(f"A noise schedule needs at least 2 levels; got {num_levels}.")
  return np.exp(np.linspace(math.log(sigma_1), math.log(sigma_l), int(num_levels)))


def max_pairwise_distance(images, chunk=1024):
  """Choice: the exact largest ‖xᵢ − xⱼ‖ over all pairs of `images` (any shape [N, …],
  flattened), in chunks of `chunk` rows (‖a‖² + ‖b‖² − 2a·b in float32, then the
  winning pair recomputed in float64)."""
  x = np.asarray(images, np.float64).reshape(len(images), -1)
  if len(x) < 2:
    raise ValueError("max_pairwise_distance needs at least 2 examples.")
  flat = tf.constant(x, tf.float32)
  norms = tf.reduce_sum(tf.square(flat), axis=1)
  best, pair = -1.0, (0, 1)
  for start in range(0, len(x), chunk):
    rows = flat[start:start + chunk]
    d2 = norms[start:start + chunk, None] + norms[None, :] - 2 * tf.matmul(rows, flat,
                                                                           transpose_b=True)
    i = int(tf.argmax(tf.reshape(d2, [-1])))
    value = float(tf.reshape(d2, [-1])[i])
    if value > best:
      best, pair = value, (start + i // len(x), i % len(x))
  # float32 cancellation can misjudge near-ties: check the runners-up of the winning row
  a, b = pair
  exact = np.sqrt(np.max(np.sum((x[[a, b]][:, None] - x[None]) ** 2, axis=-1)))
  return Choice(float(exact), f"technique 1: the largest pairwise Euclidean distance of the "
                              f"{len(x):,} training examples (exact, flattened)")


def _phi(t):
  return 0.5 * (1 + math.erf(t / math.sqrt(2)))


def overlap(gamma, dim):
  """C(γ) = Φ(√(2D)(γ − 1) + 3γ) − Φ(√(2D)(γ − 1) − 3γ)."""
  a = math.sqrt(2 * dim) * (gamma - 1)
  return _phi(a + 3 * gamma) - _phi(a - 3 * gamma)


def num_levels_for(sigma_1, sigma_l, dim, target=DEFAULT_OVERLAP):
  """Choice: the L whose geometric ratio between σ₁ and σ_L gives the overlap nearest
  `target`."""
  if not 0 < target < 1:
    raise ValueError(f"The overlap target must be in (0, 1); got {target}.")
  if not (sigma_1 > sigma_l > 0):
    raise ValueError(f"Noise levels need sigma_1 > sigma_L > 0; got {sigma_1}, {sigma_l}.")
  span = math.log(sigma_1 / sigma_l)
  c = lambda num: overlap(math.exp(span / (num - 1)), dim)  # grows with the count
  num = 2
  while c(num) < target:
    num += 1
  if num > 2 and target - c(num - 1) < c(num) - target:
    num -= 1
  gamma = math.exp(span / (num - 1))
  return Choice(num, f"technique 2: the count of geometric levels from {sigma_1:g} to "
                     f"{sigma_l:g} whose overlap C(γ) is nearest {target:g} for D = {dim:,} "
                     f"(γ = {gamma:.5f}, C = {c(num):.4f})")


def variance_ratio(eps, gamma, sigma_l, steps):
  """s_T²/σᵢ² of technique 4 (Proposition 3) for step ε, ratio γ, σ_L and T steps."""
  a = eps / sigma_l ** 2
  stationary = 2 * a / (1 - (1 - a) ** 2)
  return (1 - a) ** (2 * steps) * (gamma ** 2 - stationary) + stationary


def check_step_size(eps, sigma_l):
  """ε must satisfy 0 < ε < 2σ_L² (the last level's step α_L = ε must be < 2σ_L²)."""
  if not 0 < eps < 2 * sigma_l ** 2:
    raise ValueError(f"The Langevin step size eps must lie in (0, 2·sigma_L²) = (0, "
                     f"{2 * sigma_l ** 2:.3g}); got {eps:g}: larger steps diverge.")
  return eps


def step_size_for(sigma_1, sigma_l, num_levels, steps, significant=2):
  """Choice: the ε in (0, 2σ_L²) that brings s_T²/σᵢ² closest to 1, rounded to
  `significant` figures (as the released configs are)."""
  gamma = (sigma_1 / sigma_l) ** (1 / (num_levels - 1))
  # |ratio − 1| on a fine log grid, then golden-section refinement around the best
  grid = np.exp(np.linspace(math.log(sigma_l ** 2 * 1e-6), math.log(2 * sigma_l ** 2), 4001))[:-1]
  errors = [abs(variance_ratio(e, gamma, sigma_l, steps) - 1) for e in grid]
  k = int(np.argmin(errors))
  lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
  f = lambda e: abs(variance_ratio(e, gamma, sigma_l, steps) - 1)
  g = (math.sqrt(5) - 1) / 2
  for _ in range(100):
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    if f(c) < f(d):
      hi = d
    else:
      lo = c
  eps = (lo + hi) / 2
  rounded = float(f"{eps:.{significant}g}")
  ratio = variance_ratio(rounded, gamma, sigma_l, steps)
  return Choice(rounded, f"technique 4: the step ε (αᵢ = ε·σᵢ²/σ_L²) bringing s_T²/σᵢ² "
                         f"closest to 1 for T = {steps} (γ = {gamma:.5f}; ratio "
                         f"{ratio:.4f} at ε = {rounded:g}; ε < 2σ_L² = "
                         f"{2 * sigma_l ** 2:g})")
