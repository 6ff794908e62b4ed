"""How close a training step runs to this CPU's arithmetic rate (a roofline check).

Traces one training step (the loss, its gradients, an Adamax update: graph, XLA off,
gflow's defaults) and counts the floating-point operations of its convolutions and
matrix products in the traced graph, following every function call (DenseFlow's shared
module traces and their gradients) and counting each call: convolutions (including
TensorFlow's `Conv2DBackpropInput`/`-Filter` and the forward convolutions gflow
differentiates by) at 2·k_h·k_w·c_in·c_out per output position, matmuls at 2·m·n·k.
Everything else (additions, transposes, the 1x1 convolutions' QR, …) is left out, so
the count is a lower bound on the work. The step is then timed (`--iters` calls after
a warm-up) and its rate printed against the best rates TensorFlow reaches on this
machine for one large float32 matmul (2048³) and one of DenseFlow's convolutions
(16x16, 432→64, 3x3, batch 8): what "as fast as this CPU goes" means here.
`--hlo` also counts the step XLA compiles (`jit_compile=True`, its optimised HLO: the
convolutions and dots after XLA's own simplifications, e.g. merged repeats).
`--reference_seconds` adds another implementation's measured seconds per step of the
same model (e.g. the authors' PyTorch DenseFlow from `reference_denseflow_step.py`):
the rate it implies, and the step time gflow would need for a given speed-up
(`--speedup`).

    python benchmarks/step_flops.py --model=denseflow-74-10 --batch=8 --reference_seconds=9.0
    python benchmarks/step_flops.py --model=glow --batch=16
    python benchmarks/step_flops.py --model=tfb-glow --batch=16 --hlo
"""

import argparse
import math
import os
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALLS = ("PartitionedCall", "StatefulPartitionedCall")
CONVS = ("Conv2D", "_FusedConv2D")


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--model", default="denseflow-45-6",
                 choices=("denseflow-74-10", "denseflow-45-6", "glow", "tfb-glow"))
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--iters", type=int, default=3)
  p.add_argument("--reference_seconds", type=float, default=0.,
                 help="another implementation's seconds per step of the same model")
  p.add_argument("--speedup", type=float, default=1.5)
  p.add_argument("--hlo", action="store_true", help="also count the XLA-compiled step's HLO")
  args = p.parse_args()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.path[:0] = [REPO, os.path.join(REPO, "benchmarks")]
  import tensorflow as tf

  from gflow.train.trainer import OPTIMIZERS
  variables, loss_fn, x = _model(args)
  optimizer = OPTIMIZERS["adamax"](1e-3)
  optimizer.build(variables)

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      loss = loss_fn(x)
    optimizer.apply(tape.gradient(loss, variables), variables)
    return loss

  start = time.perf_counter()
  graph = step.get_concrete_function(x).graph
  flops, counted = graph_flops(graph)
  print(f"{args.model}, batch {args.batch}: {flops / 1e9:.1f} GFLOP per training step in "
        f"{counted} convolutions and matmuls (traced in {time.perf_counter() - start:.1f} s)",
        flush=True)
  if args.hlo:
    compiled = tf.function(step.python_function, jit_compile=True)
    hlo = compiled.experimental_get_compiler_ir(x)(stage="optimized_hlo")
    counts = hlo_flops(hlo)
    print(f"compiled by XLA: {sum(counts.values()) / 1e9:.2f} GFLOP (convolutions "
          f"{counts['convolution'] / 1e9:.2f} in {hlo.count(' convolution(')}, dots "
          f"{counts['dot'] / 1e9:.2f} in {hlo.count(' dot(')})", flush=True)
  step(x).numpy()
  seconds = []
  for _ in range(args.iters):
    start = time.perf_counter()
    step(x).numpy()
    seconds.append(time.perf_counter() - start)
  best, median = min(seconds), sorted(seconds)[len(seconds) // 2]
  matmul, conv = peak_rates()
  print(f"step: median {median:.3f} s ({flops / median / 1e9:.1f} GFLOP/s), best {best:.3f} s "
        f"({flops / best / 1e9:.1f} GFLOP/s)")
  print(f"this machine, TensorFlow, float32: a 2048^3 matmul {matmul:.1f} GFLOP/s; a 16x16 "
        f"432->64 3x3 convolution (batch 8) {conv:.1f} GFLOP/s")
  if args.reference_seconds:
    r = args.reference_seconds
    need = r / args.speedup
    print(f"reference: {r:.3f} s per step = {flops / r / 1e9:.1f} GFLOP/s; {args.speedup}x its "
          f"images/s needs {need:.3f} s per step = {flops / need / 1e9:.1f} GFLOP/s; gflow's "
          f"median is {r / median:.2f}x it")


def _model(args):
  """(trainable variables, loss of a batch, a batch of dequantized random images)."""
  import tensorflow as tf
  if args.model.endswith("glow"):
    import glow_step
    gargs = glow_step.parse_args(["--steps=8", "--width=128", f"--batches={args.batch}"])
    x = glow_step.random_images(args.batch, gargs.image, 1)
    model = (glow_step.TfpModel if args.model == "tfb-glow" else glow_step.GflowModel)(gargs, x)
    return model.variables, model.loss, x
  import random_denseflow

  from gflow.layers.shared_trace import shared_trace_scope
  from gflow.noise import Noise
  model, x = random_denseflow.build(args.model.split("-", 1)[1], args.batch)

  def loss(x):
    with shared_trace_scope(True):
      return tf.reduce_mean(model.bits_per_dim(x, seed=Noise(tf.constant([1, 0])),
                                               training=True))

  return list(model.trainable_variables), loss, x


def graph_flops(graph, library=None):
  """(FLOPs of the convolutions and matmuls `graph` runs, their count), following calls
  (an If's cheaper branch)."""
  library = dict(library or {})
  library.update(getattr(graph, "_functions", {}))
  flops = count = 0
  for op in graph.get_operations():
    if op.type in CALLS:
      f, c = graph_flops(_called(op, "f", library).graph, library)
      flops, count = flops + f, count + c
    elif op.type in ("If", "StatelessIf"):  # the cheaper branch: a lower bound
      f, c = min(graph_flops(_called(op, branch, library).graph, library)
                 for branch in ("then_branch", "else_branch"))
      flops, count = flops + f, count + c
    elif op.type in CONVS + ("Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul",
                             "BatchMatMulV2", "BatchMatMul"):
      flops, count = flops + op_flops(op), count + 1
    elif op.type in ("While", "StatelessWhile"):
      raise NotImplementedError(f"{op.name}: control flow ({op.type}) is not counted")
  return flops, count


def _called(op, attr, library):
  name = op.get_attr(attr).name
  function = library.get(name) or library.get(name.encode())
  if function is None:
    raise KeyError(f"{op.name} calls {name}, not in the graph's function library")
  return function


def op_flops(op):
  """2 multiply-adds' worth per product term of one convolution or matmul."""
  import numpy as np

  def shape(t):
    s = t.shape.as_list()
    if None in s:
      raise ValueError(f"{op.name}: shape {s} is not static")
    return s

  if op.type in CONVS:  # output [n, h, w, o], filter [kh, kw, c, o]
    kh, kw, c, _ = shape(op.inputs[1])
    return 2 * int(np.prod(shape(op.outputs[0]))) * kh * kw * c
  if op.type == "Conv2DBackpropInput":  # as the forward convolution: out_backprop × filter
    kh, kw, c, _ = shape(op.inputs[1])
    return 2 * int(np.prod(shape(op.inputs[2]))) * kh * kw * c
  if op.type == "Conv2DBackpropFilter":
    kh, kw, c, _ = shape(op.outputs[0])
    return 2 * int(np.prod(shape(op.inputs[2]))) * kh * kw * c
  a, b = shape(op.inputs[0]), shape(op.inputs[1])
  ta = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
  tb = op.get_attr("transpose_b" if op.type == "MatMul" else "adj_y")
  m, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
  n = b[-2] if tb else b[-1]
  batch = int(np.prod(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))))
  return 2 * batch * m * n * k


