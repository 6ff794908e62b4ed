"""The contract every gflow bijector passes; plugin authors call it for their own.

    from gflow import testing
    testing.check_bijector(my_bijector, x, event_ndims=3)

or, for a factory `make(dtype) -> gflow.BijectorExample` as registered by a
plugin, `testing.check_example(make)`, which also checks the log-det against
the float64 autodiff Jacobian.
"""

import numpy as np
import tensorflow as tf

__all__ = ["check_bijector", "check_example", "check_log_det_against_jacobian"]


def _np(t):
  return tf.nest.map_structure(lambda v: np.asarray(v), t)


def _run(bijector, x, event_ndims):
  y = bijector.forward(x)
  x_back = bijector.inverse(y)
  fldj = bijector.forward_log_det_jacobian(x, event_ndims=event_ndims)
  ildj = bijector.inverse_log_det_jacobian(y, event_ndims=event_ndims)
  return y, x_back, fldj, ildj


def check_bijector(bijector, x, event_ndims, rtol=1e-4, atol=1e-4):
  """Asserts the inverse round trip, finite outputs, fldj(x) = −ildj(f(x)),
  a log-det of the batch shape, and equal results eagerly and in `tf.function`.

  Returns (y, fldj) as numpy arrays.
  """
  x = tf.convert_to_tensor(x)
  batch_shape = x.shape[:x.shape.rank - event_ndims]
  name = getattr(bijector, "name", type(bijector).__name__)
  eager = _np(_run(bijector, x, event_ndims))
  # A fresh copy of the input defeats TFP's per-tensor cache, so the graph
  # really recomputes every direction.
  graph = _np(tf.function(lambda t: _run(bijector, t, event_ndims))(tf.identity(x)))
  y, x_back, fldj, ildj = eager
  for label, value in zip(["forward", "inverse", "fldj", "ildj"], eager):
    assert np.all(np.isfinite(value)), f"{name}: {label} is not finite."
  np.testing.assert_allclose(x_back, np.asarray(x), rtol=rtol, atol=atol,
                             err_msg=f"{name}: inverse(forward(x)) != x")
  np.testing.assert_allclose(fldj, -ildj, rtol=rtol, atol=atol,
                             err_msg=f"{name}: fldj(x) != -ildj(forward(x))")
  assert tuple(np.shape(fldj)) == tuple(batch_shape), (
      f"{name}: log-det shape {np.shape(fldj)} != batch shape {tuple(batch_shape)}")
  for label, e, g in zip(["forward", "inverse", "fldj", "ildj"], eager, graph):
    np.testing.assert_allclose(g, e, rtol=rtol, atol=atol,
                               err_msg=f"{name}: {label} differs in tf.function")
  # Inverse first, from a fresh tensor: the inverse must not need the cache.
  y_fresh = tf.constant(y)
  np.testing.assert_allclose(_np(bijector.forward(bijector.inverse(y_fresh))), y,
                             rtol=rtol, atol=atol,
                             err_msg=f"{name}: forward(inverse(y)) != y")
  return y, fldj


def check_log_det_against_jacobian(bijector, x, event_ndims, rtol=1e-6, atol=1e-6):
  """log|det J| from `batch_jacobian` + `slogdet` equals the bijector's fldj.

  Use float64 `x` (and float64 parameters) on small events: the full D×D
  Jacobian of each example is formed. Output and input sizes must agree.
  """
  x = tf.convert_to_tensor(x)
  batch_shape = x.shape[:x.shape.rank - event_ndims]
  event_shape = x.shape[x.shape.rank - event_ndims:]
  d = event_shape.num_elements()
  flat = tf.reshape(x, [-1, d])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    y = bijector.forward(tf.reshape(flat, [-1, *event_shape]))
    y_flat = tf.reshape(y, [flat.shape[0], -1])
  if y_flat.shape[-1] != d:
    raise ValueError(f"Jacobian check needs a square map; {d} → {y_flat.shape[-1]} dims.")
  jac = tape.batch_jacobian(y_flat, flat)
  _, expected = tf.linalg.slogdet(jac)
  fldj = bijector.forward_log_det_jacobian(x, event_ndims=event_ndims)
  np.testing.assert_allclose(
      np.reshape(fldj, [-1]), expected.numpy(), rtol=rtol, atol=atol,
      err_msg=f"{getattr(bijector, 'name', bijector)}: fldj != log|det batch_jacobian|")
  assert tuple(np.shape(fldj)) == tuple(batch_shape)


def check_example(factory):
  """The full contract for a registered example factory `factory(dtype)`.

  float32: `check_bijector`; float64: the same, plus the autodiff Jacobian.
  """
  ex32 = factory(tf.float32)
  check_bijector(ex32.bijector, ex32.x, ex32.event_ndims)
  ex64 = factory(tf.float64)
  check_bijector(ex64.bijector, ex64.x, ex64.event_ndims, rtol=1e-9, atol=1e-9)
  check_log_det_against_jacobian(ex64.bijector, ex64.x, ex64.event_ndims)
