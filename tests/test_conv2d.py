"""gflow.nets.Conv2D: keras.layers.Conv2D's outputs and gradients, differentiated by
forward convolutions where it applies and by TensorFlow's gradient kernels elsewhere."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gflow.nets import Conv2D, conv_gradients
from gflow.nets.conv2d import conv2d_with_forward_gradients

BACKPROP_OPS = {"Conv2DBackpropInput", "Conv2DBackpropFilter"}


def _layers(filters, kernel_size, **kwargs):
  """A keras.layers.Conv2D and a gflow Conv2D with the same random weights (float64)."""
  ref = keras.layers.Conv2D(filters, kernel_size, dtype="float64", **kwargs)
  ours = Conv2D(filters, kernel_size, gradients="forward", dtype="float64", **kwargs)
  return ref, ours


def _outputs_and_gradients(layer, x, dy):
  """y, and the gradients of Σ y·dy + Σ sin(y) (so dy is not the only cotangent's shape)
  with respect to x and the layer's variables."""
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x)
    loss = tf.reduce_sum(y * dy) + tf.reduce_sum(tf.sin(y))
  return [y] + tape.gradient(loss, [x] + layer.trainable_variables)


def _gradient_ops(layer, x, jit_compile=False):
  """The operation types of the traced gradient of Σ layer(x)."""
  @tf.function(jit_compile=jit_compile)
  def grads(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer(x))
    return tape.gradient(loss, [x] + layer.trainable_variables)

  graph = grads.get_concrete_function(x).graph
  types = {op.type for op in graph.get_operations()}
  for f in graph.as_graph_def().library.function:
    types |= {node.op for node in f.node_def}
  return types


@pytest.mark.parametrize("kernel_size, activation, use_bias, shape", [
    (3, "relu", True, (2, 7, 6, 5)),
    (3, None, False, (3, 5, 5, 4)),
    (1, "relu", True, (2, 4, 6, 9)),
    (1, None, True, (1, 3, 3, 2)),
    (5, None, True, (2, 6, 7, 3)),
    ((3, 1), "relu", True, (2, 6, 5, 4)),
    ((1, 5), None, False, (2, 4, 7, 3)),
])
def test_forward_gradients_match_keras_conv2d(kernel_size, activation, use_bias, shape):
  """Outputs, input and variable gradients equal keras.layers.Conv2D's (float64), at
  random weights, with the ReLU both active and inactive somewhere."""
  rng = np.random.default_rng(0)
  ref, ours = _layers(6, kernel_size, padding="same", activation=activation, use_bias=use_bias,
                      bias_initializer="random_normal")
  ref.build(shape)
  ours.build(shape)
  for v_ref, v in zip(ref.weights, ours.weights):
    v.assign(v_ref)
  x = tf.constant(rng.normal(size=shape))
  dy = tf.constant(rng.normal(size=shape[:-1] + (6,)))
  expected = _outputs_and_gradients(ref, x, dy)
  got = _outputs_and_gradients(ours, x, dy)
  assert len(got) == len(expected) == 2 + 1 + use_bias
  for e, g in zip(expected, got):
    assert float(tf.reduce_max(tf.abs(e))) > 0.1  # nothing compared is trivially zero
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-10, atol=1e-10)
  assert not _gradient_ops(ours, x) & BACKPROP_OPS
  assert _gradient_ops(ref, x) & BACKPROP_OPS


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, strides=2, padding="same"),
    dict(kernel_size=3, padding="valid"),
    dict(kernel_size=3, padding="same", dilation_rate=2),
    dict(kernel_size=2, padding="same"),
    dict(kernel_size=3, padding="same", activation="tanh"),
])
def test_other_convolutions_use_tensorflows_gradients(kwargs):
  """Strides, "valid" padding beyond 1x1, dilation, even kernels and other activations
  keep keras' own call: the same results, TensorFlow's gradient kernels."""
  rng = np.random.default_rng(1)
  shape = (2, 8, 8, 3)
  ref, ours = _layers(4, **kwargs)
  ref.build(shape)
  ours.build(shape)
  for v_ref, v in zip(ref.weights, ours.weights):
    v.assign(v_ref)
  assert not ours.uses_forward_gradients()
  x = tf.constant(rng.normal(size=shape))
  dy = tf.constant(rng.normal(size=ref.compute_output_shape(shape)))
  for e, g in zip(_outputs_and_gradients(ref, x, dy), _outputs_and_gradients(ours, x, dy)):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-12, atol=1e-12)


