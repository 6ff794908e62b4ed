"""The Python API refuses bad arguments with one clear error naming what it expects."""

import numpy as np
import pytest
import tensorflow as tf

from gflow import bijectors
from gflow.train.trainer import build_model
from tests.conftest import glow_config


@pytest.fixture(scope="module")
def model():
  c = glow_config("digits")
  c.model.levels, c.model.steps, c.model.width = 2, 1, 8
  return build_model(c, (8, 8, 1))


@pytest.mark.parametrize("call,message", [
    (lambda m: m.sample(0, seed=0), r"sample_shape must be >= 1; got 0"),
    (lambda m: m.sample((2, -1), seed=0), r"sample_shape must be >= 1; got \(2, -1\)"),
    (lambda m: m.sample(2, seed=0, temperature=0.0), "temperature must be a finite number > 0"),
    (lambda m: m.sample(2, seed=0, temperature=float("inf")), "got inf"),
    (lambda m: m.generate(0, seed=[0, 0]), "n must be >= 1; got 0"),
    (lambda m: m.generate(2, seed=[0, 0], temperature=float("nan")), "got nan"),
    (lambda m: m.bits_per_dim(np.full([2, 8, 8, 1], 256)),
     r"lie in \[0, 256\); got values in \[256, 256\]"),
    (lambda m: m.bits_per_dim(np.full([2, 8, 8, 1], -3)), r"got values in \[-3, -3\]"),
    (lambda m: m.log_prob(np.zeros([2, 8, 8, 3], np.float32)),
     r"expects values of shape \[\.\.\., 8, 8, 1\]"),
    (lambda m: m.bijector.forward(np.zeros([2, 8, 8, 3], np.float32)),
     r"Glow.bijector expects values of shape \[\.\.\., 8, 8, 1\]; got \(2, 8, 8, 3\)"),
])
def test_bad_arguments_are_value_errors_naming_the_expectation(model, call, message):
  with pytest.raises(ValueError, match=message):
    call(model)


def test_integer_images_in_log_prob_are_a_type_error_pointing_to_bits_per_dim(model):
  with pytest.raises(TypeError, match="bits_per_dim"):
    model.log_prob(np.zeros([2, 8, 8, 1], np.int32))


def test_log_prob_takes_any_batch_shape_as_in_tfp(model):
  x = model.sample(6, seed=[1, 2])
  batched = model.log_prob(x)
  assert model.log_prob(x[0]).shape == () and model.log_prob(x[0]).numpy() == pytest.approx(
      batched[0].numpy(), rel=1e-5, abs=1e-3)
  two_axes = model.log_prob(tf.reshape(x, [2, 3, 8, 8, 1]))
  np.testing.assert_allclose(two_axes, tf.reshape(batched, [2, 3]), rtol=1e-5, atol=1e-3)
  assert model.sample(seed=[0, 1]).shape == (8, 8, 1)  # sample_shape () still one event


def test_expect_shape_passes_the_contract_and_the_right_shape_through_unchanged():
  from gflow import testing
  x = tf.random.stateless_normal([3, 4, 4, 2], [0, 1])
  testing.check_bijector(bijectors.ExpectShape([4, 4, 2]), x, event_ndims=3)
  testing.check_log_det_against_jacobian(bijectors.ExpectShape([4, 4, 2]),
                                         tf.cast(x, tf.float64), event_ndims=3)
  b = bijectors.ExpectShape([4, 4, 2], owner="m")
  x = tf.random.stateless_normal([3, 4, 4, 2], [0, 1])
  np.testing.assert_array_equal(b.forward(x), x)
  assert np.all(b.forward_log_det_jacobian(x, event_ndims=3).numpy() == 0.0)
  with pytest.raises(ValueError, match=r"m expects values of shape \[\.\.\., 4, 4, 2\]"):
    b.forward(tf.zeros([3, 4, 2]))


@pytest.mark.parametrize("value,choices,message", [
    ("afine", ("affine", "additive"), "Unknown coupling 'afine'; did you mean 'affine'\\? "
                                      "choose one of 'affine', 'additive'."),
    ("zzz", ("affine", "additive"), "Unknown coupling 'zzz'; choose one of"),
])
def test_a_value_outside_its_choices_names_the_near_match(value, choices, message):
  from gflow.choices import check_choice
  assert check_choice("affine", choices, "coupling") == "affine"
  with pytest.raises(ValueError, match=message):
    check_choice(value, choices, "coupling")
