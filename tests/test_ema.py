import numpy as np
import pytest
import tensorflow as tf

from gflow.train import EMA


def test_average_with_warm_start_and_swap():
  v = tf.Variable([1.0, 2.0])
  ema = EMA({"v": v}, decay=0.9)
  expected = np.array([1.0, 2.0])
  for t, value in enumerate([[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], start=1):
    v.assign(value)
    ema.update()
    d = min(0.9, (1 + t) / (10 + t))
    expected = d * expected + (1 - d) * np.array(value)
  np.testing.assert_allclose(ema.shadows["v"].numpy(), expected, rtol=1e-6)
  with ema.swapped():
    np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6)
  np.testing.assert_array_equal(v.numpy(), [7.0, 8.0])


def test_is_checkpointed(tmp_path):
  v = tf.Variable([1.0])
  ema = EMA({"v": v}, decay=0.5)
  v.assign([3.0])
  ema.update()
  path = tf.train.Checkpoint(ema=ema).save(str(tmp_path / "c"))
  fresh = EMA({"v": tf.Variable([0.0])}, decay=0.5)
  tf.train.Checkpoint(ema=fresh).restore(path).assert_consumed()
  np.testing.assert_allclose(fresh.shadows["v"].numpy(), ema.shadows["v"].numpy())
  assert int(fresh.updates.numpy()) == 1


def test_checkpoint_keys_shadows_by_name_and_leaves_the_model_its_own(tmp_path):
  """Only the shadows, keyed like the model, and the update count: the model's own
  variables are not saved again under positional keys a refactor could reorder."""
  import keras
  variables = {"b": keras.Variable([1.0, 2.0]), "a": keras.Variable([3.0])}
  ema = EMA(variables, decay=0.5)
  path = tf.train.Checkpoint(ema=ema).save(str(tmp_path / "c"))
  keys = {k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
          if not k.startswith(("_CHECKPOINTABLE", "save_counter"))}
  assert keys == {"ema/shadows/a/.ATTRIBUTES/VARIABLE_VALUE",
                  "ema/shadows/b/.ATTRIBUTES/VARIABLE_VALUE",
                  "ema/updates/.ATTRIBUTES/VARIABLE_VALUE"}, keys
  assert len(ema.variables) == 3


def test_bad_decay():
  with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
    EMA([tf.Variable(1.0)], decay=1.0)
