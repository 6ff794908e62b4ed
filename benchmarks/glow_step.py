"""Time one Glow training step in gflow against `tfp.bijectors.Glow`.

A training step is: forward log_prob of a batch → mean negative log-likelihood
in bits/dim → gradients (tf.GradientTape) → one Adamax update (gflow: `FusedAdamax`,
what `gflow-train` uses, or Keras' with `--gflow_optimizer=keras`; TFP: Keras'), all in
one `tf.function`, with XLA off (`jit_compile=False`) and on
(`jit_compile=True`). Both models get the same batch of dequantized random
8-bit images (gflow: level units [0, 256); TFP: x/256 − 0.5, the loss shifted
by the scaling's Jacobian so it is in the same bits/dim) and the same
architecture: `--levels` levels of `--steps` steps (ActNorm → invertible 1x1
conv → affine coupling with scale sigmoid(h + 2) and a 3x3 → 1x1 → 3x3
coupling CNN with `--width` hidden channels), half the channels factored out
after every level but the last, conditioned on the rest by a 3x3 conv.

Known differences (printed parameter counts differ by ~4 %): gflow's 1x1 conv
is P·L·(U + diag(sign·exp(log_s))), TFP's a packed trainable LU matrix plus an
int32 permutation variable; gflow's zero convolutions have a learned output
scale and it has a learned top prior; TFP's ActNorm runs its data-dependent
initialisation as a `tf.cond` on every call; and TFP's exit (split) coupling
uses scale exp(h + 2), so at initialisation it multiplies the factored-out
channels by e² — hence TFP's much higher initial loss. None of this changes
the amount of work per step much.

Each (batch, xla) is traced / compiled and warmed up for `--warmup` untimed
iterations per model, then `--iters` iterations per model are timed with
`time.perf_counter`, calling `.numpy()` on each loss to synchronise; the timed
calls alternate gflow, tfp, gflow, … so background load hits both alike.
Images/s = batch · iters / seconds; ratio = gflow / tfp (> 1: gflow faster).
If a model fails to trace, compile or run (e.g. tfb.Glow under XLA), its cell
is "-" and the line ends with "<model>: failed (<short reason>)".

Quick check (about a minute on 2 CPU cores):

  /work/venv/bin/python benchmarks/glow_step.py --steps=4 --width=64 --batches=16 --iters=3

prints (TF's own log lines go to stderr; numbers vary with load):

  Glow training step: image 32x32x3, levels 3, steps/level 4, width 64, batches 16, xla off,on, warm-up 2, timed iters 3, Adamax lr 0.001
  TF 2.21.0, Keras 3.15.1, TFP 0.25.0, python 3.11.7, devices ['/device:CPU:0'], cpus 2
  gflow: 371,712 trainable parameters in 152 variables, initial loss 8.27 bits/dim (built in 2.9 s)
  tfp: 357,372 trainable parameters in 112 variables, initial loss 28.51 bits/dim (built in 2.3 s)
  batch  xla     gflow img/s      tfp img/s  gflow/tfp
  16     off           ...            ...        ...
  16     on            ...            ...        ...

The full default (openai/glow's CIFAR-10 size: 3 levels × 32 steps, width 512,
batches 16 and 64; slow on a CPU) is:

  /work/venv/bin/python benchmarks/glow_step.py
"""

import argparse
import functools
import math
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from gflow_glow.model import build_glow

from gflow.flows import Flow
from gflow.train.trainer import OPTIMIZERS

