"""Cross-unit coupling: the affine map of the noise that augments a DenseFlow unit."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks

tfb = tfp.bijectors

__all__ = ["CrossUnitCoupling", "noise_params"]


def noise_params(h):
  """(μ, log σ) from a network output h = [μ, raw]: log σ = 2·tanh(raw / 2) ∈ (−2, 2)."""
  mu, raw = tf.split(h, 2, axis=-1)
  return mu, 2. * tf.tanh(raw / 2.)


class CrossUnitCoupling(tfb.Bijector):
  """[z, e] ↦ [z, μ(c) + σ(c) ⊙ e] on the last `growth` channels (Grcić et al. 2021, eq. 6).

  Inverse e = (y₂ − μ(c)) / σ(c).  log|det J| = Σ log σ(c).

  The context c = [z₀, …, z_{i−1}] is the concatenation of the block's earlier
  representations (dense connectivity, the paper's g_i(z_<i)), fixed for the
  bijector like a conditioning input; `network(c)` returns 2·growth channels
  [μ, raw] with log σ = 2·tanh(raw/2). With `network=None` the noise is left
  white (μ = 0, σ = 1; the ablation without preconditioning). Augmenting a
  representation z with noise e ~ N(0, I) and applying this map gives the
  single-sample bound of eq. 9: log p(z) ≥ log p([z, y₂]) + Σ log σ − log N(e).
  The generative direction of a unit drops the `growth` channels again, so
  sampling never evaluates the network.
  """

  def __init__(self, growth, network=None, context=None, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "CrossUnitCoupling") as name:
      if not isinstance(growth, int) or growth < 1:
        raise ValueError(f"growth must be a positive int; got {growth!r}.")
      if network is not None and context is None:
        raise ValueError("CrossUnitCoupling with a network needs its context (the block's "
                         "earlier representations); got context=None.")
      self._growth = growth
      self._network = network
      self._context = context
      super().__init__(
          forward_min_event_ndims=3,
          is_constant_jacobian=network is None,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @property
  def growth(self):
    return self._growth

  def params(self, dtype=tf.float32):
    """(μ, log σ) of the noise channels, shaped like them."""
    h = tf.cast(self._network(self._context), dtype)
    if h.shape[-1] is not None and h.shape[-1] != 2 * self._growth:
      raise ValueError(f"{self.name}: the noise network must output {2 * self._growth} "
                       f"channels; got shape {h.shape}.")
    return noise_params(h)

  def _split(self, x):
    _checks.floating(self, x)
    _checks.rank_at_least(self, x, 3)
    c = x.shape[-1]
    if c is None or c <= self._growth:
      raise ValueError(f"{self.name} acts on [z, e] with {self._growth} noise channels, "
                       f"so it needs more than {self._growth} known channels; got shape "
                       f"{x.shape}.")
    return tf.split(x, [c - self._growth, self._growth], axis=-1)

  def _forward(self, x):
    z, e = self._split(x)
    if self._network is None:
      return x
    mu, log_sigma = self.params(x.dtype)
    return tf.concat([z, mu + tf.exp(log_sigma) * e], axis=-1)

  def _inverse(self, y):
    z, y2 = self._split(y)
    if self._network is None:
      return y
    mu, log_sigma = self.params(y.dtype)
    return tf.concat([z, (y2 - mu) * tf.exp(-log_sigma)], axis=-1)

  def _forward_log_det_jacobian(self, x):
    self._split(x)  # validates
    if self._network is None:
      return tf.zeros(tf.shape(x)[:-3], x.dtype)
    _, log_sigma = self.params(x.dtype)
    return tf.broadcast_to(tf.reduce_sum(log_sigma, axis=[-3, -2, -1]), tf.shape(x)[:-3])
