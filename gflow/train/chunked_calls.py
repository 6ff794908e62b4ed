"""Per-variable work as a few calls of shared functions, not thousands of graph operations.

A training step does the same small things to every variable: sum its gradient for
the NaN/Inf check, update it with its optimizer's kernel. Written out per variable,
that was most of a deep flow's step graph (DenseFlow-74-10: 3,423 variables; three
operations and ~17 edges each), which TensorFlow traces, Grappler optimises and the
runtime instantiates before the first step. `call_in_chunks(body, rows, constants)`
calls `body` on consecutive chunks of the rows (one row per variable) through
functions whose inputs have any shape: one trace per chunk size and dtypes serves
every chunk like it, and the functions stay calls (`_noinline`), so the step's graph
holds one call per chunk and each function's operations are traced and optimised
once. Inside a function that XLA compiles as a whole, `body` runs on all rows
directly (XLA sees every shape and compiles the operations anyway).
"""

import tensorflow as tf

from gflow.xla_context import in_xla_cluster

__all__ = ["CHUNK", "chunk_sizes", "call_in_chunks"]

CHUNK = 32  # rows per call; shorter chunks (powers of two) take the remainder
_FUNCTIONS = {}  # (body, chunk's dtypes, constants' specs) → tf.function


def chunk_sizes(n):
  """Sizes of consecutive chunks of n rows: full chunks, then the remainder in
  decreasing powers of two (so a few function traces serve any n)."""
  sizes, rest, size = [CHUNK] * (n // CHUNK), n % CHUNK, CHUNK // 2
  while rest:
    if rest >= size:
      sizes.append(size)
      rest -= size
    size //= 2
  return sizes


def call_in_chunks(body, rows, constants=()):
  """[body(chunk, *constants) for each chunk of `rows`]: `rows` is a list of tuples of
  tensors (one per variable), `constants` tensors (or nests of them, e.g. a dict of
  scalars) every call shares. `body` must be a module-level function (its traces are
  kept under it) that works for inputs of any shape, and it runs in a graph; its
  outputs are tensors (or None)."""
  rows = [tuple(tf.convert_to_tensor(t) for t in row) for row in rows]
  constants = tf.nest.map_structure(tf.convert_to_tensor, tuple(constants))
  if in_xla_cluster() or tf.executing_eagerly():
    return [body(rows, *constants)] if rows else []
  results, start = [], 0
  for size in chunk_sizes(len(rows)):
    chunk = rows[start:start + size]
    start += size
    results.append(_function(body, chunk, constants)(chunk, *constants))
  return results


def _function(body, chunk, constants):
  dtypes = tuple(tuple(t.dtype for t in row) for row in chunk)
  specs = tf.nest.map_structure(lambda c: tf.TensorSpec(c.shape, c.dtype), constants)
  key = (body, dtypes, repr(specs))
  if key not in _FUNCTIONS:
    signature = [[tuple(tf.TensorSpec(None, d) for d in row) for row in dtypes], *specs]
    _FUNCTIONS[key] = tf.function(
        lambda chunk, *constants: body([tuple(row) for row in chunk], *constants),
        input_signature=signature, autograph=False,
        experimental_attributes={"_noinline": True})
  return _FUNCTIONS[key]
