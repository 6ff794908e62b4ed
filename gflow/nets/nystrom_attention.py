"""Single-head Nyström self-attention over the pixels of an image."""

import keras
import tensorflow as tf

__all__ = ["NystromAttention", "pinv_newton_schulz"]


def pinv_newton_schulz(a, iterations=6):
  """Moore–Penrose pseudo-inverse of square matrices [..., m, m] by the iteration of
  Razavi et al. (2014) used by Nyströmformer: Z₀ = Aᵀ / (‖A‖₁ ‖A‖∞),
  Z ← ¼ Z (13I − AZ(15I − AZ(7I − AZ))). Scaled per matrix, so each example of a
  batch is inverted on its own."""
  a = tf.cast(a, tf.float32)
  norm_1 = tf.reduce_max(tf.reduce_sum(tf.abs(a), axis=-2), axis=-1)[..., None, None]
  norm_inf = tf.reduce_max(tf.reduce_sum(tf.abs(a), axis=-1), axis=-1)[..., None, None]
  z = tf.linalg.matrix_transpose(a) / (norm_1 * norm_inf)
  eye = tf.eye(a.shape[-1], dtype=a.dtype)
  for _ in range(iterations):
    az = a @ z
    z = 0.25 * z @ (13. * eye - az @ (15. * eye - az @ (7. * eye - az)))
  return z


@keras.saving.register_keras_serializable(package="gflow")
class NystromAttention(keras.layers.Layer):
  """softmax(QKᵀ/√d)V over the H·W pixel tokens, approximated with m landmarks (Xiong et al. 2021).

  Q, K, V are 1x1 projections to `embed_dim`; the landmarks Q̃, K̃ are the means of
  m contiguous segments of the raster-ordered tokens; the output is
  softmax(QK̃ᵀ/√d) · pinv(softmax(Q̃K̃ᵀ/√d)) · (softmax(Q̃Kᵀ/√d) V), evaluated
  right to left so time and memory are O(H·W·m), then projected to
  `out_channels`. With m = H·W it is exact softmax attention (`exact=True`
  computes that directly, for tests). DenseFlow's global branch (Grcić et al.
  2021): one head, embedding 24, 4 landmarks, 6 pseudo-inverse iterations.
  """

  def __init__(self, out_channels, embed_dim=24, num_landmarks=4, pinv_iterations=6,
               **kwargs):
    super().__init__(**kwargs)
    if out_channels < 1 or embed_dim < 1 or num_landmarks < 1 or pinv_iterations < 1:
      raise ValueError(f"NystromAttention needs positive out_channels, embed_dim, "
                       f"num_landmarks and pinv_iterations; got {out_channels}, {embed_dim}, "
                       f"{num_landmarks}, {pinv_iterations}.")
    self.out_channels, self.embed_dim = out_channels, embed_dim
    self.num_landmarks, self.pinv_iterations = num_landmarks, pinv_iterations
    policy = self.dtype_policy
    self.qkv = keras.layers.Dense(3 * embed_dim, dtype=policy, name="qkv")
    self.proj = keras.layers.Dense(out_channels, dtype=policy, name="proj")

  def _check_pixels(self, shape):
    h, w = shape[-3], shape[-2]
    if h is not None and w is not None and (h * w) % self.num_landmarks:
      raise ValueError(f"NystromAttention with {self.num_landmarks} landmarks needs H·W "
                       f"divisible by it; got {h}x{w} = {h * w} pixels.")

  def build(self, input_shape):
    self._check_pixels(input_shape)
    self.qkv.build((None, input_shape[-1]))
    self.proj.build((None, self.embed_dim))

  def _tokens(self, x):
    shape = tf.shape(x)
    pixels = shape[1] * shape[2]  # H·W, static or not
    t = tf.reshape(self.qkv(x), [shape[0], pixels, 3 * self.embed_dim])  # raster order
    t = tf.cast(t, tf.float32)
    q, k, v = tf.split(t, 3, axis=-1)
    scale = float(self.embed_dim) ** -0.25  # (q·k)/√d with the scale split over q and k
    return q * scale, k * scale, v

  def call(self, x, exact=False):
    shape = tf.shape(x)
    q, k, v = self._tokens(x)
    if exact:
      out = tf.nn.softmax(q @ tf.linalg.matrix_transpose(k)) @ v
    else:
      self._check_pixels(x.shape)
      n, m = tf.shape(q)[1], self.num_landmarks
      if x.shape[-3] is None or x.shape[-2] is None:  # checked when the graph runs,
        # before the reshape that would fail with a less helpful message
        check = tf.debugging.assert_equal(n % m, 0, message=f"NystromAttention needs H·W "
                                          f"divisible by num_landmarks={m}")
        with tf.control_dependencies([check]):
          n = tf.identity(n)
      segments = [shape[0], m, n // m, self.embed_dim]  # m contiguous runs of tokens
      q_m = tf.reduce_mean(tf.reshape(q, segments), axis=2)
      k_m = tf.reduce_mean(tf.reshape(k, segments), axis=2)
      kt, k_mt = tf.linalg.matrix_transpose(k), tf.linalg.matrix_transpose(k_m)
      f = tf.nn.softmax(q @ k_mt)            # [B, N, m]
      a = tf.nn.softmax(q_m @ k_mt)          # [B, m, m]
      b = tf.nn.softmax(q_m @ kt)            # [B, m, N]
      out = f @ (pinv_newton_schulz(a, self.pinv_iterations) @ (b @ v))
    out = tf.reshape(tf.cast(out, self.compute_dtype),
                     tf.concat([shape[:-1], [self.embed_dim]], 0))
    return self.proj(out)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.out_channels,)

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels,
            "embed_dim": self.embed_dim, "num_landmarks": self.num_landmarks,
            "pinv_iterations": self.pinv_iterations}
