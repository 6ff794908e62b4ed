"""FusedAdam and FusedAdamax: Keras' updates, one kernel per variable."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from gflow.train.fused_optimizers import FusedAdam, FusedAdamax

SHAPES = [(3, 4), (5,), ()]
PAIRS = [(keras.optimizers.Adam, FusedAdam), (keras.optimizers.Adamax, FusedAdamax)]


def _variables():
  return [keras.Variable(np.random.default_rng(i).normal(size=s).astype("float32"), name=f"v{i}")
          for i, s in enumerate(SHAPES)]


def _train(cls, steps=6, **kwargs):
  """`steps` compiled updates of a loss whose gradient changes every step, with a
  decaying learning rate; returns the variables and the optimizer's slots."""
  variables = _variables()
  schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5)
  opt = cls(learning_rate=schedule, **kwargs)
  opt.build(variables)

  @tf.function
  def step(i):
    with tf.GradientTape() as tape:
      scale = 1.0 + tf.cast(i, tf.float32)
      loss = sum(tf.reduce_sum(tf.sin(v * scale)) for v in variables)
    opt.apply(tape.gradient(loss, variables), variables)
  for i in range(steps):
    step(tf.constant(i))
  return [v.numpy() for v in variables], [v.numpy() for v in opt.variables], opt, step


@pytest.mark.parametrize("keras_cls,fused_cls", PAIRS, ids=["adam", "adamax"])
def test_fused_update_equals_keras_update(keras_cls, fused_cls):
  expected, expected_slots, _, _ = _train(keras_cls)
  got, got_slots, _, _ = _train(fused_cls)
  start = [v.numpy() for v in _variables()]
  moved = max(np.max(np.abs(e - s)) for e, s in zip(expected, start))
  assert moved > 1e-2  # positive control: far beyond the tolerance below
  for e, g in zip(expected + expected_slots, got + got_slots):
    np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-6)


def _executed_op_types(graph_def):
  """The types of the operations a run of `graph_def` executes: its nodes, and the nodes of
  the functions it calls, once per call."""
  library = {f.signature.name: f for f in graph_def.library.function}

  def types(nodes):
    for node in nodes:
      if node.op in ("PartitionedCall", "StatefulPartitionedCall"):
        yield from types(library[node.attr["f"].func.name].node_def)
      else:
        yield node.op
  return list(types(graph_def.node))


@pytest.mark.parametrize("keras_cls,fused_cls", PAIRS, ids=["adam", "adamax"])
def test_one_kernel_per_variable(keras_cls, fused_cls):
  def update_ops(cls):
    *_, step = _train(cls, steps=1)
    return _executed_op_types(step.get_concrete_function(tf.constant(0)).graph.as_graph_def())
  fused, plain = update_ops(fused_cls), update_ops(keras_cls)
  kernel = "ResourceApplyAdam" if fused_cls is FusedAdam else "ResourceApplyAdaMax"
  assert fused.count(kernel) == len(SHAPES) and kernel not in plain
  assigns = lambda ops: sum(t.startswith("Assign") for t in ops)  # noqa: E731
  assert assigns(plain) == 3 * len(SHAPES) + 1  # m, v and θ per variable; the step count
  assert assigns(fused) == 1  # the step count: every other update is inside the kernels


def test_amsgrad_keeps_keras_update():
  expected, expected_slots, _, _ = _train(keras.optimizers.Adam, amsgrad=True)
  got, got_slots, _, _ = _train(FusedAdam, amsgrad=True)
  for e, g in zip(expected + expected_slots, got + got_slots):
    np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-6)


def test_checkpoints_are_keras_checkpoints(tmp_path):
  """A Keras Adamax checkpoint restores into FusedAdamax (same slots, same keys)."""
  _, slots, opt, _ = _train(keras.optimizers.Adamax, steps=2)
  path = tf.train.Checkpoint(optimizer=opt).save(str(tmp_path / "ckpt"))
  fused = FusedAdamax(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5))
  fused.build(_variables())
  tf.train.Checkpoint(optimizer=fused).restore(path).assert_existing_objects_matched()
  assert int(fused.iterations.numpy()) == 2
  for e, g in zip(slots, fused.variables):
    np.testing.assert_array_equal(g.numpy(), e)


def test_checkpoint_leaves_the_model_weights_to_the_model(tmp_path):
  """The optimizer saves its step, learning rate and slots, not the weights it updates
  (Keras would save each weight again under `optimizer/_trainable_variables/<i>`)."""
  variables = _variables()
  opt = FusedAdamax(learning_rate=1e-3)
  opt.build(variables)
  path = tf.train.Checkpoint(optimizer=opt).save(str(tmp_path / "ckpt"))
  keys = [k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
          if k.startswith("optimizer/")]
  assert not [k for k in keys if "_trainable_variables" in k], keys
  assert len(keys) == len(opt.variables) == 2 + 2 * len(variables), keys


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("cls", [FusedAdam, FusedAdamax], ids=["adam", "adamax"])
def test_gated_update_is_the_update_when_open_and_changes_nothing_when_closed(cls, jit):
  """Gate open: the same variables and slots as `apply`. Gate closed, with NaN and Inf in
  the gradients, after some steps (slots non-zero): every variable, slot and the step
  count bit for bit as before. (In a graph each chunk's kernels run under a `tf.cond`;
  compiled by XLA the gradients are selected.)"""
  _, _, opt, _ = _train(cls, steps=3)  # a trained optimizer, its slots non-zero
  variables = opt._trainable_variables
  before = [v.numpy() for v in variables + opt.variables]
  assert all(np.any(s != 0) for s in before[len(variables) + 2:])
  grads = [tf.fill(v.shape, 0.3) for v in variables]
  bad = [tf.fill(v.shape, np.nan) for v in variables[:-1]] + [tf.fill(variables[-1].shape,
                                                                       np.inf)]

  @functools.partial(tf.function, jit_compile=jit)
  def gated(gate, grads):
    opt.apply_gated(gate, grads, variables)
  gated(tf.constant(False), bad)
  for b, v in zip(before, variables + opt.variables):
    np.testing.assert_array_equal(v.numpy(), b)
  gated(tf.constant(True), grads)
  gated_after = [v.numpy() for v in variables + opt.variables]
  for v, b in zip(variables + opt.variables, before):
    v.assign(b)
  tf.function(lambda: opt.apply(grads, variables), jit_compile=jit)()
  moved = max(np.max(np.abs(a - b)) for a, b in zip(gated_after, before))
  assert moved > 1e-3  # positive control: the open gate did update
  for a, v in zip(gated_after, variables + opt.variables):
    np.testing.assert_array_equal(a, v.numpy())


def test_gating_an_update_it_cannot_fuse_is_an_error():
  variables = _variables()
  opt = FusedAdam(learning_rate=1e-3, amsgrad=True)
  opt.build(variables)
  assert not opt.can_gate([tf.zeros_like(v) for v in variables], variables)
  with pytest.raises(ValueError, match="cannot gate"):
    opt.apply_gated(tf.constant(True), [tf.zeros_like(v) for v in variables], variables)
