"""DenseFlow-L-k (Grcić et al. 2021): blocks of densely augmented units of glow-like modules.

    squeeze → block₁ → [squeeze, split] → block₂ → … → block_B → per-channel prior

A module is ActNorm → invertible 1x1 conv → affine coupling (scale
exp(2·tanh(h/2))) → channel swap; a unit is N modules; a block is M units with
cross-unit coupling (growth-rate noise channels) between consecutive units.
Between blocks, squeeze and factor half of the channels out to N(0, I).
With `model.sharing` the intra-unit coupling networks share parameters as in
NanoFlow (`gflow.nets.sharing`), per block or across the model; the paper did
not share DenseFlow's networks.
"""

import functools

from gflow import layers as gl
from gflow import nets
from gflow.choices import check_choice
from gflow.flows import AugmentedFlow
from gflow.nets.sharing import SharingGroups

__all__ = ["build_denseflow", "build_model", "glow_like_module", "COUPLINGS", "DEQUANTIZATIONS"]

COUPLINGS = ("dense", "glow")
DEQUANTIZATIONS = ("variational", "uniform")


def glow_like_module(network_fn, trace_key=None, lu=False):
  """ActNorm → 1x1 conv (dense kernel, or LU with `lu`) → affine coupling (exp(2·tanh(h/2))
  scale) → channel swap; a checkpoint boundary for `train.remat`, sharing its trace with
  the modules of the same `trace_key` (`gflow.layers.shared_trace`)."""
  return gl.checkpoint(gl.SequentialFlow([
      gl.ActNormLayer(),
      gl.Conv1x1Layer(lu=lu),
      gl.CouplingLayer(network_fn, kind="affine", scale_fn="exp_tanh"),
      gl.ChannelSwapLayer(),
  ]), trace_key=trace_key)


def coupling_network_fn(model_config):
  """The intra-unit coupling network factory `f(out_channels)` the config names."""
  c = model_config
  dtype = c.get("network_dtype") or None
  if c.coupling == "dense":
    return functools.partial(
        nets.DenseFlowCouplingNet, width=c.width, depth=c.dense_depth, growth=c.dense_growth,
        embed_dim=c.embed_dim, num_landmarks=c.num_landmarks,
        pinv_iterations=c.pinv_iterations, attention=c.attention,
        virtual_batch_size=c.get("virtual_batch_size", 0) or None, dtype=dtype)
  if c.coupling == "glow":
    return functools.partial(nets.GlowCNN, width=c.glow_width, dtype=dtype)
  check_choice(c.coupling, COUPLINGS, "coupling (model.coupling)")


def build_denseflow(units, modules, growth, network_fn, augment=True, preconditioned=True,
                    context="all", network_dtype=None, lu=False, stack=False):
  """The DenseFlow flow layer: `units[b]` units of `modules[b]` modules in block b.

  `network_fn` is the coupling-network factory, or a callable of the block index
  giving one (a `gflow.nets.sharing.SharingGroups`). `stack`: each unit holds its
  modules' variables stacked (`gflow.layers.StackedFlow`), unless the modules share
  networks.
  """
  block_fn = network_fn if isinstance(network_fn, SharingGroups) else lambda b: network_fn
  # Modules of one network factory run the same code at the same shapes; a sharing
  # group's modules differ by their flow index, so they keep their own traces.
  shared = isinstance(network_fn, SharingGroups) and network_fn.variant != "none"
  trace_key = None if shared else f"denseflow_module:lu={lu}:{_describe(block_fn(0))}"
  if len(units) != len(modules) or not units:
    raise ValueError(f"DenseFlow needs one modules-per-unit count per block; got units="
                     f"{list(units)} and modules={list(modules)}.")
  if min(units) < 1 or min(modules) < 1:
    raise ValueError(f"DenseFlow needs >= 1 unit and module per block; got units="
                     f"{list(units)}, modules={list(modules)}.")
  stack = stack and not shared  # modules that share networks are not stacked

  def unit(b, u):
    make = functools.partial(glow_like_module, block_fn(b), trace_key, lu=lu)
    if stack:
      return gl.StackedFlow(make, modules[b], name=f"block{b}_unit{u}")
    return gl.SequentialFlow([make() for _ in range(modules[b])], name=f"block{b}_unit{u}")
  inner = None
  for b in reversed(range(len(units))):
    block = gl.CrossUnitBlock(
        [unit(b, u) for u in range(units[b])],
        growth, augment=augment, preconditioned=preconditioned, context=context,
        network_dtype=network_dtype, name=f"block{b}")
    if inner is None:  # the last block: scored by a learned per-channel Gaussian
      level = [block, gl.LearnedPriorLayer(per_channel=True, name="top_prior")]
    else:
      level = [block, gl.MultiScale(inner, name=f"split{b}")]
    inner = gl.StochasticSequential(level, name=f"level{b}")
  return gl.StochasticSequential([gl.SqueezeLayer(name="squeeze"), inner], name="denseflow")


def _describe(network_fn):
  """A factory's class and keyword arguments, as text (part of the modules' trace key)."""
  if isinstance(network_fn, functools.partial):
    return f"{network_fn.func.__qualname__}{sorted(network_fn.keywords.items())}"
  return repr(network_fn)


def build_model(model_config, event_shape):
  """DenseFlow as a `gflow.AugmentedFlow` over images of `event_shape` (H, W, C)."""
  c = model_config
  h, w, _ = event_shape
  scale = 2 ** len(c.units)
  if h % scale or w % scale:
    raise ValueError(f"DenseFlow with {len(c.units)} blocks squeezes by {scale}; image size "
                     f"{h}x{w} is not divisible.")
  check_choice(c.dequantization, DEQUANTIZATIONS, "dequantization (model.dequantization)")
  sharing = SharingGroups.from_config(coupling_network_fn(c), c)
  network_dtype = c.get("network_dtype") or None  # every network: couplings, g, dequantizer
  # (A config saved before `model.lu` existed had LU convolutions and no blend conv in
  # the coupling networks: its checkpoints do not restore into this model, and the
  # trainer's CheckpointMismatch names the variables that differ.)
  flow = build_denseflow(tuple(c.units), tuple(c.modules), c.growth, sharing,
                         augment=c.augment, preconditioned=c.preconditioned,
                         context=c.noise_context, network_dtype=network_dtype,
                         lu=c.get("lu", False), stack=c.get("stack_modules", False))
  dequantizer = None
  if c.dequantization == "variational":
    d = c.dequantizer
    dequantizer = gl.VariationalDequantization(
        num_levels=c.num_levels, num_steps=d.steps, context_channels=d.context_channels,
        width=d.width, depth=d.depth, growth=d.growth, lu=c.get("lu", False),
        network_dtype=network_dtype, name="dequantizer")
  return AugmentedFlow(flow, event_shape, dequantizer=dequantizer, num_levels=c.num_levels,
                       name="DenseFlow")
