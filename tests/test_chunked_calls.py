"""call_in_chunks: per-variable work in a few shared calls, with the direct results."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gflow.train.chunked_calls import CHUNK, call_in_chunks, chunk_sizes
from gflow.train.fused_optimizers import FusedAdam, FusedAdamax

# 37 = 32 + 4 + 1: a full chunk and two shorter ones
SHAPES = [(3, 4), (5,), (), (2, 3, 4), (7, 1)] * 7 + [(6,), (1, 1)]


def _sums(rows):  # module-level: call_in_chunks keeps its traces under it
  return tf.add_n([tf.cast(tf.reduce_sum(t), tf.float32) for t, in rows])


def _tensors(shapes, seed=0):
  rng = np.random.default_rng(seed)
  return [tf.constant(rng.normal(size=s), tf.float32 if i % 3 else tf.float64)
          for i, s in enumerate(shapes)]


def _calls(graph):
  return [op for op in graph.get_operations()
          if op.type in ("PartitionedCall", "StatefulPartitionedCall")]


@pytest.mark.parametrize("n", list(range(0, 100)))
def test_chunk_sizes_cover_the_rows_with_few_distinct_sizes(n):
  sizes = chunk_sizes(n)
  assert sum(sizes) == n and sizes == sorted(sizes, reverse=True)
  assert all(s & (s - 1) == 0 and s <= CHUNK for s in sizes)  # powers of two
  assert len(sizes) - sizes.count(CHUNK) == len(set(sizes) - {CHUNK})  # each shorter once


def test_chunks_give_the_direct_results_in_few_calls_of_few_shared_functions():
  tensors = _tensors(SHAPES)
  expected = sum(float(np.sum(t.numpy())) for t in tensors)

  def total(*tensors):
    return tf.add_n(call_in_chunks(_sums, [(t,) for t in tensors]))
  fn = tf.function(total)
  graph = fn.get_concrete_function(*tensors).graph
  assert len(_calls(graph)) == len(chunk_sizes(len(SHAPES))) == 3
  np.testing.assert_allclose(fn(*tensors).numpy(), expected, rtol=1e-5)
  # the same chunk sizes and dtypes at other shapes: the same functions, no new trace
  functions = set(graph._functions)
  others = _tensors([(s[0] + 1,) + s[1:] if s else (2,) for s in SHAPES], seed=1)
  other_graph = tf.function(total).get_concrete_function(*others).graph
  assert set(other_graph._functions) == functions
  np.testing.assert_allclose(tf.function(total)(*others).numpy(),
                             sum(float(np.sum(t.numpy())) for t in others), rtol=1e-5)


def test_under_xla_the_body_runs_directly():
  tensors = _tensors(SHAPES)
  fn = tf.function(lambda *ts: tf.add_n(call_in_chunks(_sums, [(t,) for t in ts])),
                   jit_compile=True)
  assert not _calls(fn.get_concrete_function(*tensors).graph)
  np.testing.assert_allclose(fn(*tensors).numpy(),
                             sum(float(np.sum(t.numpy())) for t in tensors), rtol=1e-5)


@pytest.mark.parametrize("keras_cls,fused_cls",
                         [(keras.optimizers.Adam, FusedAdam),
                          (keras.optimizers.Adamax, FusedAdamax)], ids=["adam", "adamax"])
def test_fused_update_of_many_variables_in_chunks_equals_keras(keras_cls, fused_cls):
  start = [t.numpy().astype("float32") for t in _tensors(SHAPES)]

  def train(cls):
    variables = [keras.Variable(s, name=f"v{i}") for i, s in enumerate(start)]
    opt = cls(learning_rate=0.05)
    opt.build(variables)

    @tf.function
    def step(i):
      with tf.GradientTape() as tape:
        scale = 1.0 + tf.cast(i, tf.float32)
        loss = tf.add_n([tf.reduce_sum(tf.sin(v * scale)) for v in variables])
      opt.apply(tape.gradient(loss, variables), variables)
    for i in range(4):
      step(tf.constant(i))
    return [v.numpy() for v in variables + opt.variables], step
  expected, _ = train(keras_cls)
  got, step = train(fused_cls)
  graph = step.get_concrete_function(tf.constant(0)).graph
  assert len(_calls(graph)) == 3  # the update in three chunk calls
  moved = max(np.max(np.abs(e - s)) for e, s in zip(expected, start))
  assert moved > 1e-2  # positive control: 1,000 times the tolerance below
  for e, g in zip(expected, got):
    np.testing.assert_allclose(g, e, rtol=2e-5, atol=1e-5)
