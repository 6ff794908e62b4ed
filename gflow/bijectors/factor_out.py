"""Multi-scale split: factor out half the channels under a (conditional) prior."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks

tfb = tfp.bijectors

__all__ = ["FactorOut"]


class FactorOut(tfb.Bijector):
  """Multi-scale split (Dinh et al. 2017): x = [x₁, x₂] ↦ [inner(x₁), (x₂ − μ(x₁)) ⊙ e^{−log σ(x₁)}].

  Inverse x₁ = inner⁻¹(z₁), x₂ = μ(x₁) + σ(x₁) ⊙ z₂.
  log|det J| = log|det J_inner(x₁)| − Σ log σ(x₁).

  With a standard normal on the output, the factored half x₂ is scored by the
  learned conditional prior N(μ(x₁), σ(x₁)²) (Glow's split prior); with
  `prior_network=None` it is scored by N(0, I) (DenseFlow, RealNVP). The event
  shape is kept, so a multi-scale flow is a nest of FactorOut bijectors whose
  latent has the data's shape; `inner` must keep its input's event shape too.
  `prior_network` maps x₁ to 2·C₂ channels: the raw log σ then μ. Sampling at a
  temperature T scales the standard normal, so x₂ = μ + T·σ·ε as in Glow.
  """

  def __init__(self, inner=None, prior_network=None, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "FactorOut") as name:
      self._inner = inner if inner is not None else tfb.Identity()
      if self._inner.forward_min_event_ndims not in (0, 1, 3):
        raise ValueError("FactorOut's inner bijector must act on NHWC events; got "
                         f"forward_min_event_ndims={self._inner.forward_min_event_ndims}.")
      self._prior_network = prior_network
      super().__init__(
          forward_min_event_ndims=3,
          is_constant_jacobian=prior_network is None and self._inner.is_constant_jacobian,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @property
  def inner(self):
    return self._inner

  def _split(self, x):
    _checks.rank_at_least(self, x, 3)
    c = x.shape[-1]
    if c is None or c < 2:
      raise ValueError(f"FactorOut needs at least 2 known channels; got shape {x.shape}.")
    return tf.split(x, [c - c // 2, c // 2], axis=-1)

  def _prior(self, x1, c2):
    h = tf.cast(self._prior_network(x1), x1.dtype)
    if h.shape[-1] is not None and h.shape[-1] != 2 * c2:
      raise ValueError(f"FactorOut's prior network must output {2 * c2} channels; "
                       f"got shape {h.shape}.")
    log_sigma, mu = tf.split(h, 2, axis=-1)
    return log_sigma, mu

  def normalize_factored(self, x1, x2):
    """(z₂, log|det| of x₂ ↦ z₂) = ((x₂ − μ(x₁)) e^{−log σ(x₁)}, −Σ log σ(x₁))."""
    if self._prior_network is None:
      return x2, tf.zeros(tf.shape(x2)[:-3], x2.dtype)
    log_sigma, mu = self._prior(x1, x2.shape[-1])
    return (x2 - mu) * tf.exp(-log_sigma), -tf.reduce_sum(log_sigma, axis=[-3, -2, -1])

  def denormalize_factored(self, x1, z2):
    """x₂ = μ(x₁) + σ(x₁) z₂, the inverse of `normalize_factored`."""
    if self._prior_network is None:
      return z2
    log_sigma, mu = self._prior(x1, z2.shape[-1])
    return mu + z2 * tf.exp(log_sigma)

  def _forward(self, x):
    x1, x2 = self._split(x)
    z2, _ = self.normalize_factored(x1, x2)
    return tf.concat([self._inner.forward(x1), z2], axis=-1)

  def _inverse(self, y):
    z1, z2 = self._split(y)
    x1 = self._inner.inverse(z1)
    return tf.concat([x1, self.denormalize_factored(x1, z2)], axis=-1)

  def _forward_log_det_jacobian(self, x):
    x1, x2 = self._split(x)
    _, prior_ldj = self.normalize_factored(x1, x2)
    ldj = self._inner.forward_log_det_jacobian(x1, event_ndims=3) + prior_ldj
    return tf.broadcast_to(ldj, tf.shape(x)[:-3])
