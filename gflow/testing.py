"""The contract every gflow bijector and flow layer passes; plugin authors call it for their own.

    from gflow import testing
    testing.check_bijector(my_bijector, x, event_ndims=3)
    testing.check_flow_layer(my_layer, x, event_ndims=3)

or, for a factory `make(dtype) -> gflow.BijectorExample` as registered by a
plugin, `testing.check_example(make)`, which also checks the log-det against
the float64 autodiff Jacobian.

TFP caches (x, y) pairs by tensor: `inverse(forward(x))` returns x from the cache
without running the inverse. Every check here therefore runs each direction on
a fresh tensor (a copy made from numpy), so a wrong inverse or a wrong log-det
cannot pass by comparing a value with itself.
"""

import numpy as np
import tensorflow as tf

__all__ = ["check_bijector", "check_example", "check_flow_layer", "check_log_det_against_jacobian"]

MAX_JACOBIAN_DIMS = 256  # check_bijector's autodiff Jacobian check for events up to this size


def _np(t):
  return tf.nest.map_structure(lambda v: np.asarray(v), t)


def _fresh(t):
  """A new tensor with the value of `t`: no bijector has it in its cache."""
  return tf.constant(np.asarray(t))


def _name(bijector):
  return getattr(bijector, "name", type(bijector).__name__)


def _directions(bijector, x, y_fresh, x_fresh, event_ndims):
  """forward(x), inverse(y), fldj(x), ildj(y) and forward(inverse(y)), each on tensors
  the others did not produce (`y_fresh`, `x_fresh` are new copies of values). A
  bijector that changes the event rank (a fold) is given the latent side's rank."""
  y = bijector.forward(x)
  x_back = bijector.inverse(y_fresh)
  fldj = bijector.forward_log_det_jacobian(x_fresh, event_ndims=event_ndims)
  ildj = bijector.inverse_log_det_jacobian(
      tf.identity(y_fresh), event_ndims=bijector.forward_event_ndims(event_ndims))
  return y, x_back, fldj, ildj


def check_bijector(bijector, x, event_ndims, rtol=1e-4, atol=1e-4, jacobian=True):
  """Asserts, each direction computed afresh (never from TFP's cache):

  * inverse(forward(x)) = x and forward(inverse(y)) = y;
  * finite outputs; fldj(x) = −ildj(forward(x)); a log-det of the batch shape;
  * equal results eagerly and in `tf.function`;
  * with `jacobian` and events of at most `MAX_JACOBIAN_DIMS` dims, fldj(x) equal
    to log|det| of the autodiff Jacobian (in x's dtype, at tolerance 1e-3 for
    float32: enough to reject a wrong log-det; float64 checks are tighter in
    `check_log_det_against_jacobian`).

  Returns (y, fldj) as numpy arrays.
  """
  x = tf.convert_to_tensor(x)
  batch_shape = tuple(x.shape[:x.shape.rank - event_ndims])
  name = _name(bijector)
  y = np.asarray(bijector.forward(_fresh(x)))
  eager = _np(_directions(bijector, _fresh(x), _fresh(y), _fresh(x), event_ndims))
  graph_fn = tf.function(lambda a, b, c: _directions(bijector, a, b, c, event_ndims))
  graph = _np(graph_fn(_fresh(x), _fresh(y), _fresh(x)))
  y, x_back, fldj, ildj = eager
  for label, value in zip(["forward", "inverse", "fldj", "ildj"], eager):
    assert np.all(np.isfinite(value)), f"{name}: {label} is not finite."
  np.testing.assert_allclose(x_back, np.asarray(x), rtol=rtol, atol=atol,
                             err_msg=f"{name}: inverse(forward(x)) != x")
  y_again = bijector.forward(_fresh(x_back))  # forward of the inverse, not its cache
  np.testing.assert_allclose(np.asarray(y_again), y, rtol=rtol, atol=atol,
                             err_msg=f"{name}: forward(inverse(y)) != y")
  assert tuple(np.shape(fldj)) == batch_shape, (
      f"{name}: log-det shape {np.shape(fldj)} != batch shape {batch_shape}")
  assert tuple(np.shape(ildj)) == batch_shape, (
      f"{name}: inverse log-det shape {np.shape(ildj)} != batch shape {batch_shape}")
  np.testing.assert_allclose(fldj, -ildj, rtol=rtol, atol=atol,
                             err_msg=f"{name}: fldj(x) != -ildj(forward(x))")
  for label, e, g in zip(["forward", "inverse", "fldj", "ildj"], eager, graph):
    np.testing.assert_allclose(g, e, rtol=rtol, atol=atol,
                               err_msg=f"{name}: {label} differs in tf.function")
  event_dims = int(np.prod(x.shape[x.shape.rank - event_ndims:]))
  if jacobian and event_dims <= MAX_JACOBIAN_DIMS and np.shape(y) == tuple(x.shape):
    tol = 1e-3 if x.dtype != tf.float64 else max(rtol, 1e-6)
    check_log_det_against_jacobian(bijector, x, event_ndims, rtol=tol, atol=tol)
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
  flat = tf.reshape(_fresh(x), [-1, d])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    y = bijector.forward(tf.reshape(flat, [-1, *event_shape]))
    y_flat = tf.reshape(y, [flat.shape[0], -1])
  if y_flat.shape[-1] != d:
    raise ValueError(f"Jacobian check needs a square map; {d} → {y_flat.shape[-1]} dims.")
  jac = tape.batch_jacobian(y_flat, flat)
  _, expected = tf.linalg.slogdet(jac)
  fldj = bijector.forward_log_det_jacobian(_fresh(x), event_ndims=event_ndims)
  assert tuple(np.shape(fldj)) == tuple(batch_shape), (
      f"{_name(bijector)}: log-det shape {np.shape(fldj)} != batch shape {tuple(batch_shape)}")
  np.testing.assert_allclose(
      np.reshape(fldj, [-1]), expected.numpy(), rtol=rtol, atol=atol,
      err_msg=f"{_name(bijector)}: fldj != log|det batch_jacobian|")


