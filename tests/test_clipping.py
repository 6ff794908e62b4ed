"""Clipping by the global norm (gflow.train.clipping): TensorFlow's results, and one sum
that XLA does not copy into every variable's update."""

import numpy as np
import pytest
import tensorflow as tf

from gflow.train.clipping import clip_by_global_norm, total


def _grads():
  rng = np.random.default_rng(0)
  dense = [tf.constant(rng.normal(size=s), tf.float32) for s in ([3, 4], [5], [2, 2, 2])]
  sparse = tf.IndexedSlices(tf.constant(rng.normal(size=[2, 4]), tf.float32),
                            tf.constant([0, 3]), tf.constant([5, 4]))
  return [dense[0], None, sparse, dense[1], dense[2]]


def _dense(g):
  return None if g is None else tf.convert_to_tensor(g).numpy()


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
@pytest.mark.parametrize("clip", [0.5, 100.0])
def test_the_same_gradients_and_norm_as_tensorflow(mode, clip):
  grads = _grads()

  def ours():
    clipped, norm = clip_by_global_norm(grads, clip)
    return [tf.convert_to_tensor(g) if g is not None else tf.zeros([0]) for g in clipped], norm
  if mode != "eager":
    ours = tf.function(ours, jit_compile=mode == "xla")
  clipped, norm = ours()
  expected, expected_norm = tf.clip_by_global_norm(grads, clip)
  np.testing.assert_allclose(norm, expected_norm, rtol=1e-6)
  assert (clip < norm) == (clip == 0.5)  # one case clips, the other does not
  for got, want in zip(clipped, expected):
    if want is None:
      assert got.shape == [0]
    else:
      np.testing.assert_allclose(got, _dense(want), rtol=1e-6, atol=1e-7)


def test_a_norm_that_is_not_finite_makes_every_gradient_nan():
  grads = [tf.constant([1.0, np.inf]), tf.constant([2.0])]
  clipped, norm = clip_by_global_norm(grads, 1.0)
  assert not np.isfinite(norm) and all(np.isnan(g.numpy()).all() for g in clipped)


def _gated_step(sum_of, n):
  """A compiled step updating n variables where the sum of all gradients is finite."""
  variables = [tf.Variable(tf.fill([3, 2], 0.1 * i)) for i in range(n)]

  @tf.function(jit_compile=True)
  def step(x):
    with tf.GradientTape() as tape:
      loss = tf.add_n([tf.reduce_sum(tf.tanh(v * x)) for v in variables])
    grads = tape.gradient(loss, variables)
    ok = tf.math.is_finite(sum_of([tf.reduce_sum(g) for g in grads]))
    for v, g in zip(variables, grads):
      v.assign(tf.where(ok, v - 0.01 * g, v))
    return loss
  hlo = step.experimental_get_compiler_ir(tf.constant(2.0))(stage="optimized_hlo")
  return hlo.count(" add(")


def test_xla_keeps_one_sum_instead_of_one_per_reader():
  n = 64
  assert _gated_step(tf.add_n, n) > n * n / 2  # the control: TensorFlow's sum is copied
  assert _gated_step(total, n) < 4 * n
