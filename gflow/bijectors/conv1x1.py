"""Invertible 1x1 convolutions (Kingma & Dhariwal 2018): LU-parameterised and plain."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors import _checks

tfb = tfp.bijectors

__all__ = ["Conv1x1LU", "Conv1x1"]


def _apply(x, w):
  """y_d = Σ_c w[d, c] x_c at every position of `x` ([..., C]).

  One matmul over the flattened positions: TensorFlow's (oneDNN's) einsum for
  "...c,dc->...d" took 10–37x as long, forward and backward, at DenseFlow's and
  Glow's shapes (`benchmarks/README.md`, session 10).
  """
  shape = tf.shape(x)
  y = tf.matmul(tf.reshape(x, [-1, w.shape[-1]]), w, transpose_b=True)
  y = tf.reshape(y, tf.concat([shape[:-1], [w.shape[0]]], 0))
  y.set_shape(x.shape[:-1].concatenate([w.shape[0]]))
  return y


class Conv1x1LU(tfb.Bijector):
  """1x1 convolution y = W x, W = P·L·(U + diag(sign·exp(log_s))) (Glow's LU form).

  Inverse x = (U + diag)⁻¹ L⁻¹ Pᵀ y by two triangular solves on a C×C matrix.
  log|det J| = Σ log_s per position (H·W·Σ log_s for an NHWC image).

  `permutation` is a fixed C×C permutation matrix (a float constant, so the whole
  map lives on the accelerator and compiles with XLA); `lower` and `upper` are
  read below and above their diagonals; `sign` is fixed.
  """

  def __init__(self, permutation, lower, upper, sign, log_s,
               validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "Conv1x1LU") as name:
      self._log_s = tf.convert_to_tensor(log_s, name="log_s")
      dtype = self._log_s.dtype
      self._permutation = tf.convert_to_tensor(permutation, dtype, name="permutation")
      self._lower = tf.convert_to_tensor(lower, dtype, name="lower")
      self._upper = tf.convert_to_tensor(upper, dtype, name="upper")
      self._sign = tf.convert_to_tensor(sign, dtype, name="sign")
      c = self._log_s.shape[0]
      for arg, t in [("permutation", self._permutation), ("lower", self._lower),
                     ("upper", self._upper)]:
        if t.shape != (c, c):
          raise ValueError(f"Conv1x1LU needs `{arg}` of shape [{c}, {c}] "
                           f"to match log_s {self._log_s.shape}; got {t.shape}.")
      if self._sign.shape != (c,):
        raise ValueError(f"Conv1x1LU needs `sign` of shape [{c}]; got {self._sign.shape}.")
      super().__init__(
          forward_min_event_ndims=1,
          is_constant_jacobian=True,
          validate_args=validate_args,
          dtype=dtype,
          parameters=parameters,
          name=name)

  def _factors(self):
    c = self._log_s.shape[0]
    eye = tf.eye(c, dtype=self.dtype)
    lower = tf.linalg.band_part(self._lower, -1, 0) * (1. - eye) + eye
    upper = (tf.linalg.band_part(self._upper, 0, -1) * (1. - eye)
             + tf.linalg.diag(self._sign * tf.exp(self._log_s)))
    return lower, upper

  def weight(self):
    """The C×C matrix W = P·L·U."""
    lower, upper = self._factors()
    return self._permutation @ (lower @ upper)

  def inverse_weight(self):
    """W⁻¹ = U⁻¹ L⁻¹ Pᵀ, by triangular solves."""
    lower, upper = self._factors()
    pt = tf.transpose(self._permutation)
    return tf.linalg.triangular_solve(
        upper, tf.linalg.triangular_solve(lower, pt, lower=True), lower=False)

  def _forward(self, x):
    _checks.channels(self, x, self._log_s.shape[0])
    return _apply(x, self.weight())

  def _inverse(self, y):
    _checks.channels(self, y, self._log_s.shape[0])
    return _apply(y, self.inverse_weight())

  def _forward_log_det_jacobian(self, x):
    return tf.broadcast_to(tf.reduce_sum(self._log_s), tf.shape(x)[:-1])


class Conv1x1(tfb.Bijector):
  """Plain 1x1 convolution y = W x with a dense C×C kernel (DenseFlow's, as its authors').

  Inverse x = W⁻¹ y.  log|det J| = log|det W| = Σᵢ log|Rᵢᵢ| (W = QR) per position, in
  float64 (H·W·log|det W| for an NHWC image); QR, not `slogdet`, so it compiles
  under XLA (which has no LogMatrixDeterminant kernel), gradient W⁻ᵀ included.
  """

  def __init__(self, kernel, validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "Conv1x1") as name:
      self._kernel = tf.convert_to_tensor(kernel, name="kernel")
      if self._kernel.shape.rank != 2 or self._kernel.shape[0] != self._kernel.shape[1]:
        raise ValueError(f"Conv1x1 needs a square kernel [C, C]; got {self._kernel.shape}.")
      super().__init__(
          forward_min_event_ndims=1,
          is_constant_jacobian=True,
          validate_args=validate_args,
          dtype=self._kernel.dtype,
          parameters=parameters,
          name=name)

  def _forward(self, x):
    _checks.channels(self, x, self._kernel.shape[0])
    return _apply(x, self._kernel)

  def _inverse(self, y):
    _checks.channels(self, y, self._kernel.shape[0])
    return _apply(y, tf.linalg.inv(self._kernel))

  def _forward_log_det_jacobian(self, x):
    r = tf.linalg.qr(tf.cast(self._kernel, tf.float64))[1]
    logdet = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))
    return tf.broadcast_to(tf.cast(logdet, self.dtype), tf.shape(x)[:-1])