def check_flow_layer(layer, x, event_ndims, conditioning=None, rtol=1e-4, atol=1e-4):
  """A `gflow.layers.FlowLayer`'s one-pass training path equals its bijector:
  `forward_and_log_det(x)` = (bijector.forward(x), bijector.fldj(x)) with a fresh
  bijector and fresh tensors, eagerly and in `tf.function`, and its inverse
  (`inverse_of`, the sampling path) maps a fresh copy of the bijector's forward(x)
  back to x; then the bijector passes `check_bijector`. `conditioning` is passed to
  all."""
  from gflow.layers.base import bijector_of, forward_and_log_det_of, inverse_of
  x = tf.convert_to_tensor(x)
  name = layer.name

  def one_pass(t):
    return forward_and_log_det_of(layer, t, event_ndims, False, conditioning)

  def reference(t):
    b = bijector_of(layer, conditioning)
    return b.forward(t), b.forward_log_det_jacobian(_fresh(t), event_ndims=event_ndims)

  def inverse(t):
    return inverse_of(layer, t, conditioning)

  fn_inverse = {"eager": inverse, "tf.function": tf.function(inverse)}
  expected = _np(reference(_fresh(x)))
  for label, fn in [("eager", one_pass), ("tf.function", tf.function(one_pass))]:
    z, ldj = _np(fn(_fresh(x)))
    np.testing.assert_allclose(z, expected[0], rtol=rtol, atol=atol,
                               err_msg=f"{name}: forward_and_log_det ({label}) output != "
                                       "bijector().forward")
    assert np.shape(ldj) == np.shape(expected[1]), (
        f"{name}: forward_and_log_det log-det shape {np.shape(ldj)} != "
        f"{np.shape(expected[1])}")
    np.testing.assert_allclose(ldj, expected[1], rtol=rtol, atol=atol,
                               err_msg=f"{name}: forward_and_log_det ({label}) log-det != "
                                       "bijector().forward_log_det_jacobian")
    back = _np(fn_inverse[label](_fresh(expected[0])))
    np.testing.assert_allclose(back, _np(x), rtol=rtol, atol=atol,
                               err_msg=f"{name}: inverse ({label}) of the forward != x")
  check_bijector(bijector_of(layer, conditioning), x, event_ndims, rtol=rtol, atol=atol)


def check_example(factory):
  """The full contract for a registered example factory `factory(dtype)`.

  float32: `check_bijector` (and `check_flow_layer` when the example has a
  layer); float64: the same, plus the autodiff Jacobian at tight tolerance.
  """
  ex32 = factory(tf.float32)
  check_bijector(ex32.bijector, ex32.x, ex32.event_ndims)
  if getattr(ex32, "layer", None) is not None:
    check_flow_layer(ex32.layer, ex32.x, ex32.event_ndims, conditioning=ex32.conditioning)
  ex64 = factory(tf.float64)
  check_bijector(ex64.bijector, ex64.x, ex64.event_ndims, rtol=1e-9, atol=1e-9)
  check_log_det_against_jacobian(ex64.bijector, ex64.x, ex64.event_ndims)
  if getattr(ex64, "layer", None) is not None:
    check_flow_layer(ex64.layer, ex64.x, ex64.event_ndims, conditioning=ex64.conditioning,
                     rtol=1e-9, atol=1e-9)
