"""A Conv2D differentiated by forward convolutions (TensorFlow's CPU gradient kernels are slow)."""

import contextlib
import functools
import threading

import keras
import tensorflow as tf

from gflow.xla_context import in_xla_cluster

__all__ = ["Conv2D", "conv2d_with_forward_gradients", "conv_gradients"]

GRADIENTS = ("auto", "forward", "native")
_OVERRIDE = threading.local()


@contextlib.contextmanager
def conv_gradients(mode):
  """Within it (at trace time), every `gflow.nets.Conv2D` differentiates with `mode`
  ("forward", "native" or "auto") whatever its own setting: for benchmarks and checks."""
  if mode not in GRADIENTS:
    raise ValueError(f"conv_gradients mode must be one of {GRADIENTS}; got {mode!r}.")
  previous = getattr(_OVERRIDE, "mode", None)
  _OVERRIDE.mode = mode
  try:
    yield
  finally:
    _OVERRIDE.mode = previous


@functools.cache
def _has_gpu():
  return bool(tf.config.list_logical_devices("GPU"))


def _input_gradient(dy, kernel, input_shape):
  """dx = dy convolved ("same") with the kernel flipped in space, its channel axes swapped."""
  kh, kw, c, o = kernel.shape
  if kh == kw == 1:
    flat = tf.matmul(tf.reshape(dy, [-1, o]), tf.reshape(kernel, [c, o]), transpose_b=True)
    return tf.reshape(flat, input_shape)
  return tf.nn.conv2d(dy, tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2]), 1, "SAME")


def _filter_gradient(x, dy, kernel_size):
  """dW[i, j, c, o] = Σ_{n,h,w} x_padded[n, h+i, w+j, c] · dy[n, h, w, o]: a "valid"
  convolution of the input's channels (as a batch, [c, h, w, n]) by the output gradient
  (as a kernel, [h, w, n, o]); for 1x1, one matmul."""
  (kh, kw), c, o = kernel_size, x.shape[-1], dy.shape[-1]
  if kh == kw == 1:
    dw = tf.matmul(tf.reshape(x, [-1, c]), tf.reshape(dy, [-1, o]), transpose_a=True)
    return tf.reshape(dw, [1, 1, c, o])
  ph, pw = (kh - 1) // 2, (kw - 1) // 2
  x = tf.transpose(tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]]), [3, 1, 2, 0])
  dw = tf.nn.conv2d(x, tf.transpose(dy, [1, 2, 0, 3]), 1, "VALID")  # [c, kh, kw, o]
  return tf.transpose(dw, [1, 2, 0, 3])


def conv2d_with_forward_gradients(x, kernel, bias=None, relu=False):
  """y = relu?(conv2d(x, kernel, stride 1, "same") + bias), NHWC, odd kernel sizes;
  its gradients by forward convolutions and matmuls, not Conv2DBackpropInput/-Filter.

  The forward pass is TensorFlow's own operations, so Grappler still fuses the bias
  and the ReLU into the convolution; the ReLU's gradient is taken from y.
  """
  kh, kw = kernel.shape[:2]
  if kh % 2 == 0 or kw % 2 == 0 or x.shape.rank != 4:
    raise ValueError(f"conv2d_with_forward_gradients needs an NHWC input and an odd kernel; "
                     f"got an input of shape {x.shape} and a {kh}x{kw} kernel.")

  @tf.custom_gradient
  def conv(x, kernel, *bias):
    y = tf.nn.conv2d(x, kernel, 1, "SAME")
    if bias:
      y = tf.nn.bias_add(y, bias[0])
    if relu:
      y = tf.nn.relu(y)

    def grad(dy):
      if relu:
        dy = tf.raw_ops.ReluGrad(gradients=dy, features=y)
      grads = [_input_gradient(dy, kernel, tf.shape(x)), _filter_gradient(x, dy, (kh, kw))]
      return grads + ([tf.reduce_sum(dy, [0, 1, 2])] if bias else [])

    return y, grad

  return conv(x, kernel, *([] if bias is None else [bias]))


@keras.saving.register_keras_serializable(package="gflow")
class Conv2D(keras.layers.Conv2D):
  """`keras.layers.Conv2D` (the same variables and outputs) whose gradients are forward
  convolutions where that is faster.

  On a CPU, TensorFlow's kernels for a convolution's input and filter gradients run
  at about half its forward convolution's speed (benchmarks/conv_gradients.py). With
  `gradients="forward"` the input gradient is the output gradient convolved with the
  flipped kernel and the filter gradient a convolution of the input's channels by the
  output gradient (1x1: matmuls), for stride 1, no dilation, channels last, one group,
  "same" padding and odd kernel sizes (or 1x1), and no activation or ReLU (fused in);
  other layers use TensorFlow's gradients. `"auto"` (the default) is "forward" when
  TensorFlow sees no GPU (cuDNN's gradient kernels are fast) and XLA does not compile
  the call (XLA's compiled step was slower with them), `"native"` never. (A small
  convolution, e.g. 3x3 from 6 to 128 channels, can be slower by forward convolutions;
  a whole training step was not: DenseFlow-74-10's was faster with them everywhere
  than with them only from 32 input channels up.)
  `conv_gradients(mode)` overrides every layer's setting while tracing.
  """

  def __init__(self, filters, kernel_size, gradients="auto", **kwargs):
    super().__init__(filters, kernel_size, **kwargs)
    if gradients not in GRADIENTS:
      raise ValueError(f"Conv2D gradients must be one of {GRADIENTS}; got {gradients!r}.")
    self.gradients = gradients

  def uses_forward_gradients(self):
    """Whether a call traced now differentiates by forward convolutions."""
    mode = getattr(_OVERRIDE, "mode", None) or self.gradients
    if mode == "native" or (mode == "auto" and (_has_gpu() or in_xla_cluster())):
      return False
    return (tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
            and self.data_format == "channels_last" and self.groups == 1
            and all(k % 2 for k in self.kernel_size)
            and (self.padding == "same" or tuple(self.kernel_size) == (1, 1))
            and self.activation in (keras.activations.relu, keras.activations.linear)
            and self.lora_rank is None)

  def call(self, inputs):
    if not self.uses_forward_gradients():
      return super().call(inputs)
    dtype = self.compute_dtype
    kernel = tf.cast(tf.convert_to_tensor(self.kernel), dtype)
    bias = tf.cast(tf.convert_to_tensor(self.bias), dtype) if self.use_bias else None
    return conv2d_with_forward_gradients(inputs, kernel, bias,
                                         relu=self.activation is keras.activations.relu)

  def get_config(self):
    return {**super().get_config(), "gradients": self.gradients}
