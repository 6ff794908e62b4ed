import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from gflow import testing
from gflow.bijectors import FactorOut
from gflow import examples


def test_contract():
  testing.check_example(examples.factor_out)


def test_scores_factored_half_with_the_conditional_prior():
  ex = examples.factor_out(tf.float64)
  b, x = ex.bijector, ex.x
  x1, x2 = x[..., :2], x[..., 2:]
  log_sigma, mu = tf.split(ex.owner(x1), 2, axis=-1)
  prior = tfp.distributions.Normal(mu, tf.exp(log_sigma))
  expected = tf.reduce_sum(prior.log_prob(x2), [1, 2, 3])
  z = b.forward(x)
  std = tfp.distributions.Normal(tf.constant(0., tf.float64), 1.)
  got = (tf.reduce_sum(std.log_prob(z[..., 2:]), [1, 2, 3])
         + b.forward_log_det_jacobian(x, event_ndims=3)
         - b.inner.forward_log_det_jacobian(x1, event_ndims=3))
  np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_without_prior_network_the_factored_half_passes_through():
  b = FactorOut()
  x = tf.random.normal([2, 2, 2, 4])
  np.testing.assert_array_equal(b.forward(x), x)
  assert b.is_constant_jacobian


def test_bad_inputs():
  with pytest.raises(ValueError, match="at least 2 known channels"):
    FactorOut().forward(tf.zeros([1, 2, 2, 1]))
