"""Affine and additive coupling (Dinh et al. 2017; Kingma & Dhariwal 2018)."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks
from gflow.choices import check_choice

tfb = tfp.bijectors

__all__ = ["AffineCoupling", "AdditiveCoupling", "SCALE_FNS", "log_scale_fn"]


def _sigmoid(h):
  return tf.math.log_sigmoid(h + 2.)


def _exp_tanh(h):
  return 2. * tf.tanh(h / 2.)


def _exp(h):
  return h


# name -> map from the network's raw output h to log s.
SCALE_FNS = {
    "sigmoid": _sigmoid,    # s = sigmoid(h + 2)       (Glow)
    "exp_tanh": _exp_tanh,  # s = exp(2·tanh(h / 2))   (DenseFlow)
    "exp": _exp,            # s = exp(h)               (RealNVP)
}


def log_scale_fn(name):
  """The log-scale function called `name`; ValueError naming the valid ones."""
  return SCALE_FNS[check_choice(name, sorted(SCALE_FNS), "scale function")]


class _Coupling(tfb.Bijector):
  """Shared split/merge of the channel axis: x = [x₁, x₂], x₁ = first ⌈C/2⌉."""

  def __init__(self, network, event_ndims, conditioning, is_constant_jacobian,
               validate_args, parameters, name):
    if event_ndims not in (1, 3):
      raise ValueError(f"event_ndims must be 1 (vectors) or 3 (NHWC images); "
                       f"got {event_ndims!r}.")
    if not callable(network):
      raise TypeError(f"network must be callable (a Keras layer); got {network!r}.")
    self._network = network
    self._event_ndims = event_ndims
    self._conditioning = conditioning
    super().__init__(
        forward_min_event_ndims=event_ndims,
        is_constant_jacobian=is_constant_jacobian,
        validate_args=validate_args,
        parameters=parameters,
        name=name)

  @property
  def network(self):
    return self._network

  def _split(self, x):
    _checks.floating(self, x)
    _checks.rank_at_least(self, x, self._event_ndims)
    c = x.shape[-1]
    if c is None or c < 2:
      raise ValueError(f"{self.name} splits the channel axis, so it needs a known "
                       f"size >= 2; got shape {x.shape}.")
    return tf.split(x, [c - c // 2, c // 2], axis=-1)

  def _net(self, x1, out_channels):
    if self._conditioning is None:
      h = self._network(x1)
    else:
      h = self._network(x1, conditioning=self._conditioning)
    h = tf.cast(h, x1.dtype)  # networks may compute in bfloat16/float16
    if h.shape[-1] is not None and h.shape[-1] != out_channels:
      raise ValueError(f"{self.name}: the coupling network must output "
                       f"{out_channels} channels; got shape {h.shape}.")
    return h

  def _sum_event(self, t, event_ndims=None):
    return tf.reduce_sum(t, axis=list(range(-(event_ndims or self._event_ndims), 0)))


class AffineCoupling(_Coupling):
  """Affine coupling y₁ = x₁, y₂ = s(x₁) ⊙ x₂ + t(x₁), (log s, t) from a network of x₁.

  Inverse x₂ = (y₂ − t(y₁)) / s(y₁).  log|det J| = Σ log s(x₁).
  The network maps x₁ ([..., ⌈C/2⌉]) to 2·⌊C/2⌋ channels: the first half is the
  raw scale h with s given by `scale_fn` (sigmoid(h+2) as in Glow,
  exp(2·tanh(h/2)) as in DenseFlow, or exp(h)), the second half the shift t.
  """

  def __init__(self, network, scale_fn="sigmoid", event_ndims=3,
               conditioning=None, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "AffineCoupling") as name:
      self._log_scale = log_scale_fn(scale_fn)
      super().__init__(network, event_ndims, conditioning, False, validate_args,
                       parameters, name)

  def _params(self, x1, c2):
    h = self._net(x1, 2 * c2)
    raw, shift = tf.split(h, 2, axis=-1)
    return self._log_scale(raw), shift

  def _forward(self, x):
    x1, x2 = self._split(x)
    log_s, t = self._params(x1, x2.shape[-1])
    return tf.concat([x1, x2 * tf.exp(log_s) + t], axis=-1)

  def _inverse(self, y):
    y1, y2 = self._split(y)
    log_s, t = self._params(y1, y2.shape[-1])
    return tf.concat([y1, (y2 - t) * tf.exp(-log_s)], axis=-1)

  def _forward_log_det_jacobian(self, x):
    x1, x2 = self._split(x)
    log_s, _ = self._params(x1, x2.shape[-1])
    return self._sum_event(log_s)

  def forward_and_log_det(self, x, event_ndims):
    """(forward(x), fldj(x, event_ndims)) with one evaluation of the network."""
    x1, x2 = self._split(x)
    log_s, t = self._params(x1, x2.shape[-1])
    return tf.concat([x1, x2 * tf.exp(log_s) + t], axis=-1), self._sum_event(log_s, event_ndims)


class AdditiveCoupling(_Coupling):
  """Additive coupling y₁ = x₁, y₂ = x₂ + t(x₁) (NICE; Glow's additive variant).

  Inverse x₂ = y₂ − t(y₁).  log|det J| = 0.
  """

  def __init__(self, network, event_ndims=3, conditioning=None,
               validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "AdditiveCoupling") as name:
      super().__init__(network, event_ndims, conditioning, True, validate_args,
                       parameters, name)

  def _forward(self, x):
    x1, x2 = self._split(x)
    return tf.concat([x1, x2 + self._net(x1, x2.shape[-1])], axis=-1)

  def _inverse(self, y):
    y1, y2 = self._split(y)
    return tf.concat([y1, y2 - self._net(y1, y2.shape[-1])], axis=-1)

  def _forward_log_det_jacobian(self, x):
    return tf.zeros(tf.shape(x)[:tf.rank(x) - self._event_ndims], x.dtype)

  def forward_and_log_det(self, x, event_ndims):
    return self.forward(x), tf.zeros(tf.shape(x)[:tf.rank(x) - event_ndims], x.dtype)
