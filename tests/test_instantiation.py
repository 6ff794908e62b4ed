"""gflow.train.instantiation: a step instantiated in the background is not run."""

import tensorflow as tf

from gflow.train.graph_options import LightStep
from gflow.train.instantiation import instantiating


def _counting_step():
  count = tf.Variable(0)

  @tf.function(autograph=False)
  def step(x):
    count.assign_add(1)
    return x * 2.0
  return step, count


def test_instantiation_runs_nothing_and_the_step_then_runs_once_per_call():
  step, count = _counting_step()
  x = tf.constant([1.0, 2.0])
  other = tf.function(lambda x: x + 1.0)
  with instantiating(step.get_concrete_function(x), (x,)):
    # the caller's own function calls run meanwhile, uncancelled
    assert other(x).numpy().tolist() == [2.0, 3.0]
  assert int(count.numpy()) == 0
  assert step(x).numpy().tolist() == [2.0, 4.0]
  assert int(count.numpy()) == 1


def test_a_light_step_is_instantiated_with_its_own_options():
  traced, count = _counting_step()
  step = LightStep(traced)
  x = tf.constant([3.0])
  with instantiating(step.get_concrete_function(x), (x,), step.call_options()):
    pass
  assert int(count.numpy()) == 0
  assert step(x).numpy().tolist() == [6.0]
  assert int(count.numpy()) == 1