tfb = tfp.bijectors
tfd = tfp.distributions


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--image", default="32,32,3", help="H,W,C (default 32,32,3)")
  p.add_argument("--levels", type=int, default=3)
  p.add_argument("--steps", type=int, default=32, help="steps of flow per level")
  p.add_argument("--width", type=int, default=512, help="coupling CNN hidden channels")
  p.add_argument("--batches", default="16,64", help="comma-separated batch sizes")
  p.add_argument("--xla", default="off,on", help="comma-separated subset of off,on")
  p.add_argument("--warmup", type=int, default=2, help="untimed iterations (compile)")
  p.add_argument("--iters", type=int, default=10, help="timed iterations")
  p.add_argument("--lr", type=float, default=1e-3, help="Adamax learning rate")
  p.add_argument("--gflow_optimizer", default="fused", choices=("fused", "keras"),
                 help="gflow's Adamax: fused (FusedAdamax, what gflow-train uses) or "
                      "keras (keras.optimizers.Adamax, as tfb.Glow's)")
  p.add_argument("--models", default="gflow,tfp", help="comma-separated subset")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  args.image = tuple(int(v) for v in args.image.split(","))
  args.batches = [int(v) for v in args.batches.split(",")]
  args.xla = [{"off": False, "on": True}[v.strip()] for v in args.xla.split(",")]
  args.models = [m.strip() for m in args.models.split(",")]
  if len(args.image) != 3 or any(m not in ("gflow", "tfp") for m in args.models):
    p.error("--image must be H,W,C and --models a subset of gflow,tfp")
  return args