def test_valid_1x1_and_modes():
  """A 1x1 "valid" convolution is a "same" one; "native" and the override select
  TensorFlow's kernels; "auto" is "forward" without a GPU, outside XLA; a bad mode is
  refused."""
  x = tf.zeros((1, 4, 4, 3))
  layer = Conv2D(2, 1, padding="valid")
  layer.build(x.shape)
  assert layer.gradients == "auto" and layer.uses_forward_gradients()
  assert not _gradient_ops(layer, x) & BACKPROP_OPS
  assert _gradient_ops(layer, x, jit_compile=True) & BACKPROP_OPS  # XLA: TensorFlow's
  with conv_gradients("forward"):
    assert not _gradient_ops(layer, x, jit_compile=True) & BACKPROP_OPS
  with conv_gradients("native"):
    assert not layer.uses_forward_gradients()
    assert _gradient_ops(layer, x) & BACKPROP_OPS
  assert layer.uses_forward_gradients()
  native = Conv2D(2, 1, gradients="native")
  assert not native.uses_forward_gradients()
  with conv_gradients("forward"):
    assert native.uses_forward_gradients()
  with pytest.raises(ValueError, match="one of"):
    Conv2D(2, 3, gradients="fast")
  with pytest.raises(ValueError, match="one of"):
    with conv_gradients("fast"):
      pass
  with pytest.raises(ValueError, match="odd kernel"):
    conv2d_with_forward_gradients(x, tf.zeros((2, 2, 3, 1)))


def test_second_derivatives_match():
  """The gradient is itself differentiable: ∂/∂x of ‖∂L/∂x‖² equals keras.layers.Conv2D's."""
  rng = np.random.default_rng(2)
  shape = (2, 5, 5, 3)
  ref, ours = _layers(4, 3, padding="same", activation="relu", bias_initializer="random_normal")
  ref.build(shape)
  ours.build(shape)
  for v_ref, v in zip(ref.weights, ours.weights):
    v.assign(v_ref)
  x = tf.constant(rng.normal(size=shape))

  def second(layer):
    with tf.GradientTape() as outer:
      outer.watch(x)
      with tf.GradientTape() as inner:
        inner.watch(x)
        loss = tf.reduce_sum(tf.sin(layer(x)))
      penalty = tf.reduce_sum(inner.gradient(loss, x) ** 2)
    return outer.gradient(penalty, x)

  np.testing.assert_allclose(second(ours).numpy(), second(ref).numpy(), rtol=1e-10, atol=1e-10)


def test_mixed_precision_and_config():
  """Under mixed_bfloat16 it computes in bfloat16 with float32 variables, and its
  gradients reach them; get_config round-trips the gradients setting."""
  layer = Conv2D(4, 3, padding="same", activation="relu", gradients="forward",
                 dtype="mixed_bfloat16")
  x = tf.random.normal((2, 6, 6, 3))
  with tf.GradientTape() as tape:
    y = layer(x)
    loss = tf.reduce_sum(tf.cast(y, tf.float32))
  grads = tape.gradient(loss, layer.trainable_variables)
  assert y.dtype == tf.bfloat16 and layer.kernel.dtype == "float32"
  assert all(g is not None and g.dtype == tf.float32 for g in grads)
  clone = Conv2D.from_config(layer.get_config())
  assert clone.gradients == "forward" and clone.kernel_size == (3, 3)