def hlo_flops(text):
  """{"convolution": FLOPs, "dot": FLOPs} of an HLO module's text (shapes looked up by
  instruction name: 2·k_h·k_w·c_in per convolution output, 2·contracted size per dot output)."""
  define = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*\w+\[([\d,]*)\]")
  shapes = {}
  for line in text.splitlines():
    m = define.match(line)
    if m:
      shapes[m.group(1)] = [int(d) for d in m.group(2).split(",") if d]
  flops = {"convolution": 0, "dot": 0}
  for line in text.splitlines():
    m = define.match(line)
    if not m:
      continue
    out = math.prod(shapes[m.group(1)])
    conv = re.search(r"\bconvolution\(%([\w.\-]+), %([\w.\-]+)\)", line)
    if conv:
      kernel, labels = shapes[conv.group(2)], re.search(r"dim_labels=\w+_(\w+)->", line).group(1)
      taps = math.prod(n for n, label in zip(kernel, labels) if label.isdigit())
      flops["convolution"] += 2 * out * taps * kernel[labels.index("i")]
      continue
    dot = re.search(r"\bdot\(%([\w.\-]+), %([\w.\-]+)\)", line)
    if dot:
      lhs = shapes[dot.group(1)]
      dims = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line).group(1)
      flops["dot"] += 2 * out * math.prod(lhs[int(d)] for d in dims.split(",") if d)
  return flops


def peak_rates(repeats=10):
  """The best GFLOP/s of a 2048³ float32 matmul and of a 16x16 432→64 3x3 convolution."""
  import tensorflow as tf
  cases = [(tf.function(lambda a, b: tf.matmul(a, b)),
            (tf.random.normal((2048, 2048)), tf.random.normal((2048, 2048))), 2 * 2048 ** 3),
           (tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME")),
            (tf.random.normal((8, 16, 16, 432)), tf.random.normal((3, 3, 432, 64))),
            2 * 8 * 16 * 16 * 432 * 64 * 9)]
  rates = []
  for f, inputs, flops in cases:
    f(*inputs).numpy()
    best = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      f(*inputs).numpy()
      best = min(best, time.perf_counter() - start)
    rates.append(flops / best / 1e9)
  return rates


if __name__ == "__main__":
  main()