def random_images(batch, shape, seed):
  """Dequantized 8-bit images: float32 in level units [0, 256)."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, size=(batch, *shape)) + rng.random((batch, *shape))
  return tf.constant(x, tf.float32)


class GflowModel:
  name = "gflow"

  def __init__(self, args, init_batch):
    layer = build_glow(levels=args.levels, steps=args.steps, width=args.width)
    self.flow = Flow(layer, args.image, num_levels=256)
    self.flow.initialize(init_batch)  # ActNorm data-dependent init, once, eagerly
    self.initial_loss = float(self.loss(init_batch))
    self.variables = list(self.flow.trainable_variables)

  def loss(self, x):
    return tf.reduce_mean(self.flow.bits_per_dim(x))


class TfpModel:
  name = "tfp"

  def __init__(self, args, init_batch):
    h, w, c = args.image
    self.num_dims = h * w * c
    self.glow = tfb.Glow(
        output_shape=args.image,
        num_glow_blocks=args.levels,
        num_steps_per_block=args.steps,
        coupling_bijector_fn=functools.partial(tfb.GlowDefaultNetwork,
                                               num_hidden=args.width),
        exit_bijector_fn=tfb.GlowDefaultExitNetwork,
        grab_after_block=None,
        use_actnorm=True,
        seed=args.seed)
    base = tfd.Sample(tfd.Normal(0., 1.), [self.num_dims])
    self.dist = tfd.TransformedDistribution(base, self.glow)
    # The first call runs TFP's ActNorm data-dependent init (and builds any
    # lazily built network); only then are all variables known.
    self.initial_loss = float(self.loss(init_batch))
    self.variables = list(self.glow.trainable_variables)

  def loss(self, x):
    # Same density as gflow's: data scaled to [-0.5, 0.5) → log p(x/256 − 0.5),
    # then the Jacobian of the scaling (−D·log 256) to get level units.
    log_p = self.dist.log_prob(x / 256. - 0.5) - self.num_dims * math.log(256.)
    return tf.reduce_mean(-log_p / (self.num_dims * math.log(2.)))


def make_step(model, optimizer, jit_compile):
  def step(x):
    with tf.GradientTape() as tape:
      loss = model.loss(x)
    grads = tape.gradient(loss, model.variables)
    optimizer.apply(grads, model.variables)
    return loss
  return tf.function(step, jit_compile=jit_compile)


def short_reason(exc, limit=160):
  """The gist of a TF error in one line: type and the first line of its cause."""
  lines = [l.strip() for l in str(exc).strip().splitlines() if l.strip()]
  if lines and lines[0].startswith("in user code"):
    # Raised while tracing: a traceback of user code, the cause on the last line.
    lines = lines[-1:]
  text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
  return text if len(text) <= limit else text[:limit - 3] + "..."


def warm_up(step, x, warmup):
  """Traces / compiles `step` and runs it `warmup` times; the last loss."""
  loss = float("nan")
  for _ in range(max(warmup, 1)):
    loss = float(step(x).numpy())
  if not math.isfinite(loss):
    raise FloatingPointError(f"non-finite loss {loss}")
  return loss


def time_steps(steps, x, iters):
  """Images/s of each step function over `iters` calls each.

  The calls alternate between the functions (one call of each per round), so
  a slow-down from other jobs on the machine hits all of them alike and the
  ratio stays meaningful.
  """
  elapsed = {name: 0. for name in steps}
  for _ in range(iters):
    for name, step in steps.items():
      start = time.perf_counter()
      step(x).numpy()
      elapsed[name] += time.perf_counter() - start
  return {name: int(x.shape[0]) * iters / t for name, t in elapsed.items()}


def count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


def main(argv=None):
  args = parse_args(argv)
  tf.random.set_seed(args.seed)
  keras.utils.set_random_seed(args.seed)
  h, w, c = args.image

  devices = [d.name for d in tf.config.list_logical_devices()]
  print(f"Glow training step: image {h}x{w}x{c}, levels {args.levels}, "
        f"steps/level {args.steps}, width {args.width}, batches "
        f"{','.join(map(str, args.batches))}, xla "
        f"{','.join('on' if j else 'off' for j in args.xla)}, warm-up {args.warmup}, "
        f"timed iters {args.iters}, Adamax lr {args.lr} (gflow: {args.gflow_optimizer}, "
        f"tfp: keras)")
  print(f"TF {tf.__version__}, Keras {keras.__version__}, TFP {tfp.__version__}, "
        f"python {platform.python_version()}, devices {devices}, "
        f"cpus {os.cpu_count()}")
  sys.stdout.flush()

  init_batch = random_images(max(args.batches), args.image, args.seed + 1)
  models, optimizers = {}, {}
  for name, cls in (("gflow", GflowModel), ("tfp", TfpModel)):
    if name not in args.models:
      continue
    start = time.perf_counter()
    models[name] = cls(args, init_batch)
    fused = name == "gflow" and args.gflow_optimizer == "fused"
    optimizers[name] = (OPTIMIZERS["adamax"] if fused else keras.optimizers.Adamax)(args.lr)
    optimizers[name].build(models[name].variables)
    print(f"{name}: {count(models[name].variables):,} trainable parameters in "
          f"{len(models[name].variables)} variables, initial loss "
          f"{models[name].initial_loss:.2f} bits/dim (built in "
          f"{time.perf_counter() - start:.1f} s)")
  del init_batch

  print(f"{'batch':<6} {'xla':<4} {'gflow img/s':>14} {'tfp img/s':>14} {'gflow/tfp':>10}")
  sys.stdout.flush()
  for batch in args.batches:
    x = random_images(batch, args.image, args.seed + batch)
    for jit in args.xla:
      steps, failures = {}, {}
      for name, model in models.items():
        step = make_step(model, optimizers[name], jit)
        try:
          warm_up(step, x, args.warmup)
          steps[name] = step
        except Exception as e:  # noqa: BLE001 - report it and keep going
          failures[name] = f"{name}: failed ({short_reason(e)})"
      rates = time_steps(steps, x, args.iters) if args.iters > 0 else {}
      ratio = (f"{rates['gflow'] / rates['tfp']:10.2f}"
               if "gflow" in rates and "tfp" in rates else f"{'-':>10}")
      cells = [f"{rates[name]:14.1f}" if name in rates else f"{'-':>14}"
               for name in ("gflow", "tfp")]
      row = f"{batch:<6} {'on' if jit else 'off':<4} {cells[0]} {cells[1]} {ratio}"
      print(row + "".join(f"   {f}" for f in failures.values()))
      sys.stdout.flush()
      del steps


if __name__ == "__main__":
  main()
