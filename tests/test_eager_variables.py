"""fast_variable_creation: one TensorFlow-level name for eager variables, nothing else changed."""

import keras
import numpy as np
import tensorflow as tf

from gflow.eager_variables import SHARED_NAME, fast_variable_creation
from gflow.train.fused_optimizers import FusedAdamax


def _model(seed):
  keras.utils.set_random_seed(seed)
  with tf.name_scope("outer"):
    model = keras.Sequential([keras.layers.Dense(4, name="a"), keras.layers.Dense(2, name="b")], name="m")
    model.build((None, 3))
  return model


def test_eager_variables_share_the_tensorflow_name_and_keep_their_keras_names():
  plain = _model(0)
  with fast_variable_creation():
    fast = _model(0)
    opt = FusedAdamax(1e-2)
    opt.build(fast.trainable_variables)
  assert [v.path for v in fast.weights] == [v.path for v in plain.weights]
  assert [v.name for v in fast.weights] == [v.name for v in plain.weights]
  assert len({v.value.name for v in plain.weights}) == len(plain.weights)  # scoped, unique
  assert {v.value.name for v in fast.weights + opt.variables} == {f"{SHARED_NAME}:0"}
  assert len({v.path for v in opt.variables}) == len(opt.variables)
  for a, b in zip(fast.weights, plain.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoints_move_between_models_built_with_and_without_it(tmp_path):
  with fast_variable_creation():
    fast = _model(1)
  plain = _model(2)
  assert not np.allclose(fast.weights[0].numpy(), plain.weights[0].numpy())
  path = tf.train.Checkpoint(model=fast).save(str(tmp_path / "ckpt"))
  tf.train.Checkpoint(model=plain).restore(path).assert_existing_objects_matched()
  for a, b in zip(fast.weights, plain.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_variables_created_while_tracing_keep_their_names():
  created = []

  @tf.function
  def make():
    if not created:
      created.append(tf.Variable(1.0, name="traced"))
    return created[0].read_value()
  with fast_variable_creation():
    make()
  assert created[0].name.startswith("traced")
